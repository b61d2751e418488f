"""The run library on the Compare page: filters, the table of every saved run with links to open it, and the
accuracy curves of the chosen runs."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from dashboard import charts
from dashboard.state.saved_runs import saved_histories, saved_runs_table
from dashboard.state.store import store_problem
from dashboard.components.markup import escape_markdown


def compare_saved() -> None:
    """The Compare page's "all saved runs": filters, the table, curves of the chosen runs, links to open them."""
    problem = store_problem()
    if problem:
        st.warning(f"Saved runs are not available: {escape_markdown(problem)}", icon=":material/database:")
        return
    df = saved_runs_table()
    if df is None or df.empty:
        st.info("No saved run yet: every run started here or with `python -m vaegmm run` is kept.")
        return
    c1, c2, c3, c4 = st.columns([2, 2, 1.4, 2])
    presets = c1.multiselect("Preset", sorted(p for p in df["preset"].unique() if p), key="lib_presets")
    sources = c2.multiselect("Started from", sorted(df["source"].unique()), key="lib_sources")
    days = c3.number_input("Last days", 0, 3650, 0, key="lib_days", help="0: any date")
    text = c4.text_input("Settings contain", key="lib_text", placeholder="e.g. alpha=0.5 or feedback off")
    view = df
    if presets:
        view = view[view["preset"].isin(presets)]
    if sources:
        view = view[view["source"].isin(sources)]
    if days:
        since = (dt.datetime.now() - dt.timedelta(days=int(days))).strftime("%Y-%m-%d %H:%M")
        view = view[view["when"] >= since]
    if text.strip():
        view = view[view["settings"].str.contains(text.strip(), case=False, regex=False)]
    st.caption(f"{len(view)} of {len(df)} saved runs. Open one with its link: the main page shows it read-only "
               f"(`?run=<id>`), the Latent explorer too.")
    view = view.assign(open=[f"./?run={i}" for i in view["run"]],
                       explore=[f"./Latent_explorer?run={i}" for i in view["run"]])
    st.dataframe(view, hide_index=True, width="stretch", column_config={
        "open": st.column_config.LinkColumn("open", display_text="live page"),
        "explore": st.column_config.LinkColumn("explore", display_text="explorer")})
    chosen = st.multiselect("Curves of", list(view["run"])[:200], default=list(view["run"])[:5],
                            key="lib_curves", format_func=lambda i: f"#{i}")
    if chosen:
        fig = charts.compare_chart(saved_histories(chosen), "accuracy")
        st.plotly_chart(fig, key="lib_compare_chart", config={"displaylogo": False})
