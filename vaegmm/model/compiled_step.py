"""When the VAE's training step is compiled (``torch.compile``, Inductor), where the compiled code is kept, and the
eager fallback.

Why compile (measured, BENCHMARKS.md "Speed"): the step is the readable model, loss and autograd; compiled, the
elementwise passes over the (batch, 784) activations (the loss terms, their gradients, the casts) become a few
fused loops, which is most of what stands between an update and its matrix-multiply floor.

What it costs: compiling one step shape takes ~20-40 s of CPU on this project's 2-core machine, once per machine:
Inductor keeps the compiled code on disk (``$TORCHINDUCTOR_CACHE_DIR``, by default ``inductor`` in vaegmm's cache
folder, so it survives reboots and every process shares it). A fresh process still traces the step and loads the
code (~1-2 s); a worker forked from the dashboard's fork server inherits the presets' steps, compiled there at
start, for nothing.

When: a run compiles its step when (1) ``$VAEGMM_COMPILE`` is not ``off``, (2) it has at least
:data:`MIN_STEPS` mini-batch steps (in a smaller run the trace and load cost more than they save; the test suite's
~100 tiny runs stay eager), and (3) the device can compile: a C++ compiler on a CPU, Triton on a GPU. Otherwise it
trains eagerly (the same code, unfused); a missing compiler is said once per process. The choice depends only on
the config, the environment and the machine, never on what is cached, so the same config, seed and machine give
the same numbers (the run-reuse key relies on it, :mod:`vaegmm.runs.reuse`).
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
# Dynamo keeps at most 8 compiled versions (shapes) of a function per process and runs any further one eagerly,
# which would make a long-lived process's numbers depend on what it trained before; past this many shapes the
# process's compiled steps are dropped (torch.compiler.reset) and the next ones load again from the disk cache
MAX_SHAPES = 6
_shapes: set = set()  # the step shapes compiled in this process
_failed: list[str] = []  # why compiling failed in this process (then every run trains eagerly)


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
    reason = why_eager(torch.device(device).type) or (_failed[0] if _failed else "")
    if reason:
        _say_once(f"{reason}: the VAE trains without torch.compile (slower; the same model and loss)")
    return not reason


@functools.lru_cache(maxsize=None)
def _say_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def give_up(error: BaseException) -> None:
    """Compiling failed (a broken compiler install): this process trains eagerly from now on, and says why once."""
    _failed.append(f"torch.compile failed ({type(error).__name__}: {str(error).strip()[:200]})")
    _say_once(f"{_failed[0]}: the VAE trains without torch.compile (slower; the same model and loss)")


def works() -> bool:
    """False once a compile has failed in this process."""
    return not _failed


def new_shape(key: tuple) -> bool:
    """Whether the step shape ``key`` is compiled in this process yet; remembers it (see :data:`MAX_SHAPES`)."""
    if key in _shapes:
        return False
    if len(_shapes) >= MAX_SHAPES:
        torch.compiler.reset()
        _shapes.clear()
    _shapes.add(key)
    return True


@functools.lru_cache(maxsize=None)
def compiled(fn: Callable) -> Callable:
    """``torch.compile(fn)`` with this project's settings, one per ``fn`` and process. Inductor reads them from the
    environment when it is first imported, i.e. at the first compile (a user's own values win):"""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", cache_folder())
    # no pool of compile processes: 2 cores, and a fork server must not hold one when it forks
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    # kernels that use the thread count set at run time: a step compiled in the fork server (one thread) runs on the
    # worker's threads, and one compiled step serves runs of 1 and 2 threads (the same numbers: a kernel's threads
    # split its rows, not its sums)
    os.environ.setdefault("TORCHINDUCTOR_CPP_DYNAMIC_THREADS", "1")
    return torch.compile(fn, dynamic=False)
