"""The Ray executor: a sweep on a cluster started as a user starts it (``ray start --head`` at Ray's defaults,
which with a token at hand asks every driver for it), from the CLI and from the Sweeps page, and a driver without
the token refused in one line, the cluster's numbers the same as this process's; on a local instance without
authentication (``ray.init(num_cpus=2)``) Stop; an unreachable address. Select with ``-m ray``; part of the default suite."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from test_runner import wait_for
from vaegmm.sweeps.executors import ExecutorError, RayExecutor, make_executor
from vaegmm.store import RunStore
from vaegmm.sweeps.cell import run_one
from vaegmm.sweeps.manager import SweepManager
from vaegmm.sweeps.results import sweep_results
from vaegmm.sweeps.spec import SweepSpec

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]
PACKAGE = str(ROOT / "vaegmm")
TINY = [("n", "120"), ("epochs", "1"), ("iterations", "1"), ("latent", "3"), ("batch", "60")]
AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


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


def test_the_token_is_looked_for_in_rays_order_and_an_explicit_mode_wins(tmp_path, monkeypatch):
    from vaegmm.sweeps import ray_auth

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in AUTH_VARS:
        monkeypatch.delenv(name, raising=False)
    assert ray_auth.token_source() == "" and not ray_auth.use_token_when_at_hand()
    assert "RAY_AUTH_MODE" not in os.environ
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t")
    assert ray_auth.token_source() == str(tmp_path / ".ray" / "auth_token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/elsewhere/token")
    assert ray_auth.token_source() == "/elsewhere/token"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t")
    assert ray_auth.token_source() == "RAY_AUTH_TOKEN"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the user's own choice stays
    assert not ray_auth.use_token_when_at_hand() and os.environ["RAY_AUTH_MODE"] == "disabled"
    monkeypatch.delenv("RAY_AUTH_MODE")
    assert ray_auth.use_token_when_at_hand() and os.environ["RAY_AUTH_MODE"] == "token"


@contextlib.contextmanager
def environment(**values):
    """``os.environ`` with ``values`` set (None: removed), restored afterwards."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs and no authentication for this module; shut down at the end. (Without
    ``RAY_AUTH_MODE=disabled`` Ray 2.60 turns a local instance's token on and writes ``~/.ray/auth_token`` into the
    home of whoever runs the suite, after which their own ``ray start --head`` asks for that token.)"""
    assert not ray.is_initialized()
    # Ray's default worker niceness 15 starves its workers on a busy shared machine
    with environment(RAY_worker_niceness="0", RAY_AUTH_MODE="disabled"):
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
                 runtime_env={"py_modules": [PACKAGE]})
        try:
            yield
        finally:
            ray.shutdown()


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
    assert ray.is_initialized()  # the session this process has: not the executor's to shut down


# ---------------------------------------------------------------------------------- a cluster with token auth
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pids: set) -> set:
    """The processes whose parent is in ``pids`` (Ray's workers: each in a process group of its own)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) in pids:
                found.add(int(stat.parent.name))
    return found


def end_process_group(pgid: int) -> None:
    """Kill the cluster ``ray start`` left in process group ``pgid`` and the workers its raylet forked (never
    `ray stop`: it ends every Ray process on the machine)."""
    group = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                group.add(int(stat.parent.name))
    for pid in group | children_of(group):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def user_env(home: Path, **extra) -> dict:
    """This process's environment as a user's shell would have it: ``home`` as HOME, no Ray auth variables, the
    MNIST cache where the suite keeps it (so Ray's workers, whose HOME is ``home`` too, do not parse it again)."""
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT),
               VAEGMM_CACHE_DIR=os.environ.get("VAEGMM_CACHE_DIR") or str(Path.home() / ".cache" / "vaegmm"))
    env.update(extra)
    return env


@pytest.fixture(scope="class")
def secured_cluster():
    """``ray start --head`` as Ray's docs say to start a cluster, in a home of its own: the token first
    (``ray get-auth-token --generate`` writes ``~/.ray/auth_token``), then the head node at Ray's defaults, which
    finds the token and asks every driver for it. 2 CPUs, no dashboard, its own temporary folder (so
    ``ray.init()`` elsewhere on this machine does not find it). Yields ``(address, home)``."""
    base = Path(tempfile.mkdtemp(prefix="vr"))  # short: Ray's socket paths live under it
    home = base / "home"
    home.mkdir()
    env = user_env(home, RAY_worker_niceness="0")  # Ray's default 15 starves its workers on a busy machine
    subprocess.run(["ray", "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    # its own session: the head's services stay in the process group of `ray start`, ended below by its id
    start = subprocess.Popen(["ray", "start", "--head", "--port", str(port), "--num-cpus", "2",
                              "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(base / "ray")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        said, _ = start.communicate(timeout=120)
        assert start.returncode == 0, said
        assert "Token authentication is enabled" in said
        yield f"127.0.0.1:{port}", home
    finally:
        start.kill()
        end_process_group(start.pid)
        shutil.rmtree(base, ignore_errors=True)


SWEEP = ["--preset", "quick-demo", "--grid", "n=120", "--grid", "epochs=1", "--grid", "iterations=1",
         "--grid", "latent=3", "--grid", "batch=60"]


@pytest.mark.usefixtures("secured_cluster")
class TestSecuredCluster:
    def test_cli_sweep_finds_the_token_and_gives_the_local_numbers(self, secured_cluster, tmp_path):
        address, home = secured_cluster
        db = tmp_path / "r.db"
        out = subprocess.run([sys.executable, "-m", "vaegmm", "sweep", *SWEEP, "--seeds", "2", "--ray", address,
                              "--jobs", "1", "--name", "secured", "--db", str(db)],
                             env=user_env(home), cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "InvalidAuthToken" not in out.stderr and "runs: 2 finished" in out.stdout
        with RunStore(db) as store:
            info, runs, _ = sweep_results(store, "secured")
            assert all(r["extra"]["executor"] == "ray" for r in store.list_runs())
        spec = SweepSpec.from_dict(info["spec"])
        local = run_one(spec.cells()[0].config, 1)  # the same function here: the same accuracy (seeded)
        assert runs[runs["seed"] == 1].iloc[0]["accuracy"] == local["iterations"][-1]["accuracy"]

    def test_a_driver_without_the_token_is_told_what_to_set(self, secured_cluster, tmp_path):
        address, _ = secured_cluster
        empty = tmp_path / "elsewhere"
        empty.mkdir()
        # Ray retries a refused driver for 20 s; the answer is the same after 2 (its own wait for the GCS)
        out = subprocess.run([sys.executable, "-m", "vaegmm", "sweep", *SWEEP, "--seeds", "1", "--ray", address,
                              "--db", str(tmp_path / "r.db")], env=user_env(empty, RAY_gcs_server_port_wait_time_s="2"),
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        last = out.stderr.strip().splitlines()[-1]
        assert out.returncode == 2 and last == (
            f"vaegmm: error: cannot connect to Ray: the Ray cluster at {address} asks for a token and this machine "
            "has none: set RAY_AUTH_TOKEN to the output of `ray get-auth-token` on the cluster's head node (or copy "
            "that node's ~/.ray/auth_token here, or name a copy with RAY_AUTH_TOKEN_PATH)")

    def test_sweeps_page_runs_on_it_with_the_token_in_the_environment(self, secured_cluster, tmp_path):
        address, home = secured_cluster
        token = (home / ".ray" / "auth_token").read_text().strip()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        db = tmp_path / "page.db"
        script = textwrap.dedent("""
            from test_sweeps_page import page, start, status
            from vaegmm.store import RunStore
            from vaegmm.sweeps.manager import get_manager
            at = page()
            print([m.value for m in at.sidebar.markdown if "Ray cluster" in m.value][0])
            name = start(at, seeds=1)
            assert get_manager().join(RunStore().path, name, 240)
            at.run()
            print(status(at))
        """)
        env = user_env(elsewhere, VAEGMM_RAY_ADDRESS=address, RAY_AUTH_TOKEN=token, VAEGMM_DB=str(db),
                       PYTHONPATH=f"{ROOT}:{ROOT / 'tests'}")
        out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert f"on the Ray cluster at {address}" in out.stdout
        assert 'data-state="finished"' in out.stdout and 'data-done="2" data-total="2"' in out.stdout
        with RunStore(db) as store:
            stored = store.list_runs()
        assert len(stored) == 2 and {r["status"] for r in stored} == {"finished"}
        assert all(r["extra"]["executor"] == "ray" for r in stored)
