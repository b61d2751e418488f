"""Side by side, live (``?pair=feedback``, e.g. ``/?preset=feedback-lesson&pair=feedback``): one Start trains the
link's settings twice on the same seed, with the GMM's feedback and without it (the same images, initial weights
and noise: only the prior differs, :mod:`vaegmm.runs.pair`), and shows the two live latent pictures next to each
other and both accuracy curves on one chart with the gap labelled: a slide for a lecture.

The page follows the live page's rules (issue 8): exactly one polling fragment with a constant ``run_every``; it
decides what to draw and never calls ``st.rerun()``; Start and Stop live in its top row; the messages sit in a
container that is always there. The settings come from the link only (change them there, or in the normal mode,
which the sidebar links to with the same settings)."""
from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from dashboard.components.idle import placeholder_chart
from dashboard.components.markup import escape_markdown
from dashboard.components.pair_view import pair_curves, pair_pictures, pair_statuses, side_heading
from dashboard.state.pair import current_pair, new_pair, pair_requested, pair_settings
from dashboard.state.refresh import live_every
from dashboard.state.session import SessionRuns
from dashboard.state.budget import cost_of, dashboard_limit_s
from dashboard.state.store import run_store, store_problem
from vaegmm.model.params import PRESET_LABELS, check_settings, config_from_settings, describe, to_query
from vaegmm.sweeps.budget import refusal
from vaegmm.runs.pair import SIDES
from vaegmm.sweeps.feedback_map import load_feedback_map
from vaegmm.runs.state import ACTIVE

__all__ = ["pair_page", "pair_requested"]


def pair_problems(settings: dict) -> list[str]:
    """What keeps Start disabled: the settings' problems, else issue 18's budget (each of the two runs must fit
    ``$VAEGMM_MAX_RUN_MINUTES`` at this server's rate, whatever the link says)."""
    problems = check_settings(settings)
    if not problems:
        why = refusal(cost_of(config_from_settings(settings), run_store()), dashboard_limit_s())
        if why:
            problems.append(why)
    return problems


def _start(runs: SessionRuns, settings: dict) -> None:
    if pair_problems(settings):  # refused: nothing is queued, no slot is taken
        return
    cost = cost_of(config_from_settings(settings), run_store())
    new_pair(runs, settings, cost).pair.start()


def _stop() -> None:
    entry = current_pair()
    if entry is None:
        return
    entry.pair.stop()
    for run in entry.pair.runs.values():
        run.join(1.0)  # each worker ends at its next mini-batch: draw the page as "stopped" at once


def measured_effect(preset: str) -> str:
    """What the effect map measured for ``preset`` on held-out seeds (vaegmm/sweeps/feedback_map.json), in one
    plain sentence; "" when the preset was not confirmed there."""
    fmap = load_feedback_map()
    row = next((r for r in (fmap.confirmed if fmap is not None else []) if r.name == preset), None)
    if row is None or row.effect_acc is None:
        return ""
    ci = f", 95 % CI {row.ci_text()}" if row.ci_text() else ""
    p = "" if row.p is None else f", paired t-test p = {row.p:.2g}"
    wins = "" if row.wins is None else f", better on {row.wins} of {row.n} seeds"
    return (f"Measured on held-out seeds ({row.n} seeds, {row.source}): feedback {row.points():+.1f} points of final "
            f"accuracy{ci}{p}{wins}. One seed, as here, can land anywhere in that range.")


def _sidebar(settings: dict) -> None:
    sb = st.sidebar
    sb.title("VAE + GMM")
    sb.markdown("**Side by side:** the same seed trained with and without the GMM's feedback.")
    label = PRESET_LABELS.get(settings["preset"], settings["preset"])
    sb.markdown(f"Preset **{escape_markdown(label)}**  \n{escape_markdown(describe(dict(settings, feedback=True)))}"
                f"  \n(the run without feedback: the same, with the prior fixed at N(0, I))")
    sb.caption("The settings come from the link. To change them, open the normal mode, choose, and add "
               "`&pair=feedback` to its link.")
    sb.markdown(f"[Open these settings in the normal mode](?{urlencode(to_query(settings))})")


def pair_page(runs: SessionRuns) -> None:
    """The whole side-by-side page: sidebar, title, the messages container and the one live fragment."""
    settings, warnings = pair_settings()
    problems = pair_problems(settings)
    _sidebar(settings)
    st.title("Feedback side by side: with and without the GMM's class means")
    st.caption("Both runs start from the same images, the same initial weights and the same random numbers; "
               "the only difference is the VAE's prior. With feedback, each code is pulled toward the mean of its "
               "GMM class from iteration 2 on; without it, the prior stays N(0, I): a VAE and a GMM trained apart.")
    measured = measured_effect(settings["preset"])
    if measured:
        st.markdown(escape_markdown(measured))
    with st.container(key="pair_messages"):  # always here, even when empty: the live part below never moves
        for w in warnings:
            st.warning(escape_markdown(w), icon=":material/link_off:")
        if store_problem():
            st.warning(f"Runs are not saved: {escape_markdown(store_problem())}", icon=":material/database:")
        for p in problems:
            st.error(escape_markdown(p), icon=":material/error:")
    pair_live(runs, settings, problems)


def pair_live(runs: SessionRuns, settings: dict, problems: list[str]) -> None:
    """One fragment, polled every :func:`live_every` seconds (fixed for the session): Start / Stop, then both
    runs' status, pictures and curves."""

    @st.fragment(run_every=live_every())  # constant for the session
    def live():
        entry = current_pair()
        snaps = entry.pair.snapshots() if entry is not None else None
        active = snaps is not None and any(s.state in ACTIVE for s in snaps.values())
        c = st.columns([1.2, 1.2, 4], vertical_alignment="center")
        c[0].button("Start both", icon=":material/play_arrow:", type="primary", key="pair_start", on_click=_start,
                    args=(runs, settings), disabled=active or bool(problems), width="stretch",
                    help="Train these settings twice, with and without feedback, side by side.")
        c[1].button("Stop both", icon=":material/stop:", key="pair_stop", on_click=_stop, disabled=not active,
                    width="stretch", help="End both runs; the iterations finished so far are kept.")
        if entry is None:
            _idle(settings)
            return
        c[2].caption(f"Runs #{entry.pair.with_run.id} and #{entry.pair.without_run.id}, seed {settings['seed']}: "
                     f"also on the Compare page and in the run library.")
        pair_statuses(entry, snaps)
        pair_pictures(entry, snaps)
        pair_curves(entry, snaps)

    live()


def _idle(settings: dict) -> None:
    """Before the first Start: the two halves' headings and what will appear."""
    for side, col in zip(SIDES, st.columns(2)):
        with col:
            side_heading(side, None)
    st.info(f"Press **Start both**: {settings['iterations']} iterations of {settings['epochs']} VAE epochs each, "
            "twice at once. Iteration 0 (the untrained encoder) and iteration 1 (a plain VAE: no class means yet) "
            "look the same on both sides; from iteration 2 on only the feedback run's codes are pulled toward the "
            "class means.", icon=":material/arrow_upward:")
    placeholder_chart()
