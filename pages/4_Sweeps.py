"""Parameter sweeps: a grid of settings x seeds in the background, every result kept, statistics over seeds."""
from dashboard.components.navigation import page_setup
from dashboard.screens.sweeps import page
from dashboard.state.browser_session import session_runs

page_setup("Sweeps", "🧪")
session_runs()  # keeps this session's live runs attached to the browser session while this page is open
page()
