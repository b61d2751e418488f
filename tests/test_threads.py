"""Threads per run follow the free cores (issue 17): a second thread only where its core is idle."""
import os

from vaegmm.core import threads


def test_threads_follow_the_free_cores(monkeypatch):
    monkeypatch.delenv(threads.TORCH_THREADS_ENV, raising=False)
    monkeypatch.setattr(threads, "cpu_count", lambda: 2)
    assert threads.threads_for_run(1, free=2.0) == 2  # idle machine: both cores
    assert threads.threads_for_run(1, free=1.8) == 2  # a core counts as free when 3/4 of it is idle
    assert threads.threads_for_run(1, free=1.1) == 1  # one core held by another process: one thread
    assert threads.threads_for_run(1, free=0.0) == 1  # never fewer than one
    assert threads.threads_for_run(2, free=2.0) == 1  # two runs side by side (the dashboard's cap): one each
    monkeypatch.setattr(threads, "cpu_count", lambda: 16)
    assert threads.threads_for_run(2, free=5.0) == 5 and threads.threads_for_run(4, free=16.0) == 4


def test_environment_overrides_and_free_cores_is_a_fraction_of_the_machine(monkeypatch):
    monkeypatch.setenv(threads.TORCH_THREADS_ENV, "3")
    assert threads.threads_for_run(1, free=0.0) == 3
    monkeypatch.setenv(threads.TORCH_THREADS_ENV, "zero")  # a bad value is ignored
    monkeypatch.setattr(threads, "cpu_count", lambda: 1)
    assert threads.threads_for_run(1) == 1
    free = threads.free_cores(0.05)
    assert 0.0 <= free <= (os.cpu_count() or 1) + 1e-9


def test_the_package_sets_a_bounded_spin_by_default():
    import subprocess
    import sys

    code = "import os, vaegmm; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["10000", "None"]
