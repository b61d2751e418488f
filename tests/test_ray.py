"""The Ray executor on a local Ray instance (ray.init(num_cpus=2)): the same run_one, the same numbers as the
local pool, Stop, and an unreachable address. Select with ``-m ray``; part of the default suite."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from test_runner import wait_for
from vaegmm.sweeps.executors import ExecutorError, RayExecutor, make_executor
from vaegmm.store import RunStore
from vaegmm.sweeps.cell import run_one
from vaegmm.sweeps.driver import run_sweep
from vaegmm.sweeps.manager import SweepManager
from vaegmm.sweeps.results import sweep_results
from vaegmm.sweeps.spec import SweepSpec

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")
PACKAGE = str(Path(__file__).resolve().parents[1] / "vaegmm")
TINY = [("n", "120"), ("epochs", "1"), ("iterations", "1"), ("latent", "3"), ("batch", "60")]


def test_unreachable_address_is_one_line_and_quick():
    t0 = time.monotonic()
    with pytest.raises(ExecutorError) as e:
        make_executor(ray_address="127.0.0.1:1")
    assert time.monotonic() - t0 < 10
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("cannot reach the Ray cluster at 127.0.0.1:1")
    with pytest.raises(ExecutorError, match="host:port"):
        make_executor(ray_address="nonsense")
    with pytest.raises(ExecutorError, match="needs Ray"):
        make_executor(jobs=1, gpus_per_run=1)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs for this module; shut down at the end."""
    assert not ray.is_initialized()
    niceness = os.environ.get("RAY_worker_niceness")
    os.environ["RAY_worker_niceness"] = "0"  # Ray's default 15 starves its workers on a busy shared machine
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             runtime_env={"py_modules": [PACKAGE]})
    try:
        yield
    finally:
        ray.shutdown()
        if niceness is None:
            os.environ.pop("RAY_worker_niceness", None)
        else:
            os.environ["RAY_worker_niceness"] = niceness


def test_ray_sweep_gives_the_local_numbers(local_ray, tmp_path):
    spec = SweepSpec.from_grid("quick-demo", TINY + [("feedback", "on,off")], seeds=[3, 4])
    ex = RayExecutor()  # the session this process has
    with RunStore(tmp_path / "r.db") as store:
        p = run_sweep(store, spec, "ray", ex)
        assert ex.lanes == 2 and (p.finished, p.failed) == (4, 0)
        _, runs, its = sweep_results(store, "ray")
        assert set(runs["status"]) == {"finished"}
        stored = store.list_runs()
    assert all(r["pid"] != os.getpid() and r["extra"]["executor"] == "ray" for r in stored)
    assert ray.is_initialized()  # not ours to shut down
    # the same function in this process: the same accuracies (seeded, one thread)
    cell = spec.cells()[1]
    local = run_one(cell.config, 4)
    row = runs[(runs["cell"] == cell.name) & (runs["seed"] == 4)].iloc[0]
    assert row["accuracy"] == local["iterations"][-1]["accuracy"]


def test_stop_cancels_ray_tasks_within_seconds(local_ray, tmp_path):
    spec = SweepSpec.from_grid("quick-demo", [("n", "500"), ("batch", "5"), ("epochs", "1000"), ("iterations", "1"),
                                              ("latent", "3")], seeds=2)
    db = tmp_path / "r.db"
    manager = SweepManager()
    driver = manager.start(db, spec, "ray-stop", lambda: RayExecutor())
    wait_for(lambda: driver.progress.running == 2, 60)
    time.sleep(1.0)
    t0 = time.monotonic()
    manager.stop(db, "ray-stop")
    assert manager.join(db, "ray-stop", 15)
    assert time.monotonic() - t0 < 5
    with RunStore(db) as store:
        _, runs, _ = sweep_results(store, "ray-stop")
        assert list(runs["status"]) == ["stopped", "stopped"]
        assert store.get_sweep("ray-stop")["status"] == "stopped"
