"""Sweeps: grid expansion, bad input, the local process pool end to end, failures, dead workers, Stop, a killed
driver, a second driver, the cap shared with live runs. Tiny runs (120 images, 1-2 epochs, 1-2 iterations)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from test_runner import wait_for
from vaegmm.model.config import preset
from vaegmm.sweeps.estimate import (DEFAULT_SECONDS_PER_IMAGE_EPOCH, Calibration, estimate_seconds, seconds_per_unit,
                                    server_calibration, work_units)
from vaegmm.sweeps.executors import PACKAGE_DIR, LocalPoolExecutor
from vaegmm.runs.slots import SlotManager
from vaegmm.store import RunStore, StoreError
from vaegmm.sweeps.cell import run_one
from vaegmm.sweeps.driver import SweepDriver, run_sweep
from vaegmm.sweeps.manager import SweepManager, get_manager
from vaegmm.sweeps.results import cell_table, compare_cells, default_comparisons, resolve_cell, sweep_results
from vaegmm.sweeps.spec import SweepError, SweepSpec, parse_seeds

ROOT = Path(__file__).resolve().parents[1]
TINY = [("n", "120"), ("epochs", "1"), ("iterations", "1"), ("latent", "3"), ("batch", "60")]


def tiny(*axes) -> list:
    """TINY with some of its settings replaced or axes added (in the order given)."""
    names = {k for k, _ in axes}
    return [(k, v) for k, v in TINY if k not in names] + list(axes)


def tiny_spec(*axes, seeds=2, preset_name="quick-demo", **kw) -> SweepSpec:
    return SweepSpec.from_grid(preset_name, tiny(*axes), seeds, **kw)


# ---------------------------------------------------------------------------------------------- the grid
def test_grid_expands_to_cells_times_seeds_in_order():
    spec = SweepSpec.from_grid("project-default", [("feedback", "on,off"), ("alpha", "0.5,1,2"), ("epochs", "50")],
                               seeds=[100, 101, 102])
    cells = spec.cells()
    assert [c.name for c in cells] == ["feedback=on alpha=0.5", "feedback=on alpha=1", "feedback=on alpha=2",
                                       "feedback=off alpha=0.5", "feedback=off alpha=1", "feedback=off alpha=2"]
    assert spec.n_cells == 6 and spec.n_runs == 18 and len(spec.runs()) == 18
    assert [s for _, s in spec.runs()[:3]] == [100, 101, 102]
    c = cells[4]["config"] if isinstance(cells[4], dict) else cells[4].config
    assert c["feedback"] is False and c["vae"]["alpha"] == 1.0 and c["vae"]["epochs"] == 50
    assert c["gmm"]["n_init"] == preset("project-default").gmm.n_init  # the preset's other settings stay
    assert spec.fixed == {"epochs": "50"} and [a.name for a in spec.axes] == ["feedback", "alpha"]
    assert SweepSpec.from_dict(spec.to_dict()).to_dict() == spec.to_dict()
    assert spec.describe() == ("feedback (on, off) x alpha (0.5, 1, 2) x 3 seeds (100-102) = 18 runs on "
                               "project-default, epochs=50")


def test_digits_axis_sets_k_unless_k_is_given():
    spec = tiny_spec(("digits", "01,0123"))
    assert [c.config["gmm"]["n_classes"] for c in spec.cells()] == [2, 4]
    spec = tiny_spec(("digits", "01,0123"), ("k", "5"))
    assert [c.config["gmm"]["n_classes"] for c in spec.cells()] == [5, 5]
    assert tiny_spec(("digits", "17")).base["gmm"]["n_classes"] == 2


def test_seeds_count_range_list():
    assert parse_seeds(3) == [0, 1, 2] and parse_seeds(3, first=10) == [10, 11, 12]
    assert parse_seeds("100-103") == [100, 101, 102, 103]
    assert parse_seeds("3,7,11") == parse_seeds("3 7 11") == parse_seeds([3, 7, 11]) == [3, 7, 11]
    assert parse_seeds("4") == [0, 1, 2, 3]


@pytest.mark.parametrize("grid, seeds, kw, fragment", [
    ([("lr", "1,2")], 2, {}, "unknown axis 'lr'"),
    ([("alpha", "0.5,11")], 2, {}, "alpha='11': expected a number from 0 to 10"),
    ([("latent", "1,2")], 2, {}, "latent='1'"),
    ([], 2, {}, "empty grid"),
    ([("alpha", "")], 2, {}, "no values"),
    ([("alpha", "1,2"), ("alpha", "3")], 2, {}, "given twice"),
    ([("seed", "1,2")], 2, {}, "--seeds"),
    ([("alpha", "0.5,1,2"), ("feedback", "on,off")], 100, {}, "6 cells x 100 seeds = 600 runs, more than the maximum of 500"),
    ([("alpha", "1,2")], 5, {"max_runs": 8}, "more than the maximum of 8"),
    ([("n", "20"), ("k", "30,40")], 2, {}, "cell k=30: n_classes (30) must not exceed the number of images (20)"),
    ([("alpha", "1,2")], "5-2", {}, "ends before it starts"),
    ([("alpha", "1,2")], "x", {}, "seeds must be"),
    ([("alpha", "1,2")], 0, {}, "number of seeds must be >= 1"),
])
def test_bad_grids_are_one_line_errors(grid, seeds, kw, fragment):
    with pytest.raises(SweepError) as e:
        SweepSpec.from_grid("quick-demo", grid, seeds, **kw)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_cells_resolve_and_default_comparisons():
    spec = SweepSpec.from_grid("quick-demo", [("feedback", "on,off"), ("alpha", "0.5,1")], 2)
    assert resolve_cell(spec, "alpha=1 feedback=off").name == "feedback=off alpha=1"
    assert resolve_cell(spec, "feedback=off,alpha=1.0").name == "feedback=off alpha=1"
    for bad, fragment in (("feedback=on", "must name every axis"), ("feedback=maybe alpha=1", "feedback='maybe'"),
                          ("lr=1 feedback=on alpha=1", "not an axis"), ("feedback=on alpha=3", "no cell")):
        with pytest.raises(SweepError, match=fragment):
            resolve_cell(spec, bad)
    pairs = [(a.name, b.name) for a, b in default_comparisons(spec)]
    assert pairs == [("feedback=on alpha=0.5", "feedback=off alpha=0.5"), ("feedback=on alpha=1", "feedback=off alpha=1"),
                     ("feedback=on alpha=0.5", "feedback=on alpha=1"), ("feedback=off alpha=0.5", "feedback=off alpha=1")]


# ---------------------------------------------------------------------------------------------- run_one
def test_run_one_returns_metrics_and_failures():
    import torch

    threads = torch.get_num_threads()
    cfg = preset("quick-demo").replace(data__n=120, vae__epochs=1, iterations=1, vae__latent_dim=3, vae__batch_size=60)
    r = run_one(cfg.to_dict(), 3)
    assert r["status"] == "finished" and [m["iteration"] for m in r["iterations"]] == [0, 1]
    assert {"accuracy", "nmi", "ari", "seconds_vae", "seconds_gmm", "class_counts"} <= set(r["iterations"][1])
    assert r["seconds"] >= r["train_seconds"] > 0 and r["pid"] == os.getpid() and r["host"]
    assert torch.get_num_threads() == threads  # pinned to one thread only during the run
    again = run_one(cfg.to_dict(), 3)
    assert [m["accuracy"] for m in again["iterations"]] == [m["accuracy"] for m in r["iterations"]]
    bad = run_one(cfg.replace(vae__lr=1e6, vae__alpha=10.0, vae__epochs=3).to_dict(), 0)
    assert bad["status"] == "failed" and "TrainingDiverged" in bad["message"] and "iteration 1" in bad["message"]


# ---------------------------------------------------------------------------------------------- estimate
def test_estimate_grows_with_work_units_and_shrinks_with_lanes():
    spec = tiny_spec(("alpha", "0.5,1"), seeds=3)
    assert [work_units(c.config) for c in spec.cells()] == [120.0, 120.0]  # 120 images x 1 epoch x 1 iteration
    assert estimate_seconds(spec, 1, rate=0.01) == pytest.approx(6 * (120 * 0.01 + 1.0))
    assert estimate_seconds(spec, 2, rate=0.01) == pytest.approx(3 * (120 * 0.01 + 1.0))
    assert estimate_seconds(spec, 1) == pytest.approx(6 * (120 * DEFAULT_SECONDS_PER_IMAGE_EPOCH + 1.0))


def test_seconds_per_unit_is_the_median_of_this_hosts_runs_of_2_s_or_more():
    config = tiny_spec().cells()[0].config  # 120 work units
    here = socket.gethostname()

    class Store:
        def list_runs(self, **kw):
            return [{"host": here, "seconds": 3.0, "config": config}, {"host": here, "seconds": 6.0, "config": config},
                    {"host": None, "seconds": 12.0, "config": config},  # a run without a host counts as ours
                    {"host": "elsewhere", "seconds": 600.0, "config": config}, {"host": here, "seconds": 1.5,
                                                                                "config": config}]

    class Empty:
        def list_runs(self, **kw):
            return []

    rate, basis = seconds_per_unit(Store())
    assert rate == pytest.approx(6.0 / 120) and basis == "from 3 earlier runs on this server"
    assert seconds_per_unit(Empty()) == (None, "")


def test_the_manager_and_the_calibration_are_one_per_process():
    assert get_manager() is get_manager() and isinstance(get_manager(), SweepManager)
    assert server_calibration() is server_calibration() and isinstance(server_calibration(), Calibration)


# ---------------------------------------------------------------------------------------------- local pool
def test_a_pool_worker_starts_outside_the_checkout(tmp_path, monkeypatch):
    """The worker is ``python -m vaegmm.sweeps.pool_worker``: it must find the package from any directory."""
    assert PACKAGE_DIR == ROOT / "vaegmm"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    ex = LocalPoolExecutor(1)
    try:
        result = ex.run(0, tiny_spec().cells()[0].config, 0, threading.Event())
    finally:
        ex.close()
    assert result["status"] == "finished", result.get("message")
    assert len(ex.worker_start_seconds) == 1 and result["pid"] != os.getpid()


def test_local_sweep_stores_everything_and_never_trains_a_key_twice(tmp_path):
    db = tmp_path / "s.db"
    spec = tiny_spec(("feedback", "on,off"), seeds=[5, 6])
    events = []
    with RunStore(db) as store:
        p = run_sweep(store, spec, "fb", LocalPoolExecutor(2), on_event=events.append)
        assert (p.total, p.done, p.finished, p.failed) == (4, 4, 4, 0)
        info, runs, its = sweep_results(store, "fb")
        assert info["status"] == "finished" and len(runs) == 4 and set(runs["status"]) == {"finished"}
        assert sorted(its.groupby("run_id").size()) == [2, 2, 2, 2]  # iterations 0 and 1 of every run
        assert {e.kind for e in events} >= {"started", "finished", "end"}
        table = cell_table(spec, runs)
        assert list(table["n"]) == [2, 2] and table["accuracy mean"].between(0, 1).all()
        cmp = compare_cells(spec, runs, "feedback=on", "feedback=off")
        assert cmp.n == 2 and cmp.seeds == (5, 6)
        n_runs = len(store.list_runs())
        # the same sweep again, and another sweep sharing two of its runs: nothing is trained again
        p = run_sweep(store, spec, "fb", LocalPoolExecutor(2))
        assert p.done == 4 and p.finished == 4 and len(store.list_runs()) == n_runs
        other = tiny_spec(("feedback", "on,off"), seeds=[6, 7])
        p = run_sweep(store, other, "fb2", LocalPoolExecutor(2))
        assert (p.reused, p.finished) == (2, 2) and len(store.list_runs()) == n_runs + 2


def test_a_failing_run_is_stored_failed_and_the_sweep_goes_on(tmp_path):
    base = preset("quick-demo").replace(vae__lr=1e6)
    spec = SweepSpec.from_grid("quick-demo", tiny(("epochs", "3"), ("alpha", "0,10")), 1, base=base)
    with RunStore(tmp_path / "s.db") as store:
        p = run_sweep(store, spec, "lr", LocalPoolExecutor(1))
        _, runs, _ = sweep_results(store, "lr")
        failed = runs[runs["status"] == "failed"]
        assert p.failed == len(failed) >= 1 and p.done == 2
        assert failed["message"].str.contains("iteration 1").all()
        assert failed["message"].str.contains("TrainingDiverged").any()
        assert store.get_sweep("lr")["status"] == "finished" and "failed" in store.get_sweep("lr")["message"]


@pytest.mark.parametrize("kills, status", [(1, "finished"), (2, "failed")])
def test_a_dead_worker_is_reported_and_its_run_retried_once(tmp_path, kills, status):
    spec = tiny_spec(("epochs", "40"), seeds=1)
    ex = LocalPoolExecutor(1)
    killed, events = [], []

    def killer():  # kill each worker process as soon as it has been sent the run
        deadline = time.monotonic() + 120
        while len(killed) < kills and time.monotonic() < deadline:
            w = ex._workers.get(0)
            if w is not None and w.pid not in killed and w.tasks:
                os.kill(w.pid, signal.SIGKILL)
                killed.append(w.pid)
            time.sleep(0.01)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    with RunStore(tmp_path / "s.db") as store:
        p = run_sweep(store, spec, "kill", ex, on_event=events.append)
        t.join(5)
        run = store.list_runs()[0]
    died = [e for e in events if e.kind == "worker_died"]
    assert len(killed) == kills and len(died) == kills
    assert all(f"worker process {pid} died" in e.message for e, pid in zip(died, killed))
    assert run["status"] == status and run["extra"]["attempts"] == kills + (status == "finished")
    if status == "failed":
        assert "died twice" in run["message"] and p.failed == 1
    else:
        assert p.finished == 1


def test_stop_ends_a_sweep_within_seconds_and_keeps_finished_runs(tmp_path):
    db = tmp_path / "s.db"
    spec = tiny_spec(("n", "500"), ("batch", "5"), ("epochs", "1,1000"), seeds=1)  # the second cell: minutes
    manager = SweepManager()
    driver = manager.start(db, spec, "stop", lambda: LocalPoolExecutor(1))
    wait_for(lambda: driver.progress.finished == 1 and driver.progress.running == 1, 120)
    time.sleep(0.5)
    t0 = time.monotonic()
    assert manager.stop(db, "stop")
    assert manager.join(db, "stop", 10)
    assert time.monotonic() - t0 < 5
    with RunStore(db) as store:
        _, runs, _ = sweep_results(store, "stop")
        assert sorted(runs["status"]) == ["finished", "stopped"]
        assert store.get_sweep("stop")["status"] == "stopped"
    assert manager.status(db, "stop")["alive"] is False and manager.status(db, "stop")["error"] is None


def test_a_second_driver_of_the_same_sweep_is_refused(tmp_path):
    db = tmp_path / "s.db"
    spec = tiny_spec(("n", "500"), ("batch", "5"), ("epochs", "1000"), seeds=1)
    manager = SweepManager()
    driver = manager.start(db, spec, "one", lambda: LocalPoolExecutor(1))
    wait_for(lambda: driver.progress.running == 1, 60)
    with RunStore(db) as other:
        with pytest.raises(StoreError, match="already running"):
            SweepDriver(other, spec, "one", LocalPoolExecutor(1))
    with pytest.raises(SweepError, match="already running"):
        manager.start(db, spec, "one", lambda: LocalPoolExecutor(1))
    manager.stop(db, "one")
    assert manager.join(db, "one", 10)


def test_sweep_lanes_share_the_cap_with_live_runs(tmp_path):
    slots = SlotManager(1)
    live = object()
    assert slots.acquire(live, threading.Event())  # a live run holds the only slot
    db = tmp_path / "s.db"
    manager = SweepManager()
    driver = manager.start(db, tiny_spec(seeds=2), "capped", lambda: LocalPoolExecutor(2), slots=slots)
    time.sleep(1.5)
    assert driver.progress.running == 0 and driver.progress.done == 0 and slots.waiting == 2
    slots.release(live)
    peak = 0
    while not manager.join(db, "capped", 0.05):
        peak = max(peak, driver.progress.running)
    assert driver.progress.finished == 2 and peak == 1 and slots.running == 0


KILL_ME = ["-m", "vaegmm", "sweep", "--preset", "quick-demo", "--grid", "n=120", "--grid", "latent=3",
           "--grid", "batch=60", "--grid", "iterations=1", "--grid", "epochs=60", "--seeds", "6", "--jobs", "2",
           "--name", "killed", "--quiet"]


def test_a_killed_driver_loses_only_the_runs_in_flight(tmp_path):
    db = tmp_path / "k.db"
    proc = subprocess.Popen([sys.executable, *KILL_ME, "--db", str(db)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

    def finished():
        if not db.exists():
            return 0
        try:
            with RunStore(db, readonly=True) as s:
                return len(s.list_runs(status="finished"))
        except StoreError:
            return 0

    try:
        wait_for(lambda: finished() >= 2, 180, poll=0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with RunStore(db, readonly=True) as s:
        before = {r["id"]: r for r in s.list_runs()}
    kept = {i for i, r in before.items() if r["status"] == "finished"}
    in_flight = {i for i, r in before.items() if r["status"] == "running"}
    assert len(kept) >= 2 and 1 <= len(in_flight) <= 2 and len(before) == len(kept) + len(in_flight)
    with RunStore(db) as store:
        info = store.get_sweep("killed")
        assert info["status"] == "interrupted"
        p = run_sweep(store, SweepSpec.from_dict(info["spec"]), "killed", LocalPoolExecutor(2))
        after = {r["id"]: r for r in store.list_runs()}
        assert p.done == 6 and p.finished == 6
        assert all(after[i]["status"] == "interrupted" for i in in_flight)
        assert all(after[i]["finished"] == before[i]["finished"] for i in kept)  # not trained again
        assert len(after) == len(before) + (6 - len(kept))
        _, runs, _ = sweep_results(store, "killed")
        assert set(runs["status"]) == {"finished"} and len(runs) == 6
