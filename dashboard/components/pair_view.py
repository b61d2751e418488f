"""The side-by-side mode's panels: the two runs' status lines, their live latent pictures next to each other (one
view, one colouring and one pair of axis ranges for both) and both accuracy curves on one chart with the gap
labelled. The pictures are the live page's own (:func:`dashboard.components.latent_panel.scatter_figure`, the one
scatter specification of :mod:`vaegmm.views.scatter`); Streamlit's columns stack on a narrow screen."""
from __future__ import annotations

from typing import Optional

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard import charts
from dashboard.components.figure_cache import cached_figure
from dashboard.components.latent_panel import picture, scatter_figure
from dashboard.components.markup import escape_html
from dashboard.components.status import status_line
from dashboard.components.view_selector import COLOUR_BY, view_selector
from dashboard.state.pair import PairEntry
from vaegmm.runs.pair import SIDES, WITH, WITHOUT, accuracy_gap

SIDE_COLOURS = {WITH: "#1565c0", WITHOUT: "#757575"}  # the two curves, and the headings of the two halves
SIDE_DASH = {WITH: "solid", WITHOUT: "dash"}
PICTURE_HEIGHT = 480


def side_heading(side: str, snap) -> None:
    """The half's heading: "with feedback" / "without feedback" and its latest accuracy."""
    last = snap.history[-1] if snap is not None and snap.history else None
    acc = "" if last is None else f" · accuracy {last.accuracy:.3f} (iteration {last.iteration})"
    prior = ("prior N(μ_c, I): the GMM's class means" if side == WITH else "prior N(0, I): the VAE alone")
    st.markdown(f'<div data-testid="vaegmm-pair-side" data-side="{escape_html(side)}" style="font-size:1.25rem">'
                f'<b style="color:{SIDE_COLOURS[side]}">{escape_html(side)}</b>{escape_html(acc)}'
                f'<br><span style="font-size:0.9rem;color:#666">{escape_html(prior)}</span></div>',
                unsafe_allow_html=True)


def pair_statuses(entry: PairEntry, snaps: dict) -> None:
    """Both runs' status lines (state, iteration, progress bar), one per half."""
    for side, col in zip(SIDES, st.columns(2)):
        with col:
            side_heading(side, snaps[side])
            status_line(snaps[side])


def shared_ranges(boxes: list) -> Optional[tuple]:
    """The union of several ``((x0, x1), (y0, y1))`` axis ranges (None ones skipped): both pictures keep the
    same axes, so a tighter cluster on one side looks tighter."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    lo = np.min([[b[0][0], b[1][0]] for b in boxes], axis=0)
    hi = np.max([[b[0][1], b[1][1]] for b in boxes], axis=0)
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def pair_pictures(entry: PairEntry, snaps: dict) -> None:
    """The view and colouring (one choice for both), then the two latent pictures next to each other: the codes
    right now while a run trains, else its last iteration."""
    c1, c2 = st.columns([1, 1.3])
    colour = c1.segmented_control("Colour by", COLOUR_BY, default="digit", key="pair_colour_by",
                                  required=True) or "digit"
    kind = view_selector(c2, "pair_view_kind")
    by = "class" if colour == "GMM class" else "digit"
    drawn = {}
    for side in SIDES:
        run, snap = entry.entry(side).run, snaps[side]
        if snap.history and run.labels is not None:
            shown, live = picture(run, snap, kind)
            drawn[side] = (shown, live, run.views.ranges(shown.view.kind, shown.view.xy))
    same_kind = len({d[0].view.kind for d in drawn.values()}) == 1
    ranges = shared_ranges([d[2] for d in drawn.values()]) if same_kind else None
    for side, col in zip(SIDES, st.columns(2)):
        with col:
            if side not in drawn:
                st.info("Iteration 0 (the untrained encoder) appears here as soon as this run starts.",
                        icon=":material/hourglass_top:")
                continue
            shown, live, own = drawn[side]
            snap = snaps[side]
            done = {r.iteration: r for r in snap.history}
            fig = scatter_figure(entry.entry(side), done, shown, live, snap.history[-1], by,
                                 ranges=ranges or own, height=PICTURE_HEIGHT, short=side)
            st.plotly_chart(fig, key=f"pair_scatter_{SIDES.index(side)}", config={"displaylogo": False})
            if shown.note:
                st.caption(shown.note)


def accuracy_pair_chart(with_history: list, without_history: list, height: int = 380) -> go.Figure:
    """Both runs' accuracy per iteration on one chart (meta "pair_accuracy", traces meta "curve" named after
    their side), the gap at the latest iteration both finished drawn as a bar between the two points and
    labelled (e.g. "feedback +4.2 points (iteration 7)")."""
    fig = go.Figure()
    for side, h in ((WITH, with_history), (WITHOUT, without_history)):
        fig.add_trace(go.Scatter(x=[r.iteration for r in h], y=[float(r.accuracy) for r in h], mode="lines+markers",
                                 name=side, meta="curve", line=dict(color=SIDE_COLOURS[side], dash=SIDE_DASH[side],
                                                                     width=3)))
    gap = accuracy_gap(with_history, without_history)
    if gap is not None:
        fig.add_trace(go.Scatter(x=[gap.iteration, gap.iteration], y=[gap.without_feedback, gap.with_feedback],
                                 mode="lines", name="gap", meta="gap", showlegend=False, hoverinfo="skip",
                                 line=dict(color="#c62828", width=4)))
        fig.add_annotation(x=gap.iteration, y=(gap.with_feedback + gap.without_feedback) / 2, text=gap.label(),
                           showarrow=True, arrowhead=0, ax=-90, ay=-30, font=dict(size=16, color="#c62828"),
                           bgcolor="rgba(255,255,255,0.85)")
    charts.base_layout(fig, "pair_accuracy", "Accuracy per iteration, with and without feedback", height=height)
    fig.update_layout(xaxis=dict(title="iteration", dtick=1 if max(len(with_history), len(without_history)) <= 12
                                 else None), yaxis=dict(title="accuracy", range=[0, 1]),
                      legend=dict(orientation="h", y=-0.2), title=dict(font=dict(size=18)))
    return fig


def pair_curves(entry: PairEntry, snaps: dict) -> None:
    """The gap in large type, then the accuracy chart (rebuilt only when an iteration finished)."""
    h_on, h_off = snaps[WITH].history, snaps[WITHOUT].history
    gap = accuracy_gap(h_on, h_off)
    value = "–" if gap is None else f"{gap.points:+.1f} points"
    detail = ("the gap appears when iteration 1 has finished in both runs" if gap is None else
              f"accuracy at iteration {gap.iteration}: {gap.with_feedback:.3f} with feedback, "
              f"{gap.without_feedback:.3f} without")
    st.markdown(f'<div data-testid="vaegmm-pair-gap" data-gap="{"" if gap is None else f"{gap.points:.2f}"}" '
                f'style="font-size:1.6rem;font-weight:600;color:#c62828">feedback vs none: {escape_html(value)}'
                f'<span style="font-size:1rem;color:#666;font-weight:400"> &nbsp;{escape_html(detail)}'
                f'</span></div>', unsafe_allow_html=True)
    key = ("pair_accuracy", len(h_on), len(h_off))
    fig = cached_figure(entry.entry(WITH), key, lambda: accuracy_pair_chart(h_on, h_off))
    st.plotly_chart(fig, key="pair_accuracy_chart", config={"displaylogo": False})

