"""A small residual MLP denoiser for 2-D (or any flat) data."""

from __future__ import annotations

import math

import torch
from torch import nn

from .embeddings import TimestepEmbedding


class ResidualTimeBlock(nn.Module):
    """``x + W2 act(W1 act(x) + b_t)``: one hidden layer whose pre-activation is shifted by a time bias ``b_t``.

    ``b_t`` is this block's own projection of the time embedding (see :class:`ToyMLP`).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, time_bias: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.act(x)) + time_bias))


class FourierFeatures(nn.Module):
    r"""Map each coordinate to :math:`[x, \sin(2^k \pi x), \cos(2^k \pi x)]_{k < F}`.

    An MLP on raw coordinates is biased towards smooth functions; these features let it draw the sharp,
    closely spaced modes of ``gaussian25`` (Tancik et al. 2020, "Fourier features let networks learn high
    frequency functions").  ``num_frequencies = 0`` is the identity.
    """

    def __init__(self, num_frequencies: int) -> None:
        super().__init__()
        if isinstance(num_frequencies, bool) or not isinstance(num_frequencies, int) or num_frequencies < 0:
            raise ValueError(f"num_frequencies must be an integer >= 0, got {num_frequencies!r}")
        self.num_frequencies = num_frequencies
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(num_frequencies, dtype=torch.float32), persistent=False)

    def out_features(self, in_features: int) -> int:
        return in_features * (1 + 2 * self.num_frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_frequencies == 0:
            return x
        angles = (x.unsqueeze(-1) * self.freqs).flatten(1)
        return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=1)


class ToyMLP(nn.Module):
    r"""Denoiser for flat data ``(N, data_dim)``: input layer, ``depth`` residual time blocks, output layer.

    Args:
        data_dim: dimension of the data (2 for the toy sets).
        out_dim: output dimension; ``data_dim`` by default, ``2 * data_dim`` for a learned variance
            (use ``GaussianDiffusion.model_output_channels(data_dim)``).
        hidden: width of every hidden layer.
        depth: number of residual blocks; each has its own weights (no sharing).
        fourier_features: frequencies of the input's :class:`FourierFeatures` (0: raw coordinates).

    The output layer starts at zero, so an untrained model predicts 0 (for eps: "no noise").

    Speed: the time pathway (embedding MLP and every block's projection ``b_t = P_i\,\mathrm{emb}(t)``, stacked
    as one linear layer with disjoint output slices per block) depends only on t, so it is computed once per
    *distinct* timestep in the batch (at most T rows instead of N) and gathered.  The outputs are identical.
    """

    def __init__(
        self, data_dim: int = 2, out_dim: int | None = None, hidden: int = 64, depth: int = 3, fourier_features: int = 4
    ) -> None:
        super().__init__()
        for name, value in (("data_dim", data_dim), ("hidden", hidden), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        out_dim = data_dim if out_dim is None else out_dim
        if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
            raise ValueError(f"out_dim must be a positive integer, got {out_dim!r}")
        self.data_dim, self.out_dim, self.hidden, self.depth = data_dim, out_dim, hidden, depth
        self.features = FourierFeatures(fourier_features)
        self.time_embed = TimestepEmbedding(hidden, hidden)
        self.in_fc = nn.Linear(self.features.out_features(data_dim), hidden)
        self.blocks = nn.ModuleList(ResidualTimeBlock(hidden) for _ in range(depth))
        self.time_proj = nn.Linear(hidden, hidden * depth)  # block i uses output slice i: no sharing
        self.out_fc = nn.Linear(hidden, out_dim)
        nn.init.zeros_(self.out_fc.weight)
        nn.init.zeros_(self.out_fc.bias)

    def config(self) -> dict[str, int]:
        """The constructor arguments, for checkpoints."""
        return {"data_dim": self.data_dim, "out_dim": self.out_dim, "hidden": self.hidden, "depth": self.depth,
                "fourier_features": self.features.num_frequencies}

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"ToyMLP expects input of shape (N, {self.data_dim}), got {tuple(x.shape)}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"timesteps must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        steps, index = torch.unique(t, return_inverse=True)  # a batch has at most T distinct timesteps
        # index_select, not [index]: its backward (index_add) is an order of magnitude faster on the CPU
        time_bias = torch.index_select(self.time_proj(self.time_embed(steps)), 0, index).chunk(self.depth, dim=1)
        h = self.in_fc(self.features(x))
        for block, bias in zip(self.blocks, time_bias):
            h = block(h, bias)
        return self.out_fc(torch.nn.functional.silu(h))
