"""The Sweeps page in AppTest: its widgets, one-line errors for bad input and unusable stores, a tiny sweep that
finishes and fills the table and charts, Stop and Resume, and a sweep that outlives its browser session."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from test_runner import wait_for
from vaegmm.runs import runner
from vaegmm.store import RunStore
from vaegmm.sweeps.manager import get_manager
from markdown_text import shown

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/4_Sweeps.py"
TINY = "n=120 epochs=1 iterations=1 latent=3 batch=60"


@pytest.fixture(autouse=True)
def _own_store_and_slots(monkeypatch, tmp_path):
    """A store of its own per test (the page reads $VAEGMM_DB) and a fresh 2-slot server cap."""
    monkeypatch.setenv("VAEGMM_DB", str(tmp_path / "runs.db"))
    monkeypatch.delenv("VAEGMM_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("VAEGMM_MAX_RUNS", "2")
    runner.default_slots.reset()
    yield
    get_manager().stop_all(10)
    runner.default_slots.reset()


def page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def status(at) -> str:
    return next((m.value for m in at.markdown if 'data-testid="vaegmm-sweep-status"' in m.value), "")


def specs(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def start(at, fixed=TINY, seeds=2) -> str:
    at.sidebar.text_input(key="sw_fixed").set_value(fixed).run()
    at.sidebar.number_input(key="sw_seeds").set_value(seeds).run()
    at.sidebar.button(key="sw_start").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    return at.session_state["sw_pick"]


def test_widgets_and_empty_store():
    at = page()
    sb = at.sidebar
    assert sb.selectbox(key="sw_preset").value == "quick-demo"
    assert [sb.selectbox(key=f"sw_axis_{i}").value for i in range(3)] == ["feedback", "(none)", "(none)"]
    assert sb.text_input(key="sw_values_0").value == "on,off"
    axes = {o.split(":")[0] for o in sb.selectbox(key="sw_axis_1").options}  # shown as "alpha: alpha (KL weight)"
    assert axes == {"(none)", "alpha", "latent", "n", "digits", "k", "iterations", "epochs", "batch", "gmm", "codes",
                    "feedback", "precision"}
    assert sb.number_input(key="sw_seeds").value == 3 and sb.number_input(key="sw_first_seed").value == 0
    assert not sb.button(key="sw_start").disabled
    assert any("2 cells × 3 seeds = 6 runs" in m.value for m in sb.markdown)
    assert any("No sweep yet" in i.value for i in at.info)
    assert any(link.label == "Sweeps" for link in at.sidebar.get("page_link"))


@pytest.mark.parametrize("changes, fragment", [
    ({"sw_values_0": "on,maybe"}, "feedback='maybe': expected on or off"),
    ({"sw_axis_0": "(none)"}, "empty grid"),
    ({"sw_axis_1": "alpha", "sw_values_1": "0.5,99"}, "alpha='99': expected a number from 0 to 10"),
    ({"sw_axis_1": "alpha", "sw_values_1": ""}, "axis 'alpha' has no values"),
    ({"sw_fixed": "n=abc"}, "n='abc': expected an integer"),
    ({"sw_fixed": "lr=2"}, "unknown axis 'lr'"),
    ({"sw_fixed": "feedback=on"}, "both an axis and a fixed setting"),
    ({"sw_axis_1": "alpha", "sw_values_1": "0,1,2,3,4,5,6,7,8,9", "sw_seeds": 30}, "more than the maximum of 500"),
])
def test_bad_input_is_one_error_and_start_is_disabled(changes, fragment):
    at = page()
    for key, value in changes.items():
        widget = at.sidebar.number_input(key=key) if key == "sw_seeds" else (
            at.sidebar.selectbox(key=key) if key.startswith("sw_axis") else at.sidebar.text_input(key=key))
        widget.set_value(value).run()
    errors = [shown(e.value) for e in at.sidebar.error]
    assert len(errors) == 1 and fragment in errors[0] and "\n" not in errors[0], errors
    assert at.sidebar.button(key="sw_start").disabled and not at.exception


def test_unusable_store_is_one_line_and_left_untouched(tmp_path, monkeypatch):
    bad = tmp_path / "garbage.db"
    bad.write_bytes(b"not a database" * 50)
    monkeypatch.setenv("VAEGMM_DB", str(bad))
    at = page()
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and "not a SQLite database" in errors[0] and not at.exception
    assert bad.read_bytes() == b"not a database" * 50


def test_unreachable_ray_cluster_is_one_line(monkeypatch):
    monkeypatch.setenv("VAEGMM_RAY_ADDRESS", "127.0.0.1:1")
    at = page()
    assert any("on the Ray cluster at 127.0.0.1:1" in m.value for m in at.sidebar.markdown)
    at.sidebar.text_input(key="sw_fixed").set_value(TINY).run()
    at.sidebar.button(key="sw_start").click().run()
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and "cannot reach the Ray cluster at 127.0.0.1:1" in errors[0]
    with RunStore() as store:
        assert store.list_sweeps() == []


def test_tiny_sweep_finishes_and_fills_the_page():
    at = page()
    name = start(at)
    assert get_manager().join(RunStore().path, name, 180)
    at.run()
    assert not at.exception
    assert 'data-state="finished"' in status(at) and 'data-done="4" data-total="4"' in status(at)
    table = at.dataframe[0].value
    assert list(table["cell"]) == ["feedback=on", "feedback=off"] and list(table["seeds done"]) == ["2/2", "2/2"]
    assert all(" ± " in v for v in table["accuracy"]) and all(" to " in v for v in table["accuracy 95 % CI"])
    found = {s["layout"]["meta"]: s for s in specs(at)}
    assert set(found) == {"sweep_curves", "sweep_final"}
    means = [t for t in found["sweep_curves"]["data"] if t.get("meta") == "mean"]
    assert len(means) == 2 and all(len(t["x"]) == 2 for t in means)  # iterations 0 and 1, per cell
    dots = [t for t in found["sweep_final"]["data"] if t.get("meta") == "cell"][0]
    assert len(dots["y"]) == 4
    assert any('data-testid="vaegmm-sweep-compare"' in m.value and "2 seeds" in m.value for m in at.markdown)
    assert at.button(key="sw_stop").disabled and at.button(key="sw_resume").disabled
    # another browser session (the tab was closed, someone else opens the page) sees the same sweep
    other = page()
    assert other.selectbox(key="sw_pick").value == name and 'data-state="finished"' in status(other)


def test_two_axes_give_a_heat_map():
    at = page()
    at.sidebar.selectbox(key="sw_axis_1").set_value("alpha").run()
    at.sidebar.text_input(key="sw_values_1").set_value("0.5,1").run()
    name = start(at, seeds=1)
    assert get_manager().join(RunStore().path, name, 180)
    at.run()
    heat = [s for s in specs(at) if s["layout"]["meta"] == "sweep_heatmap"]
    assert len(heat) == 1 and len(heat[0]["data"][0]["z"]) == 2 and len(heat[0]["data"][0]["z"][0]) == 2
    assert at.selectbox(key="sw_heat_x").value == "alpha" and at.selectbox(key="sw_heat_y").value == "feedback"


def test_stop_then_resume_from_the_page():
    at = page()
    name = start(at, fixed="n=500 batch=5 epochs=1000 iterations=1 latent=3", seeds=1)
    store_path = RunStore().path
    wait_for(lambda: (get_manager().status(store_path, name) or {}).get("progress").running >= 1, 60)
    at.run()
    assert 'data-state="running"' in status(at) and not at.button(key="sw_stop").disabled
    at.button(key="sw_stop").click().run()
    assert get_manager().join(store_path, name, 15)
    at.run()
    assert 'data-state="stopped"' in status(at) and not at.button(key="sw_resume").disabled
    with RunStore() as store:
        assert {r["status"] for r in store.list_runs()} == {"stopped"}
    at.button(key="sw_resume").click().run()
    assert not at.error, [e.value for e in at.error]
    wait_for(lambda: (get_manager().status(store_path, name) or {}).get("alive"), 30)
    get_manager().stop(store_path, name, wait=15)


def test_a_hostile_sweep_name_is_drawn_as_text():
    """A name with markup (and fixed settings quoted into the line) reaches every visitor's page as text."""
    hostile = '<img src=x onerror="document.title=1"><b>x</b> [l](http://example.com)'
    at = page()
    at.sidebar.text_input(key="sw_name").set_value(hostile).run()
    name = start(at, seeds=1)
    assert name == hostile
    line = status(at)
    assert "<img" not in line and "<b>x</b>" not in line and "&lt;img src=x onerror=&quot;document.title=1&quot;&gt;" in line
    assert get_manager().join(RunStore().path, name, 180)
