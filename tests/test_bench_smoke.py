"""Smoke tests of bench/speed.py (tiny sizes, so the benchmark cannot rot), and a check that the hand-written
training step of vaegmm.model.vae makes the same Adam update as ``optimizer.step()`` (its gradients against
autograd: tests/test_vae.py)."""
import copy
import resource
import subprocess
import sys
from pathlib import Path

import torch

from vaegmm.model.vae import VAE, _Step, make_optimizer

ROOT = Path(__file__).resolve().parents[1]


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def test_speed_benchmark_quick_writes_its_section(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n## Speed\n\nOLD SPEED TEXT\n\n## Quality\n\nkept\n")
    cpu0 = _child_cpu()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "speed.py"), "--quick", "--repeats", "1", "--only",
                           "machine", "gemm", "update", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # about 7 s of CPU; CPU rather than wall time, so that a busy shared machine does not fail it
    assert _child_cpu() - cpu0 < 20, f"--quick took {_child_cpu() - cpu0:.1f} s of CPU"
    text = out.read_text()
    assert "OLD SPEED TEXT" not in text and "## Quality\n\nkept" in text  # only the Speed section is replaced
    assert text.index("## Speed") < text.index("## Quality")
    for needle in ("**Machine**", "AVX512-BF16", "GFLOP/s", "The floor", "naive fp32 loop",
                   "hand-written step (this code), fp32", "vs floor", "bench/speed.py --quick",
                   "Past measurement on another CPU"):
        assert needle in text, needle


class _NoStep:
    def step(self):
        pass


def test_step_update_is_bitwise_optimizer_step():
    """The hand-written step's update is exactly the optimizer's own ``step()`` on the gradients it computed (it
    once called a private fused Adam directly; now it calls ``optimizer.step()``, and nothing else touches the
    weights or Adam's state)."""
    g = torch.Generator().manual_seed(0)
    a = VAE(6, 32, generator=g)
    b = copy.deepcopy(a)
    opt_a, opt_b = make_optimizer(a, 1e-3), make_optimizer(b, 1e-3)
    step_a = _Step(a, 64, torch.float32, torch.device("cpu"))
    step_b = _Step(b, 64, torch.float32, torch.device("cpu"))
    x, prior = torch.rand(64, 784, generator=g), torch.randn(64, 6, generator=g)
    for _ in range(5):
        eps = torch.randn(64, 6, generator=g)
        step_a(x, prior, eps, 1.0, opt_a)
        step_b(x, prior, eps, 1.0, _NoStep())  # the gradients only ...
        opt_b.step()  # ... then the optimizer's own step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
        assert torch.equal(opt_a.state[p]["exp_avg_sq"], opt_b.state[q]["exp_avg_sq"])
