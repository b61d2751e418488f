"""The VAE of the Serket VAE+GMM model and its objective.

Encoder 784 -> hidden (ReLU) -> (mu, logvar) of size D, decoder D -> hidden (ReLU) -> 784 logits, Bernoulli
likelihood. The objective per image ``o`` with GMM message ``mu_c`` (its class mean, 0 before any GMM update)::

    L = -alpha * KL(q(z|o) || N(mu_c, I)) + E_q[log p(o|z)]

We minimise ``-L`` averaged over the mini-batch.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters
import torch.nn.functional as F

from vaegmm.model.config import PRECISIONS


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
    """Adam on the model's float32 (master) weights; the fused kernel where this torch build has it (same maths,
    fewer passes over the weights)."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - old builds
        return torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


@functools.lru_cache(maxsize=None)
def _cpu_has_bf16_gemm() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX): without it oneDNN emulates bf16 and
    float32 is faster."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:  # pragma: no cover - not Linux
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the training step's matrix multiplies for ``precision``: ``"fp32"`` float32 (the exact mode),
    ``"bf16"`` bfloat16 (mixed precision, see :class:`_Step`), ``"auto"`` bfloat16 where ``device`` multiplies it
    natively (a CPU with AVX512-BF16/AMX, a CUDA GPU with bf16), else float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if device.type == "cpu" and _cpu_has_bf16_gemm() else torch.float32


def precision_note(precision: str, device: torch.device | str = "cpu") -> Optional[str]:
    """A warning for ``precision`` on ``device``, or None: ``"bf16"`` on a CPU without native bf16 multiplies
    (no AVX512-BF16/AMX, e.g. an AVX2-only AMD EPYC) is emulated by oneDNN and many times slower than float32
    (measured on a 2-core AMD EPYC (Zen 3): a Serket-classic run took over 10 CPU minutes in bf16 against ~2.8 in
    float32; BENCHMARKS.md "Speed", past measurement; the full table: ``git show 86603c0:BENCHMARKS.md``).
    ``"auto"`` already falls back to float32 there."""
    device = torch.device(device)
    if precision == "bf16" and device.type == "cpu" and not _cpu_has_bf16_gemm():
        return ("this CPU has no native bf16 matrix multiplies (AVX512-BF16 or AMX): bf16 is emulated and many "
                "times slower than fp32 here; use precision auto (fp32 on this CPU) or fp32")
    return None


class _Step:
    """One Adam step of the negative ELBO on a mini-batch, forward and backward written out by hand.

    Same model, objective and Adam update as ``negative_elbo(*model(x), x, ...)`` + ``loss.backward()`` +
    ``optimizer.step()``, but without autograd's graph and its Python/dispatch overhead, with every activation and
    gradient in buffers allocated once per update (no fresh (500, 784) tensors per mini-batch), biases added
    inside the matrix multiplies (``addmm``), bias gradients as GEMVs, and the 1/B of the batch mean folded into
    the gradient GEMMs' ``alpha``. What is left is mostly matrix multiplies (bench/speed.py).

    ``dtype`` is the dtype of the wide layers' matrix multiplies (784 -> hidden and hidden -> 784: 98 % of the
    FLOPs). float32: every tensor is float32 (the exact mode). bfloat16 (mixed precision): those GEMMs read bf16
    copies of their weights, the input, the activations and the gradients (oneDNN accumulates in float32 and rounds
    each product to bf16), 3-4x float32's rate on a CPU with AVX512-BF16; the latent layers (hidden -> 2D, D ->
    hidden, where bf16 gains nothing: bench/speed17.py), the master weights, their gradients, Adam's state, the
    sigmoid of the logits and the loss sums stay float32.

    Gradients, for a batch of B images (``s = exp(logvar / 2)``, ``z = mu + s * eps``)::

        d logits = (sigmoid(logits) - x) / B                                 (BCE with logits)
        d mu     = dz + alpha (mu - mu_c) / (v B)                            (KL to N(mu_c, v I); v = 1 in Serket)
        d logvar = dz * eps * s / 2 + alpha (s^2 / v - 1) / (2 B)
    """

    def __init__(self, model: VAE, rows: int, dtype: torch.dtype, device: torch.device):
        d, h = model.latent_dim, model.enc_hidden.out_features
        p = model.dec_out.out_features
        self.mixed = dtype != torch.float32

        def e32(*shape):
            return torch.empty(shape, dtype=torch.float32, device=device)

        def wide(buf_f32):  # an operand of a wide layer's GEMM: a `dtype` twin when mixed, else the buffer itself
            return torch.empty_like(buf_f32, dtype=dtype) if self.mixed else buf_f32

        self.h1, self.enc, self.h2 = e32(rows, h), e32(rows, 2 * d), e32(rows, h)
        self.s, self.z, self.tmp, self.dz = e32(rows, d), e32(rows, d), e32(rows, d), e32(rows, d)
        self.d_enc, self.dh1, self.dh2 = e32(rows, 2 * d), e32(rows, h), e32(rows, h)
        self.sig, self.tmp_p, self.ones = e32(rows, p), e32(rows, p), torch.ones(rows, device=device)
        self.h1_c, self.h2_c, self.dh1_c, self.dh2_c = wide(self.h1), wide(self.h2), wide(self.dh1), wide(self.dh2)
        self.logits, self.g_c, self.ones_c = wide(self.tmp_p), wide(self.sig), wide(self.ones)
        if not self.mixed:
            self.logits = e32(rows, p)
        # largest divisor of the pixel count <= 98: 0.5 ** 98 > 1e-30 is still a normal float32
        self.group = max(g for g in range(1, min(p, 98) + 1) if p % g == 0)
        self.xb, self.pb = torch.empty(rows, p, dtype=dtype, device=device), e32(rows, d)  # gathered mini-batch
        self.ones_c.fill_(1.0)
        layers = (model.enc_hidden, model.enc_head, model.dec_hidden, model.dec_out)
        self.params = [par for layer in layers for par in (layer.weight, layer.bias)]
        if self.mixed:
            self._flat_copies(dtype)
        else:  # the GEMMs use the parameters themselves, and write their gradients in place (no zero_grad needed)
            for par in self.params:
                if par.grad is None or par.grad.shape != par.shape:
                    par.grad = torch.zeros_like(par)
            self.weights, self.grads = self.params, [par.grad for par in self.params]
        self.d = d

    def _flat_copies(self, dtype: torch.dtype) -> None:
        """Mixed precision: the float32 parameters and their gradients become views of one flat vector each
        (``vector_to_parameters``); the wide layers' weights and gradients (the first two and the last two
        tensors) get bf16 twins, so the casts between them are one ``copy_`` per wide layer each way per step."""
        flat = parameters_to_vector(self.params).detach()
        vector_to_parameters(flat, self.params)  # each param's data is now a view of `flat`
        self.flat, self.flat_grad = flat, torch.zeros_like(flat)
        self.flat_c, self.flat_grad_c = flat.to(dtype), torch.zeros_like(flat, dtype=dtype)
        sizes = [par.numel() for par in self.params]
        first, last = sum(sizes[:2]), sum(sizes[:6])
        self.wide_spans = (slice(0, first), slice(last, len(flat)))  # enc_hidden's and dec_out's weights + biases
        self.weights, self.grads, start = [], [], 0
        for i, par in enumerate(self.params):
            end = start + par.numel()
            par.grad = self.flat_grad[start:end].view_as(par)
            is_wide = i < 2 or i >= 6
            self.weights.append(self.flat_c[start:end].view_as(par) if is_wide else par)
            self.grads.append(self.flat_grad_c[start:end].view_as(par) if is_wide else par.grad)
            start = end

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, prior: torch.Tensor, eps: torch.Tensor, alpha: float,
                 optimizer: torch.optim.Optimizer, prior_var: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the model on ``x (B, 784)`` (in the GEMM dtype), ``prior (B, D)``, ``eps (B, D)`` (float32) with
        the prior N(prior, v I), ``v = prior_var``; returns the batch sums of BCE and KL (0-d float32 tensors, before
        the update)."""
        b, d, mixed = x.shape[0], self.d, self.mixed
        w1, b1, w2, b2, w3, b3, w4, b4 = self.weights
        gw1, gb1, gw2, gb2, gw3, gb3, gw4, gb4 = self.grads
        h1, h1_c, enc, s, z, h2, h2_c = (t[:b] for t in (self.h1, self.h1_c, self.enc, self.s, self.z, self.h2,
                                                         self.h2_c))
        logits, sig, tmp_p, g_c = self.logits[:b], self.sig[:b], self.tmp_p[:b], self.g_c[:b]
        d_enc, dz, dh1, dh1_c, dh2, dh2_c = (t[:b] for t in (self.d_enc, self.dz, self.dh1, self.dh1_c, self.dh2,
                                                             self.dh2_c))
        tmp, ones, ones_c = self.tmp[:b], self.ones[:b], self.ones_c[:b]
        inv_b = 1.0 / b
        # ---- forward
        torch.addmm(b1, x, w1.t(), out=h1_c).relu_()
        if mixed:
            h1.copy_(h1_c)
        torch.addmm(b2, h1, w2.t(), out=enc)
        mu, logvar = enc[:, :d], enc[:, d:]
        torch.mul(logvar, 0.5, out=s).exp_()
        torch.addcmul(mu, eps, s, out=z)
        torch.addmm(b3, z, w3.t(), out=h2).relu_()
        if mixed:
            h2_c.copy_(h2)
        torch.addmm(b4, h2_c, w4.t(), out=logits)
        # ---- loss terms (reported, not differentiated): BCE = softplus(l) - x l; KL closed form; float32 sums
        torch.sigmoid(logits, out=sig)  # computed in float32 from bf16 logits too
        # sum softplus(l) = sum relu(l) + sum log1p(exp(-|l|)), and log1p(exp(-|l|)) = -log(sigmoid(|l|)) =
        # -log(0.5 + |sigmoid(l) - 0.5|), a number in [0.5, 1]: products of `group` of them stay normal floats, so
        # one log per group instead of one per pixel (softplus or log per pixel costs 2-3x more than the rest).
        torch.sub(sig, 0.5, out=tmp_p).abs_().add_(0.5)
        log_sig_abs = tmp_p.view(-1, self.group).prod(1).log_().sum()
        # relu in the logits' dtype (g_c is free until the backward), summed in float32
        relu_sum = torch.clamp(logits, min=0, out=g_c if mixed else tmp_p).sum(dtype=torch.float32)
        if mixed:  # products in bf16, summed in float32
            x_dot_l = torch.mul(x, logits, out=g_c).sum(dtype=torch.float32)
        else:
            x_dot_l = torch.dot(x.reshape(-1), logits.reshape(-1))
        bce = relu_sum - log_sig_abs - x_dot_l
        dmu, dlv = d_enc[:, :d], d_enc[:, d:]
        torch.sub(mu, prior, out=dmu)  # mu - mu_c, reused by the gradient below
        torch.mul(s, s, out=dlv)  # exp(logvar)
        inv_v = 1.0 / float(prior_var)
        kl = 0.5 * ((dlv.sum() + dmu.pow(2).sum()) * inv_v - logvar.sum()) + 0.5 * b * d * (math.log(prior_var) - 1.0)
        # ---- backward (the first layer needs no input gradient)
        g = sig.sub_(x)  # d logits * B, float32
        if mixed:
            g_c.copy_(g)
        else:
            g_c = g
        torch.addmm(gw4, g_c.t(), h2_c, beta=0, alpha=inv_b, out=gw4)
        torch.addmv(gb4, g_c.t(), ones_c, beta=0, alpha=inv_b, out=gb4)  # column sums / B
        torch.mm(g_c, w4, out=dh2_c)
        if mixed:
            dh2.copy_(dh2_c)
        torch.ops.aten.threshold_backward.grad_input(dh2, h2, 0, grad_input=dh2)  # relu'
        torch.addmm(gw3, dh2.t(), z, beta=0, alpha=inv_b, out=gw3)
        torch.addmv(gb3, dh2.t(), ones, beta=0, alpha=inv_b, out=gb3)
        torch.mm(dh2, w3, out=dz)  # dz * B
        if inv_v != 1.0:
            dlv.mul_(inv_v)
        dlv.sub_(1.0).mul_(0.5 * alpha)  # alpha (s^2 / v - 1) / 2
        torch.mul(eps, s, out=tmp).mul_(0.5).mul_(dz)
        dlv.add_(tmp)
        dmu.mul_(alpha * inv_v).add_(dz)
        torch.addmm(gw2, d_enc.t(), h1, beta=0, alpha=inv_b, out=gw2)
        torch.addmv(gb2, d_enc.t(), ones, beta=0, alpha=inv_b, out=gb2)
        torch.mm(d_enc, w2, out=dh1)
        torch.ops.aten.threshold_backward.grad_input(dh1, h1, 0, grad_input=dh1)
        if mixed:
            dh1_c.copy_(dh1)
        torch.addmm(gw1, dh1_c.t(), x, beta=0, alpha=inv_b, out=gw1)
        torch.addmv(gb1, dh1_c.t(), ones_c, beta=0, alpha=inv_b, out=gb1)
        if mixed:  # the wide layers' bf16 gradients into the float32 master weights' .grad
            for span in self.wide_spans:
                self.flat_grad[span].copy_(self.flat_grad_c[span])
        optimizer.step()
        if mixed:  # the updated master weights back into their bf16 copies
            for span in self.wide_spans:
                self.flat_c[span].copy_(self.flat[span])
        return bce, kl


def train_epochs(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor, prior_mu: torch.Tensor,
                 alpha: float, epochs: int, batch_size: int, generator: torch.Generator,
                 on_epoch: Optional[Callable[[EpochLoss], None]] = None,
                 checkpoint: Optional[Callable[[], None]] = None, prior_var: float = 1.0,
                 warmup: int = 0, precision: str = "fp32") -> list[EpochLoss]:
    """One VAE update: ``epochs`` passes of shuffled mini-batches over ``x (N, 784)`` with per-image prior means
    ``prior_mu (N, D)`` and prior variance ``prior_var`` (the prior is N(prior_mu, prior_var I)). ``warmup``:
    the KL weight rises linearly from ``alpha / warmup`` to ``alpha`` over the first ``warmup`` epochs (KL
    annealing, Bowman et al. 2016). ``checkpoint()`` is called between mini-batches (it may block to pause or
    raise to stop). ``precision``: the matrix multiplies' precision (:func:`compute_dtype`; ``"fp32"`` is exact,
    ``"bf16"`` mixed precision with float32 master weights). Raises :class:`TrainingDiverged` when an epoch's loss
    is not finite.

    Each mini-batch minimises the batch mean of ``-L`` (:func:`negative_elbo`) by one step of ``optimizer``, with
    the gradient computed by :class:`_Step` (checked against autograd in the tests).
    """
    model.train()
    n, d = x.shape[0], model.latent_dim
    batch_size = min(batch_size, n)
    on_cpu = x.device.type == "cpu"
    step = _Step(model, batch_size, compute_dtype(precision, x.device), x.device)
    x = x.to(step.xb.dtype)  # the images as GEMM operands (bf16 when mixed: pixels k/255 rounded to 8 bits), once
    losses = []
    for epoch in range(1, epochs + 1):
        epoch_alpha = alpha * min(1.0, epoch / warmup) if warmup > 0 else alpha
        perm = torch.randperm(n, generator=generator).to(x.device)
        eps = torch.randn((n, d), generator=generator if on_cpu else None, device=x.device, dtype=torch.float32)
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
def decode_numpy(model_or_decoder_state, z: np.ndarray) -> np.ndarray:
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
