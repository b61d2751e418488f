"""Smoke test of bench/speed.py (tiny sizes, so the benchmark cannot rot) and checks that the hand-written training
step of vaegmm.model.vae computes the same gradients as autograd and the same Adam update as ``optimizer.step()``."""
import copy
import resource
import subprocess
import sys
from pathlib import Path

import torch

from vaegmm.model.vae import VAE, _Step, make_optimizer, negative_elbo

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
    for needle in ("VAE update, ours", "naive (DataLoader)", "matmul limit", "GFLOP/s", "whole run", "Targets:",
                   "bench/speed.py --quick", "## GMM speed", "CollapsedGibbsGMM", "GibbsGMM, blocked", "EMGMM",
                   "per-point collapsed reference"):
        assert needle in text, needle


def test_gibbs_match_quick_writes_its_section(tmp_path):
    """bench/gibbs_match.py end to end on small stand-in codes (no VAE update, no Serket copy)."""
    import numpy as np

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 4, (10, 4))
    labels = np.repeat(np.arange(10), 20)
    codes = tmp_path / "codes"
    codes.mkdir()
    np.savez(codes / "seed0.npz", codes=(centers[labels] + rng.normal(size=(200, 4))).astype(np.float32),
             labels=labels)
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n## Speed\n\nkept\n")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gibbs_match.py"), "--seeds", "0", "--chains", "2",
                           "--sweeps", "3", "--codes-dir", str(codes), "--markdown", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "## Speed\n\nkept" in text and "## Collapsed vs blocked Gibbs" in text
    assert "| 0 | 2 |" in text and "bench/gibbs_match.py --seeds 0" in text


class _NoStep:
    def step(self):
        pass


def test_fused_step_gradients_match_autograd():
    # prior_var: the message N(mu_c, v I) of issue 12's option (v = 1 is Serket's)
    for b, alpha, prior_var in ((50, 1.0, 1.0), (37, 2.5, 1.0), (41, 1.5, 0.25), (29, 0.7, 3.0)):
        g = torch.Generator().manual_seed(b)
        model = VAE(6, 32, generator=g)
        ref = copy.deepcopy(model)
        x, prior, eps = torch.rand(b, 784, generator=g), torch.randn(b, 6, generator=g), torch.randn(b, 6, generator=g)
        mu, logvar = ref.encode(x)
        logits = ref.decode(mu + eps * torch.exp(0.5 * logvar))
        loss, recon, kl = negative_elbo(logits, x, mu, logvar, prior, alpha, prior_var)
        loss.backward()
        bce_sum, kl_sum = _Step(model, 64, torch.float32, torch.device("cpu"))(x, prior, eps, alpha, _NoStep(),
                                                                             prior_var)
        torch.testing.assert_close(bce_sum / b, recon.detach(), rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(kl_sum / b, kl.detach(), rtol=1e-5, atol=1e-5)
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


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
