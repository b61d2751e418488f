"""Plotly figures for the dashboard (pure functions of a run's history; no Streamlit).

Every figure sets ``layout.meta`` to a name ("latent", "metrics", "losses", ...) and point traces set
``meta="points"`` (class means ``meta="means"``), so tests can find them in the browser's DOM. The latent scatter
and the Replay follow the one scatter specification, :mod:`vaegmm.views.scatter` (colours, markers, axes), that
the GIF / MP4 / PNG frames and the exported ``pca.png`` follow too.
"""
from __future__ import annotations

import base64
from typing import Optional, Sequence

import numpy as np
import plotly.graph_objects as go

from vaegmm.model.metrics import best_matching, confusion
from vaegmm.views import scatter
from vaegmm.views.latent2d import AXES, PCA

WEBGL_FROM = 1000  # points from which the latent scatter uses WebGL
METRIC_COLOURS = {"accuracy": "#1f77b4", "NMI": "#ff7f0e", "ARI": "#2ca02c"}
_TYPED_ARRAY_DTYPES = {"float32": "f4", "float64": "f8", "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1"}


def typed_array(a: np.ndarray):
    """``a`` (1-D or ``(N, M)``, float32 / int32 / ...) as a plotly.js typed array: ``{"dtype": "f4", "bdata":
    base64 of the bytes, "shape": "N, M"}``, the form Plotly itself gives numpy arrays in a figure's JSON (a third
    of the size of number lists). Plotly's validation passes such an array through as it is, where it would copy
    a numpy array and inspect it (about a third of the cost of building the validated latent scatter). An empty
    array stays as it is."""
    a = np.ascontiguousarray(a)
    if a.size == 0:
        return a
    spec = {"dtype": _TYPED_ARRAY_DTYPES[str(a.dtype)], "bdata": base64.b64encode(a).decode("ascii")}
    if a.ndim > 1:
        spec["shape"] = str(a.shape)[1:-1]  # "N, M", as Plotly writes it
    return spec


def base_layout(fig: go.Figure, meta: str, title: str = "", height: int = 420) -> go.Figure:
    """``fig`` with the dashboard's common layout: its ``meta`` name, title, height and margins."""
    # template "none": Streamlit's theme styles the chart in the browser; Plotly's default template would only
    # add ~6.5 kB to every chart at every refresh
    fig.update_layout(template="none", meta=meta, title=dict(text=title, x=0.01, font=dict(size=14)) if title else None,
                      height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      legend=dict(itemsizing="constant"), uirevision=meta)
    return fig


def latent_scatter(result, labels: np.ndarray, colour_by: str = "digit", title: str = "",
                   height: int = 460, show_means: bool = True, selected: Optional[int] = None,
                   webgl: bool = True, max_points: Optional[int] = None, view=None, classes=None,
                   ranges: Optional[tuple] = None, uirevision: Optional[str] = None) -> go.Figure:
    """Scatter of an iteration's codes in 2-D (WebGL unless ``webgl=False``): one trace per digit (or GMM
    class), hover = index, digit, class; the GMM class means as black crosses. ``view``: a
    :class:`vaegmm.views.latent2d.View2D` to draw instead of ``result.projection`` (PCA); ``classes``: the GMM classes
    that colour the points (default ``result.classes``). ``max_points``: draw an evenly spaced subset of at most
    that many points (the same points at every iteration), for small copies. ``ranges``: fixed axis ranges
    ``((x0, x1), (y0, y1))``; ``uirevision``: zoom and pan survive redraws while it stays the same."""
    xy = result.projection if view is None else view.xy
    means = result.class_means_2d if view is None else view.means
    axes = AXES[PCA] if view is None else view.axes
    return view_scatter(xy, labels, result.classes if classes is None else classes, colour_by, title=title,
                        means=means if show_means else None, counts=result.class_counts, axes=axes,
                        height=height, selected=selected, webgl=webgl, max_points=max_points, ranges=ranges,
                        uirevision=uirevision)


def view_scatter(xy: np.ndarray, labels: np.ndarray, classes: np.ndarray, colour_by: str = "digit",
                 title: str = "", means: Optional[np.ndarray] = None, counts: Optional[np.ndarray] = None,
                 axes: tuple = AXES[PCA], height: int = 460, selected: Optional[int] = None,
                 webgl: bool = True, max_points: Optional[int] = None, ranges: Optional[tuple] = None,
                 uirevision: Optional[str] = None) -> go.Figure:
    """The latent scatter of ``xy (N, 2)``: see :func:`latent_scatter`. ``customdata`` carries (image index,
    digit, class) in every view, so a click finds its image whatever the view."""
    # WebGL pays off for thousands of points; below that SVG is lighter (Chromium without a GPU draws WebGL in
    # software, which a classroom of tabs on one machine feels)
    gl = webgl and len(xy) > WEBGL_FROM
    kind = "scattergl" if gl else "scatter"
    xy = np.asarray(xy, dtype=np.float32)
    labels = np.asarray(labels)
    classes = np.asarray(classes)
    idx = np.arange(len(xy), dtype=np.int32)
    if max_points is not None and len(xy) > max_points:
        keep = np.linspace(0, len(xy) - 1, max_points).round().astype(np.int64)
        xy, labels, classes, idx = xy[keep], labels[keep], classes[keep], idx[keep]
    groups = scatter.groups_of(labels, classes, colour_by)
    data = []
    for g in np.unique(groups):
        m = groups == g
        data.append(dict(
            type=kind, x=typed_array(xy[m, 0]), y=typed_array(xy[m, 1]), mode="markers",
            name=scatter.group_name(g, colour_by), meta="points", marker=scatter.plotly_points_marker(g),
            customdata=typed_array(np.stack([idx[m], labels[m], classes[m]], axis=1).astype(np.int32)),
            hovertemplate="image %{customdata[0]}<br>digit %{customdata[1]}<br>class %{customdata[2]}"
                          "<extra></extra>"))
    if means is not None and len(means):
        means = np.asarray(means, dtype=np.float32)
        counts = np.zeros(len(means), dtype=np.int64) if counts is None else np.asarray(counts)
        data.append(dict(
            type=kind, x=typed_array(means[:, 0]), y=typed_array(means[:, 1]), mode="markers+text",
            name=scatter.MEANS_NAME, meta="means",
            text=[str(k) for k in range(len(means))], textposition="top center", marker=scatter.plotly_means_marker(),
            customdata=typed_array(np.stack([np.arange(len(means)), counts], axis=1).astype(np.int32)),
            hovertemplate="mean of class %{customdata[0]}<br>%{customdata[1]} images<extra></extra>"))
    if selected is not None and 0 <= selected < len(xy):
        data.append(dict(type="scatter", x=[float(xy[selected, 0])], y=[float(xy[selected, 1])], mode="markers",
                         name="selected", meta="selected", hoverinfo="skip",
                         marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(width=3, color="black"))))
    xaxis = scatter.plotly_axis(axes[0], None if ranges is None else ranges[0])
    yaxis = scatter.plotly_axis(axes[1], None if ranges is None else ranges[1])
    layout = dict(template="none", meta="latent", height=height, xaxis=xaxis, yaxis=yaxis,
                  margin=dict(l=10, r=10, t=40 if title else 10, b=10), legend=dict(itemsizing="constant"),
                  uirevision=uirevision or "latent")
    if title:
        layout["title"] = dict(text=title, x=0.01, font=dict(size=14))
    if not webgl:  # the small side-by-side copies: the big plot above carries the legend
        layout["showlegend"] = False
    if not gl and webgl:  # SVG: points glide to their new place between refreshes
        layout["transition"] = dict(duration=350, easing="cubic-in-out")
    # built once per snapshot from plain dicts (one validation pass), then drawn at every refresh: frozen
    return FrozenFigure(data=data, layout=layout)


class FrozenFigure(go.Figure):
    """A read-only figure whose ``to_dict()`` is computed once. Streamlit calls it each time the figure is drawn,
    at every rerun of the polling fragment; for the Replay (120 frames of 3000 points) that deep copy cost about
    190 ms each time, for the live scatter more than building it. Built like a ``go.Figure``; not to be changed
    after it was first drawn (the change would not show)."""

    def to_dict(self) -> dict:
        frozen = getattr(self, "_frozen_dict", None)
        if frozen is None:
            frozen = super().to_dict()
            self._frozen_dict = frozen
        return dict(frozen)  # a fresh outer dict: Streamlit may add keys to it, never to the shared parts


def replay_figure(replay, height: int = 560, webgl: bool = True, frame_ms: int = 150) -> go.Figure:
    """A Plotly animation of a :class:`vaegmm.views.animation.Replay`: one frame per snapshot and finished iteration,
    a play/pause button and a slider, the frame's iteration, epoch and accuracy in the title, fixed axes.
    ``layout.meta`` is "replay"; traces are the groups (``meta="points"``) and the class means (``"means"``).
    Frozen (:class:`FrozenFigure`): it is built once per run, view and colouring, and drawn at every refresh."""
    frames = replay.frames
    n = len(frames[0].xy) if frames else 0
    kind = "scattergl" if webgl and n > WEBGL_FROM else "scatter"
    groups = list(replay.group_names)

    def traces_of(f) -> list:
        out = []
        for g in groups:
            m = f.groups == g
            out.append(dict(type=kind, x=typed_array(f.xy[m, 0].astype(np.float32)),
                            y=typed_array(f.xy[m, 1].astype(np.float32))))
        means = f.means if f.means is not None else np.empty((0, 2), dtype=np.float32)
        out.append(dict(type=kind, x=typed_array(np.asarray(means[:, 0], dtype=np.float32)),
                        y=typed_array(np.asarray(means[:, 1], dtype=np.float32))))
        return out

    first = traces_of(frames[0])
    for g, t in zip(groups, first[:-1]):
        t.update(mode="markers", name=replay.group_names[g], meta="points", hoverinfo="name",
                 marker=scatter.plotly_points_marker(g))
    first[-1].update(mode="markers", name=scatter.MEANS_NAME, meta="means", hoverinfo="skip",
                     marker=scatter.plotly_means_marker())
    still = dict(frame=dict(duration=0, redraw=True), mode="immediate", transition=dict(duration=0))
    play = dict(frame=dict(duration=frame_ms, redraw=True), fromcurrent=True, transition=dict(duration=0),
                mode="immediate")
    layout = dict(
        template="none", meta="replay", height=height, uirevision="replay",
        title=dict(text=frames[0].title, x=0.01, font=dict(size=14)),
        margin=dict(l=10, r=10, t=40, b=90), legend=dict(itemsizing="constant"),
        xaxis=scatter.plotly_axis(replay.axes[0], replay.ranges[0]),
        yaxis=scatter.plotly_axis(replay.axes[1], replay.ranges[1]),
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=-0.06, xanchor="left", yanchor="top",
                          showactive=False, pad=dict(t=0, r=8), buttons=[
                              dict(label="▶ Play", method="animate", args=[None, play]),
                              dict(label="❚❚ Pause", method="animate",
                                   args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate",
                                                      transition=dict(duration=0))])])],
        sliders=[dict(active=0, x=0.16, len=0.84, y=-0.02, yanchor="top", pad=dict(t=0),
                      currentvalue=dict(prefix="iteration·epoch ", font=dict(size=12)),
                      steps=[dict(label=f.label, method="animate", args=[[str(i)], still])
                             for i, f in enumerate(frames)])])
    return FrozenFigure(data=first, layout=layout, frames=[
        dict(name=str(i), data=traces_of(f), layout=dict(title=dict(text=f.title))) for i, f in enumerate(frames)])


def metrics_chart(history: Sequence, height: int = 320) -> go.Figure:
    """Accuracy, NMI and ARI per finished iteration (one point each, iteration 0 included)."""
    its = [r.iteration for r in history]
    fig = go.Figure()
    for name, attr in (("accuracy", "accuracy"), ("NMI", "nmi"), ("ARI", "ari")):
        fig.add_trace(go.Scatter(x=np.asarray(its, dtype=np.int32),
                                 y=np.asarray([getattr(r, attr) for r in history], dtype=np.float32),
                                 mode="lines+markers", name=name, meta="metric",
                                 line=dict(color=METRIC_COLOURS[name])))
    fig.update_xaxes(title_text="iteration", dtick=1, rangemode="tozero")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(legend=dict(orientation="h", y=1.12, x=0))
    return base_layout(fig, "metrics", "", height)


def loss_chart(history: Sequence, alpha: float, live_recon: Sequence[float] = (), live_kl: Sequence[float] = (),
               live_iteration: Optional[int] = None, height: int = 320) -> go.Figure:
    """Reconstruction (BCE per image) and alpha * KL per epoch across all iterations (the epochs of the
    iteration in progress included), with a dotted line where each iteration starts."""
    recon, akl, starts = [], [], []
    segments = [(r.iteration, r.recon, r.kl) for r in history if r.iteration > 0]
    if live_iteration is not None and live_recon and all(it != live_iteration for it, _, _ in segments):
        segments.append((live_iteration, list(live_recon), list(live_kl)))
    epoch = 0
    for it, rs, ks in segments:
        n = min(len(rs), len(ks))
        starts.append((epoch + 1, it))
        recon.extend(rs[:n])
        akl.extend(ks[:n])
        epoch += n
    xs = np.arange(1, epoch + 1, dtype=np.int32)
    recon = np.asarray(recon, dtype=np.float32)
    akl = float(alpha) * np.asarray(akl, dtype=np.float32)
    fig = go.Figure(data=[
        go.Scatter(x=xs, y=recon, mode="lines", name="reconstruction (BCE)", meta="recon", line=dict(color="#1f77b4")),
        go.Scatter(x=xs, y=akl, mode="lines", name="alpha * KL", meta="kl", yaxis="y2", line=dict(color="#d62728"))])
    # one layout update for every iteration's marker (Plotly's add_vline per line costs milliseconds each)
    fig.update_layout(
        shapes=[dict(type="line", x0=x0 - 0.5, x1=x0 - 0.5, y0=0, y1=1, yref="paper",
                     line=dict(color="#999", dash="dot", width=1)) for x0, _ in starts],
        annotations=[dict(x=x0 - 0.5, y=1.0, yref="paper", text=f"it {it}", showarrow=False, xanchor="left",
                          font=dict(size=10, color="#666")) for x0, it in starts],
        yaxis=dict(title=dict(text="reconstruction", font=dict(color="#1f77b4"))),
        yaxis2=dict(title=dict(text="alpha * KL", font=dict(color="#d62728")), overlaying="y", side="right",
                    showgrid=False),
        legend=dict(orientation="h", y=1.15, x=0))
    fig.update_xaxes(title_text="epoch (all iterations)")
    return base_layout(fig, "losses", "", height)


def compare_chart(runs: Sequence[tuple[str, Sequence]], metric: str = "accuracy", height: int = 380) -> go.Figure:
    """One accuracy (or NMI / ARI) curve per run: ``runs = [(label, history), ...]``."""
    fig = go.Figure()
    for i, (label, history) in enumerate(runs):
        fig.add_trace(go.Scatter(x=np.asarray([r.iteration for r in history], dtype=np.int32),
                                 y=np.asarray([getattr(r, metric) for r in history], dtype=np.float32),
                                 mode="lines+markers", name=label, meta="run",
                                 line=dict(color=scatter.group_colour(i))))
    fig.update_xaxes(title_text="iteration", dtick=1, rangemode="tozero")
    fig.update_yaxes(title_text=metric, range=[0, 1.02])
    fig.update_layout(legend=dict(orientation="h", y=-0.2, x=0), showlegend=True)
    return base_layout(fig, "compare", "", height)


def confusion_chart(classes: np.ndarray, labels: np.ndarray, n_classes: int, height: int = 420) -> go.Figure:
    """Counts of GMM class (rows, ordered by their best-matching digit) against true digit (columns)."""
    values = np.unique(labels)
    m = confusion(classes, labels, n_classes=n_classes, label_values=values)
    match = best_matching(classes, labels)
    order = sorted(range(n_classes), key=lambda k: (match.get(k, 99), -m[k].sum()))
    m_counts = m.sum(axis=1)
    m = m[order]
    ylab = [f"class {k}" + (f" (↔{match[k]})" if k in match and m_counts[k] else "") for k in order]
    fig = go.Figure(go.Heatmap(z=m.tolist(), x=[f"digit {v}" for v in values], y=ylab, colorscale="Blues",
                               text=m.tolist(), texttemplate="%{text}", hovertemplate="%{y}, %{x}: %{z}<extra></extra>",
                               showscale=False))
    fig.update_yaxes(autorange="reversed")
    return base_layout(fig, "confusion", "", height)


def placeholder(height: int = 360) -> go.Figure:
    """An empty frame with a hint, shown before the first run."""
    fig = go.Figure(go.Scattergl(x=[], y=[], mode="markers"))
    fig.add_annotation(x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=15, color="#777"),
                       text="The latent space of the codes appears here, iteration by iteration, after Start")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, "placeholder", "", height)
