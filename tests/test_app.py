"""The dashboard's pages driven by streamlit.testing.v1.AppTest (tiny runs: 200 images, 2 epochs, 2 iterations)."""
from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from vaegmm.model.params import parse_query, preset_settings, to_query
from vaegmm.runs import runner
from markdown_text import shown

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
COMPARE, EXPLORER, HOW = "pages/1_Compare_runs.py", "pages/2_Latent_explorer.py", "pages/3_How_it_works.py"
TINY = {"n": "200", "latent": "4", "epochs": "2", "iterations": "2", "batch": "100", "codes": "mean"}


@pytest.fixture(autouse=True)
def _own_slots(monkeypatch):
    """A fresh server-wide cap per test (2 slots), so tests cannot queue behind each other."""
    monkeypatch.setenv("VAEGMM_MAX_RUNS", "2")
    runner.default_slots.reset()
    runner.warm_up(background=False)
    yield
    runner.default_slots.reset()


def app(params=None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params if params is not None else TINY)
    at.run()
    assert not at.exception, at.exception
    return at


def runs_of(at):
    return at.session_state["_vaegmm_runs"]


def finish(at, timeout=90):
    run = runs_of(at).current.run
    assert run.join(timeout), "run did not end"
    at.run()
    assert not at.exception, at.exception
    return run


def _decode(value):
    """Plotly sends numpy arrays as ``{"dtype": "f4", "bdata": base64}``: back to a list."""
    if isinstance(value, dict) and "bdata" in value:
        shape = tuple(int(s) for s in str(value.get("shape", "")).split(",") if s.strip())
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return (arr.reshape(shape) if shape else arr).tolist()
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def plotly_specs(at) -> list[dict]:
    return [_decode(json.loads(el.proto.spec)) for el in at.get("plotly_chart")]


def by_meta(specs, meta):
    return [s for s in specs if s["layout"].get("meta") == meta]


def status(at) -> str:
    for md in at.markdown:
        if 'data-testid="vaegmm-status"' in md.value:
            return md.value
    return ""


def test_widgets_present_and_link_settings_applied():
    at = app()
    labels = {w.label for w in at.sidebar.number_input}
    assert {"MNIST images", "K (GMM classes)", "Latent dimension D", "Mutual iterations",
            "VAE epochs per iteration", "Batch size", "Seed"} <= labels
    assert at.sidebar.selectbox(key="cfg_preset").value == "quick-demo"
    assert at.sidebar.multiselect(key="cfg_digits").value == list(range(10))
    assert at.sidebar.slider(key="cfg_alpha").value == 1.0
    assert at.sidebar.radio(key="cfg_gmm").value == "em"  # the quick demo uses the project default GMM
    assert at.sidebar.radio(key="cfg_codes").value == "mean"
    assert at.sidebar.toggle(key="cfg_feedback").value is True
    assert at.number_input(key="cfg_n").value == 200
    assert at.number_input(key="cfg_latent").value == 4
    buttons = {b.label for b in at.button}
    assert {"Start", "Stop", "Pause", "Step", "Reset"} <= buttons
    assert not at.button(key="btn_start").disabled and at.button(key="btn_stop").disabled
    assert at.query_params["n"] == ["200"] or at.query_params["n"] == "200"


def test_preset_fills_fields_and_digits_set_k():
    at = app({})
    at.selectbox(key="cfg_preset").set_value("serket-classic").run()
    assert at.number_input(key="cfg_n").value == 3000
    assert at.number_input(key="cfg_latent").value == 18
    assert at.number_input(key="cfg_epochs").value == 200
    assert at.number_input(key="cfg_batch").value == 500
    assert at.number_input(key="cfg_iterations").value == 5
    assert at.radio(key="cfg_codes").value == "sample"
    at.selectbox(key="cfg_preset").set_value("no-feedback").run()
    assert at.toggle(key="cfg_feedback").value is False
    at.multiselect(key="cfg_digits").set_value([0, 1, 7]).run()
    assert at.number_input(key="cfg_k").value == 3
    assert not at.exception


def test_bad_link_falls_back_with_warnings():
    at = app({"n": "abc", "alpha": "99", "gmm": "kmeans", "digits": "0x", "preset": "nope", "foo": "1"})
    warnings = " ".join(shown(w.value) for w in at.warning)
    for word in ("n='abc'", "alpha='99'", "gmm='kmeans'", "digits='0x'", "preset='nope'", "'foo'"):
        assert word in warnings, (word, warnings)
    assert at.number_input(key="cfg_n").value == 2000  # quick-demo default
    assert at.slider(key="cfg_alpha").value == 1.0
    assert not at.exception


def test_invalid_settings_show_errors_not_exceptions():
    at = app()
    at.multiselect(key="cfg_digits").set_value([]).run()
    assert any("at least one digit" in shown(e.value) for e in at.error)
    assert at.button(key="btn_start").disabled
    at.multiselect(key="cfg_digits").set_value([1, 2]).run()
    at.number_input(key="cfg_n").set_value(20).run()
    at.number_input(key="cfg_k").set_value(30).run()
    assert any("more than the 20 images" in shown(e.value) for e in at.error)
    at.number_input(key="cfg_k").set_value(2).run()
    at.number_input(key="cfg_n").set_value(20000).run()
    assert any("per digit" in shown(e.value) for e in at.error)
    assert not at.exception


def test_tiny_run_from_the_page_finishes_with_full_charts():
    at = app()
    # before Start: the status line, progress bar and metric cards a run fills, empty (their layout stays at Start)
    assert 'data-state="idle"' in status(at) and "iteration 0 of 2" in status(at)
    assert [m.value for m in at.metric] == ["–"] * 5 and at.get("progress")
    at.button(key="btn_start").click().run()
    assert not at.exception
    assert any(f'data-state="{s}"' in status(at) for s in ("queued", "running", "finished"))  # at once
    run = finish(at)
    assert run.state == "finished", run.snapshot().message
    assert 'data-state="finished"' in status(at) and "iteration 2 of 2" in status(at)
    specs = plotly_specs(at)
    metrics = by_meta(specs, "metrics")
    assert len(metrics) == 1
    traces = metrics[0]["data"]
    assert [t["name"] for t in traces] == ["accuracy", "NMI", "ARI"]
    assert all(len(t["y"]) == 3 for t in traces)  # iterations + 1, iteration 0 included
    latent = by_meta(specs, "latent")
    assert len(latent) == 3  # selected iteration, before, after
    for spec in latent:
        assert sum(len(t["x"]) for t in spec["data"] if t.get("meta") == "points") == 200
        assert sum(len(t["x"]) for t in spec["data"] if t.get("meta") == "means") == 10
    losses = by_meta(specs, "losses")[0]["data"]
    assert len(losses[0]["y"]) == 4  # 2 epochs x 2 iterations
    labels = [m.label for m in at.metric]
    assert "accuracy" in labels and "NMI" in labels
    assert any(d.label.startswith("Download") for d in at.get("download_button"))
    # colour by class and pick iteration 0
    at.segmented_control(key="colour_by").set_value("GMM class").run()
    at.selectbox(key="iteration_pick").set_value(0).run()
    spec = by_meta(plotly_specs(at), "latent")[0]
    assert spec["data"][0]["name"].startswith("class")
    assert not at.exception


def test_step_then_stop_from_the_page():
    at = app({**TINY, "epochs": "400", "batch": "20", "iterations": "3"})
    at.button(key="btn_step").click().run()
    run = runs_of(at).current.run
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (run.state == "paused" and len(run.history) == 2):
        time.sleep(0.05)
    assert run.state == "paused" and len(run.history) == 2
    at.run()
    assert at.button(key="btn_pause").label == "Resume"
    at.button(key="btn_pause").click().run()
    assert run.state == "running"
    t0 = time.monotonic()
    at.button(key="btn_stop").click().run()
    assert run.join(2.0) and time.monotonic() - t0 < 2.0
    at.run()
    assert 'data-state="stopped"' in status(at)
    at.button(key="btn_reset").click().run()
    assert runs_of(at).current is None and not at.exception


def test_failure_is_shown_and_the_app_keeps_working():
    at = app({**TINY, "alpha": "10"})
    # a learning rate no widget offers, to make the loss explode
    at.session_state["_vaegmm_runs"].factory = lambda cfg, slots=None: runner.TrainingRun(
        cfg.replace(vae__lr=1e4, vae__alpha=1e6), slots=slots)
    at.button(key="btn_start").click().run()
    run = finish(at)
    assert run.state == "failed"
    assert any("iteration 1" in shown(e.value) and "not finite" in shown(e.value) for e in at.error)
    assert by_meta(plotly_specs(at), "metrics")  # iteration 0 is still shown
    at.session_state["_vaegmm_runs"].factory = runner.TrainingRun
    at.button(key="btn_start").click().run()
    assert finish(at).state == "finished"


def test_pages_without_runs():
    at = app()
    at.switch_page(COMPARE).run()
    assert not at.exception and any("No run yet" in i.value for i in at.info)
    at.switch_page(EXPLORER).run()
    assert not at.exception and any("No run yet" in i.value for i in at.info)
    at.switch_page(HOW).run()
    assert not at.exception
    assert len(at.get("latex")) >= 2 and any("mu_c" in l.value for l in at.get("latex"))


def test_pages_with_runs():
    at = app()
    at.button(key="btn_start").click().run()
    finish(at)
    at.slider(key="cfg_alpha").set_value(0.0).run()
    at.button(key="btn_start").click().run()
    finish(at)
    at.switch_page(COMPARE).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 2 and list(table["alpha"]) == [1.0, 0.0]
    curves = by_meta(plotly_specs(at), "compare")[0]["data"]
    assert len(curves) == 2 and all(len(c["y"]) == 3 for c in curves)
    at.switch_page(EXPLORER).run()
    assert not at.exception
    assert at.selectbox(key="pick_run").value == runs_of(at).current_id
    at.number_input(key="explore_idx").set_value(7).run()
    assert any("**Image 7**" in m.value for m in at.markdown)
    # image, reconstruction, class mean, 10 decoded class means: inline PNGs (no media file a rerun could delete)
    figures = [m.value for m in at.markdown if m.value.startswith("<figure") and "data:image/png;base64," in m.value]
    assert len(figures) >= 3 + 10 and any("decoded mean of class" in f for f in figures)
    assert by_meta(plotly_specs(at), "confusion")
    at.switch_page("app.py").run()  # settings survive a page switch
    assert at.slider(key="cfg_alpha").value == 0.0 and not at.exception


def test_sessions_are_separate_and_queue_behind_the_cap(monkeypatch):
    monkeypatch.setenv("VAEGMM_MAX_RUNS", "1")
    runner.default_slots.reset()
    baseline = threading.active_count()
    long = {**TINY, "epochs": "400", "batch": "20"}
    a, b = app(long), app(TINY)
    a.button(key="btn_start").click().run()
    b.button(key="btn_start").click().run()
    ra, rb = runs_of(a).current.run, runs_of(b).current.run
    assert ra is not rb and runs_of(a) is not runs_of(b)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ra.state != "running":
        time.sleep(0.05)
    b.run()
    assert rb.state == "queued"
    assert any("position 1 in the queue" in i.value for i in b.info)
    a.button(key="btn_stop").click().run()  # a's Stop frees the slot; b starts by itself and finishes
    assert finish(b).state == "finished"
    assert ra.state == "stopped" and len(runs_of(b).entries) == 1
    runs_of(a).release()  # what Streamlit does when a's tab closes
    for r in (ra, rb):
        assert r.join(5)
    # the budget's one-time calibration of this server's speed (dashboard/state/budget.py) may still be running:
    # a server-wide job started by the first cost estimate, not a thread of these sessions
    left = [t.name for t in threading.enumerate() if t.name != "vaegmm-calibrate"]
    assert len(left) <= baseline, left


def test_settings_round_trip_through_the_link():
    s = preset_settings("serket-classic")
    s.update(n=400, digits=[1, 4, 9], k=3, alpha=0.5, feedback=False, codes="mean")
    q = to_query(s)
    assert q["preset"] == "serket-classic" and q["digits"] == "149" and q["feedback"] == "off"
    back, warnings = parse_query(q)
    assert warnings == [] and back == s


def test_refresh_interval_grows_with_the_sessions_connected():
    """Each session counts itself in the server's own counter (no private Streamlit API) and is uncounted when
    Streamlit releases its session-scoped resource; a new session's interval is 0.15 s per connected session,
    at least $VAEGMM_REFRESH."""
    import re

    from dashboard.state.browser_session import _SessionGuard
    from dashboard.state.session_count import connected_sessions

    def every(at) -> float:
        return float(re.search(r'data-every="([0-9.]+)"', status(at)).group(1))

    counter = connected_sessions()
    first = app()  # this test process's one AppTest session is counted
    assert counter.count >= 1 and every(first) == 0.5
    guards = [_SessionGuard(counter) for _ in range(9)]  # nine more tabs connect
    try:
        crowded = counter.count
        assert every(app()) == round(min(10.0, max(0.5, 0.15 * crowded)), 2) > 0.5
        first.run()
        assert every(first) == 0.5  # a session keeps the interval it started with
    finally:
        for g in guards:
            g.release()  # what Streamlit's on_release does when those tabs close
    assert counter.count == crowded - 9
    assert every(app()) == 0.5


def test_released_session_stops_its_runs_after_the_grace_period(monkeypatch):
    from dashboard.state.browser_session import _SessionGuard
    from dashboard.state.session_count import SessionCounter

    monkeypatch.setenv("VAEGMM_RECONNECT_GRACE", "0")
    counter = SessionCounter()
    guard = _SessionGuard(counter)
    assert counter.count == 1

    class Runs:
        grace = None

        def release(self, grace):
            self.grace = grace

    guard.runs = Runs()
    guard.release()
    assert counter.count == 0 and guard.runs.grace == 0.0
