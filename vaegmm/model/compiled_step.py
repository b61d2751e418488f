"""When the VAE's training step is compiled (``torch.compile``, Inductor), where the compiled code is kept, and the
eager fallback.

Why compile (measured, BENCHMARKS.md "Speed"): the step is the readable model, loss and autograd; compiled, the
elementwise passes over the (batch, 784) activations (sigmoid, the BCE terms, their gradients, the casts) become a
few fused loops, which is most of what stands between an update and its matrix-multiply floor.

What it costs: compiling one step shape takes ~20-40 s of CPU on this project's 2-core machine, once per machine:
Inductor keeps the compiled code on disk (``TORCHINDUCTOR_CACHE_DIR``, set here to vaegmm's cache folder, so it
survives reboots and is shared by every process). A fresh process still traces and loads it (~1 s); a worker
forked from the dashboard's fork server inherits the steps it compiled at start (:func:`warm_up`) for nothing.

When: a run compiles its step when (1) ``$VAEGMM_COMPILE`` is not ``off``, (2) it has at least
:data:`MIN_STEPS` mini-batch steps (the compile and the trace would cost more than they save in a smaller run;
the test suite's ~100 tiny runs stay eager), and (3) the device can compile: a C++ compiler on a CPU, Triton on a
GPU. Otherwise it trains eagerly (the same code, unfused); a missing compiler is said once per process. The choice
depends only on the config, the environment and the machine, never on what is cached, so that the same config,
seed and machine give the same numbers (the run-reuse key relies on it, :mod:`vaegmm.runs.reuse`).
"""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import warnings
from typing import Callable

import torch

from vaegmm.core.env import env_str

COMPILE_ENV = "VAEGMM_COMPILE"  # "off": always eager; anything else: compile the runs worth it
MIN_STEPS = 1000  # mini-batch steps of a run below which it trains eagerly (a quick demo has 4000, classic 6000)


def cache_folder() -> str:
    """Inductor's on-disk cache: ``$TORCHINDUCTOR_CACHE_DIR``, else ``inductor`` in vaegmm's cache folder."""
    from vaegmm.model.data import cache_dir

    return os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.join(cache_dir(), "inductor")


@functools.lru_cache(maxsize=None)
def why_eager(device_type: str) -> str:
    """Why a run on ``device_type`` cannot compile its step here ("" when it can)."""
    if device_type == "cuda":
        return "" if importlib.util.find_spec("triton") else "Triton is not installed"
    compiler = os.environ.get("CXX") or "g++"  # Inductor's own default
    return "" if shutil.which(compiler) else f"no C++ compiler ({compiler}) was found"


def use_compiled(steps: int, device: torch.device | str = "cpu") -> bool:
    """Whether a run of ``steps`` mini-batch steps on ``device`` trains with the compiled step (module docstring)."""
    if env_str(COMPILE_ENV, "auto").lower() in ("off", "0", "no", "false") or steps < MIN_STEPS:
        return False
    reason = why_eager(torch.device(device).type)
    if reason:
        _say_once(f"{reason}: the VAE trains without torch.compile (slower; the same model and loss)")
    return not reason


@functools.lru_cache(maxsize=None)
def _say_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


@functools.lru_cache(maxsize=None)
def compiled(fn: Callable) -> Callable:
    """``torch.compile(fn)`` with this project's settings (one compiled function per ``fn`` and process)."""
    import torch._dynamo
    import torch._inductor.config as inductor

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", cache_folder())
    inductor.compile_threads = 1  # no pool of compile processes: 2 cores, and a fork server must not hold one
    # one compiled kernel for any thread count: a step compiled in the fork server (1 thread) runs at the worker's
    inductor.cpp.dynamic_threads = True
    # a new shape compiles again (a step per batch size and model size); past the limit (default 8) Dynamo would
    # run eagerly, and a sweep's worker that trains many shapes would get numbers that depend on the order
    torch._dynamo.config.recompile_limit = 512
    torch._dynamo.config.accumulated_recompile_limit = 4096
    torch._dynamo.config.suppress_errors = True  # a compiler that fails (broken install): torch warns, runs eagerly
    return torch.compile(fn, dynamic=False)
