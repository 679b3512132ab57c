"""Pictures: image grids and 2-D scatter plots (matplotlib), shared by lessons and the command line."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.utils import make_grid


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """Tile images in [-1, 1], shape ``(N, C, H, W)``, into one uint8 array ``(H', W', C)`` (C = 1 or 3)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (N, 1 or 3, H, W), got {shape}")
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=padding, pad_value=1.0)
    grid = ((grid + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return grid[..., :1] if images.shape[1] == 1 else grid


def show_images(
    images: torch.Tensor, nrow: int = 8, *, ax: plt.Axes | None = None, title: str | None = None, **kwargs: Any
) -> plt.Axes:
    """Show a grid of images in [-1, 1] on ``ax`` (a new figure if None); returns the axes."""
    grid = image_grid(images, nrow=nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=kwargs.pop("figsize", (6, 6)))
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=255, **kwargs)
    else:
        ax.imshow(grid, **kwargs)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def scatter_2d(
    points: torch.Tensor,
    *,
    ax: plt.Axes | None = None,
    title: str | None = None,
    lim: float | None = 3.0,
    s: float = 1.0,
    **kwargs: Any,
) -> plt.Axes:
    """Scatter 2-D points, shape ``(N, 2)``, with equal axes; returns the axes."""
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != 2:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points must be a tensor of shape (N, 2), got {shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    p = points.detach().float().cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=kwargs.pop("alpha", 0.5), **kwargs)
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    if title:
        ax.set_title(title)
    return ax
