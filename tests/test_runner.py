"""TrainingRun: state machine, responsiveness of stop/pause/step, failures, the server-wide cap."""
from __future__ import annotations

import os
import sys
import threading
import time
import types

import numpy as np
import pytest

from vaegmm.core.process import WorkerProcess, worker_context
from vaegmm.model.config import preset
from vaegmm.runs.runner import TrainingRun, warm_up
from vaegmm.runs.slots import SlotManager, max_runs_from_env
from vaegmm.runs.state import FAILED, FINISHED, PAUSED, QUEUED, RUNNING, STOPPED


def tiny(**changes):
    """300 images, latent 4, 2 epochs, 2 iterations: a few seconds on 2 busy cores."""
    base = dict(data__n=300, vae__latent_dim=4, vae__epochs=2, vae__batch_size=100, iterations=2,
                gmm__sweeps=20, codes="mean")
    base.update(changes)
    return preset("quick-demo").replace(**base)


def long_vae(**changes):
    """An iteration 1 that would take minutes: used to stop / pause in the middle of a VAE update."""
    return tiny(vae__epochs=2000, vae__batch_size=25, **changes)


def wait_for(cond, timeout=60.0, poll=0.02):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(poll)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture(scope="module", autouse=True)
def _warm():
    warm_up(background=False)


@pytest.fixture
def slots():
    return SlotManager(2)


def in_vae(run):
    s = run.snapshot()
    return s.state == RUNNING and s.progress.phase == "vae" and s.progress.iteration == 1


def test_tiny_run_finishes_with_full_history(slots):
    run = TrainingRun(tiny(), slots=slots)
    assert run.state == "idle"
    assert run.start()
    assert not run.start()  # only once
    assert run.join(60)
    s = run.snapshot()
    assert s.state == FINISHED, s.message
    assert [r.iteration for r in s.history] == [0, 1, 2]
    assert s.iterations_done == 2
    assert all(r.projection.shape == (300, 2) for r in s.history)
    assert len(s.history[1].recon) == 2
    assert s.first_result_seconds is not None and s.first_result_seconds < 5
    assert s.seconds_per_iteration is not None and s.seconds_per_iteration > 0
    assert run.labels.shape == (300,) and run.images_u8.shape == (300, 784)
    pid = run.worker_pid
    assert pid is not None and pid != os.getpid()  # it trained in its own process ...
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"  # now gone
    assert slots.running == 0


def test_same_seed_same_accuracies(slots):
    a, b = TrainingRun(tiny(), slots=slots), TrainingRun(tiny(), slots=slots)
    a.start(), b.start()
    assert a.join(60) and b.join(60)
    assert [r.accuracy for r in a.history] == [r.accuracy for r in b.history]


def test_stop_mid_vae_update_within_one_second(slots):
    run = TrainingRun(long_vae(), slots=slots)
    run.start()
    wait_for(lambda: in_vae(run) and run.snapshot().progress.epoch >= 1)
    t0 = time.monotonic()
    run.stop()
    assert run.join(1.0), "worker still alive 1 s after stop"
    assert time.monotonic() - t0 < 1.0
    s = run.snapshot()
    assert s.state == STOPPED
    assert [r.iteration for r in s.history] == [0]  # what was finished is kept
    assert not run.thread_alive and slots.running == 0


def test_pause_resume_and_step(slots):
    run = TrainingRun(long_vae(), slots=slots)
    run.start()
    wait_for(lambda: in_vae(run) and run.snapshot().progress.epoch >= 1)
    run.pause()
    assert run.state == PAUSED
    time.sleep(0.3)  # let the worker reach its next mini-batch boundary
    e1 = run.snapshot().progress.epoch
    time.sleep(0.6)
    assert run.snapshot().progress.epoch == e1, "epochs advanced while paused"
    run.resume()
    assert run.state == RUNNING
    run.stop()
    assert run.join(1.0)
    assert run.state == STOPPED


def test_step_from_idle_runs_one_iteration_then_pauses(slots):
    run = TrainingRun(tiny(iterations=3), slots=slots)
    run.step()
    wait_for(lambda: run.state == PAUSED and len(run.history) == 2)
    time.sleep(0.3)
    assert len(run.history) == 2  # iterations 0 and 1, then it waits
    run.step()
    wait_for(lambda: run.state == PAUSED and len(run.history) == 3)
    run.resume()
    assert run.join(60)
    assert run.state == FINISHED and len(run.history) == 4


def test_stop_while_paused_and_when_idle(slots):
    run = TrainingRun(long_vae(), slots=slots)
    run.start()
    wait_for(lambda: in_vae(run))
    run.pause()
    time.sleep(0.2)
    run.stop()
    assert run.join(1.0) and run.state == STOPPED
    idle = TrainingRun(tiny(), slots=slots)
    idle.stop()
    assert idle.state == STOPPED and not idle.start()


def test_divergence_fails_naming_the_iteration_and_keeps_history(slots):
    run = TrainingRun(tiny(vae__lr=1e4, vae__alpha=1e6), slots=slots)
    run.start()
    assert run.join(60)
    s = run.snapshot()
    assert s.state == FAILED
    assert "iteration 1" in s.message and "not finite" in s.message
    assert [r.iteration for r in s.history] == [0]
    assert slots.running == 0


def broken_loader(n, digits, seed, source):
    """A data source that breaks (module level: the loader runs in the worker process, so it is pickled)."""
    raise RuntimeError("disk on fire")


def test_worker_exception_and_data_errors_are_messages(slots):
    run = TrainingRun(tiny(), slots=slots, loader=broken_loader)
    run.start()
    assert run.join(10)
    assert run.state == FAILED and "disk on fire" in run.snapshot().message
    run = TrainingRun(tiny(data__n=6000, data__source="bundled"), slots=slots)
    run.start()
    assert run.join(10)
    s = run.snapshot()
    assert s.state == FAILED and s.message.startswith("could not load the data") and "per digit" in s.message


def test_cap_queues_runs_fifo_and_all_finish():
    baseline = threading.active_count()
    slots = SlotManager(2)
    runs = [TrainingRun(tiny(), slots=slots, name=f"r{i}") for i in range(4)]
    peak = 0
    positions = set()
    for r in runs:
        r.start()
    t0 = time.monotonic()
    while any(r.thread_alive for r in runs) and time.monotonic() - t0 < 120:
        snaps = [r.snapshot() for r in runs]
        peak = max(peak, sum(s.state in (RUNNING, PAUSED) for s in snaps))
        positions |= {s.queue_position for s in snaps if s.state == QUEUED}
        assert slots.running <= 2
        time.sleep(0.01)
    assert all(r.state == FINISHED for r in runs), [r.snapshot().message for r in runs]
    assert peak <= 2
    # a run joins the queue inside start(), so a queued run always has its place: 1 or 2 behind the 2 slots (0 only
    # for the microseconds between getting a slot and being marked running)
    assert positions - {0} and positions - {0} <= {1, 2}
    assert slots.running == 0 and slots.waiting == 0
    for r in runs:
        r.join(5)
    assert threading.active_count() <= baseline


def test_a_started_run_has_its_queue_place_at_once():
    slots = SlotManager(1)
    first, second, third = (TrainingRun(tiny(), slots=slots, name=f"r{i}") for i in range(3))
    first.start()
    second.start()
    third.start()
    try:  # no wait: the places are known when start() returns, before the pump threads run
        places = [r.snapshot().queue_position for r in (second, third)]
        # second is behind first (2) or, once first's pump has taken the slot, next (1); third right behind it
        assert places[0] in (1, 2) and places[1] == places[0] + 1, places
    finally:
        for r in (first, second, third):
            r.stop()
        for r in (first, second, third):
            assert r.join(30)
    assert slots.running == 0 and slots.waiting == 0


def test_stop_works_on_a_queued_run():
    slots = SlotManager(1)
    first = TrainingRun(long_vae(), slots=slots)
    queued = TrainingRun(tiny(), slots=slots)
    first.start()
    queued.start()
    wait_for(lambda: first.state == RUNNING)
    assert queued.state == QUEUED and queued.snapshot().queue_position == 1
    t0 = time.monotonic()
    queued.stop()
    assert queued.join(1.0) and time.monotonic() - t0 < 1.0
    assert queued.state == STOPPED and queued.history == []
    first.stop()
    assert first.join(1.0)
    assert slots.running == 0 and slots.waiting == 0


def test_slot_frees_for_the_next_in_line_when_a_run_stops():
    slots = SlotManager(1)
    first, second = TrainingRun(long_vae(), slots=slots), TrainingRun(tiny(), slots=slots)
    first.start()
    wait_for(lambda: first.state == RUNNING)
    second.start()
    time.sleep(0.3)
    assert second.state == QUEUED
    first.stop()
    assert second.join(60)
    assert second.state == FINISHED


def test_max_runs_env(monkeypatch):
    monkeypatch.setenv("VAEGMM_MAX_RUNS", "3")
    assert max_runs_from_env() == 3
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv("VAEGMM_MAX_RUNS", bad)
        assert max_runs_from_env(default=2) == 2
    with pytest.raises(ValueError):
        SlotManager(0)


def test_snapshot_is_a_copy(slots):
    run = TrainingRun(tiny(iterations=1), slots=slots)
    run.start()
    run.join(60)
    s = run.snapshot()
    s.history.clear()
    assert len(run.history) == 2
    assert isinstance(s.history, list) and np.isfinite(run.history[-1].accuracy)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_soak_start_stop_cycles_leave_no_threads():
    slots = SlotManager(2)
    warm = TrainingRun(tiny(), slots=slots)  # first run pays one-time allocations
    warm.start()
    warm.join(60)
    baseline, rss0 = threading.active_count(), _rss_mb()
    for i in range(30):
        run = TrainingRun(long_vae(seed=i % 3), slots=slots)
        run.start()
        if i % 2:
            wait_for(lambda: in_vae(run), timeout=30)  # stop mid-update, or right at the start
        run.stop()
        assert run.join(2.0), f"cycle {i}: worker still alive"
        assert run.state == STOPPED
    assert slots.running == 0 and slots.waiting == 0
    assert threading.active_count() <= baseline
    assert _rss_mb() - rss0 < 100


def test_slot_priority_serves_live_runs_before_queued_sweep_runs():
    """Sweep tasks wait with priority 1: a live run (priority 0) that arrives later is served first; FIFO
    within a priority; the default keeps the old first-come order."""
    slots = SlotManager(1)
    never = threading.Event()
    holder = object()
    assert slots.acquire(holder, never)
    order, threads = [], []

    def wait(name, priority):
        assert slots.acquire(name, never, poll=0.01, priority=priority)
        order.append(name)
        slots.release(name)

    for name, priority in (("sweep-1", 1), ("sweep-2", 1), ("live-1", 0), ("live-2", 0)):
        threads.append(threading.Thread(target=wait, args=(name, priority)))
        threads[-1].start()
        wait_for(lambda: slots.waiting == len(threads), 5)
    assert [slots.position(n) for n in ("live-1", "live-2", "sweep-1", "sweep-2")] == [1, 2, 3, 4]
    slots.release(holder)
    for t in threads:
        t.join(5)
    assert order == ["live-1", "live-2", "sweep-1", "sweep-2"]
    assert slots.running == 0 and slots.waiting == 0


def test_a_worker_started_while_a_page_script_is_main_does_not_run_it(tmp_path):
    """Streamlit installs the page script it runs as ``sys.modules["__main__"]`` (with its ``__file__``); a
    multiprocessing child re-runs the parent's main module, so a worker would execute ``app.py``. Ours do not."""
    marker = tmp_path / "page-ran"
    page = tmp_path / "page.py"
    page.write_text(f"open({str(marker)!r}, 'a').write('ran')\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(page)
    real, sys.modules["__main__"] = sys.modules["__main__"], fake
    try:
        proc = WorkerProcess(target=time.sleep, args=(0,), daemon=True)
        proc.start()
        proc.join(30)
        assert proc.exitcode == 0
        run = TrainingRun(tiny(iterations=1), slots=SlotManager(1))
        run.start()
        assert run.join(60) and run.state == FINISHED, run.snapshot().message
        assert sys.modules["__main__"] is fake  # the page's module is back in place
        assert not marker.exists()
        plain = worker_context().Process(target=time.sleep, args=(0,), daemon=True)  # the check can see it
        plain.start()
        plain.join(30)
    finally:
        sys.modules["__main__"] = real
    assert marker.read_text() == "ran"


def test_workers_never_run_a_page_script_streamlit_installs_meanwhile(tmp_path):
    """Streamlit installs a page's module as ``__main__`` at the start of every script run, from any thread at any
    moment: a worker started meanwhile must still not run it (a swap of ``__main__`` during ``start()`` raced
    with exactly this and re-ran app.py in the child)."""
    marker = tmp_path / "page-ran"
    page = tmp_path / "page.py"
    page.write_text(f"open({str(marker)!r}, 'a').write('ran')\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(page)
    real, done = sys.modules["__main__"], threading.Event()

    def streamlit_like() -> None:
        while not done.is_set():
            sys.modules["__main__"] = fake
            time.sleep(0.0005)

    writer = threading.Thread(target=streamlit_like, daemon=True)
    writer.start()
    try:
        procs = [WorkerProcess(target=time.sleep, args=(0,), daemon=True) for _ in range(12)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert [p.exitcode for p in procs] == [0] * 12
    finally:
        done.set()
        writer.join(5)
        sys.modules["__main__"] = real
    assert not marker.exists()


def test_the_worker_sends_what_answering_needs_and_the_held_out_set(slots):
    """Issue 25: the results that come up from the worker process carry the encoder's weights, the GMM's posterior,
    the training matching and the held-out scores; the held-out set's summary comes first."""
    from vaegmm.model.recognition import TrainedIteration, ask

    run = TrainingRun(tiny(), slots=slots)
    run.start()
    assert run.join(60) and run.state == FINISHED
    assert run.heldout == {"images": 4700, "labelled": True, "reason": "",
                           "origin": "the bundled images outside the training subset"}
    last = run.history[-1]
    assert set(last.encoder_state) == {"enc_hidden.weight", "enc_hidden.bias", "enc_head.weight", "enc_head.bias"}
    assert str(last.gmm_posterior["family"]) == "gaussian" and last.digit_of_class.shape == (10,)
    assert last.heldout_classes.shape == (4700,) and 0 <= last.heldout_accuracy <= 1
    a = ask(TrainedIteration.from_result(last), run.images_u8[:5])  # 0-255 images: scaled
    assert a.proba.shape == (5, 10) and a.nearest.shape == (5, 5)
