"""How it works, "Where feedback matters": the measured map of the feedback's effect (a heat map per VAE schedule,
D down, alpha across, each cell's paired effect with its CI) and the held-out confirmations in a table, read from
the package's data file (:mod:`vaegmm.sweeps.feedback_map`), so no page types a number into its text."""
from __future__ import annotations

import math
from typing import Optional

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard import charts
from dashboard.components.markup import escape_markdown
from vaegmm.sweeps.feedback_map import FeedbackMap, MapRow, load_feedback_map

PAIR_LINK = "/?preset=feedback-lesson&pair=feedback"


def _cell_text(r: MapRow) -> str:
    """``"+3.4<br>0.7 to 6.0<br>3 of 3"``: the effect in points, its CI and the seeds won, what was measured."""
    parts = [f"{r.points():+.1f}"]
    if r.ci_text():
        parts.append(f"[{r.ci_text()}]")
    if r.wins is not None and r.n:
        parts.append(f"{r.wins} of {r.n}")
    return "<br>".join(parts)


def map_figure(fmap: FeedbackMap, height: int = 380) -> Optional[go.Figure]:
    """One heat map per VAE schedule (epochs per update x iterations, longest updates first): latent dimension D
    down, alpha across, colour = feedback's effect on the final accuracy in points (blue helps, red hurts, white
    none), text = effect, 95 % CI and seeds won. Layout meta "feedback_map"; None without rows."""
    rows = [r for r in fmap.rows if r.effect_acc is not None]
    if not rows:
        return None
    schedules = sorted({(r.epochs, r.iterations) for r in rows}, key=lambda s: (-s[0], s[1]))
    alphas = sorted({r.alpha for r in rows})
    dims = sorted({r.latent_dim for r in rows})
    top = max(1.0, max(abs(r.points()) for r in rows))
    fig = make_subplots(rows=1, cols=len(schedules), shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=[f"{e} epochs x {i} iterations" for e, i in schedules])
    for col, (epochs, iterations) in enumerate(schedules, start=1):
        here = {(r.latent_dim, r.alpha): r for r in rows if (r.epochs, r.iterations) == (epochs, iterations)}
        z = [[here[(d, a)].points() if (d, a) in here else None for a in alphas] for d in dims]
        text = [[_cell_text(here[(d, a)]) if (d, a) in here else "" for a in alphas] for d in dims]
        fig.add_trace(go.Heatmap(z=z, x=[f"α = {a:g}" for a in alphas], y=[f"D = {d}" for d in dims], text=text,
                                 texttemplate="%{text}", textfont=dict(size=13), coloraxis="coloraxis", meta="effect",
                                 name=f"{epochs}x{iterations}", xgap=3, ygap=3,
                                 hovertemplate="%{y}, %{x}<br>feedback %{z:+.1f} accuracy points<extra></extra>"),
                      row=1, col=col)
    charts.base_layout(fig, "feedback_map", "Feedback on minus off, final accuracy (points)", height=height)
    fig.update_layout(coloraxis=dict(colorscale="RdBu", cmid=0, cmin=-top, cmax=top,
                                     colorbar=dict(title=dict(text="points"))),
                      margin=dict(l=10, r=10, t=70, b=10))
    fig.update_yaxes(type="category", autorange="reversed")  # small D on top
    fig.update_xaxes(type="category")
    return fig


def _fmt(x: Optional[float], scale: float = 100.0, signed: bool = True) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{scale * x:+.1f}" if signed else f"{scale * x:.3f}"


def map_table(rows: list, named: bool = False) -> pd.DataFrame:
    """The rows as a table a student can read: setting, seeds, effect in points with its CI, p, seeds won, NMI."""
    out = []
    for r in rows:
        rec = {"setting": r.name} if named else {}
        seeds = (f"{min(r.seeds)}-{max(r.seeds)}" if r.seeds and list(r.seeds) == list(range(min(r.seeds), max(r.seeds) + 1))
                 else ", ".join(map(str, r.seeds)))
        rec.update({"D": r.latent_dim, "alpha": f"{r.alpha:g}", "schedule": r.schedule, "seeds": seeds,
                    "accuracy effect (points)": _fmt(r.effect_acc), "95 % CI": r.ci_text() or "–",
                    "p (paired t)": "–" if r.p is None else (f"{r.p:.2g}" if r.p >= 0.001 else "< 0.001"),
                    "better with feedback": "–" if r.wins is None else f"{r.wins} of {r.n}",
                    "NMI effect (points)": _fmt(r.effect_nmi), "with / without": (
                        "–" if r.acc_on is None or r.acc_off is None else f"{r.acc_on:.3f} / {r.acc_off:.3f}"),
                    "source": r.source, "note": r.note})
        out.append(rec)
    return pd.DataFrame(out)


def feedback_map_section(fmap: Optional[FeedbackMap] = None) -> None:
    """The section's plot and tables, or a clear note when the map's file is missing."""
    fmap = fmap if fmap is not None else load_feedback_map()
    if fmap is None:
        st.info("The map of where feedback matters has not been measured yet (its data file, "
                "`vaegmm/sweeps/feedback_map.json`, is missing or unreadable; `bench/feedback_map.py` writes it from "
                "the sweeps).", icon=":material/map:")
        return
    fig = map_figure(fmap)
    if fig is None:
        st.info("The map's data file holds no measured setting yet.", icon=":material/map:")
    else:
        st.plotly_chart(fig, key="feedback_map", config={"displaylogo": False})
    parts = (fmap.size, fmap.note, f"Made {fmap.made}" if fmap.made else "")
    caption = " ".join(x.strip().rstrip(".") + "." for x in parts if x.strip())
    if caption:
        st.caption(escape_markdown(caption))
    with st.expander("The map's numbers", expanded=False):
        st.dataframe(map_table(fmap.rows), hide_index=True)
    st.markdown("**Confirmed on held-out seeds** (seeds that played no part in choosing the setting)")
    if fmap.confirmed:
        st.dataframe(map_table(fmap.confirmed, named=True), hide_index=True)
    else:
        st.caption("No setting confirmed on held-out seeds yet.")
