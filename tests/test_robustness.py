"""Issue 5: many sessions, faults and bad input. The server keeps working, stays fair and leaks nothing."""
from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from dashboard.state.session import SessionRuns
from test_runner import wait_for
from vaegmm.model import data
from vaegmm.model.config import preset
from vaegmm.model.params import settings_from_config
from vaegmm.runs.runner import TrainingRun, warm_up
from vaegmm.runs.slots import SlotManager
from vaegmm.runs.state import FAILED, FINISHED, QUEUED, RUNNING, STOPPED


def tiny(**changes):
    base = dict(data__n=200, vae__latent_dim=4, vae__epochs=2, vae__batch_size=100, iterations=2,
                gmm__sweeps=10, codes="mean")
    base.update(changes)
    return preset("quick-demo").replace(**base)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


@pytest.fixture(scope="module", autouse=True)
def _warm():
    warm_up(background=False)
    data.load_mnist(10)  # the bundled cache exists before we count memory


def normal_run_works(slots):
    run = TrainingRun(tiny(), slots=slots)
    run.start()
    assert run.join(120)
    s = run.snapshot()
    assert s.state == FINISHED and len(s.history) == 3, s.message


def test_soak_start_stop_cycles_leak_no_threads_or_memory():
    slots = SlotManager(2)
    cfg = tiny(vae__epochs=500, vae__batch_size=20)  # long enough that each Stop lands mid-VAE-update
    normal_run_works(slots)  # first-use costs (imports, allocator pools) before the baseline
    gc.collect()
    threads0, rss0 = threading.active_count(), rss_mb()
    names0 = {(t.name, t.ident) for t in threading.enumerate()}
    one, two = SessionRuns(slots=slots), SessionRuns(slots=slots)
    stop_times = []
    for cycle in range(30):
        # 15 cycles in one session, then 15 alternating between two sessions
        session = one if cycle < 15 or cycle % 2 == 0 else two
        entry = session.new_run(cfg, settings_from_config(cfg))
        run = entry.run
        run.start()
        wait_for(lambda: run.snapshot().progress.phase == "vae" or run.state not in (QUEUED, RUNNING), 60)
        t0 = time.monotonic()
        run.stop("soak")
        assert run.join(5), f"cycle {cycle}: the worker did not end"
        stop_times.append(time.monotonic() - t0)
        assert run.state == STOPPED and len(run.history) >= 1
    one.release(), two.release()
    del one, two, entry, run
    gc.collect()
    threads1, rss1 = threading.active_count(), rss_mb()
    print(f"\nsoak: 30 cycles, threads {threads0} -> {threads1}, RSS {rss0:.0f} -> {rss1:.0f} MB "
          f"(+{rss1 - rss0:.0f}), stop median {np.median(stop_times) * 1000:.0f} ms max {max(stop_times) * 1000:.0f} ms")
    names1 = {(t.name, t.ident) for t in threading.enumerate()}
    assert threads1 == threads0, f"ended: {sorted(names0 - names1)}, new: {sorted(names1 - names0)}"
    assert rss1 - rss0 < 100
    assert max(stop_times) < 2.0
    assert slots.running == 0 and slots.waiting == 0
    normal_run_works(slots)


def test_session_end_stops_its_runs_and_frees_the_slots():
    slots = SlotManager(1)
    session = SessionRuns(slots=slots)
    running = session.new_run(tiny(vae__epochs=2000, vae__batch_size=20), settings_from_config(tiny())).run
    running.start()
    wait_for(lambda: running.state == RUNNING)
    other = SessionRuns(slots=slots)
    queued = other.new_run(tiny(), settings_from_config(tiny())).run
    queued.start()
    wait_for(lambda: queued.snapshot().queue_position == 1)
    session.release()  # the tab closed: Streamlit's on_release / session cleanup calls this
    assert running.join(2) and running.state == STOPPED and "session ended" in running.snapshot().message
    assert queued.join(120) and queued.state == FINISHED  # the freed slot went to the next in line


def test_concurrent_sessions_with_cap_two_never_exceed_it_and_keep_their_own_history():
    slots = SlotManager(2)
    sessions = [SessionRuns(slots=slots) for _ in range(5)]
    runs = [s.new_run(tiny(seed=i, iterations=1 + i % 3, vae__epochs=6), settings_from_config(tiny())).run
            for i, s in enumerate(sessions)]
    peak, saw_queue = 0, False
    stop = threading.Event()

    def watch():
        nonlocal peak, saw_queue
        while not stop.is_set():
            states = [r.state for r in runs]
            peak = max(peak, sum(st in (RUNNING, "paused") for st in states), slots.running)
            saw_queue |= any(st == QUEUED and r.snapshot().queue_position > 0 for st, r in zip(states, runs))
            time.sleep(0.005)

    w = threading.Thread(target=watch)
    w.start()
    for r in runs:
        r.start()
    for r in runs:
        assert r.join(300)
    stop.set()
    w.join()
    assert peak <= 2 and saw_queue
    for i, (s, r) in enumerate(zip(sessions, runs)):
        assert r.state == FINISHED, r.snapshot().message
        assert s.current.run is r and [e.run for e in s.entries] == [r]
        assert [h.iteration for h in r.history] == list(range(2 + i % 3))  # its own iterations, no one else's
        assert r.config.seed == i


@pytest.mark.parametrize("problem", ["missing-folder", "corrupt-idx", "missing-file"])
def test_bad_idx_source_fails_with_a_message_then_a_normal_run_works(tmp_path, monkeypatch, problem):
    folder = tmp_path / "mnist"
    if problem != "missing-folder":
        folder.mkdir()
        n = 10
        images = (2051).to_bytes(4, "big") + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(784 * n)
        labels = (2049).to_bytes(4, "big") + n.to_bytes(4, "big") + bytes(range(n))
        for name, content in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels),
                              ("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
            (folder / name).write_bytes(content)
        if problem == "corrupt-idx":
            (folder / "train-images-idx3-ubyte").write_bytes(images[:1000])  # cut off mid-image
        else:
            (folder / "t10k-labels-idx1-ubyte").unlink()
    monkeypatch.setenv(data.IDX_ENV, str(folder))
    slots = SlotManager(1)
    run = TrainingRun(tiny(data__n=6000), slots=slots)  # more than the bundled set: auto -> the IDX folder
    run.start()
    assert run.join(60)
    s = run.snapshot()
    assert s.state == FAILED and s.history == []
    expected = {"missing-folder": "does not exist", "corrupt-idx": "truncated", "missing-file": "lacks t10k-labels"}
    assert "could not load the data" in s.message and expected[problem] in s.message, s.message
    monkeypatch.delenv(data.IDX_ENV)
    normal_run_works(slots)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_divergence_keeps_history_and_names_the_iteration():
    slots = SlotManager(1)
    run = TrainingRun(tiny(vae__lr=1e6, iterations=3), slots=slots)  # a learning rate that blows up
    run.start()
    assert run.join(120)
    s = run.snapshot()
    assert s.state == FAILED
    assert "iteration 1" in s.message and "not finite" in s.message, s.message
    assert [r.iteration for r in s.history] == [0]
    normal_run_works(slots)


def test_a_disconnected_session_keeps_its_run_for_the_grace_period_then_stops_it():
    """Issue 10: a network blip does not stop the run; a tab closed for good frees its slot after the grace."""
    slots = SlotManager(1)
    cfg = tiny(vae__epochs=5000, vae__batch_size=20)
    session = SessionRuns(slots=slots)
    run = session.new_run(cfg, settings_from_config(cfg)).run
    run.start()
    wait_for(lambda: run.state == RUNNING, 30)
    session.release(grace=0.6)  # the websocket dropped
    time.sleep(0.3)
    session.reattach()  # ... and came back within the grace period
    time.sleep(0.6)
    assert run.state == RUNNING and not session.released
    t0 = time.monotonic()
    session.release(grace=0.6)  # gone for good
    wait_for(lambda: run.state == STOPPED, 10)
    # never before the grace period; the 1 s after it is measured in the browser (test_closed_tabs_free_their_slots)
    assert 0.6 <= time.monotonic() - t0 <= 0.6 + 10.0
    assert run.snapshot().message == "the browser session ended"
    assert run.join(5) and slots.running == 0
