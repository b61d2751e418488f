"""The model, its two objectives and what to look for, written for students."""
from dashboard.components.navigation import page_setup
from dashboard.screens.how_it_works import how_it_works_page
from dashboard.state.browser_session import session_runs

page_setup("How it works", "📖")
session_runs()  # keeps this session's runs attached to the browser session while this page is open
how_it_works_page()
