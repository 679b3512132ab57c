"""Pictures: image grids, 2-D scatter plots (matplotlib) and GIF/WebP animations, for lessons and the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from . import io


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


# ------------------------------------------------------------------------------ animations
def figure_to_array(fig: plt.Figure) -> np.ndarray:
    """Render a matplotlib figure to an RGB uint8 array ``(H, W, 3)``."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


ANIMATION_FORMATS = {".gif": "GIF", ".webp": "WEBP"}


def _animation_images(frames: list[np.ndarray], *, rgb: bool) -> list[Any]:
    """Pillow images from uint8 frames ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, all of one shape."""
    from PIL import Image

    if not frames:
        raise ValueError("an animation needs at least one frame")
    shapes = {tuple(np.shape(f)) for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"all frames must have the same shape, got {sorted(shapes)[:3]}")
    first = np.asarray(frames[0])
    if first.dtype != np.uint8 or not (first.ndim == 2 or (first.ndim == 3 and first.shape[-1] in (1, 3))):
        raise ValueError(f"frames must be uint8 arrays (H, W), (H, W, 1) or (H, W, 3), got {first.dtype} {first.shape}")
    images = [Image.fromarray(np.asarray(f).squeeze(-1) if np.ndim(f) == 3 and np.shape(f)[-1] == 1 else f)
              for f in frames]
    return [im.convert("RGB") for im in images] if rgb else images


def save_animation(
    frames: list[np.ndarray], path: str | Path, *, fps: float = 10.0, hold_last: int = 10
) -> Path:
    """Write uint8 frames as a looping animation, GIF or animated WebP by the suffix of ``path`` (Pillow).

    Frames are ``(H, W)``, ``(H, W, 1)`` (grey) or ``(H, W, 3)`` (RGB), all of one shape, shown ``1/fps`` s each;
    the last one is shown ``hold_last`` frames longer (one longer frame, not copies).  WebP is written
    lossless, in RGB.  Returns the path.
    """
    path = Path(path)
    fmt = ANIMATION_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"unknown animation format {path.suffix!r} for {path.name}; accepted suffixes: "
                         f"{', '.join(ANIMATION_FORMATS)}")
    return _write_animation(frames, path, fmt, fps=fps, hold_last=hold_last)


def _write_animation(frames: list[np.ndarray], path: Path, fmt: str, *, fps: float, hold_last: int) -> Path:
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps!r}")
    if isinstance(hold_last, bool) or not isinstance(hold_last, int) or hold_last < 0:
        raise ValueError(f"hold_last must be an integer >= 0, got {hold_last!r}")
    images = _animation_images(frames, rgb=fmt == "WEBP")
    frame_ms = int(round(1000 / fps))
    durations = [frame_ms] * (len(images) - 1) + [frame_ms * (1 + hold_last)]
    extra = {"lossless": True} if fmt == "WEBP" else {"optimize": False}
    return io.atomic_write_bytes(path, io.save_to_buffer(
        lambda f: images[0].save(f, format=fmt, save_all=True, append_images=images[1:], duration=durations, loop=0,
                                 **extra)))


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 image ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` (e.g. from :func:`image_grid`) as PNG, atomically."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3)):
        raise ValueError(f"expected a uint8 image (H, W), (H, W, 1) or (H, W, 3), got {image.dtype} {image.shape}")
    pil = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)
    return io.atomic_write_bytes(path, io.save_to_buffer(lambda f: pil.save(f, format="PNG")))


def save_gif(frames: list[np.ndarray], path: str | Path, *, fps: float = 10.0, hold_last: int = 10) -> Path:
    """Write frames as a looping GIF whatever the suffix (see :func:`save_animation`, which picks by suffix)."""
    return _write_animation(frames, Path(path), "GIF", fps=fps, hold_last=hold_last)


def scatter_frames(
    points: torch.Tensor,
    titles: list[str] | None = None,
    *,
    lim: float = 3.0,
    size: float = 3.0,
    dpi: int = 80,
    reference: torch.Tensor | None = None,
) -> list[np.ndarray]:
    """One scatter-plot frame per snapshot of 2-D points ``(S, N, 2)`` (e.g. a reverse-process trajectory).

    ``reference`` (optional, ``(M, 2)``) is drawn in light grey behind every frame.
    """
    if not isinstance(points, torch.Tensor) or points.ndim != 3 or points.shape[-1] != 2:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points must be a tensor of shape (S, N, 2), got {shape}")
    if titles is not None and len(titles) != len(points):
        raise ValueError(f"need one title per frame: {len(points)} frames, {len(titles)} titles")
    fig, ax = plt.subplots(figsize=(size, size), dpi=dpi)
    if reference is not None:
        r = reference.detach().float().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=1, c="0.85")
    p = points.detach().float().cpu().numpy()
    dots = ax.scatter(p[0, :, 0], p[0, :, 1], s=1, alpha=0.6)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if titles is not None:
        ax.set_title(titles[0], fontsize=9)  # before tight_layout, so the layout leaves room for titles
    fig.tight_layout()
    frames = []
    for i in range(len(p)):
        dots.set_offsets(p[i])
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
        frames.append(figure_to_array(fig))
    plt.close(fig)
    return frames


def image_grid_frames(images: torch.Tensor, *, nrow: int = 8, scale: int = 2) -> list[np.ndarray]:
    """One image-grid frame per snapshot of images ``(S, N, C, H, W)`` in [-1, 1], upscaled ``scale`` times."""
    if not isinstance(images, torch.Tensor) or images.ndim != 5:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (S, N, C, H, W), got {shape}")
    frames = []
    for snapshot in images:
        grid = image_grid(snapshot, nrow=nrow)
        grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
        frames.append(grid[..., 0] if grid.shape[-1] == 1 else grid)
    return frames


def forward_process_frames(
    diffusion: Any, x0: torch.Tensor, steps: list[int], *, seed: int = 0, **kwargs: Any
) -> list[np.ndarray]:
    """Frames of the forward process for 2-D points ``x0`` ``(N, 2)``: ``q_sample`` at each code step in ``steps``.

    One fixed noise draw is used for every frame, so each point drifts smoothly towards N(0, I).  Keyword
    arguments go to :func:`scatter_frames`.  Save with :func:`save_animation`.
    """
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=x0.dtype)
    points = torch.stack([diffusion.q_sample(x0, int(s), noise=noise) for s in steps])
    return scatter_frames(points, [f"t = {s}" for s in steps], **kwargs)
