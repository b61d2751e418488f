"""The run's latent-space panel: the scatter of the selected iteration (or, while the VAE trains, of the codes
right now; or the Replay of a finished run) in the chosen 2-D view, its export buttons, and before vs after."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from dashboard import charts
from dashboard.components import view_fallback
from dashboard.components.export_buttons import export_buttons
from dashboard.components.figure_cache import cached_figure, live_picture_key
from dashboard.components.replay_panel import replay_panel
from dashboard.components.view_selector import COLOUR_BY, view_selector
from dashboard.state.session import RunEntry
from vaegmm.runs.state import TERMINAL, live_picture

SMALL_POINTS = 600  # points in the small "before vs after" copies (SVG, redrawn at every refresh)


def charts_panel(entry: RunEntry, snap) -> None:
    """Latent scatter (the selected iteration, or the codes right now while the VAE trains, or the Replay of a
    finished run) in the chosen 2-D view, the export buttons, and before vs after."""
    run = entry.run
    h = snap.history
    labels = run.labels
    if not h or labels is None:
        st.info("Iteration 0 (the untrained encoder) appears here as soon as the run starts.",
                icon=":material/hourglass_top:")
        return
    c1, c2, c3 = st.columns([1, 1.15, 1])
    colour = c1.segmented_control("Colour by", COLOUR_BY, default="digit", key="colour_by", required=True) or "digit"
    kind = view_selector(c2, "view_kind")
    done = {r.iteration: r for r in h}
    # fixed options (every planned iteration), so the choice survives while more iterations finish
    options = ["latest"] + list(range(snap.config.iterations + 1))
    pick = c3.selectbox("Iteration", options, key="iteration_pick",
                        format_func=lambda o: "latest iteration" if o == "latest" else
                        f"iteration {o}" + ("" if o in done else " (not yet)"))
    result = done.get(pick, h[-1])
    by = "class" if colour == "GMM class" else "digit"
    shown, live = picture(run, snap, kind, result, latest=pick == "latest")
    terminal = snap.state in TERMINAL
    e1, e2, e3, e4 = st.columns([1.3, 1, 1, 1], vertical_alignment="center")
    replay = terminal and e1.toggle("Replay", key="replay_on",
                                    help="Play the whole run: every iteration and the snapshots taken while the VAE "
                                         "trained, in the chosen view.")
    if not terminal:
        e1.caption("Replay and the animation: once the run has finished or is stopped.")
    export_buttons(entry, snap, kind, by, shown, live, result, (e2, e3, e4))
    if replay:
        replay_panel(entry, snap, kind, by)
    else:
        _scatter(entry, done, shown, live, result, by)
    before_after(entry, h, by)


def picture(run, snap, kind: str, result=None, latest: bool = True) -> tuple:
    """``(shown, live)``: what the big scatter draws in view ``kind``: the codes right now (``live``,
    :func:`~vaegmm.runs.state.live_picture`: the snapshot of the VAE update in progress, the followers' picture
    too) when ``latest`` is asked for, else finished iteration ``result`` (default the last one) and ``live``
    None. ``shown`` is the :class:`view_fallback.Shown` view."""
    h = snap.history
    live = live_picture(snap) if latest else None
    shown = None
    if live is not None:
        shown = view_fallback.live_view(run, h, live, kind)
        if shown is None:
            live = None
    if live is None:
        shown = view_fallback.iteration_view(run, h, (result or h[-1]).iteration, kind)
    return shown, live


def _scatter(entry: RunEntry, done: dict, shown: view_fallback.Shown, live, result, by: str) -> None:
    """The big scatter: the codes right now (``live``, a snapshot of the VAE update in progress) in the axes of
    the last finished iteration, or finished iteration ``result``."""
    view_fallback.explain(shown)
    st.plotly_chart(scatter_figure(entry, done, shown, live, result, by), key="scatter_main",
                    config={"displaylogo": False})


def scatter_figure(entry: RunEntry, done: dict, shown: view_fallback.Shown, live, result, by: str,
                   ranges: Optional[tuple] = None, height: int = 460, short: Optional[str] = None):
    """The big scatter's figure (cached per run, the live picture paced by ``live_picture_key``): ``live`` in the
    axes of the last finished iteration, or finished iteration ``result``. ``ranges``: fixed axis ranges
    (default: the run's own, grown over every picture so far); ``short``: a title that fits half a page, starting
    with this text (e.g. "with feedback")."""
    run = entry.run
    labels = run.labels
    view = shown.view
    ranges = ranges or run.views.ranges(view.kind, view.xy)
    uirev = f"run{run.id}-{view.kind}"
    name = view_fallback.LABELS[view.kind]
    if live is not None:
        base = done[live.iteration - 1]
        colours = (f"colours: GMM classes of iteration {base.iteration} (accuracy {base.accuracy:.3f})"
                   if by == "class" else f"colours: digits · accuracy so far {base.accuracy:.3f}")
        title = (f"Iteration {live.iteration} in progress, VAE epoch {live.epoch} of {live.epochs}: {name} of "
                 f"the codes right now · {colours}")
        if short is not None:
            title = (f"{short} · iteration {live.iteration}, epoch {live.epoch}/{live.epochs} · {name} · "
                     f"accuracy so far {base.accuracy:.3f}")
        key = live_picture_key(entry, ("live", live.iteration, live.epoch, by, view.kind, ranges, height),
                               len(labels))
        return cached_figure(entry, key, lambda: charts.latent_scatter(
            base, labels, by, title=title, view=view, ranges=ranges, uirevision=uirev, height=height))
    title = (f"Latent space, iteration {result.iteration}: 2-D {name} of the codes · accuracy "
             f"{result.accuracy:.3f}")
    if short is not None:
        title = f"{short} · iteration {result.iteration} · {name} · accuracy {result.accuracy:.3f}"
    key = ("main", result.iteration, by, view.kind, ranges, height)
    return cached_figure(entry, key, lambda: charts.latent_scatter(
        result, labels, by, title=title, view=view, ranges=ranges, uirevision=uirev, height=height))


def before_after(entry: RunEntry, h: list, by: str) -> None:
    """Serket's tutorial figure: PCA of iteration 0 (the untrained encoder) next to the latest iteration, each
    with at most ``SMALL_POINTS`` points."""
    labels = entry.run.labels
    n = len(labels)
    few = f" ({SMALL_POINTS} of the {n} points)" if n > SMALL_POINTS else ""
    st.markdown(f"**Before vs after** (PCA of iteration 0, the untrained encoder, and of the latest iteration{few})")
    b1, b2 = st.columns(2)
    first, last = h[0], h[-1]
    with b1:
        st.plotly_chart(cached_figure(entry, ("small", 0, by), lambda: charts.latent_scatter(
            first, labels, by, title=f"before: iteration 0 · acc {first.accuracy:.3f}", height=340, webgl=False,
            max_points=SMALL_POINTS)), key="scatter_before", config={"displaylogo": False})
    with b2:
        if len(h) > 1:
            st.plotly_chart(cached_figure(entry, ("small", last.iteration, by), lambda: charts.latent_scatter(
                last, labels, by, height=340, webgl=False, max_points=SMALL_POINTS,
                title=f"after: iteration {last.iteration} · acc {last.accuracy:.3f}")),
                key="scatter_after", config={"displaylogo": False})
        else:
            st.info("The “after” picture appears when iteration 1 finishes.")
