"""The naive reference VAE update for ``bench/speed.py``: the model and loop written the plain way, as in
pytorch/examples ``vae/main.py`` (separate ``fc21``/``fc22`` heads for mu and logvar, sigmoid + ``binary_cross_entropy``,
loss summed over the batch, default float32 ``torch.optim.Adam``, shuffled mini-batches from a ``DataLoader`` or
a Python loop, nothing tuned). Same sizes and objective as ours, with the per-image prior means of the GMM.

It is a timing reference only; it is not used by the package.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


class NaiveVAE(nn.Module):
    def __init__(self, latent_dim: int = 18, hidden: int = 128, n_pixels: int = 784):
        super().__init__()
        self.fc1 = nn.Linear(n_pixels, hidden)
        self.fc21 = nn.Linear(hidden, latent_dim)
        self.fc22 = nn.Linear(hidden, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden)
        self.fc4 = nn.Linear(hidden, n_pixels)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar, prior_mu, alpha):
    # BCE + alpha * KL(N(mu, sigma^2) || N(prior_mu, I)), summed over the batch
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = 0.5 * torch.sum(logvar.exp() + (mu - prior_mu).pow(2) - 1 - logvar)
    return bce + alpha * kld


def train_naive(model: NaiveVAE, optimizer, x: torch.Tensor, prior_mu: torch.Tensor, alpha: float, epochs: int,
                batch_size: int, loader: str = "dataloader") -> float:
    """``epochs`` epochs of the plain loop; ``loader``: ``"dataloader"`` (``DataLoader(TensorDataset, shuffle=True)``,
    as pytorch/examples) or ``"loop"`` (a Python loop over slices of a ``randperm``). Returns the last epoch's
    mean loss per image."""
    model.train()
    n = x.shape[0]
    if loader == "dataloader":
        data = DataLoader(TensorDataset(x, prior_mu), batch_size=batch_size, shuffle=True)
    for _ in range(epochs):
        train_loss = 0.0
        if loader == "dataloader":
            batches = data
        else:
            perm = torch.randperm(n)
            batches = ((x[perm[i:i + batch_size]], prior_mu[perm[i:i + batch_size]]) for i in range(0, n, batch_size))
        for xb, pb in batches:
            optimizer.zero_grad()
            recon, mu, logvar = model(xb)
            loss = loss_function(recon, xb, mu, logvar, pb, alpha)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
    return train_loss / n
