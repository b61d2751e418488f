"""Where feedback matters (issue 19): the map's data file, its rows computed from a sweep store with the paired
statistics, bench/feedback_map.py, the heat map and the How it works section (with and without the file)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.components import feedback_map_view
from vaegmm.model.config import RunConfig, preset
from vaegmm.store import RunStore
from vaegmm.sweeps import feedback_map
from vaegmm.sweeps.feedback_map import MapRow, load_feedback_map, map_rows
from vaegmm.sweeps.spec import SweepSpec
from vaegmm.sweeps.stats import paired

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

# final accuracy / NMI per (latent, feedback) and seed 0, 1, 2: feedback helps at D = 4, not at D = 12
ACC = {("4", "on"): [0.62, 0.60, 0.65], ("4", "off"): [0.57, 0.58, 0.60],
       ("12", "on"): [0.74, 0.70, 0.72], ("12", "off"): [0.73, 0.72, 0.71]}


def fake_sweep(store: RunStore, name: str = "map-test") -> SweepSpec:
    """A sweep latent {4, 12} x feedback {on, off} x seeds 0-2 with results written as if trained."""
    spec = SweepSpec.from_grid("quick-demo", [("latent", "4,12"), ("feedback", "on,off")], [0, 1, 2])
    sid = store.create_sweep(name, spec.to_dict())
    for cell, seed in spec.runs():
        acc = ACC[(cell.labels["latent"], cell.labels["feedback"])][seed]
        _, rid = store.claim_run(sid, cell.name, RunConfig.from_dict(cell.config).replace(seed=seed), seed)
        store.record_result(rid, {"status": "finished", "seconds": 1.0, "host": "h", "pid": 1, "iterations": [
            {"iteration": 0, "accuracy": 0.1, "nmi": 0.01, "ari": 0.0},
            {"iteration": 1, "accuracy": acc, "nmi": acc - 0.1, "ari": acc - 0.2}]})
    return spec


def test_map_rows_pair_feedback_on_with_off_per_setting(tmp_path):
    store = RunStore(tmp_path / "r.db")
    fake_sweep(store)
    rows = map_rows(store, "map-test")
    store.close()
    assert [(r.latent_dim, r.alpha, r.epochs, r.iterations) for r in rows] == [(4, 1.0, 100, 5), (12, 1.0, 100, 5)]
    for r, d in zip(rows, ("4", "12")):
        ref = paired(ACC[(d, "on")], ACC[(d, "off")], seeds=[0, 1, 2])
        assert r.seeds == [0, 1, 2] and r.n == 3 and r.source == "map-test" and r.note == f"latent={d}"
        assert r.effect_acc == pytest.approx(ref.mean_diff) and r.p == pytest.approx(ref.t_p)
        assert r.ci_low == pytest.approx(ref.ci_low) and r.ci_high == pytest.approx(ref.ci_high)
        assert r.wins == ref.wins and r.effect_nmi == pytest.approx(ref.mean_diff)  # NMI = accuracy - 0.1 here
        assert r.acc_on == pytest.approx(ref.mean_a) and r.acc_off == pytest.approx(ref.mean_b)
    assert rows[0].points() == pytest.approx(4.0) and rows[0].wins == 3


def test_bench_script_writes_the_file_the_page_reads(tmp_path):
    import feedback_map as bench  # bench/feedback_map.py

    store = RunStore(tmp_path / "r.db")
    fake_sweep(store, "map-a")
    fake_sweep(store, "held-out")
    store.close()
    out = tmp_path / "map.json"
    assert bench.main(["--db", str(tmp_path / "r.db"), "--sweep", "map-a", "--confirm", "held-out=feedback-lesson",
                       "--out", str(out), "--size", "tiny", "--note", "a test"]) == 0
    fmap = load_feedback_map(out)
    assert [r.latent_dim for r in fmap.rows] == [4, 12] and fmap.size == "tiny" and fmap.note == "a test"
    assert [r.name for r in fmap.confirmed] == ["feedback-lesson", "feedback-lesson"]
    assert fmap.confirmed[0].source == "held-out (held-out)" and fmap.sweeps == ["map-a", "held-out"]
    assert json.loads(out.read_text())["schema"] == feedback_map.SCHEMA


def test_the_shipped_file_holds_the_map_and_the_presets_held_out_confirmation():
    fmap = load_feedback_map()
    assert fmap is not None, f"{feedback_map.MAP_FILE} is missing"
    assert fmap.rows and all(r.effect_acc is not None and r.n >= 3 for r in fmap.rows)
    assert all(max(r.seeds) < 100 for r in fmap.rows)  # the map is chosen on tuning seeds only
    lesson = [r for r in fmap.confirmed if r.name == "feedback-lesson"]
    assert len(lesson) == 1 and min(lesson[0].seeds) >= 100 and lesson[0].n >= 10  # reported on held-out seeds
    cfg = preset("feedback-lesson")
    row = lesson[0]
    assert (row.latent_dim, row.alpha, row.epochs, row.iterations) == (
        cfg.vae.latent_dim, cfg.vae.alpha, cfg.vae.epochs, cfg.iterations)  # the preset is the confirmed setting
    assert row.effect_acc >= 0.05 and row.p < 0.05 and row.ci_low > 0 and row.wins > row.n / 2  # issue 19's target


def test_missing_or_broken_file_is_none(tmp_path):
    assert load_feedback_map(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text('{"rows": [{"alpha": 1}]}')  # a row without its setting
    assert load_feedback_map(tmp_path / "bad.json") is None


def test_heat_map_one_panel_per_schedule_with_the_effects_as_text():
    fmap = feedback_map.FeedbackMap(rows=[
        MapRow(4, 1.0, 100, 5, [0, 1, 2], 3, 0.04, wins=3), MapRow(12, 1.0, 100, 5, [0, 1, 2], 3, -0.01),
        MapRow(12, 3.0, 25, 20, [0, 1, 2], 3, 0.034, 0.007, 0.060, wins=3)], confirmed=[])
    fig = feedback_map_view.map_figure(fmap).to_dict()
    assert fig["layout"]["meta"] == "feedback_map"
    heat = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert [t["name"] for t in heat] == ["100x5", "25x20"]  # longest updates first
    assert list(heat[0]["y"]) == ["D = 4", "D = 12"] and list(heat[0]["x"]) == ["α = 1", "α = 3"]
    assert heat[0]["z"][0][0] == pytest.approx(4.0) and heat[0]["z"][0][1] is None  # not measured: blank
    assert heat[1]["text"][1][1] == "+3.4<br>[0.7 to 6.0]<br>3 of 3"
    assert fig["layout"]["coloraxis"]["cmid"] == 0 and fig["layout"]["coloraxis"]["cmax"] == pytest.approx(4.0)
    table = feedback_map_view.map_table(fmap.rows)
    assert table["accuracy effect (points)"].tolist() == ["+4.0", "-1.0", "+3.4"] and table["seeds"][0] == "0-2"


def how_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/3_How_it_works.py")
    at.run()
    assert not at.exception, at.exception
    return at


def test_how_it_works_draws_the_map_and_the_held_out_table():
    at = how_page()
    assert "5. Where feedback matters" in [h.value for h in at.header]
    maps = [c for c in at.get("plotly_chart") if '"feedback_map"' in c.proto.spec]
    assert len(maps) == 1
    assert any("pair=feedback" in m.value and "preset=feedback-lesson" in m.value for m in at.markdown)
    frames = at.dataframe
    assert len(frames) == 2 and "setting" in frames[1].value.columns
    assert "feedback-lesson" in frames[1].value["setting"].tolist()


def test_how_it_works_says_so_when_the_file_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(feedback_map, "MAP_FILE", tmp_path / "none.json")
    at = how_page()
    assert any("has not been measured yet" in i.value for i in at.info)
    assert not [c for c in at.get("plotly_chart") if '"feedback_map"' in c.proto.spec]
