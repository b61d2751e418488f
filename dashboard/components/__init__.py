"""The pieces pages are drawn from (status line, metric cards, controls, panels, selectors, tables); each draws
with Streamlit and reads the state below it, never a screen."""
