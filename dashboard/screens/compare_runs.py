"""The Compare runs page: this tab's runs side by side (settings, final metrics, curves), or every saved run of
the run library."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.components.feedback_effect import measured_feedback_effect
from dashboard.components.library_table import compare_saved
from dashboard.state.refresh import live_every
from dashboard.state.session import RunEntry, SessionRuns


def compare_runs_page(runs: SessionRuns) -> None:
    """The whole page (below the navigation)."""
    st.title("Compare runs")
    st.caption("All runs of this browser session, or every saved run. Try the same settings with alpha = 0 and "
               "alpha = 1, or with feedback on and off, over a few seeds: one run differs from the next by about 3 "
               "points, so one run per setting cannot tell. The Sweeps page runs settings x seeds with statistics.")
    measured_feedback_effect()
    compare(runs)


def _row(e: RunEntry) -> dict:
    s, snap = e.settings, e.run.snapshot()
    h = snap.history
    first, last = (h[0], h[-1]) if h else (None, None)
    return {
        "run": f"#{e.run.id}", "state": snap.state, "images": s["n"],
        "digits": "all" if len(s["digits"]) == 10 else "".join(map(str, s["digits"])), "K": s["k"],
        "D": s["latent"], "alpha": s["alpha"], "iterations": f"{snap.iterations_done}/{s['iterations']}",
        "epochs": s["epochs"], "batch": s["batch"], "GMM": s["gmm"], "codes": s["codes"],
        "feedback": "on" if s["feedback"] else "off", "seed": s["seed"],
        "accuracy it. 0": round(first.accuracy, 4) if first else None,
        "final accuracy": round(last.accuracy, 4) if last else None,
        "change": round(last.accuracy - first.accuracy, 4) if last else None,
        "final NMI": round(last.nmi, 4) if last else None, "final ARI": round(last.ari, 4) if last else None,
        "s / iteration": round(snap.seconds_per_iteration, 2) if snap.seconds_per_iteration else None,
    }


def compare(runs: SessionRuns) -> None:
    """This tab's runs, or every saved run (the run library): one fragment, refreshed every second or slower
    (``live_every()``)."""

    @st.fragment(run_every=max(1.0, live_every()))  # constant for the session: see dashboard/screens/live_run.py
    def body():
        mode = st.segmented_control("Runs", ["this tab", "all saved runs"], default="this tab", key="compare_mode",
                                    required=True) or "this tab"
        if mode == "all saved runs":
            compare_saved()
            return
        entries = runs.entries
        if not entries:
            st.info("No run yet in this tab. Start one on the main page (**Live training**), change a setting (for "
                    "example alpha from 1 to 0, or switch feedback off) and start again: every run appears here. "
                    "Runs of earlier visits are under **all saved runs**.")
            return
        st.subheader("Settings and final metrics")
        df = pd.DataFrame([_row(e) for e in entries])
        st.dataframe(df, hide_index=True, width="stretch")
        metric = st.segmented_control("Curve", ["accuracy", "nmi", "ari"], default="accuracy", key="compare_metric",
                                      format_func={"accuracy": "accuracy", "nmi": "NMI", "ari": "ARI"}.get,
                                      required=True) or "accuracy"
        with_h = [e for e in entries if e.run.history]
        st.subheader(f"{ {'accuracy': 'Accuracy', 'nmi': 'NMI', 'ari': 'ARI'}[metric]} per iteration, all runs")
        st.plotly_chart(charts.compare_chart([(e.label, e.run.history) for e in with_h], metric),
                        key="compare_chart", config={"displaylogo": False})

    body()
