import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from vaegmm.model import compiled_step
from vaegmm.model.config import preset
from vaegmm.model.control import RunControl, StopRequested
from vaegmm.model.mutual import step_shapes, training_steps
from vaegmm.model.vae import (VAE, TrainingDiverged, compute_dtype, decode_numpy, kl_to_prior, make_optimizer,
                              negative_elbo, reconstruction_nll, train_epochs, warm_compiled_step)


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


def test_bernoulli_nll_equals_the_plain_form_and_its_autograd_gradient():
    """The one fused function of the training step (fewer passes over the logits) against autograd on the plain
    BCE, with large logits (the product of a group's factors must not underflow), and on bf16 logits (float32 sums,
    a bf16 gradient for the bf16 multiplies)."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 784, generator=g)
    x[0] = (x[0] > 0.5).float()  # binary pixels too
    base = torch.randn(6, 784, generator=g) * 4
    base[1] = 40.0 * torch.sign(base[1])  # saturated sigmoids
    weights = torch.rand(6, generator=g)
    for dtype, rtol in ((torch.float32, 1e-5), (torch.bfloat16, 1e-2)):
        ours_in, ref_in = (base.to(dtype).clone().requires_grad_() for _ in range(2))
        ours = reconstruction_nll(ours_in, x)
        ref = F.binary_cross_entropy_with_logits(ref_in.float(), x, reduction="none").sum(1)
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-3)  # the same float32 logits: float32's error
        (ours * weights).sum().backward()
        (ref * weights).sum().backward()
        assert ours_in.grad.dtype == dtype
        torch.testing.assert_close(ours_in.grad.float(), ref_in.grad.float(), rtol=rtol, atol=1e-6)


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


def _train_tiny(precision="fp32", compiled=False, n=64, epochs=3, batch=16):
    model, opt, x, g = _tiny(n)
    losses = train_epochs(model, opt, x, torch.zeros(n, 4), 1.0, epochs, batch, g, precision=precision,
                          compiled=compiled, warmup=2)
    return losses, model


def test_compiled_step_trains_as_the_eager_one_and_the_warm_up_compiles_it():
    """The compiled step is the same model, loss and autograd: its losses and weights follow the eager ones (fp32:
    only the fused loops' rounding differs), and after warm_compiled_step a training of that shape compiles
    nothing more (a forked worker of the fork server trains at once), also when the KL weight changes (warm-up)."""
    warm_compiled_step(4, 32, 16, "fp32")
    with torch.compiler.set_stance("fail_on_recompile"):  # the warm-up's step serves every epoch
        compiled, model_c = _train_tiny(compiled=True)
    eager, model_e = _train_tiny(compiled=False)
    for a, b in zip(compiled, eager):
        assert a.recon == pytest.approx(b.recon, rel=1e-4) and a.kl == pytest.approx(b.kl, rel=1e-3, abs=1e-4)
    for p, q in zip(model_c.parameters(), model_e.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4)
    assert _train_tiny(compiled=True)[0] == compiled  # and it is deterministic


def test_a_failing_compile_trains_eagerly_and_says_so(monkeypatch):
    monkeypatch.setattr(compiled_step, "_failed", [])
    monkeypatch.setattr(compiled_step, "_shapes", set())
    monkeypatch.delenv(compiled_step.COMPILE_ENV, raising=False)
    monkeypatch.setattr(compiled_step, "why_eager", lambda device_type: "")

    def broken_compiler(fn):
        def run(*args):
            raise RuntimeError("the C++ compiler exploded")
        return run

    monkeypatch.setattr(compiled_step, "compiled", broken_compiler)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*exploded"):
        losses, _ = _train_tiny(compiled=True)
    assert losses == _train_tiny(compiled=False)[0]  # the eager step, the same numbers
    assert not compiled_step.works() and not compiled_step.use_compiled(10 ** 6)


def test_which_runs_compile(monkeypatch):
    monkeypatch.delenv(compiled_step.COMPILE_ENV, raising=False)
    monkeypatch.setattr(compiled_step, "why_eager", lambda device_type: "")
    assert compiled_step.use_compiled(compiled_step.MIN_STEPS, "cpu")
    assert not compiled_step.use_compiled(compiled_step.MIN_STEPS - 1, "cpu")  # a tiny run: eager
    monkeypatch.setenv(compiled_step.COMPILE_ENV, "off")
    assert not compiled_step.use_compiled(10 ** 6, "cpu")
    monkeypatch.delenv(compiled_step.COMPILE_ENV)
    monkeypatch.setattr(compiled_step, "why_eager", lambda device_type: "no C++ compiler (g++) was found")
    with pytest.warns(RuntimeWarning, match="no C..? compiler"):
        assert not compiled_step.use_compiled(10 ** 6, "cpu")
    # the run's steps: batches per epoch (the last one partial) x epochs x iterations
    cfg = preset("serket-classic")
    assert training_steps(cfg) == 6 * 200 * 5
    assert training_steps(cfg.replace(data__n=2900)) == 6 * 200 * 5
    assert training_steps(preset("quick-demo")) == 8 * 100 * 5
    # the shapes a run (and the fork server, for the presets) compiles before training: each batch shape once
    monkeypatch.setattr(compiled_step, "why_eager", lambda device_type: "")
    cfg, p = cfg.replace(vae__device="cpu"), cfg.vae.precision
    assert step_shapes(cfg) == {(18, 128, 500, p, "cpu", 1.0)}
    assert step_shapes(cfg.replace(data__n=2900)) == {(18, 128, 500, p, "cpu", 1.0), (18, 128, 400, p, "cpu", 1.0)}
    # the message N(mu_c, v I) from iteration 2 on: a step of its own
    assert step_shapes(cfg.replace(vae__message_var=0.5)) == {(18, 128, 500, p, "cpu", v) for v in (1.0, 0.5)}
    assert step_shapes(cfg.replace(vae__epochs=2)) == set()  # 60 steps: eager


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
        # the model stays a plain float32 module after a mixed-precision update
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
