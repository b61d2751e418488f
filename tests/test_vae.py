import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from vaegmm.model.control import RunControl, StopRequested
from vaegmm.model.vae import (VAE, TrainingDiverged, _Step, compute_dtype, decode_numpy, kl_to_prior, make_optimizer,
                              negative_elbo, reconstruction_nll, train_epochs)


def test_kl_matches_closed_form_and_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar, prior = (torch.randn(7, 5, generator=g) for _ in range(3))
    ours = kl_to_prior(mu, logvar, prior)
    sd = torch.exp(0.5 * logvar)
    closed = 0.5 * (sd ** 2 + (mu - prior) ** 2 - 1 - 2 * torch.log(sd)).sum(1)
    ref = kl_divergence(Normal(mu, sd), Normal(prior, torch.ones_like(prior))).sum(1)
    torch.testing.assert_close(ours, closed)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert torch.allclose(kl_to_prior(prior, torch.zeros_like(prior), prior), torch.zeros(7))
    # the message with variance v (issue 12's option): KL to N(prior, v I)
    for v in (0.25, 3.0):
        ref_v = kl_divergence(Normal(mu, sd), Normal(prior, torch.full_like(prior, v) ** 0.5)).sum(1)
        torch.testing.assert_close(kl_to_prior(mu, logvar, prior, v), ref_v, rtol=1e-5, atol=1e-5)


def test_reconstruction_is_bernoulli_nll_and_alpha_weights_kl():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 784, generator=g)
    logits = torch.randn(4, 784, generator=g)
    expected = -(x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(1)
    torch.testing.assert_close(reconstruction_nll(logits, x), expected, rtol=1e-5, atol=1e-3)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    loss, recon, kl = negative_elbo(logits, x, mu, logvar, torch.zeros(4, 3), alpha=2.5)
    torch.testing.assert_close(loss, recon + 2.5 * kl)


def test_shapes_and_seeded_init():
    a = VAE(6, generator=torch.Generator().manual_seed(3))
    b = VAE(6, generator=torch.Generator().manual_seed(3))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    logits, mu, logvar = a(torch.rand(5, 784))
    assert logits.shape == (5, 784) and mu.shape == (5, 6) and logvar.shape == (5, 6)
    state = {k: v.numpy() for k, v in a.state_dict().items() if k.startswith("dec_")}
    z = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    np.testing.assert_allclose(decode_numpy(state, z), decode_numpy(a, z), rtol=1e-6)


def _tiny(n=64):
    g = torch.Generator().manual_seed(0)
    model = VAE(4, 32, generator=g)
    return model, make_optimizer(model, 1e-3), torch.rand(n, 784, generator=g), g


def test_training_lowers_the_loss_and_checks_between_batches():
    model, opt, x, g = _tiny()
    calls = []
    losses = train_epochs(model, opt, x, torch.zeros(64, 4), 1.0, 5, 16, g, checkpoint=lambda: calls.append(1))
    assert len(calls) == 5 * 4  # every mini-batch
    assert losses[-1].recon < losses[0].recon


def test_stop_request_interrupts_mid_update():
    model, opt, x, g = _tiny()
    ctl = RunControl()
    seen = []

    def checkpoint():
        seen.append(1)
        if len(seen) == 3:
            ctl.stop()
        ctl.checkpoint()

    with pytest.raises(StopRequested):
        train_epochs(model, opt, x, torch.zeros(64, 4), 1.0, 50, 16, g, checkpoint=checkpoint)
    assert len(seen) == 3


def test_non_finite_loss_raises_training_diverged():
    model, opt, x, g = _tiny()
    x[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train_epochs(model, opt, x, torch.zeros(64, 4), 1.0, 3, 16, g)


class _NoStep:
    def step(self):
        pass


def _step_and_autograd(dtype, b, alpha, prior_var):
    """The hand-written step's gradients and loss sums (in ``dtype``) next to autograd's on ``negative_elbo``."""
    g = torch.Generator().manual_seed(b)
    model = VAE(6, 32, generator=g)
    ref = copy.deepcopy(model)
    x, prior, eps = torch.rand(b, 784, generator=g), torch.randn(b, 6, generator=g), torch.randn(b, 6, generator=g)
    mu, logvar = ref.encode(x)
    loss, recon, kl = negative_elbo(ref.decode(mu + eps * torch.exp(0.5 * logvar)), x, mu, logvar, prior, alpha,
                                    prior_var)
    loss.backward()
    bce_sum, kl_sum = _Step(model, 64, dtype, torch.device("cpu"))(x.to(dtype), prior, eps, alpha, _NoStep(),
                                                                  prior_var)
    return model, ref, bce_sum / b, recon.detach(), kl_sum / b, kl.detach()


@pytest.mark.parametrize("b, alpha, prior_var", [(50, 1.0, 1.0), (37, 2.5, 1.0), (41, 1.5, 0.25), (29, 0.7, 3.0)])
def test_fp32_step_equals_autograd(b, alpha, prior_var):
    model, ref, recon, recon_ref, kl, kl_ref = _step_and_autograd(torch.float32, b, alpha, prior_var)
    torch.testing.assert_close(recon, recon_ref, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(kl, kl_ref, rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("b, alpha, prior_var", [(50, 1.0, 1.0), (41, 1.5, 0.25)])
def test_bf16_step_is_close_to_autograd(b, alpha, prior_var):
    # mixed precision: bf16 GEMMs (8-bit mantissas), float32 sums; gradients within 2 %, loss terms within 0.1 %
    model, ref, recon, recon_ref, kl, kl_ref = _step_and_autograd(torch.bfloat16, b, alpha, prior_var)
    assert recon.dtype == kl.dtype == torch.float32
    torch.testing.assert_close(recon, recon_ref, rtol=1e-3, atol=0)
    torch.testing.assert_close(kl, kl_ref, rtol=1e-3, atol=1e-3)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert p.grad.dtype == torch.float32, name  # the master weights' gradients
        assert float((p.grad - q.grad).norm() / q.grad.norm()) < 0.02, name


def test_precision_names_and_the_exact_mode():
    assert compute_dtype("fp32", "cpu") == torch.float32
    assert compute_dtype("bf16", "cpu") == torch.bfloat16
    assert compute_dtype("auto", "cpu") in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="precision"):
        compute_dtype("fp16", "cpu")
    # fp32 is exact and reproducible: the same seed gives the same losses and weights
    runs = []
    for _ in range(2):
        model, opt, x, g = _tiny()
        runs.append((train_epochs(model, opt, x, torch.zeros(64, 4), 1.0, 3, 16, g, precision="fp32"), model))
    assert [l.recon for l in runs[0][0]] == [l.recon for l in runs[1][0]]
    for p, q in zip(runs[0][1].parameters(), runs[1][1].parameters()):
        assert torch.equal(p, q)


def test_bf16_training_keeps_float32_master_weights_and_tracks_fp32():
    losses = {}
    for precision in ("fp32", "bf16"):
        model, opt, x, g = _tiny(256)
        losses[precision] = train_epochs(model, opt, x, torch.zeros(256, 4), 1.0, 8, 32, g, precision=precision)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert all(s["exp_avg"].dtype == torch.float32 for s in opt.state.values())
        # the model stays usable as a plain module after the update (its weights are views of one flat vector)
        logits, _, _ = model(x[:5])
        assert torch.isfinite(logits).all()
    assert losses["bf16"][-1].recon < losses["bf16"][0].recon
    for a, b in zip(losses["fp32"], losses["bf16"]):
        assert abs(a.recon - b.recon) < 0.01 * a.recon and abs(a.kl - b.kl) < 0.05 * a.kl + 0.05


def test_bf16_on_a_cpu_without_native_bf16_is_named_slow_and_auto_falls_back(monkeypatch):
    import vaegmm.model.vae as vae_mod

    monkeypatch.setattr(vae_mod, "_cpu_has_bf16_gemm", lambda: False)
    note = vae_mod.precision_note("bf16", "cpu")
    assert note is not None and "emulated" in note and "fp32" in note
    assert vae_mod.compute_dtype("auto", torch.device("cpu")) == torch.float32
    assert vae_mod.precision_note("auto", "cpu") is None and vae_mod.precision_note("fp32", "cpu") is None
    monkeypatch.setattr(vae_mod, "_cpu_has_bf16_gemm", lambda: True)
    assert vae_mod.precision_note("bf16", "cpu") is None
    assert vae_mod.compute_dtype("auto", torch.device("cpu")) == torch.bfloat16
