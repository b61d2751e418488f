"""Every run of this browser session side by side: settings, final metrics, accuracy curves."""
from dashboard.components.navigation import page_setup
from dashboard.screens.compare_runs import compare_runs_page
from dashboard.state.browser_session import session_runs

page_setup("Compare runs", "📊")
compare_runs_page(session_runs())
