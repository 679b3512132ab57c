"""Time embeddings shared by every denoiser (the toy MLP now, the UNet later)."""

from __future__ import annotations

import math

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    r"""Sinusoidal embedding of integer timesteps, as in the paper's code (Transformer positional encoding).

    For ``half = dim // 2`` frequencies :math:`\omega_i = \text{max\_period}^{-i/(\text{half}-1)}`:
    :math:`[\sin(t\,\omega_0), \dots, \sin(t\,\omega_{\text{half}-1}), \cos(t\,\omega_0), \dots]`, zero-padded
    to ``dim`` when odd.  Returns float32 of shape ``(N, dim)``.
    """
    if t.ndim != 1:
        raise ValueError(f"timesteps must have shape (N,), got {tuple(t.shape)}")
    if dim < 4:
        raise ValueError(f"embedding dim must be at least 4, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return nn.functional.pad(emb, (0, 1)) if dim % 2 else emb


class TimestepEmbedding(nn.Module):
    """Sinusoidal embedding followed by a two-layer MLP: ``Linear(dim, out) -> SiLU -> Linear(out, out)``.

    The UNet uses ``dim = ch`` and ``out = 4 * ch`` (the paper's code); the toy MLP uses its hidden width.
    """

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # In the MLP's dtype, so a float64 (or half) model works; autocast still picks its own precision.
        return self.mlp(timestep_embedding(t, self.dim).to(self.mlp[0].weight.dtype))
