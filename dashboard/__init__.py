"""The Streamlit dashboard, in layers (each imports only the layers below it; an import-linter contract in
pyproject.toml, checked by ``lint-imports``):

    app.py, pages/     thin: page setup, read the session's state, call a screen
    screens/           one per page: live run, saved run, compare runs, latent explorer, how it works, sweeps
    components/        status line, metric cards, controls, panels, view selector, library table, sweep form...
    charts, sweep_charts   Plotly figures (pure functions, no Streamlit), beside the components
    state/             session bookkeeping, settings <-> URL, the one cached store connection, the session count
"""
