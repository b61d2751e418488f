"""The VAE of the Serket VAE+GMM model and its objective.

Encoder 784 -> hidden (ReLU) -> (mu, logvar) of size D, decoder D -> hidden (ReLU) -> 784 logits, Bernoulli
likelihood. The objective per image ``o`` with GMM message ``mu_c`` (its class mean, 0 before any GMM update)::

    L = -alpha * KL(q(z|o) || N(mu_c, I)) + E_q[log p(o|z)]

We minimise ``-L`` averaged over the mini-batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` gives CUDA when it is available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device")
    return torch.device(device)


class VAE(nn.Module):
    """``forward(x (B, 784)) -> (logits (B, 784), mu (B, D), logvar (B, D))``.

    The encoder's two heads (mu and logvar) are one ``Linear(hidden, 2D)`` split in two: the same model as two
    separate layers, one matrix multiply instead of two.
    """

    def __init__(self, latent_dim: int = 18, hidden: int = 128, n_pixels: int = 784,
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        self.latent_dim = latent_dim
        self.enc_hidden = nn.Linear(n_pixels, hidden)
        self.enc_head = nn.Linear(hidden, 2 * latent_dim)
        self.dec_hidden = nn.Linear(latent_dim, hidden)
        self.dec_out = nn.Linear(hidden, n_pixels)
        if generator is not None:
            self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """PyTorch's default Linear init (U(-1/sqrt(fan_in), 1/sqrt(fan_in))) drawn from ``generator``,
        so model weights are reproducible without touching the global RNG."""
        for layer in (self.enc_hidden, self.enc_head, self.dec_hidden, self.dec_out):
            bound = 1.0 / math.sqrt(layer.in_features)
            for p in (layer.weight, layer.bias):
                p.copy_(torch.rand(p.shape, generator=generator) * (2 * bound) - bound)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 784) in [0, 1] -> mu (B, D), logvar (B, D)."""
        h = F.relu(self.enc_hidden(x))
        mu, logvar = self.enc_head(h).chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I): (B, D)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D) -> Bernoulli logits (B, 784)."""
        return self.dec_out(F.relu(self.dec_hidden(z)))

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)
        return self.decode(z), mu, logvar


# ------------------------------------------------------------------------------------------ loss terms
def reconstruction_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-E_q[log p(o|z)] with one sample: Bernoulli negative log-likelihood (BCE) summed over pixels, (B,)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)


def kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor, prior_mu: torch.Tensor | float = 0.0) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(prior_mu, I)) in closed form, per row, (B,):

        0.5 * sum_d [ exp(logvar_d) + (mu_d - prior_mu_d)^2 - 1 - logvar_d ]
    """
    return 0.5 * (logvar.exp() + (mu - prior_mu).pow(2) - 1.0 - logvar).sum(dim=1)


def negative_elbo(logits, x, mu, logvar, prior_mu, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch mean of ``-L = recon + alpha * KL``; returns (loss, mean recon, mean KL)."""
    recon = reconstruction_nll(logits, x).mean()
    kl = kl_to_prior(mu, logvar, prior_mu).mean()
    return recon + alpha * kl, recon, kl


# ------------------------------------------------------------------------------------------ training
@dataclass
class EpochLoss:
    epoch: int  # 1-based epoch within the update
    recon: float  # mean BCE per image
    kl: float  # mean KL per image (unweighted; the objective uses alpha * kl)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite (alpha or learning rate too large)."""


def make_optimizer(model: VAE, lr: float) -> torch.optim.Optimizer:
    """Adam; the fused kernel where this torch build has it (same maths, fewer passes over the weights)."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - old builds
        return torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


def train_epochs(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor, prior_mu: torch.Tensor,
                 alpha: float, epochs: int, batch_size: int, generator: torch.Generator,
                 on_epoch: Optional[Callable[[EpochLoss], None]] = None,
                 checkpoint: Optional[Callable[[], None]] = None) -> list[EpochLoss]:
    """One VAE update: ``epochs`` passes of shuffled mini-batches over ``x (N, 784)`` with per-image prior means
    ``prior_mu (N, D)``. ``checkpoint()`` is called between mini-batches (it may block to pause or raise to stop).
    Raises :class:`TrainingDiverged` when an epoch's loss is not finite.
    """
    model.train()
    n = x.shape[0]
    losses = []
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=generator).to(x.device)
        xs, ps = x[perm], prior_mu[perm]  # one gather per epoch, then contiguous slices
        recon_sum = torch.zeros((), device=x.device)
        kl_sum = torch.zeros((), device=x.device)
        for start in range(0, n, batch_size):
            if checkpoint is not None:
                checkpoint()
            xb, pb = xs[start:start + batch_size], ps[start:start + batch_size]
            logits, mu, logvar = model(xb, generator if x.device.type == "cpu" else None)
            loss, recon, kl = negative_elbo(logits, xb, mu, logvar, pb, alpha)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            recon_sum += recon.detach() * xb.shape[0]
            kl_sum += kl.detach() * xb.shape[0]
        record = EpochLoss(epoch, float(recon_sum) / n, float(kl_sum) / n)
        if not (math.isfinite(record.recon) and math.isfinite(record.kl)):
            raise TrainingDiverged(f"loss is not finite in epoch {epoch} (recon={record.recon}, kl={record.kl})")
        losses.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return losses


@torch.no_grad()
def encode_all(model: VAE, x: torch.Tensor, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Encoder means and log-variances of all images: ``(N, D) float32`` each, as numpy."""
    model.eval()
    mus, logvars = [], []
    for start in range(0, x.shape[0], batch):
        mu, logvar = model.encode(x[start:start + batch])
        mus.append(mu)
        logvars.append(logvar)
    return torch.cat(mus).cpu().numpy(), torch.cat(logvars).cpu().numpy()


@torch.no_grad()
def decode_numpy(model_or_decoder_state, z: np.ndarray, latent_dim: int | None = None, hidden: int = 128) -> np.ndarray:
    """Decode codes ``z (M, D)`` to pixel probabilities ``(M, 784) float32``, with a model or a decoder state dict
    (as kept in each ``IterationResult``)."""
    if isinstance(model_or_decoder_state, VAE):
        model = model_or_decoder_state
    else:
        state = model_or_decoder_state
        d = state["dec_hidden.weight"].shape[1]
        h = state["dec_hidden.weight"].shape[0]
        model = VAE(latent_dim=d, hidden=h)
        model.load_state_dict({**{k: v for k, v in model.state_dict().items() if not k.startswith("dec_")},
                               **{k: torch.as_tensor(v) for k, v in state.items()}})
    device = next(model.parameters()).device
    logits = model.decode(torch.as_tensor(np.asarray(z, dtype=np.float32), device=device))
    return torch.sigmoid(logits).cpu().numpy()
