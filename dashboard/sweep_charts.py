"""Plotly figures for the Sweeps page (pure functions of a sweep's tables; no Streamlit).

Every figure sets ``layout.meta`` ("sweep_curves", "sweep_heatmap", "sweep_final") and its traces carry
``meta`` ("mean", "band", "cell"), so tests find them in the browser's DOM.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from dashboard.charts import base_layout
from vaegmm.sweeps.stats import mean_ci_bands, summarize
from vaegmm.views.scatter import group_colour

METRIC_NAMES = {"accuracy": "accuracy", "nmi": "NMI", "ari": "ARI"}


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _clean(xs) -> list:
    return [None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4) for x in xs]


def curves_chart(curves_by_cell: Sequence[tuple[str, Sequence[Sequence[float]]]], metric: str = "accuracy",
                 height: int = 420) -> go.Figure:
    """Per cell, the mean curve over its finished runs and the 95 % CI band of the mean, per iteration.
    ``curves_by_cell = [(cell name, [per-run curve, ...]), ...]``."""
    fig = go.Figure()
    for i, (cell, curves) in enumerate(curves_by_cell):
        if not curves:
            continue
        colour = group_colour(i)
        its, mean, lo, hi = mean_ci_bands(curves)
        its = [int(x) for x in its]
        if np.isfinite(lo).any():
            fig.add_trace(go.Scatter(x=its + its[::-1], y=_clean(list(hi) + list(lo[::-1])), fill="toself", mode="lines",
                                     fillcolor=_rgba(colour, 0.15), line=dict(width=0), hoverinfo="skip",
                                     name=f"{cell} 95 % CI", meta="band", legendgroup=cell, showlegend=False))
        fig.add_trace(go.Scatter(x=its, y=_clean(mean), mode="lines+markers", name=f"{cell} (n={len(curves)})",
                                 meta="mean", legendgroup=cell, line=dict(color=colour),
                                 hovertemplate=f"{cell}<br>iteration %{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_xaxes(title_text="iteration", dtick=1, rangemode="tozero")
    fig.update_yaxes(title_text=f"mean {METRIC_NAMES.get(metric, metric)}")
    fig.update_layout(legend=dict(orientation="h", y=-0.2, x=0), showlegend=True)
    return base_layout(fig, "sweep_curves", "", height)


def heatmap_chart(x_axis: str, x_values: Sequence[str], y_axis: str, y_values: Sequence[str],
                  means: dict, counts: dict, metric: str = "accuracy", height: int = 380) -> go.Figure:
    """Mean final ``metric`` for two axes: ``means[(y, x)]`` (other axes averaged over), ``counts`` the runs."""
    z = [[means.get((y, x)) for x in x_values] for y in y_values]
    text = [[("" if means.get((y, x)) is None else f"{means[(y, x)]:.3f}<br>n={counts.get((y, x), 0)}")
             for x in x_values] for y in y_values]
    fig = go.Figure(go.Heatmap(z=[_clean(row) for row in z], x=[f"{x_axis}={x}" for x in x_values],
                               y=[f"{y_axis}={y}" for y in y_values], text=text, texttemplate="%{text}",
                               colorscale="Viridis", colorbar=dict(title=dict(text=f"mean {metric}")), meta="cell",
                               hovertemplate="%{y}, %{x}: %{z:.3f}<extra></extra>"))
    return base_layout(fig, "sweep_heatmap", "", height)


def final_chart(values_by_cell: Sequence[tuple[str, Sequence[float]]], metric: str = "accuracy",
                height: int = 360) -> go.Figure:
    """Mean final ``metric`` per cell with its 95 % CI as an error bar, and every run as a dot."""
    fig = go.Figure()
    names, means, lo_err, hi_err = [], [], [], []
    for cell, values in values_by_cell:
        s = summarize(values)
        names.append(cell)
        means.append(s.mean if s.n else None)
        lo_err.append(0.0 if s.n < 2 else s.mean - s.ci_low)
        hi_err.append(0.0 if s.n < 2 else s.ci_high - s.mean)
    fig.add_trace(go.Bar(x=names, y=_clean(means), name="mean", meta="mean", marker_color="#1f77b4",
                         error_y=dict(type="data", symmetric=False, array=_clean(hi_err), arrayminus=_clean(lo_err)),
                         hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    xs, ys = [], []
    for cell, values in values_by_cell:
        xs += [cell] * len(values)
        ys += list(values)
    fig.add_trace(go.Scatter(x=xs, y=_clean(ys), mode="markers", name="runs", meta="cell",
                             marker=dict(color="black", size=6, opacity=0.6)))
    fig.update_yaxes(title_text=f"final {METRIC_NAMES.get(metric, metric)}")
    fig.update_layout(showlegend=False)
    return base_layout(fig, "sweep_final", "", height)


def heat_means(runs, x_axis: str, y_axis: str, metric: str = "accuracy") -> tuple[dict, dict]:
    """``(means, counts)`` keyed by (y value, x value) over the finished runs of ``runs`` (a DataFrame with one
    column per axis)."""
    fin = runs[runs["status"] == "finished"]
    means, counts = {}, {}
    if not len(fin):
        return means, counts
    for (y, x), sub in fin.groupby([y_axis, x_axis]):
        vals = sub[metric].astype(float)
        means[(str(y), str(x))] = float(vals.mean())
        counts[(str(y), str(x))] = int(len(vals))
    return means, counts
