"""Streamlit glue shared by the pages: the session's runs, the sidebar, the controls and the live panels.

Page structure (issue 8: pages went white with "Cannot set a node at a delta path" when many students trained at
once). Each page has exactly one polling fragment, declared at a fixed place in the page, with a ``run_every``
that never changes during the session. The fragment decides *what* to draw (idle hint, queue position, live
run, finished run), never *whether* it is polled, and nothing inside it calls ``st.rerun()``. Conditional
messages above it live inside a container created at a fixed place, so the fragment's delta path never moves.
The controls (Start, Pause, Step, Stop, Reset, Download) are inside the fragment, so their state follows the run
without a full rerun. The training itself runs in worker processes (:mod:`vaegmm.runs.worker`), so the server's
script runs are not slowed by the training's Python.
"""
from __future__ import annotations

import os
import time
from typing import Optional

import numpy as np
import streamlit as st

from vaegmm.views.export import zip_run
from vaegmm.runs.runner import (ACTIVE, FAILED, FINISHED, IDLE, PAUSED, QUEUED, RUNNING, STOPPED, TERMINAL,
                           default_slots, warm_up)

from vaegmm.views import animation

from . import charts, latent_views
from .session import RunEntry, SessionRuns, reconnect_grace
from .settings import (FIELDS, GMM_LABELS, KEYS, PRESET_LABELS, check_settings, config_from_settings, data_note,
                       parse_query, preset_settings, settings_equal, to_query)

REFRESH_ENV = "VAEGMM_REFRESH"


def _refresh_every() -> float:
    """Seconds between refreshes of a page's live fragment (``$VAEGMM_REFRESH``, default 0.5: "panels update at
    least once a second" must survive one refresh the browser could not take in time, 2 x 0.5 s, which 0.7 s
    cannot)."""
    try:
        return min(10.0, max(0.2, float(os.environ.get(REFRESH_ENV, "0.5"))))
    except ValueError:
        return 0.5


LIVE_EVERY = _refresh_every()  # the shortest interval; each session's own is fixed at its start (live_every)
PER_SESSION_ENV = "VAEGMM_REFRESH_PER_SESSION"
_EVERY_KEY = "_vaegmm_every"


def _active_sessions() -> int:
    """Browser sessions connected to this server now (1 where Streamlit's runtime cannot tell, as in AppTest)."""
    try:
        from streamlit.runtime import Runtime

        return max(1, int(Runtime.instance()._session_mgr.num_active_sessions()))
    except Exception:
        return 1


def live_every() -> float:
    """This session's refresh interval, chosen once when the session starts and never changed (a fragment's
    ``run_every`` must stay constant: see the module docstring): ``$VAEGMM_REFRESH`` (0.5 s), or longer on a busy
    server, ``$VAEGMM_REFRESH_PER_SESSION`` (0.15 s) times the sessions connected, so that 30 pages polling do not
    take the server's whole core (one script run costs tens of milliseconds)."""
    every = st.session_state.get(_EVERY_KEY)
    if every is None:
        try:
            per = max(0.0, float(os.environ.get(PER_SESSION_ENV, "0.15")))
        except ValueError:
            per = 0.15
        every = st.session_state[_EVERY_KEY] = round(min(10.0, max(LIVE_EVERY, per * _active_sessions())), 2)
    return every
SMALL_POINTS = 600  # points in the small "before vs after" copies (SVG, redrawn at every refresh)
_RUNS_KEY = "_vaegmm_runs"
STATE_COLOURS = {IDLE: "#888", QUEUED: "#b8860b", RUNNING: "#2e7d32", PAUSED: "#1565c0", FINISHED: "#1b5e20",
                 STOPPED: "#616161", FAILED: "#c62828"}


# ---------------------------------------------------------------------------------------------- session
class _SessionGuard:
    """Lives in a session-scoped resource cache: Streamlit calls ``on_release`` when the browser session's
    websocket goes away (tab closed or refreshed, or a network blip). The session's runs then keep training for
    ``$VAEGMM_RECONNECT_GRACE`` seconds: Streamlit keeps a disconnected session for reconnection
    (``server.disconnectedSessionTTL``, 120 s), and a tab that comes back within the grace period finds its runs
    live (:func:`session_runs` reattaches them). After it, they stop."""

    def __init__(self) -> None:
        self.runs: Optional[SessionRuns] = None

    def release(self) -> None:
        if self.runs is not None:
            self.runs.release(reconnect_grace())


@st.cache_resource(scope="session", on_release=lambda guard: guard.release(), show_spinner=False)
def _session_guard() -> _SessionGuard:
    return _SessionGuard()


@st.cache_resource(show_spinner=False)
def _warm_up_once() -> bool:
    warm_up()  # torch's first optimiser costs seconds: pay it before the first Start
    return True


def session_runs() -> SessionRuns:
    """This browser session's runs, created in one place."""
    _warm_up_once()
    runs = st.session_state.get(_RUNS_KEY)
    if runs is None:
        from .library_view import library_store

        runs = st.session_state[_RUNS_KEY] = SessionRuns(slots=default_slots(), store=library_store())
    if runs.released:
        runs.reattach()
    _session_guard().runs = runs
    return runs


NAV = (("app.py", "Live training", ":material/monitoring:"),
       ("pages/1_Compare_runs.py", "Compare runs", ":material/compare_arrows:"),
       ("pages/2_Latent_explorer.py", "Latent explorer", ":material/scatter_plot:"),
       ("pages/3_How_it_works.py", "How it works", ":material/school:"),
       ("pages/4_Sweeps.py", "Sweeps", ":material/grid_view:"))


def page_setup(title: str, icon: str = "🧠") -> None:
    """Page config and the sidebar's page links. Streamlit's automatic navigation (turned off in
    ``.streamlit/config.toml``) would label the main page "app", after its file name."""
    st.set_page_config(page_title=f"{title} · VAE+GMM", page_icon=icon, layout="wide")
    with st.sidebar.container(key="vaegmm_nav"):
        for path, label, nav_icon in NAV:
            st.page_link(path, label=label, icon=nav_icon)
        st.divider()


# ---------------------------------------------------------------------------------------------- sidebar
def _w(key: str) -> str:
    return f"cfg_{key}"


def _init_settings() -> None:
    """First run of the session: settings from the link (bad values fall back with a warning). Later runs:
    re-seed widget values that Streamlit dropped while another page was shown."""
    ss = st.session_state
    if "_settings" not in ss:
        settings, warnings = parse_query(st.query_params.to_dict())
        ss["_settings"] = settings
        ss["_link_settings"] = dict(settings)
        ss["_link_warnings"] = warnings
    for key in KEYS:
        if _w(key) not in ss:
            ss[_w(key)] = ss["_settings"][key]


def _apply_preset() -> None:
    for key, value in preset_settings(st.session_state[_w("preset")]).items():
        st.session_state[_w(key)] = value


def _digits_changed() -> None:
    digits = st.session_state[_w("digits")]
    if digits:
        st.session_state[_w("k")] = len(digits)


def sidebar_settings(disabled: bool = False) -> dict:
    """The experiment's widgets; returns the settings dict and mirrors it into the URL."""
    _init_settings()
    sb = st.sidebar
    sb.selectbox("Preset", list(PRESET_LABELS), format_func=PRESET_LABELS.get, key=_w("preset"),
                 on_change=_apply_preset, disabled=disabled,
                 help="Fills every field below; any field can then be changed.")
    f = FIELDS
    sb.number_input(f["n"].label, int(f["n"].lo), int(f["n"].hi), step=100, key=_w("n"), help=f["n"].help,
                    disabled=disabled)
    sb.multiselect(f["digits"].label, list(range(10)), key=_w("digits"), on_change=_digits_changed,
                   help=f["digits"].help, disabled=disabled)
    c1, c2 = sb.columns(2)
    c1.number_input(f["k"].label, int(f["k"].lo), int(f["k"].hi), step=1, key=_w("k"), help=f["k"].help,
                    disabled=disabled)
    c2.number_input(f["latent"].label, int(f["latent"].lo), int(f["latent"].hi), step=1, key=_w("latent"),
                    help=f["latent"].help, disabled=disabled)
    sb.slider(f["alpha"].label, float(f["alpha"].lo), float(f["alpha"].hi), step=0.1, key=_w("alpha"),
              help=f["alpha"].help, disabled=disabled)
    c1, c2 = sb.columns(2)
    c1.number_input(f["iterations"].label, int(f["iterations"].lo), int(f["iterations"].hi), step=1,
                    key=_w("iterations"), help=f["iterations"].help, disabled=disabled)
    c2.number_input(f["epochs"].label, int(f["epochs"].lo), int(f["epochs"].hi), step=10, key=_w("epochs"),
                    disabled=disabled)
    c1, c2 = sb.columns(2)
    c1.number_input(f["batch"].label, int(f["batch"].lo), int(f["batch"].hi), step=50, key=_w("batch"),
                    disabled=disabled)
    c2.number_input(f["seed"].label, int(f["seed"].lo), int(f["seed"].hi), step=1, key=_w("seed"),
                    disabled=disabled)
    sb.radio(f["gmm"].label, list(f["gmm"].choices), horizontal=True, key=_w("gmm"), help=f["gmm"].help,
             format_func=GMM_LABELS.get, disabled=disabled)
    sb.radio(f["codes"].label, list(f["codes"].choices), horizontal=True, key=_w("codes"), help=f["codes"].help,
             disabled=disabled)
    sb.toggle(f["feedback"].label, key=_w("feedback"), help=f["feedback"].help, disabled=disabled)
    settings = _current_settings()
    st.session_state["_settings"] = settings
    query = to_query(settings)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    return settings


def link_warnings(settings: dict) -> None:
    """Warnings about ignored query parameters, shown until the settings are changed."""
    ss = st.session_state
    warnings = ss.get("_link_warnings") or []
    if warnings and settings_equal(settings, ss["_link_settings"]):
        for w in warnings:
            st.warning(w, icon=":material/link:")


# ---------------------------------------------------------------------------------------------- controls
def _current_settings() -> dict:
    settings = {key: st.session_state[_w(key)] for key in KEYS}
    settings["digits"] = sorted(settings["digits"])
    return settings


def _start(runs: SessionRuns, step: bool = False) -> None:
    settings = _current_settings()
    if check_settings(settings):
        return
    entry = runs.new_run(config_from_settings(settings), settings)
    if step:
        entry.run.step()
    else:
        entry.run.start()


def _step(runs: SessionRuns) -> None:
    cur = runs.current
    if cur is None or cur.run.state in TERMINAL:
        _start(runs, step=True)
    else:
        cur.run.step()


def _pause_resume(runs: SessionRuns) -> None:
    cur = runs.current
    if cur is None:
        return
    if cur.run.state == PAUSED:
        cur.run.resume()
    else:
        cur.run.pause()


def _stop(runs: SessionRuns) -> None:
    if runs.current is not None:
        runs.current.run.stop()
        runs.current.run.join(1.0)  # the worker ends at its next mini-batch: draw the page as "stopped" at once


def controls(runs: SessionRuns, snap, problems: list[str]) -> None:
    """Start, Pause/Resume, Step, Stop, Reset and Download in one row (inside the live fragment: their
    callbacks run first, so the fragment drawn next already shows their effect)."""
    state = snap.state if snap is not None else IDLE
    active = state in ACTIVE
    paused = state == PAUSED
    c = st.columns([1.1, 1.1, 1, 1, 1, 2.2], vertical_alignment="center")
    c[0].button("Start", icon=":material/play_arrow:", type="primary", key="btn_start", on_click=_start,
                args=(runs,), disabled=active or bool(problems), width="stretch",
                help="Start a new run with the settings in the sidebar (earlier runs stay on the Compare page).")
    c[1].button("Resume" if paused else "Pause", icon=":material/play_arrow:" if paused else ":material/pause:",
                key="btn_pause", on_click=_pause_resume, args=(runs,),
                disabled=state not in (RUNNING, PAUSED, QUEUED), width="stretch")
    c[2].button("Step", icon=":material/skip_next:", key="btn_step", on_click=_step, args=(runs,),
                disabled=(not active and bool(problems)), width="stretch", help="One more iteration, then pause.")
    c[3].button("Stop", icon=":material/stop:", key="btn_stop", on_click=_stop, args=(runs,), disabled=not active,
                width="stretch", help="End the run; the iterations finished so far are kept.")
    c[4].button("Reset", icon=":material/restart_alt:", key="btn_reset", on_click=runs.reset,
                disabled=runs.current is None, width="stretch",
                help="Stop and clear the page (the run stays on the Compare page).")
    with c[5]:
        download(runs.current, snap)


def download(entry: Optional[RunEntry], snap) -> None:
    """Zip of the Serket-layout export and history.json, built only when the button is clicked."""
    if entry is None or snap is None or snap.state not in TERMINAL or not snap.history:
        return
    run = entry.run
    state = snap.state

    def build() -> bytes:
        if state not in entry.zip_cache:
            entry.zip_cache[state] = zip_run(run.config, run.history, run.labels, status=state)
        return entry.zip_cache[state]

    st.download_button(f"Download run #{run.id} (zip)", icon=":material/download:", data=build,
                       file_name=f"vaegmm_run{run.id}.zip", mime="application/zip", key=f"dl_{run.id}",
                       width="stretch", on_click="ignore",
                       help="Serket-layout folders (module001_vae, module002_gmm) and history.json.")


# ---------------------------------------------------------------------------------------------- panels
def _fmt_seconds(s: Optional[float]) -> str:
    if s is None:
        return "–"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _status_html(state: str, text: str, done: int = 0, first: str = "", marks: str = "") -> None:
    """The status line: a coloured state badge and ``text`` (HTML), with the state and timings as data attributes
    for the browser tests (``data-rendered``: the server's clock when the line was drawn; ``data-every``: this
    session's refresh interval, s)."""
    colour = STATE_COLOURS.get(state, "#888")
    st.markdown(f'<div data-testid="vaegmm-status" data-state="{state}" data-iterations="{done}" '
                f'data-first-result-s="{first}" data-marks="{marks}" data-rendered="{time.time():.3f}" '
                f'data-every="{st.session_state.get(_EVERY_KEY, "")}" '
                f'style="font-size:1.05rem"><span style="background:{colour};color:white;border-radius:0.8rem;'
                f'padding:0.1rem 0.6rem;font-weight:600">{state}</span> &nbsp;{text}</div>', unsafe_allow_html=True)


def idle_status(settings: dict) -> None:
    """Before the first Start: the status line, progress bar and metric cards a run will fill, empty. The page
    keeps its layout at Start, and the browser has already loaded the code of these elements: Streamlit's frontend
    fetches and compiles an element's JavaScript the first time one is drawn (the HTML status line, the progress
    bar and the metric cards are eight such files), which on a busy machine delayed the first status after Start
    by seconds (tests/test_classroom.py)."""
    iterations, epochs = settings.get("iterations", 0), settings.get("epochs", 0)
    _status_html(IDLE, f"no run yet · <b>iteration 0 of {iterations}</b> · press <b>Start</b>")
    st.progress(0.0, text=f"epoch 0 of {epochs}")
    metric_cards(None)


def status_line(snap) -> None:
    """State, iteration i of n, a progress bar for epoch e of E, time per iteration; queue / error messages."""
    cfg = snap.config
    p = snap.progress
    done = snap.iterations_done
    in_progress = snap.state in (RUNNING, PAUSED) and p.phase not in ("done", "") and done < cfg.iterations
    it_text = (f"iteration {p.iteration} of {cfg.iterations}" if in_progress
               else f"iteration {done} of {cfg.iterations}")
    per_it = snap.seconds_per_iteration
    if per_it is None and snap.iteration_started is not None and snap.state == RUNNING and p.iteration > 0:
        per_it_text = f"{_fmt_seconds(time.monotonic() - snap.iteration_started)} so far in this iteration"
    else:
        per_it_text = f"{_fmt_seconds(per_it)} per iteration"
    first = "" if snap.first_result_seconds is None else f"{snap.first_result_seconds:.3f}"
    marks = " ".join(f"{k}={v}" for k, v in snap.marks.items())
    _status_html(snap.state, f"{snap.name} · <b>{it_text}</b> · {per_it_text}", done, first, marks)
    if snap.state == QUEUED:
        pos = snap.queue_position  # 0 for the instant between Start and joining the queue
        cap = default_slots().capacity
        where = f"position {pos} in the queue" if pos else "joining the queue"
        st.info(f"Waiting for a free training slot: {where}. The server trains at most "
                f"{cap} run{'s' if cap != 1 else ''} at a time; this run starts by itself when a slot frees.",
                icon=":material/hourglass_top:")
    if p.phase == "loading" and snap.state == RUNNING:
        frac, text = 0.0, "loading the images…"
    elif in_progress and p.phase == "vae":
        frac, text = p.epoch / max(1, p.epochs), f"iteration {p.iteration}: VAE epoch {p.epoch} of {p.epochs}"
    elif in_progress and p.phase == "gmm":
        frac, text = 1.0, f"iteration {p.iteration}: GMM update"
    elif in_progress:
        frac, text = 0.0, f"iteration {p.iteration}: VAE epoch 0 of {cfg.vae.epochs}"
    else:
        frac = 1.0 if snap.state == FINISHED else 0.0
        text = f"epoch {cfg.vae.epochs if snap.state == FINISHED else 0} of {cfg.vae.epochs}"
    st.progress(min(1.0, max(0.0, frac)), text=text)
    if snap.state == FAILED:
        st.error(f"The run failed: {snap.message}. The iterations finished before are kept below.", icon=":material/error:")
    elif snap.state == STOPPED and snap.message:
        st.caption(f"Stopped: {snap.message}.")


def metric_cards(snap) -> None:
    """Accuracy, NMI, ARI (with their change since iteration 0), iterations done, time per iteration; dashes
    before a run has results (``snap`` None or without history)."""
    h = snap.history if snap is not None else []
    c = st.columns(5)
    if not h:
        for col, label in zip(c, ("accuracy", "NMI", "ARI", "iterations done", "time / iteration")):
            col.metric(label, "–")
        return
    last, first = h[-1], h[0]

    def delta(attr):
        return f"{getattr(last, attr) - getattr(first, attr):+.3f} since it. 0" if len(h) > 1 else None

    c[0].metric("accuracy", f"{last.accuracy:.3f}", delta=delta("accuracy"),
                help="Hungarian accuracy: the best one-to-one matching of GMM classes to digits.")
    c[1].metric("NMI", f"{last.nmi:.3f}", delta=delta("nmi"), help="Normalised mutual information.")
    c[2].metric("ARI", f"{last.ari:.3f}", delta=delta("ari"), help="Adjusted Rand index.")
    c[3].metric("iterations done", f"{snap.iterations_done} / {snap.config.iterations}")
    c[4].metric("time / iteration", _fmt_seconds(snap.seconds_per_iteration))


def cached_figure(entry: RunEntry, key: tuple, build):
    """A Plotly figure built once per run and ``key`` (``key[0]`` names the kind of chart; building a
    3000-point figure costs ~60 ms, and the live fragment draws it at every refresh)."""
    cache = entry.figure_cache.setdefault(key[0], {})  # per kind of chart: a live loss chart cannot evict a scatter
    fig = cache.get(key)
    if fig is None:
        fig = cache[key] = build()
        while len(cache) > 6:
            cache.pop(next(iter(cache)))
    return fig


LIVE_PICTURE_EVERY = 1.5  # s: the shortest time between two new live pictures of a WebGL-sized scatter


def live_picture_key(entry: RunEntry, key: tuple, points: int) -> tuple:
    """The figure key of the live picture to draw: ``key`` (a newer snapshot), or for a scatter of more than
    ``charts.WEBGL_FROM`` points the one drawn last, until ``LIVE_PICTURE_EVERY`` seconds have passed (same
    iteration, view and colouring). Redrawing a 3000-point scatter costs a browser without a GPU about half a second
    of its main thread (Chromium headless, software rendering: the page's main thread went from 47 % to 99 % busy
    with a new picture at every snapshot), which delayed the status line's own refreshes past a second; an
    unchanged figure is not redrawn."""
    prev = entry.live_shown
    now = time.monotonic()
    if (points > charts.WEBGL_FROM and prev is not None and prev[0] != key and prev[0][:2] == key[:2]
            and prev[0][3:] == key[3:] and now - prev[1] < LIVE_PICTURE_EVERY
            and prev[0] in entry.figure_cache.get("live", {})):
        return prev[0]
    if prev is None or prev[0] != key:
        entry.live_shown = (key, now)
    return key


COLOUR_BY = ["digit", "GMM class"]  # the latent scatter's colourings
REPLAY_FRAMES = 120  # frames of the in-page Replay (all finished iterations, the snapshots evenly thinned)


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
    kind = latent_views.view_selector(c2, "view_kind")
    done = {r.iteration: r for r in h}
    # fixed options (every planned iteration), so the choice survives while more iterations finish
    options = ["latest"] + list(range(snap.config.iterations + 1))
    pick = c3.selectbox("Iteration", options, key="iteration_pick",
                        format_func=lambda o: "latest iteration" if o == "latest" else
                        f"iteration {o}" + ("" if o in done else " (not yet)"))
    result = done.get(pick, h[-1])
    by = "class" if colour == "GMM class" else "digit"
    live = snap.live
    if not (pick == "latest" and snap.state in ACTIVE and live is not None and live.iteration == h[-1].iteration + 1):
        live = None
    if live is not None:
        shown = latent_views.live_view(run, h, live, kind)
        if shown is None:
            live = None
    if live is None:
        shown = latent_views.iteration_view(run, h, result.iteration, kind)
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
        latent_views.explain(shown)
        view = shown.view
        ranges = run.views.ranges(view.kind, view.xy)
        uirev = f"run{run.id}-{view.kind}"
        name = latent_views.LABELS[view.kind]
        if live is not None:
            base = done[live.iteration - 1]
            colours = (f"colours: GMM classes of iteration {base.iteration} (accuracy {base.accuracy:.3f})"
                       if by == "class" else f"colours: digits · accuracy so far {base.accuracy:.3f}")
            title = (f"Iteration {live.iteration} in progress, VAE epoch {live.epoch} of {live.epochs}: {name} of "
                     f"the codes right now · {colours}")
            key = live_picture_key(entry, ("live", live.iteration, live.epoch, by, view.kind, ranges), len(labels))
            fig = cached_figure(entry, key, lambda: charts.latent_scatter(
                base, labels, by, title=title, view=view, ranges=ranges, uirevision=uirev))
        else:
            title = (f"Latent space, iteration {result.iteration}: 2-D {name} of the codes · accuracy "
                     f"{result.accuracy:.3f}")
            key = ("main", result.iteration, by, view.kind, ranges)
            fig = cached_figure(entry, key, lambda: charts.latent_scatter(
                result, labels, by, title=title, view=view, ranges=ranges, uirevision=uirev))
        st.plotly_chart(fig, key="scatter_main", config={"displaylogo": False})
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


def _replay(entry: RunEntry, kind: str, by: str, max_frames: int):
    """The run's :class:`vaegmm.views.animation.Replay` in ``kind``; LDA that fails falls back to PCA (with the reason),
    a t-SNE still being computed raises :class:`vaegmm.views.animation.Pending`."""
    run = entry.run
    try:
        return animation.replay_frames(run.history, run.snapshots, run.labels, kind, by, run.views, max_frames), ""
    except ValueError as e:
        return (animation.replay_frames(run.history, run.snapshots, run.labels, "pca", by, run.views, max_frames),
                f"{latent_views.LABELS[kind]} fell back to PCA: {e}")


def replay_panel(entry: RunEntry, snap, kind: str, by: str) -> None:
    """The Replay of a finished or stopped run: a Plotly animation (play/pause, slider) over every iteration and
    the snapshots of each VAE update, built once per run, view and colouring."""
    run = entry.run
    try:
        rp, note = _replay(entry, kind, by, REPLAY_FRAMES)
    except animation.Pending as p:
        st.caption(f":material/hourglass_top: computing t-SNE for the replay: {p.ready} of {p.total} iterations "
                   "ready (one frame per iteration; it appears by itself). Meanwhile the PCA replay:")
        rp, note = _replay(entry, "pca", by, REPLAY_FRAMES)
    if note:
        st.caption(f":material/info: {note}")
    elif rp.kind == "tsne":
        st.caption("t-SNE replay: one frame per finished iteration (a t-SNE of every snapshot would take minutes).")
    key = ("replay", rp.kind, by, len(rp.frames), snap.state, len(snap.history))
    fig = cached_figure(entry, key, lambda: charts.replay_figure(rp))
    st.plotly_chart(fig, key="scatter_replay", config={"displaylogo": False})
    st.caption(f"{len(rp.frames)} frames: every finished iteration and the snapshots taken while the VAE trained. "
               f"Press ▶ Play, or drag the slider.")


_FILE_JOBS = None


def _file_jobs():
    """One small thread pool for the whole server: each job waits on a worker process drawing a file."""
    global _FILE_JOBS
    if _FILE_JOBS is None:
        from concurrent.futures import ThreadPoolExecutor

        _FILE_JOBS = ThreadPoolExecutor(2, thread_name_prefix="vaegmm-files")
    return _FILE_JOBS


def _file_button(col, entry: RunEntry, fmt: str, label: str, key: tuple, make, file_name: str, mime: str,
                 help: str, disabled: Optional[str] = None) -> None:
    """Two steps: a button that starts drawing the file in a worker process (seconds), then, once it is ready, a
    download button holding its bytes. (A download button with a callable gets a new file id at every rerun of the
    fragment, every 0.5 s, and a click that reaches the server after the next rerun finds its id gone; bytes get an
    id from their content, the same at every rerun.)"""
    jobs = entry.figure_cache.setdefault("_files", {})
    fut = jobs.get(fmt)
    if fut is not None and fut.key != key and fut.done():
        fut = None  # drawn for another view or state: draw again
    if fut is None:
        def start() -> None:
            f = _file_jobs().submit(make)
            f.key = key
            jobs[fmt] = f

        col.button(label, icon=":material/movie:" if fmt == "mp4" else ":material/image:" if fmt == "png"
                   else ":material/gif_box:", key=f"mk_{fmt}", on_click=start, width="stretch",
                   disabled=bool(disabled), help=disabled or help)
    elif not fut.done():
        col.button(f"drawing {fmt.upper()}…", icon=":material/hourglass_top:", key=f"mk_{fmt}", disabled=True,
                   width="stretch")
    elif fut.exception() is not None:
        col.button(f"{fmt.upper()} failed: retry", icon=":material/error:", key=f"mk_{fmt}", width="stretch",
                   on_click=lambda: jobs.pop(fmt, None), help=f"{type(fut.exception()).__name__}: {fut.exception()}")
    else:
        data = fut.result()
        col.download_button(f"Download {fmt.upper()} ({len(data) / 1e6:.1f} MB)" if len(data) > 1e5 else
                            f"Download {fmt.upper()}", icon=":material/download:", data=data, file_name=file_name,
                            mime=mime, key=f"dl_{fmt}", on_click="ignore", width="stretch",
                            help=f"{help} Ready; press {label} again after changing the view to draw it anew.")


def export_buttons(entry: RunEntry, snap, kind: str, by: str, shown, live, result, cols) -> None:
    """The animated GIF and MP4 of a finished or stopped run (960 x 720, 10 fps) and a PNG of the picture on
    screen. Each is drawn when its button is pressed, in a worker process (seconds of matplotlib must not hold the
    server's GIL), and then offered for download (see :func:`_file_button`)."""
    run = entry.run
    terminal = snap.state in TERMINAL
    tsne_pending = kind == "tsne" and any(run.views.tsne_status(r.iteration) != "ready" for r in snap.history)
    if terminal:
        base = ("anim", kind, by, snap.state, len(snap.history), len(run.replay_log))

        def make(fmt):
            def build() -> bytes:
                try:
                    rp, _ = _replay(entry, kind, by, animation.MAX_FRAMES)
                except animation.Pending:
                    rp, _ = _replay(entry, "pca", by, animation.MAX_FRAMES)
                rp.caption = f"VAE + GMM mutual learning · run #{run.id}: {entry.label.split(' ', 1)[-1]}"
                return animation.file_bytes_in_worker(rp, fmt)
            return build

        wait = "t-SNE is still being computed for some iterations" if tsne_pending else None
        _file_button(cols[0], entry, "gif", "GIF", base, make("gif"), f"vaegmm_run{run.id}_{kind}.gif", "image/gif",
                     "Animated GIF of the whole run (960 x 720, about 50 frames), for a slide: drawn in a few "
                     "seconds.", wait)
        if animation.mp4_available():
            _file_button(cols[1], entry, "mp4", "MP4", base, make("mp4"), f"vaegmm_run{run.id}_{kind}.mp4",
                         "video/mp4", "The same animation as an H.264 video (10 fps).", wait)
    view = shown.view
    labels = run.labels
    if live is not None:
        base_it = next(r for r in snap.history if r.iteration == live.iteration - 1)
        frame = animation.Frame(live.iteration, live.epoch, live.epochs, False, view.xy,
                                np.asarray(base_it.classes if by == "class" else labels), view.means,
                                float(base_it.accuracy))
        key = ("png", view.kind, by, "live", live.iteration)  # one PNG per update: it stays downloadable
    else:
        frame = animation.Frame(result.iteration, len(result.recon), len(result.recon), True, view.xy,
                                np.asarray(result.classes if by == "class" else labels), view.means,
                                float(result.accuracy))
        key = ("png", view.kind, by, result.iteration)
    groups = np.unique(frame.groups)
    rp = animation.Replay([frame], view.kind, by,
                          {int(g): (f"class {g}" if by == "class" else f"digit {g}") for g in groups},
                          run.views.ranges(view.kind, view.xy), view.axes)
    _file_button(cols[2], entry, "png", "PNG", key, lambda: animation.file_bytes_in_worker(rp, "png"),
                 f"vaegmm_run{run.id}_it{frame.iteration}_{view.kind}.png", "image/png",
                 "The picture on screen as a 960 x 720 PNG.")


def metrics_panel(entry: RunEntry, snap) -> None:
    st.markdown("**Accuracy, NMI and ARI per iteration**")
    if snap.history:
        fig = cached_figure(entry, ("metrics", len(snap.history)), lambda: charts.metrics_chart(snap.history))
        st.plotly_chart(fig, key="metrics_chart", config={"displaylogo": False})


def loss_panel(entry: RunEntry, snap) -> None:
    st.markdown("**VAE loss terms per epoch** (reconstruction and alpha·KL)")
    p = snap.progress
    live = p.iteration if snap.state in ACTIVE and p.recon else None
    if snap.history:
        key = ("losses", len(snap.history), live, len(p.recon))  # rebuilt only when an epoch was added
        fig = cached_figure(entry, key, lambda: charts.loss_chart(snap.history, snap.config.vae.alpha, p.recon,
                                                                   p.kl, live))
        st.plotly_chart(fig, key="loss_chart", config={"displaylogo": False})


def _idle_hint() -> None:
    st.info("Choose a preset or settings in the sidebar and press **Start**. Iteration 0 (the untrained "
            "encoder's codes, clustered) appears at once; then every mutual iteration trains the VAE and refits "
            "the GMM. **How it works** (left) explains what you see.", icon=":material/arrow_back:")
    # the chart's controls as they will be, greyed out (this also loads their code before the first picture)
    c1, c2, c3 = st.columns([1, 1.15, 1])
    c1.segmented_control("Colour by", COLOUR_BY, default="digit", key="idle_colour_by", disabled=True)
    latent_views.view_selector(c2, "idle_view_kind", disabled=True)
    c3.selectbox("Iteration", ["latest iteration"], key="idle_iteration_pick", disabled=True)
    placeholder_chart()


def live_page(runs: SessionRuns) -> None:
    """The main page's live part: one fragment, polled every :func:`live_every` seconds (fixed for the session, see
    the module docstring), drawing the controls and whatever the current run has to show."""

    @st.fragment(run_every=live_every())  # constant for the session
    def live():
        settings = _current_settings()
        problems = check_settings(settings)
        entry = runs.current
        snap = entry.run.snapshot() if entry is not None else None
        controls(runs, snap, problems)
        if entry is None:
            idle_status(settings)
            _idle_hint()
            return
        status_line(snap)
        metric_cards(snap)
        charts_panel(entry, snap)
        m1, m2 = st.columns(2)
        with m1:
            metrics_panel(entry, snap)
        with m2:
            loss_panel(entry, snap)

    live()


_PLACEHOLDER = None


def placeholder_chart() -> None:
    """An empty latent-space frame before the first Start (it also loads Plotly in the browser early)."""
    global _PLACEHOLDER
    if _PLACEHOLDER is None:
        _PLACEHOLDER = charts.placeholder()
    st.plotly_chart(_PLACEHOLDER, key="placeholder", config={"displaylogo": False, "staticPlot": True})


def pick_run(runs: SessionRuns, label: str = "Run", key: str = "pick_run") -> Optional[RunEntry]:
    """A selectbox over this session's runs with history (the current one first)."""
    entries = runs.with_history()
    if not entries:
        st.info("No run yet in this session: choose settings on the main page (**app**) and press **Start**.")
        return None
    entries = sorted(entries, key=lambda e: (e.run.id != runs.current_id, -e.run.id))
    ids = [e.run.id for e in entries]
    chosen = st.selectbox(label, ids, key=key, format_func=lambda i: runs.get(i).label)
    return runs.get(chosen)


def decode(decoder_state: dict, z: np.ndarray) -> np.ndarray:
    from vaegmm.model.vae import decode_numpy

    return decode_numpy(decoder_state, z)


def measured_feedback_effect() -> None:
    """The measured size of the lesson (feedback on vs off, paired over held-out seeds), computed from the stored
    sweep's per-seed numbers (:mod:`vaegmm.sweeps.measured`); nothing when they are missing."""
    from vaegmm.sweeps.measured import feedback_effect

    effect = feedback_effect()
    if effect is None:
        return
    st.info(f"**How big is the effect of feedback?** {effect.sentence()}  \n{effect.source()}",
            icon=":material/science:")
