"""The run library (issue 10): every live run is recorded as it trains, reads back the same, survives the server,
and the folders are kept under a size cap."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from markdown_text import shown
from vaegmm.runs import library
from vaegmm.runs import runner
from vaegmm.model.config import preset
from vaegmm.runs.runner import TrainingRun
from vaegmm.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
TINY = preset("quick-demo").replace(data__n=120, vae__latent_dim=4, iterations=2, vae__epochs=2,
                                    vae__batch_size=60, gmm__backend="em", seed=3)


@pytest.fixture(autouse=True)
def _own_slots(monkeypatch):
    monkeypatch.setenv("VAEGMM_MAX_RUNS", "2")  # a fresh 2-slot server cap per test
    runner.default_slots.reset()
    yield
    runner.default_slots.reset()


def recorded_run(store, config=TINY) -> TrainingRun:
    run = TrainingRun(config)
    run.recorder = library.RunRecorder(store, config, "dashboard", label="tiny", preset="quick-demo")
    assert run.start()
    assert run.join(180), "run did not end"
    return run


def test_a_live_run_is_saved_as_it_trains_and_reads_back_the_same(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run = recorded_run(store)
    assert run.state == "finished" and not run.recorder.error
    row = store.get_run(run.recorder.run_id)
    assert row["status"] == "finished" and row["source"] == "dashboard" and row["seconds"] > 0
    its = store.iterations([row["id"]]).sort_values("iteration")
    assert list(its["iteration"]) == [0, 1, 2]
    assert np.allclose(its["accuracy"], [r.accuracy for r in run.history])

    saved = library.load_run(store, row["id"])
    assert saved.state == "finished" and len(saved.history) == 3
    assert np.array_equal(saved.labels, run.labels) and np.array_equal(saved.images_u8, run.images_u8)
    for a, b in zip(saved.history, run.history):
        assert a.accuracy == b.accuracy and np.array_equal(a.classes, b.classes)
        assert np.allclose(a.codes, b.codes, atol=2e-3 * (1 + np.abs(b.codes).max()))  # float16 on disk
        assert np.allclose(a.projection, b.projection, atol=1e-5)
    assert saved.snapshot().history[-1].iteration == 2
    serket = Path(row["export_dir"]) / "serket"
    assert (serket / "module001_vae" / "z_learn.txt").exists() and (serket / "module002_gmm" / "acc_learn.txt").exists()
    assert len(np.loadtxt(serket / "module002_gmm" / "class_learn.txt")) == TINY.data.n


def test_a_stopped_run_is_saved_as_stopped(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    cfg = TINY.replace(iterations=20, vae__epochs=50)
    run = TrainingRun(cfg)
    run.recorder = library.RunRecorder(store, cfg, "dashboard")
    run.start()
    import time

    deadline = time.monotonic() + 120
    while not run.history and time.monotonic() < deadline:
        time.sleep(0.1)
    run.stop("test")
    assert run.join(60)
    row = store.get_run(run.recorder.run_id)
    assert row["status"] == "stopped"
    assert 1 <= len(library.load_run(store, row["id"]).history) < 21


def test_a_broken_store_never_stops_the_training(tmp_path):
    class Broken(RunStore):
        def add_iteration(self, *a, **k):
            raise OSError("disk full")

    store = Broken(tmp_path / "runs.db")
    run = recorded_run(store)
    assert run.state == "finished" and len(run.history) == 3
    assert "disk full" in run.recorder.error


def test_a_run_left_running_by_a_dead_server_is_marked_interrupted(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "runs.db"
    code = ("import os, sys; from vaegmm.store import RunStore; s = RunStore(sys.argv[1]); "
            "i = s.begin_run({'seed': 1}, 1, 'dashboard'); print(i, flush=True); os._exit(9)")
    out = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    run_id = int(out.stdout.split()[0])
    store, problem = library.open_store(db)
    assert not problem
    assert store.get_run(run_id)["status"] == "interrupted"


def test_the_size_cap_deletes_the_oldest_ended_folders_and_keeps_the_metrics(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    ids = []
    for i in range(4):
        rid = store.begin_run(TINY, i, "dashboard")
        folder = library.runs_dir(store) / str(rid)
        folder.mkdir(parents=True)
        (folder / "blob.bin").write_bytes(os.urandom(2 ** 20))  # 1 MB each
        store.set_export_dir(rid, str(folder))
        store.add_iteration(rid, {"iteration": 0, "accuracy": 0.5, "nmi": 0.1, "ari": 0.1})
        ids.append(rid)
    for rid in ids[:3]:
        store.finish_run(rid, "finished")
    # 4 MB on disk, cap 2.5 MB: the two oldest ended folders go; the running one is never touched
    assert library.enforce_cap(store, 2.5) == ids[:2]
    assert not (library.runs_dir(store) / str(ids[0])).exists()
    assert (library.runs_dir(store) / str(ids[3])).exists()
    assert store.get_run(ids[0])["export_dir"] is None
    assert len(store.iterations([ids[0]])) == 1  # the metrics stay
    saved = library.load_run(store, ids[0])
    assert saved.history == [] and saved.status == "finished"
    assert library.enforce_cap(store, 0.5) == [ids[2]]  # only ended runs, even over the cap


def test_cap_from_environment(monkeypatch):
    monkeypatch.setenv(library.CAP_ENV, "12.5")
    assert library.cap_mb() == 12.5
    monkeypatch.setenv(library.CAP_ENV, "lots")
    assert library.cap_mb() == library.DEFAULT_CAP_MB


# ---------------------------------------------------------------------------------------------- the pages
def _app(path, params) -> AppTest:
    """A new session opening ``path`` with the link's ``params`` (other pages via switch_page, as a link does)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params.update(params)
    if path != "app.py":
        at.switch_page(path)
    at.run()
    assert not at.exception, at.exception
    return at


def test_pages_show_a_saved_run_read_only_and_in_the_library(session_db):
    runner.warm_up(background=False)
    at = _app("app.py", {"n": "120", "latent": "4", "epochs": "2", "iterations": "2", "batch": "60",
                         "gmm": "em"})
    at.button(key="btn_start").click().run()
    run = at.session_state["_vaegmm_runs"].current.run
    assert run.join(180) and run.state == "finished"
    run_id = run.recorder.run_id
    assert run_id is not None and not run.recorder.error

    page = _app("app.py", {"run": str(run_id)})
    assert any(f"Saved run #{run_id}" in t.value for t in page.title)
    keys = {b.key for b in page.button}
    assert not keys & {"btn_start", "btn_pause", "btn_step", "btn_stop", "btn_reset"}, keys  # read-only
    assert "mk_gif" in keys  # exports work on a saved run
    status = " ".join(m.value for m in page.markdown)
    assert 'data-state="finished"' in status
    specs = [json.loads(c.proto.spec) for c in page.get("plotly_chart")]
    latent = [s for s in specs if s["layout"].get("meta") == "latent"]
    assert latent, "the saved run's latent picture"

    missing = _app("app.py", {"run": "999999"})
    assert any("no saved run 999999" in shown(e.value) for e in missing.error)

    explorer = _app("pages/2_Latent_explorer.py", {"run": str(run_id)})
    assert any(f"Saved run #{run_id}" in c.value for c in explorer.caption)

    compare = _app("pages/1_Compare_runs.py", {})
    compare.segmented_control(key="compare_mode").set_value("all saved runs").run()
    assert not compare.exception, compare.exception
    table = compare.dataframe[0].value
    assert run_id in list(table["run"])
    assert table.set_index("run").loc[run_id, "final accuracy"] == pytest.approx(run.history[-1].accuracy,
                                                                                    abs=1e-4)


def _saved_every_script():
    """A page that asks for the saved-run page's refresh interval of run 7 in each state, twice (the choice is
    fixed per session and run) and writes them."""
    import types

    import streamlit as st

    from dashboard.screens.saved_run import saved_every

    for i, status in enumerate(("finished", "interrupted", "running")):
        first = saved_every(10 + i, types.SimpleNamespace(status=status))
        again = saved_every(10 + i, types.SimpleNamespace(status="finished"))
        st.text(f"{status}={first}|{again}")
    st.text(f"missing={saved_every(20, None)}")


def test_a_saved_run_that_has_ended_is_not_polled():
    """Issue 18: when a followed run ends, every follower's page becomes its saved-run page; one that has ended
    does not poll (None: its widgets still rerun the fragment), one still training polls at the live interval,
    and the choice is kept for the session (8 such pages cost the server 0.19 of a core before, 0.006 after:
    BENCHMARKS "After the run")."""
    at = AppTest.from_function(_saved_every_script, default_timeout=30).run()
    assert not at.exception
    texts = [t.value for t in at.text]
    assert texts[0] == "finished=None|None" and texts[1] == "interrupted=None|None"
    status, values = texts[2].split("=")
    first, again = values.split("|")
    assert status == "running" and float(first) >= 0.2 and again == first  # the live interval, kept
    assert float(texts[3].split("=")[1]) >= 0.2  # no run (a store problem): the page keeps looking
