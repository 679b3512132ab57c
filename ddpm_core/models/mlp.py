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


class GaussianFourierFeatures(nn.Module):
    r"""Map ``x`` to :math:`[x, \sin(2\pi Bx), \cos(2\pi Bx)]` with a fixed random :math:`B \sim \mathcal N(0, \sigma^2)`.

    The Gaussian random Fourier features of Tancik et al. (2020).  :class:`FourierFeatures` uses frequencies along
    the coordinate axes only, so a network built on it prefers functions that vary along x or along y (lesson 04
    shows the "+" and grid lines it leaves in toy samples); the rows of ``B`` point in random directions, and the
    kernel of the map, :math:`\frac1m\sum_j \cos(2\pi b_j^\top(x - y))`, tends to
    :math:`\exp(-2\pi^2\sigma^2\lVert x - y\rVert^2)` as ``m`` grows: no direction is preferred.

    ``B`` (shape ``(num_features, in_features)``) is drawn from its own generator seeded by ``seed``, so it does
    not depend on (or disturb) the global random state; it is a buffer, saved in the ``state_dict`` and never
    trained.  ``num_features = 0`` is the identity.
    """

    def __init__(self, in_features: int, num_features: int, scale: float, seed: int = 0) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("num_features", num_features), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "in_features" else 0):
                bound = ">= 1" if name == "in_features" else ">= 0"
                raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        self.in_features, self.num_features, self.scale, self.seed = in_features, num_features, float(scale), seed
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("B", float(scale) * torch.randn(num_features, in_features, generator=generator))

    def out_features(self, in_features: int) -> int:
        if in_features != self.in_features:
            raise ValueError(f"these features were drawn for {self.in_features} inputs, not {in_features}")
        return in_features + 2 * self.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_features == 0:
            return x
        angles = 2 * math.pi * (x @ self.B.T)
        return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=1)


FOURIER_KINDS = ("dyadic", "gaussian")


def check_fourier_kind(kind: str, scale: float, what: str = "") -> None:
    """Refuse an unknown ``fourier_kind`` or a ``fourier_scale`` that is not a positive finite number (ValueError)."""
    if kind not in FOURIER_KINDS:
        raise ValueError(f"unknown {what}fourier_kind {kind!r}; accepted: {', '.join(FOURIER_KINDS)}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{what}fourier_scale must be a positive finite number, got {scale!r}")


class ToyMLP(nn.Module):
    r"""Denoiser for flat data ``(N, data_dim)``: input layer, ``depth`` residual time blocks, output layer.

    Args:
        data_dim: dimension of the data (2 for the toy sets).
        out_dim: output dimension; ``data_dim`` by default, ``2 * data_dim`` for a learned variance
            (use ``GaussianDiffusion.model_output_channels(data_dim)``).
        hidden: width of every hidden layer.
        depth: number of residual blocks; each has its own weights (no sharing).
        fourier_features: for ``fourier_kind="dyadic"``, the frequencies per coordinate of the input's
            :class:`FourierFeatures`; for ``"gaussian"``, ``data_dim * fourier_features`` random frequency vectors
            of :class:`GaussianFourierFeatures` (the same input width either way).  0: raw coordinates.
        fourier_kind: ``"dyadic"`` (axis-aligned :math:`2^k\pi`, the default, as in every checkpoint saved before
            this option existed) or ``"gaussian"`` (random directions, no preferred axis).
        fourier_scale: the standard deviation :math:`\sigma` of the Gaussian frequencies (ignored for dyadic).
        fourier_seed: the seed of the Gaussian frequency matrix (it is also saved in the ``state_dict``).

    The output layer starts at zero, so an untrained model predicts 0 (for eps: "no noise").

    Speed: the time pathway (embedding MLP and every block's projection ``b_t = P_i\,\mathrm{emb}(t)``, stacked
    as one linear layer with disjoint output slices per block) depends only on t, so it is computed once per
    *distinct* timestep in the batch (at most T rows instead of N) and gathered.  The outputs are identical.
    """

    def __init__(
        self, data_dim: int = 2, out_dim: int | None = None, hidden: int = 64, depth: int = 3, fourier_features: int = 4,
        fourier_kind: str = "dyadic", fourier_scale: float = 1.0, fourier_seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("data_dim", data_dim), ("hidden", hidden), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        out_dim = data_dim if out_dim is None else out_dim
        if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
            raise ValueError(f"out_dim must be a positive integer, got {out_dim!r}")
        self.data_dim, self.out_dim, self.hidden, self.depth = data_dim, out_dim, hidden, depth
        check_fourier_kind(fourier_kind, fourier_scale)
        if isinstance(fourier_features, bool) or not isinstance(fourier_features, int) or fourier_features < 0:
            raise ValueError(f"fourier_features must be an integer >= 0, got {fourier_features!r}")
        self.fourier_features, self.fourier_kind = fourier_features, fourier_kind
        self.fourier_scale, self.fourier_seed = float(fourier_scale), fourier_seed
        self.features: FourierFeatures | GaussianFourierFeatures
        if fourier_kind == "dyadic":
            self.features = FourierFeatures(fourier_features)
        else:
            self.features = GaussianFourierFeatures(data_dim, data_dim * fourier_features, fourier_scale, fourier_seed)
        self.time_embed = TimestepEmbedding(hidden, hidden)
        self.in_fc = nn.Linear(self.features.out_features(data_dim), hidden)
        self.blocks = nn.ModuleList(ResidualTimeBlock(hidden) for _ in range(depth))
        self.time_proj = nn.Linear(hidden, hidden * depth)  # block i uses output slice i: no sharing
        self.out_fc = nn.Linear(hidden, out_dim)
        nn.init.zeros_(self.out_fc.weight)
        nn.init.zeros_(self.out_fc.bias)

    def config(self) -> dict[str, int | float | str]:
        """The constructor arguments, for checkpoints (``ToyMLP(**config)`` rebuilds the model; a config saved
        before ``fourier_kind`` existed has no such key and rebuilds as dyadic, which is what it was)."""
        return {"data_dim": self.data_dim, "out_dim": self.out_dim, "hidden": self.hidden, "depth": self.depth,
                "fourier_features": self.fourier_features, "fourier_kind": self.fourier_kind,
                "fourier_scale": self.fourier_scale, "fourier_seed": self.fourier_seed}

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
