"""The VAE of the Serket VAE+GMM model and its objective.

Encoder 784 -> hidden (ReLU) -> (mu, logvar) of size D, decoder D -> hidden (ReLU) -> 784 logits, Bernoulli
likelihood. The objective per image ``o`` with GMM message ``mu_c`` (its class mean, 0 before any GMM update)::

    L = -alpha * KL(q(z|o) || N(mu_c, I)) + E_q[log p(o|z)]

We minimise ``-L`` averaged over the mini-batch.
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from vaegmm.model import compiled_step
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
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I) given: (B, D)."""
        return mu + eps * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D) -> Bernoulli logits (B, 784)."""
        return self.dec_out(F.relu(self.dec_hidden(z)))

    def forward(self, x: torch.Tensor, eps: Optional[torch.Tensor] = None):
        """``eps (B, D)``: the reparameterisation's noise (drawn here when None; the training loop draws it from
        the run's generator)."""
        mu, logvar = self.encode(x)
        if eps is None:
            eps = torch.randn_like(mu)
        return self.decode(self.reparameterize(mu, logvar, eps)), mu, logvar


# ------------------------------------------------------------------------------------------ loss terms
def reconstruction_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-E_q[log p(o|z)] with one sample: the Bernoulli negative log-likelihood (BCE) summed over pixels, (B,), in
    float32 for logits of any dtype. It is ``F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    .sum(1)`` (the tests' oracle), computed by :class:`BernoulliNLL` with one sigmoid per pixel."""
    return BernoulliNLL.apply(logits, x)


class BernoulliNLL(torch.autograd.Function):
    """Per row ``sum_p softplus(l_p) - x_p l_p`` (BCE with logits ``l``), with fewer passes over the logits.

    The plain form costs an ``exp`` and a ``log1p`` per pixel forward and a ``sigmoid`` per pixel backward, on a
    (500, 784) matrix per step: the largest elementwise cost of the training step. Here the forward takes one
    sigmoid per pixel and one log per ``group`` pixels: ``softplus(l) = relu(l) - log(sigmoid(|l|))`` and
    ``sigmoid(|l|) = 0.5 + |sigmoid(l) - 0.5|`` lies in [0.5, 1], so a product of ``group`` <= 98 of them stays a
    normal float32 (0.5^98 > 1e-30) and one log of the product replaces ``group`` logs. The backward is
    ``sigmoid(l) - x``. Measured in bench/speed.py; tested against autograd on the plain form (tests/test_vae.py).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(logits, x)
        b, p = logits.shape
        group = max(g for g in range(1, min(p, 98) + 1) if p % g == 0)
        l, x = logits.float(), x.float()
        s_abs = (torch.sigmoid(l) - 0.5).abs() + 0.5  # sigmoid(|l|)
        log_s_abs = s_abs.view(b, p // group, group).prod(dim=2).log().sum(dim=1)
        return (l.clamp(min=0) - x * l).sum(dim=1) - log_s_abs

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, x = ctx.saved_tensors
        d_logits = grad[:, None] * (torch.sigmoid(logits.float()) - x.float())
        return d_logits.to(logits.dtype), None


def kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor, prior_mu: torch.Tensor | float = 0.0,
                prior_var: float = 1.0) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(prior_mu, v I)) in closed form, per row, (B,), with ``v = prior_var``
    (1 in Serket's model):

        0.5 * sum_d [ (exp(logvar_d) + (mu_d - prior_mu_d)^2) / v - 1 + log v - logvar_d ]
    """
    v = float(prior_var)
    return 0.5 * ((logvar.exp() + (mu - prior_mu).pow(2)) / v - 1.0 + math.log(v) - logvar).sum(dim=1)


def negative_elbo(logits, x, mu, logvar, prior_mu, alpha: float | torch.Tensor,
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
    ``"bf16"`` bfloat16 (mixed precision, see :func:`elbo_loss`), ``"auto"`` bfloat16 where ``device`` multiplies it
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
    float32; BENCHMARKS.md "Speed", the past measurement on another CPU). ``"auto"`` already falls back to float32
    there."""
    device = torch.device(device)
    if precision == "bf16" and device.type == "cpu" and not _cpu_has_bf16_gemm():
        return ("this CPU has no native bf16 matrix multiplies (AVX512-BF16 or AMX): bf16 is emulated and many "
                "times slower than fp32 here; use precision auto (fp32 on this CPU) or fp32")
    return None


def elbo_loss(model: VAE, x: torch.Tensor, prior_mu: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor,
              prior_var: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What one mini-batch step minimises: :func:`negative_elbo` of the model's forward pass on ``x (B, 784)``
    with noise ``eps (B, D)`` and the prior N(``prior_mu (B, D)``, ``prior_var`` I); ``alpha`` a 0-d tensor (a
    compiled step is then not compiled again when the KL weight changes). Returns (loss, mean recon, mean KL).

    Under bf16 autocast (:func:`train_epochs`, as in PyTorch's mixed-precision recipe) the Linear layers multiply
    bf16 copies of their float32 weights and inputs, accumulating in float32; the loss terms are computed in
    float32 all the same (:func:`reconstruction_nll` reads bf16 logits itself), so their sums keep float32's
    precision."""
    logits, mu, logvar = model(x, eps)
    return negative_elbo(logits, x, mu.float(), logvar.float(), prior_mu, alpha, prior_var)


@contextlib.contextmanager
def matmul_precision(dtype: torch.dtype, device: torch.device) -> Iterator[None]:
    """bf16 autocast on ``device`` (its type: CPU or CUDA) when ``dtype`` is bfloat16; nothing for float32."""
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        yield


def warm_compiled_step(latent_dim: int, hidden: int, batch_size: int, precision: str,
                       device: torch.device | str = "cpu", prior_var: float = 1.0) -> None:
    """Compile :func:`elbo_loss` and its backward for one shape now: from Inductor's on-disk cache when it holds
    them (a second or two), else compiled (20-40 s of CPU, once per machine). Runs of that shape in this process,
    and in processes forked from it (the dashboard's fork server calls this for the presets), then train at once.
    A compile that fails makes this process train eagerly (:func:`vaegmm.model.compiled_step.give_up`)."""
    device = torch.device(device)
    dtype = compute_dtype(precision, device)
    if not compiled_step.new_shape((latent_dim, hidden, batch_size, dtype, device.type, float(prior_var))):
        return
    model = VAE(latent_dim, hidden, generator=torch.Generator().manual_seed(0)).to(device)  # not the global RNG
    x = torch.zeros(batch_size, 784, dtype=dtype, device=device)
    prior_mu, eps = (torch.zeros(batch_size, latent_dim, device=device) for _ in range(2))  # two: no aliasing
    try:
        with matmul_precision(dtype, device):
            loss, _, _ = compiled_step.compiled(elbo_loss)(model, x, prior_mu, eps, torch.tensor(1.0, device=device),
                                                           float(prior_var))
        loss.backward()
    except Exception as e:  # noqa: BLE001 - whatever the compiler raised, the run goes on eagerly
        compiled_step.give_up(e)


def train_epochs(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor, prior_mu: torch.Tensor,
                 alpha: float, epochs: int, batch_size: int, generator: torch.Generator,
                 on_epoch: Optional[Callable[[EpochLoss], None]] = None,
                 checkpoint: Optional[Callable[[], None]] = None, prior_var: float = 1.0,
                 warmup: int = 0, precision: str = "fp32", compiled: bool = False) -> list[EpochLoss]:
    """One VAE update: ``epochs`` passes of shuffled mini-batches over ``x (N, 784)`` with per-image prior means
    ``prior_mu (N, D)`` and prior variance ``prior_var`` (the prior is N(prior_mu, prior_var I)). ``warmup``:
    the KL weight rises linearly from ``alpha / warmup`` to ``alpha`` over the first ``warmup`` epochs (KL
    annealing, Bowman et al. 2016). ``checkpoint()`` is called between mini-batches (it may block to pause or
    raise to stop). ``precision``: the matrix multiplies' precision (:func:`compute_dtype`; ``"fp32"`` is exact,
    ``"bf16"`` mixed precision with float32 master weights). ``compiled``: the step through ``torch.compile``
    (:mod:`vaegmm.model.compiled_step` decides when). Raises :class:`TrainingDiverged` when an epoch's loss
    is not finite.

    Each mini-batch takes one step of ``optimizer`` on :func:`elbo_loss`'s gradient (autograd).
    """
    model.train()
    n, d = x.shape[0], model.latent_dim
    batch_size = min(batch_size, n)
    on_cpu = x.device.type == "cpu"
    dtype = compute_dtype(precision, x.device)
    if compiled:  # compiled now unless this process has it already (MutualLearner compiles before the first update)
        for rows in {batch_size, n % batch_size or batch_size}:
            warm_compiled_step(d, model.enc_hidden.out_features, rows, precision, x.device, prior_var)
    loss_terms = compiled_step.compiled(elbo_loss) if compiled and compiled_step.works() else elbo_loss
    x = x.to(dtype)  # the images as the first multiply reads them (bf16: pixels k/255 to 8 significant bits), once
    losses = []
    for epoch in range(1, epochs + 1):
        epoch_alpha = torch.tensor(alpha * min(1.0, epoch / warmup) if warmup > 0 else alpha, device=x.device)
        perm = torch.randperm(n, generator=generator).to(x.device)
        eps = torch.randn((n, d), generator=generator if on_cpu else None, device=x.device, dtype=torch.float32)
        recon_sum = kl_sum = 0.0
        for start in range(0, n, batch_size):
            if checkpoint is not None:
                checkpoint()
            idx = perm[start:start + batch_size]
            # index_select, not x[idx]: the same rows, ~5x faster (advanced indexing's general path)
            with matmul_precision(dtype, x.device):
                loss, recon, kl = loss_terms(model, x.index_select(0, idx), prior_mu.index_select(0, idx),
                                             eps[start:start + batch_size], epoch_alpha, prior_var)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            recon_sum = recon_sum + recon.detach() * idx.shape[0]
            kl_sum = kl_sum + kl.detach() * idx.shape[0]
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
