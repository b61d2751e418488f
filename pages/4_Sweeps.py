"""Parameter sweeps: a grid of settings x seeds in the background, every result kept, statistics over seeds."""
from dashboard import sweeps_view, ui

ui.page_setup("Sweeps", "🧪")
ui.session_runs()  # keeps this session's live runs attached to the browser session while this page is open
sweeps_view.page()
