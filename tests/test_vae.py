import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from vaegmm.model.control import RunControl, StopRequested
from vaegmm.model.vae import (VAE, TrainingDiverged, decode_numpy, kl_to_prior, make_optimizer, negative_elbo,
                        reconstruction_nll, train_epochs)


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
