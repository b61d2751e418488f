"""Smoke test of bench/speed.py (tiny sizes, so the benchmark cannot rot) and checks that the hand-written training
step of vaegmm.vae computes the same gradients as autograd and the same Adam update as ``optimizer.step()``."""
import copy
import resource
import subprocess
import sys
from pathlib import Path

import torch

from vaegmm.vae import VAE, _Step, make_optimizer, negative_elbo

ROOT = Path(__file__).resolve().parents[1]


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def test_speed_benchmark_quick_writes_its_section(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n## Speed\n\nOLD SPEED TEXT\n\n## Quality\n\nkept\n")
    cpu0 = _child_cpu()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "speed.py"), "--quick", "--repeats", "1",
                           "--ref-sweeps", "1", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # about 5 s of CPU; CPU rather than wall time, so that a busy shared machine does not fail it
    assert _child_cpu() - cpu0 < 20, f"--quick took {_child_cpu() - cpu0:.1f} s of CPU"
    text = out.read_text()
    assert "OLD SPEED TEXT" not in text and "## Quality\n\nkept" in text  # only the Speed section is replaced
    assert text.index("## Speed") < text.index("## Quality")
    for needle in ("VAE update, ours", "naive (DataLoader)", "matmul limit", "GFLOP/s", "GibbsGMM", "EMGMM",
                   "collapsed Gibbs reference", "whole run", "Targets:", "bench/speed.py --quick"):
        assert needle in text, needle


class _NoStep:
    def step(self):
        pass


def test_fused_step_gradients_match_autograd():
    for b, alpha in ((50, 1.0), (37, 2.5)):
        g = torch.Generator().manual_seed(b)
        model = VAE(6, 32, generator=g)
        ref = copy.deepcopy(model)
        x, prior, eps = torch.rand(b, 784, generator=g), torch.randn(b, 6, generator=g), torch.randn(b, 6, generator=g)
        mu, logvar = ref.encode(x)
        logits = ref.decode(mu + eps * torch.exp(0.5 * logvar))
        loss, recon, kl = negative_elbo(logits, x, mu, logvar, prior, alpha)
        loss.backward()
        bce_sum, kl_sum = _Step(model, 64, torch.float32, torch.device("cpu"))(x, prior, eps, alpha, _NoStep())
        torch.testing.assert_close(bce_sum / b, recon.detach(), rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(kl_sum / b, kl.detach(), rtol=1e-5, atol=1e-5)
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_direct_fused_adam_is_bitwise_optimizer_step():
    g = torch.Generator().manual_seed(0)
    a = VAE(6, 32, generator=g)
    b = copy.deepcopy(a)
    opt_a, opt_b = make_optimizer(a, 1e-3), make_optimizer(b, 1e-3)
    step_a = _Step(a, 64, torch.float32, torch.device("cpu"))
    step_b = _Step(b, 64, torch.float32, torch.device("cpu"))
    step_b.adam_step = lambda opt: opt.step()  # the optimizer's own step()
    x, prior = torch.rand(64, 784, generator=g), torch.randn(64, 6, generator=g)
    for _ in range(5):
        eps = torch.randn(64, 6, generator=g)
        step_a(x, prior, eps, 1.0, opt_a)
        step_b(x, prior, eps, 1.0, opt_b)
    assert step_a._adam[1] is not None  # the direct path was taken
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
        assert torch.equal(opt_a.state[p]["exp_avg_sq"], opt_b.state[q]["exp_avg_sq"])


def test_snapshot_overhead_benchmark_quick_writes_its_own_section(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n## Speed\n\nkept\n")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "speed.py"), "--snapshots-only", "--quick",
                           "--repeats", "1", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "## Speed\n\nkept" in text and "## Live snapshots" in text
    for needle in ("without snapshots", "with snapshots", "Overhead:", "per second"):
        assert needle in text, needle
