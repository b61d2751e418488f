"""The selected sweep's results: the table per cell (mean ± std, 95 % CI), CSV downloads, curves per iteration,
final values per cell or a heat map over two axes, a paired comparison of two cells, and the runs that did not
finish."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import sweep_charts
from dashboard.components.markup import escape_html
from vaegmm.sweeps.results import compare_cells


def results_panel(data: dict) -> None:
    spec, runs, its, table = data["spec"], data["runs"], data["its"], data["table"]
    fin = runs[runs["status"] == "finished"] if len(runs) else runs
    st.subheader("Results per cell")
    st.caption("Final values after the last iteration, over the seeds finished so far: mean ± std and the 95 % "
               "confidence interval of the mean (Student t).")
    view = pd.DataFrame({
        "cell": table["cell"], "seeds done": table["seeds done"],
        "accuracy": [summarize_text(r, "accuracy") for _, r in table.iterrows()],
        "accuracy 95 % CI": [ci_text(r, "accuracy") for _, r in table.iterrows()],
        "NMI": [summarize_text(r, "nmi") for _, r in table.iterrows()],
        "NMI 95 % CI": [ci_text(r, "nmi") for _, r in table.iterrows()],
        "ARI": [summarize_text(r, "ari") for _, r in table.iterrows()],
        "ARI 95 % CI": [ci_text(r, "ari") for _, r in table.iterrows()],
        "failed": table["failed"], "s / run": table["s / run"].round(1)})
    st.dataframe(view, hide_index=True, width="stretch", key="sw_table")
    c1, c2 = st.columns(2)
    c1.download_button("Download the table (CSV)", table.to_csv(index=False).encode(), key="sw_csv_cells",
                       file_name=f"{data['info']['name']}-cells.csv", mime="text/csv",
                       icon=":material/download:", width="stretch")
    c2.download_button("Download every run (CSV)", runs.to_csv(index=False).encode(), key="sw_csv_runs",
                       file_name=f"{data['info']['name']}-runs.csv", mime="text/csv",
                       icon=":material/download:", width="stretch")

    metric = st.segmented_control("Metric", ["accuracy", "nmi", "ari"], default="accuracy", key="sw_metric",
                                  format_func=sweep_charts.METRIC_NAMES.get, required=True) or "accuracy"
    cells = spec.cells()
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{sweep_charts.METRIC_NAMES[metric]} per iteration**: mean over seeds, 95 % CI band")
        curves = []
        for c in cells:
            ids = fin.loc[fin["cell"] == c.name, "run_id"].tolist()
            curves.append((c.name, [its.loc[its["run_id"] == i, metric].tolist() for i in ids]))
        st.plotly_chart(sweep_charts.curves_chart(curves, metric), key="sw_curves", config={"displaylogo": False})
    with right:
        names = [a.name for a in spec.axes]
        if len(names) >= 2:
            st.markdown(f"**Mean final {sweep_charts.METRIC_NAMES[metric]}** for two axes"
                        + (" (averaged over the others)" if len(names) > 2 else ""))
            h1, h2 = st.columns(2)
            x_axis = h1.selectbox("across", names, index=1, key="sw_heat_x")
            y_axis = h2.selectbox("down", names, index=0, key="sw_heat_y")
            if x_axis == y_axis:
                st.info("Choose two different axes.")
            else:
                means, counts = sweep_charts.heat_means(runs, x_axis, y_axis, metric)
                ax = {a.name: [v.label for v in a.values] for a in spec.axes}
                st.plotly_chart(sweep_charts.heatmap_chart(x_axis, ax[x_axis], y_axis, ax[y_axis], means, counts,
                                                           metric), key="sw_heatmap", config={"displaylogo": False})
        else:
            st.markdown(f"**Final {sweep_charts.METRIC_NAMES[metric]} per cell**: mean, 95 % CI, every run")
            vals = [(c.name, fin.loc[fin["cell"] == c.name, metric].astype(float).tolist()) for c in cells]
            st.plotly_chart(sweep_charts.final_chart(vals, metric), key="sw_final", config={"displaylogo": False})

    st.subheader("Compare two cells")
    if len(cells) < 2:
        st.info("One cell only: add an axis with two or more values to compare settings.")
    else:
        names = [c.name for c in cells]
        c1, c2 = st.columns(2)
        a = c1.selectbox("Cell A", names, index=0, key="sw_cmp_a")
        b = c2.selectbox("Cell B", names, index=1, key="sw_cmp_b")
        if a == b:
            st.info("Choose two different cells.")
        elif len(fin):
            p = compare_cells(spec, runs, a, b, metric)
            st.markdown(f'<div data-testid="vaegmm-sweep-compare">{escape_html(p.sentence())}</div>', unsafe_allow_html=True)
            st.caption("Paired over the seeds both cells finished: the same seed gives both the same images and "
                       "starting weights, so the differences vary less than the values. The 95 % CI is that of the "
                       "mean difference (Student t); p-values from scipy's paired t-test and Wilcoxon test. With "
                       "fewer than 6 seeds the Wilcoxon test cannot reach p < 0.05.")
    bad = runs[runs["status"].isin(["failed", "stopped", "interrupted"])] if len(runs) else runs
    if len(bad):
        with st.expander(f"Runs that did not finish ({len(bad)})"):
            st.dataframe(bad[["cell", "seed", "status", "message"]], hide_index=True, width="stretch")


def summarize_text(r, m: str) -> str:
    if r["n"] == 0:
        return "–"
    return f"{r[m + ' mean']:.3f}" + (f" ± {r[m + ' std']:.3f}" if r["n"] > 1 else "")


def ci_text(r, m: str) -> str:
    return "–" if r["n"] < 2 else f"{r[m + ' ci low']:.3f} to {r[m + ' ci high']:.3f}"


