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


def kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor, prior_mu: torch.Tensor | float = 0.0,
                prior_var: float = 1.0) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(prior_mu, v I)) in closed form, per row, (B,), with ``v = prior_var``
    (1 in Serket's model):

        0.5 * sum_d [ (exp(logvar_d) + (mu_d - prior_mu_d)^2) / v - 1 + log v - logvar_d ]
    """
    v = float(prior_var)
    return 0.5 * ((logvar.exp() + (mu - prior_mu).pow(2)) / v - 1.0 + math.log(v) - logvar).sum(dim=1)


def negative_elbo(logits, x, mu, logvar, prior_mu, alpha: float,
                  prior_var: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch mean of ``-L = recon + alpha * KL``; returns (loss, mean recon, mean KL)."""
    recon = reconstruction_nll(logits, x).mean()
    kl = kl_to_prior(mu, logvar, prior_mu, prior_var).mean()
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


class _Step:
    """One Adam step of the negative ELBO on a mini-batch, forward and backward written out by hand.

    Same model, objective and Adam update as ``negative_elbo(*model(x), x, ...)`` + ``loss.backward()`` +
    ``optimizer.step()``, but without autograd's graph and its Python/dispatch overhead, with every activation and
    gradient in buffers allocated once per update (no fresh (500, 784) tensors per mini-batch), biases added
    inside the matrix multiplies (``addmm``), bias gradients as GEMVs, and the 1/B of the batch mean folded into
    the gradient GEMMs' ``alpha``. What is left is ~85% matrix multiplies (bench/speed.py).

    Gradients, for a batch of B images (``s = exp(logvar / 2)``, ``z = mu + s * eps``)::

        d logits = (sigmoid(logits) - x) / B                                 (BCE with logits)
        d mu     = dz + alpha (mu - mu_c) / (v B)                            (KL to N(mu_c, v I); v = 1 in Serket)
        d logvar = dz * eps * s / 2 + alpha (s^2 / v - 1) / (2 B)
    """

    def __init__(self, model: VAE, rows: int, dtype: torch.dtype, device: torch.device):
        d, h = model.latent_dim, model.enc_hidden.out_features
        p = model.dec_out.out_features
        def e(*shape):
            return torch.empty(shape, dtype=dtype, device=device)
        self.h1, self.enc, self.s, self.z = e(rows, h), e(rows, 2 * d), e(rows, d), e(rows, d)
        self.h2, self.logits, self.sig, self.tmp_p = e(rows, h), e(rows, p), e(rows, p), e(rows, p)
        # largest divisor of the pixel count <= 98: 0.5 ** 98 > 1e-30 is still a normal float32
        self.group = max(g for g in range(1, min(p, 98) + 1) if p % g == 0)
        self.d_enc, self.dz, self.dh1, self.dh2, self.tmp = e(rows, 2 * d), e(rows, d), e(rows, h), e(rows, h), e(rows, d)
        self.ones = torch.ones(rows, dtype=dtype, device=device)  # bias gradients as GEMVs
        self.xb, self.pb = e(rows, p), e(rows, d)  # the mini-batch, gathered into place
        self.layers = (model.enc_hidden, model.enc_head, model.dec_hidden, model.dec_out)
        for layer in self.layers:  # gradient buffers, written in place by every step (no zero_grad needed)
            for par in (layer.weight, layer.bias):
                if par.grad is None or par.grad.shape != par.shape:
                    par.grad = torch.zeros_like(par)
        self.d = d

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, prior: torch.Tensor, eps: torch.Tensor, alpha: float,
                 optimizer: torch.optim.Optimizer, prior_var: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the model on ``x (B, 784)``, ``prior (B, D)``, ``eps (B, D)`` with the prior N(prior, v I),
        ``v = prior_var``; returns the batch sums of BCE and KL (0-d tensors, before the update)."""
        b, d = x.shape[0], self.d
        l1, l2, l3, l4 = self.layers
        h1, enc, s, z = self.h1[:b], self.enc[:b], self.s[:b], self.z[:b]
        h2, logits, sig, tmp_p = self.h2[:b], self.logits[:b], self.sig[:b], self.tmp_p[:b]
        d_enc, dz, dh1, dh2, tmp = self.d_enc[:b], self.dz[:b], self.dh1[:b], self.dh2[:b], self.tmp[:b]
        ones = self.ones[:b]
        inv_b = 1.0 / b
        # ---- forward
        torch.addmm(l1.bias, x, l1.weight.t(), out=h1).relu_()
        torch.addmm(l2.bias, h1, l2.weight.t(), out=enc)
        mu, logvar = enc[:, :d], enc[:, d:]
        torch.mul(logvar, 0.5, out=s).exp_()
        torch.addcmul(mu, eps, s, out=z)
        torch.addmm(l3.bias, z, l3.weight.t(), out=h2).relu_()
        torch.addmm(l4.bias, h2, l4.weight.t(), out=logits)
        # ---- loss terms (reported, not differentiated): BCE = softplus(l) - x l; KL closed form
        torch.sigmoid(logits, out=sig)
        # sum softplus(l) = sum relu(l) + sum log1p(exp(-|l|)), and log1p(exp(-|l|)) = -log(sigmoid(|l|)) =
        # -log(0.5 + |sigmoid(l) - 0.5|), a number in [0.5, 1]: products of `group` of them stay normal floats, so
        # one log per group instead of one per pixel (softplus or log per pixel costs 2-3x more than the rest).
        torch.sub(sig, 0.5, out=tmp_p).abs_().add_(0.5)
        log_sig_abs = tmp_p.view(-1, self.group).prod(1).log_().sum()
        bce = (torch.clamp(logits, min=0, out=tmp_p).sum() - log_sig_abs
               - torch.dot(x.reshape(-1), logits.reshape(-1)))
        dmu, dlv = d_enc[:, :d], d_enc[:, d:]
        torch.sub(mu, prior, out=dmu)  # mu - mu_c, reused by the gradient below
        torch.mul(s, s, out=dlv)  # exp(logvar)
        inv_v = 1.0 / float(prior_var)
        kl = 0.5 * ((dlv.sum() + dmu.pow(2).sum()) * inv_v - logvar.sum()) + 0.5 * b * d * (math.log(prior_var) - 1.0)
        # ---- backward (the first layer needs no input gradient)
        g = sig.sub_(x)  # d logits * B
        torch.addmm(l4.weight.grad, g.t(), h2, beta=0, alpha=inv_b, out=l4.weight.grad)
        torch.addmv(l4.bias.grad, g.t(), ones, beta=0, alpha=inv_b, out=l4.bias.grad)  # column sums / B
        torch.mm(g, l4.weight, out=dh2)
        torch.ops.aten.threshold_backward.grad_input(dh2, h2, 0, grad_input=dh2)  # relu'
        torch.addmm(l3.weight.grad, dh2.t(), z, beta=0, alpha=inv_b, out=l3.weight.grad)
        torch.addmv(l3.bias.grad, dh2.t(), ones, beta=0, alpha=inv_b, out=l3.bias.grad)
        torch.mm(dh2, l3.weight, out=dz)  # dz * B
        if inv_v != 1.0:
            dlv.mul_(inv_v)
        dlv.sub_(1.0).mul_(0.5 * alpha)  # alpha (s^2 / v - 1) / 2
        torch.mul(eps, s, out=tmp).mul_(0.5).mul_(dz)
        dlv.add_(tmp)
        dmu.mul_(alpha * inv_v).add_(dz)
        torch.addmm(l2.weight.grad, d_enc.t(), h1, beta=0, alpha=inv_b, out=l2.weight.grad)
        torch.addmv(l2.bias.grad, d_enc.t(), ones, beta=0, alpha=inv_b, out=l2.bias.grad)
        torch.mm(d_enc, l2.weight, out=dh1)
        torch.ops.aten.threshold_backward.grad_input(dh1, h1, 0, grad_input=dh1)
        torch.addmm(l1.weight.grad, dh1.t(), x, beta=0, alpha=inv_b, out=l1.weight.grad)
        torch.addmv(l1.bias.grad, dh1.t(), ones, beta=0, alpha=inv_b, out=l1.bias.grad)
        self.adam_step(optimizer)
        return bce, kl

    def adam_step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``. For a plain fused ``torch.optim.Adam`` (what :func:`make_optimizer` makes) whose
        state exists, the two calls its ``step()`` makes (step counts + 1, then ``torch._fused_adam_``) are made
        directly: the same update, bit for bit (checked in the tests), without ``step()``'s Python bookkeeping,
        which costs more than the kernel itself at these sizes."""
        args = self._adam_args(optimizer)
        if args is None:
            optimizer.step()
            return
        params, grads, exp_avgs, exp_avg_sqs, steps, kw = args
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, grad_scale=None, found_inf=None, **kw)

    def _adam_args(self, optimizer):
        cached = getattr(self, "_adam", None)
        if cached is not None and cached[0] is optimizer:
            return cached[1]
        args = None
        if type(optimizer) is torch.optim.Adam and len(optimizer.param_groups) == 1 and hasattr(torch, "_fused_adam_"):
            grp = optimizer.param_groups[0]
            params = list(grp["params"])
            states = [optimizer.state.get(p_) for p_ in params]
            simple = (grp.get("fused") and not grp["amsgrad"] and not grp["maximize"] and not grp["capturable"]
                      and not grp["differentiable"] and not grp.get("decoupled_weight_decay", False)
                      and not isinstance(grp["lr"], torch.Tensor) and not isinstance(grp["betas"][0], torch.Tensor)
                      and all(p_.device.type == "cpu" and p_.dtype == torch.float32 for p_ in params))
            if simple and all(s and "exp_avg" in s for s in states):
                beta1, beta2 = grp["betas"]
                kw = dict(amsgrad=False, lr=float(grp["lr"]), beta1=float(beta1), beta2=float(beta2),
                          weight_decay=float(grp["weight_decay"]), eps=float(grp["eps"]), maximize=False)
                args = (params, [p_.grad for p_ in params], [s["exp_avg"] for s in states],
                        [s["exp_avg_sq"] for s in states], [s["step"] for s in states], kw)
            if not simple:
                self._adam = (optimizer, None)
            elif args is not None:
                self._adam = (optimizer, args)
        else:
            self._adam = (optimizer, None)
        return args


def train_epochs(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor, prior_mu: torch.Tensor,
                 alpha: float, epochs: int, batch_size: int, generator: torch.Generator,
                 on_epoch: Optional[Callable[[EpochLoss], None]] = None,
                 checkpoint: Optional[Callable[[], None]] = None, prior_var: float = 1.0,
                 warmup: int = 0) -> list[EpochLoss]:
    """One VAE update: ``epochs`` passes of shuffled mini-batches over ``x (N, 784)`` with per-image prior means
    ``prior_mu (N, D)`` and prior variance ``prior_var`` (the prior is N(prior_mu, prior_var I)). ``warmup``:
    the KL weight rises linearly from ``alpha / warmup`` to ``alpha`` over the first ``warmup`` epochs (KL
    annealing, Bowman et al. 2016). ``checkpoint()`` is called between mini-batches (it may block to pause or
    raise to stop). Raises :class:`TrainingDiverged` when an epoch's loss is not finite.

    Each mini-batch minimises the batch mean of ``-L`` (:func:`negative_elbo`) by one step of ``optimizer``, with
    the gradient computed by :class:`_Step` (checked against autograd in the tests).
    """
    model.train()
    n, d = x.shape[0], model.latent_dim
    batch_size = min(batch_size, n)
    on_cpu = x.device.type == "cpu"
    step = _Step(model, batch_size, x.dtype, x.device)
    losses = []
    for epoch in range(1, epochs + 1):
        epoch_alpha = alpha * min(1.0, epoch / warmup) if warmup > 0 else alpha
        perm = torch.randperm(n, generator=generator).to(x.device)
        eps = torch.randn((n, d), generator=generator if on_cpu else None, device=x.device, dtype=x.dtype)
        bce_sum = kl_sum = 0.0
        for start in range(0, n, batch_size):
            if checkpoint is not None:
                checkpoint()
            idx = perm[start:start + batch_size]
            b = idx.shape[0]
            # gathered per mini-batch, into a fixed buffer: still in cache when the first GEMM reads it
            xb = torch.index_select(x, 0, idx, out=step.xb[:b])
            pb = torch.index_select(prior_mu, 0, idx, out=step.pb[:b])
            bce, kl = step(xb, pb, eps[start:start + b], epoch_alpha, optimizer, prior_var)
            bce_sum = bce_sum + bce
            kl_sum = kl_sum + kl
        record = EpochLoss(epoch, float(bce_sum) / n, float(kl_sum) / n)
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
