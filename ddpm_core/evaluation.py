r"""Sample quality measured the way the papers measure it: FID, KID, Inception score, precision/recall,
density/coverage, a memorisation check, and bits/dim on held-out data.

**What is compared with what.** Every metric compares two sets of *features*: those of generated samples and
those of real images (a reference split).  Images enter as uint8, quantised exactly as a PNG file would hold them
(:func:`ddpm_core.data.from_unit_range`), so a metric computed from tensors and one computed from saved files agree.

**Features** (:data:`FEATURES`):

* ``"classifier"``: the 128-d penultimate layer (and the 10 logits) of the shipped MNIST classifier
  (``data/pretrained/mnist_classifier.pt``), offline, on a CPU.  An FID on these features is a
  **classifier-feature FID** (FID_clf); it is *not* comparable with the papers' Inception FID.
* ``"inception"``: Inception-v3 as the papers use it (torch-fidelity's ``inception-v3-compat``: the TensorFlow
  2015 weights, TF-compatible bilinear resize to 299x299, 2048-d pool features, 1008 logits).  The weights are
  downloaded into ``<data>/inception/`` where there is a network, or read from a path you give.

**Metrics** (torch-fidelity 0.4 computes FID, KID, IS and precision/recall from the features; density and
coverage, which it lacks, are written here).  All of them are tested against independent float64 computations in
``tests/test_evaluation.py``.

* FID (Heusel et al. 2017): :math:`\|\mu_1-\mu_2\|^2 + \operatorname{tr}(\Sigma_1+\Sigma_2-2(\Sigma_1\Sigma_2)^{1/2})`
  between Gaussian fits of the two feature sets.  Biased upwards at small N: papers use N = 50,000.
* KID (Binkowski et al. 2018): the unbiased estimate of MMD^2 with the kernel
  :math:`k(x,y)=(x^\top y/d+1)^3`, mean and standard deviation over random subsets.  Unbiased at any N.
* Inception score (Salimans et al. 2016): :math:`\exp \mathbb{E}_x \mathrm{KL}(p(y|x)\,\|\,p(y))`, over 10 splits.
* Improved precision and recall (Kynkaanniemi et al. 2019), k = 3: the share of generated samples inside the
  real data's k-NN balls (precision), and of real images inside the generated samples' balls (recall).
* Density and coverage (Naeem et al. 2020), k = 5.
* Memorisation (after Carlini et al. 2023): a sample counts as a copy when its nearest training image is
  closer than ``alpha`` (1/3) times the mean distance to its next ``neighbours`` (50) training images, in pixel
  space.  Held-out real images give the rate at which this happens without copying.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from . import data as data_module
from . import io

FEATURES = ("classifier", "inception")
METRICS = ("fid", "kid", "is", "pr", "dc", "memorisation")
REFERENCES = ("mnist-train", "mnist-test", "cifar10-train", "cifar10-test")
PR_K = 3                  # Kynkaanniemi et al. 2019
DC_K = 5                  # Naeem et al. 2020
KID_SUBSETS = 100         # torch-fidelity's and the KID paper's defaults
KID_SUBSET_SIZE = 1000
CLASSIFIER_FEATURE_SCALE = 0.1
SEED = 2020               # torch-fidelity's default seed for KID subsets and IS splits
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_HASH_PREFIX = "6726825d"  # the sha256 prefix in the file name, checked on download
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
_DOWNLOAD_TIMEOUT_S = 60.0


# ============================================================================ images in, uint8 out
def to_uint8(images: torch.Tensor, what: str = "images") -> torch.Tensor:
    """``(N, C, H, W)`` uint8 images, from uint8 or from floats in [-1, 1] (rounded as a PNG would store them)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor of shape (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{what}: expected shape (N, C, H, W) with C = 1 or 3, got {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError(f"{what}: no images")
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise TypeError(f"{what}: expected uint8 (0..255) or floats in [-1, 1], got {images.dtype}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{what}: holds NaN or inf values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1.001 or hi > 1.001:
        raise ValueError(f"{what}: floats must lie in [-1, 1], found [{lo:.3g}, {hi:.3g}] (images on a 0..255 scale "
                         "should be uint8; on a 0..1 scale map them with 2 * x - 1)")
    return data_module.from_unit_range(images)


def match_to_reference(samples: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``samples`` cropped to the reference's size where that is the MNIST padding (32 -> 28), else checked equal.

    The course's MNIST models draw 32x32 digits (28x28 MNIST padded with 2 background pixels); the reference
    splits are 28x28.  Any other difference in size or channel count is refused.
    """
    if samples.shape[1] != reference.shape[1]:
        raise ValueError(f"samples have {samples.shape[1]} channel(s), the reference has {reference.shape[1]}: "
                         "compare images of the same kind (grey digits with MNIST, colour with CIFAR-10)")
    hs, hr = samples.shape[-1], reference.shape[-1]
    if samples.shape[-2:] == reference.shape[-2:]:
        return samples
    if (hs, hr) == (32, 28) and samples.shape[-2] == 32:
        return samples[..., 2:30, 2:30]
    raise ValueError(f"samples are {tuple(samples.shape[-2:])}, the reference {tuple(reference.shape[-2:])}: "
                     "accepted are equal sizes, or 32x32 samples against a 28x28 reference (cropped)")


def load_images(path: str | os.PathLike, what: str = "--samples") -> torch.Tensor:
    """Images from an ``.npz`` file (``arr_0`` or ``images``: uint8, NHWC or NCHW, as ``sample`` writes) or a
    folder of PNG files, as ``(N, C, H, W)`` uint8."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path}: no such file or folder (give an .npz file or a folder of PNGs)")
    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
        if not files:
            raise FileNotFoundError(f"{what} {path}: the folder holds no .png files")
        arrays = [np.asarray(Image.open(p)) for p in files]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"{what} {path}: the PNG files differ in size/channels: {sorted(shapes)[:4]}")
        x = np.stack(arrays)
        x = x[..., None] if x.ndim == 3 else x
    elif path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as f:
            key = "arr_0" if "arr_0" in f.files else "images" if "images" in f.files else None
            if key is None:
                raise ValueError(f"{what} {path}: the .npz has no 'arr_0' or 'images' array (it has {f.files})")
            x = f[key]
    else:
        raise ValueError(f"{what} {path}: accepted are an .npz file or a folder of PNG files, not "
                         f"{'a ' + repr(path.suffix) + ' file' if path.suffix else 'a file without a suffix'}")
    if x.ndim != 4:
        raise ValueError(f"{what} {path}: expected 4-d images (N, H, W, C) or (N, C, H, W), got shape {x.shape}")
    if x.dtype != np.uint8:
        raise ValueError(f"{what} {path}: expected uint8 pixels (0..255), got {x.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):
        t = t.permute(0, 3, 1, 2)
    return to_uint8(t.contiguous(), f"{what} {path}")


@dataclass
class Reference:
    """A reference split: uint8 images, labels where known, and a name for the cache and the report."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor | None = None


def load_reference(name: str | os.PathLike, *, root: str | os.PathLike | None = None, download: bool = False,
                   verbose: bool = True) -> Reference:
    """A named reference split (:data:`REFERENCES`) or a file/folder (see :func:`load_images`).

    ``mnist-*`` use :func:`ddpm_core.data.load_mnist` (its offline fallback: 4,500 train / 500 held out);
    ``cifar10-*`` need CIFAR-10 in the data folder (or ``download=True``), else ``FileNotFoundError``.
    """
    key = str(name)
    if key in ("mnist-train", "mnist-test"):
        ds = data_module.load_mnist(root, train=key.endswith("train"), download=download, verbose=verbose)
        return Reference(f"{key}-{ds.source}-{len(ds)}", data_module.from_unit_range(ds.images), ds.labels)
    if key in ("cifar10-train", "cifar10-test"):
        ds = data_module.load_cifar10(root, train=key.endswith("train"), download=download)
        return Reference(f"{key}-{len(ds)}", data_module.from_unit_range(ds.images), ds.labels)
    path = Path(key)
    if not path.exists():
        raise FileNotFoundError(f"reference {key!r}: not a named split ({', '.join(REFERENCES)}) and no such file "
                                "or folder")
    images = load_images(path, "--reference")
    return Reference(f"file-{_digest(images)[:16]}", images)


# ============================================================================ feature extractors
class ClassifierFeatures(torch.nn.Module):
    """The shipped MNIST classifier as a feature extractor: 128-d penultimate features and 10 logits.

    Input: uint8 ``(N, 1, 28 or 32, 28 or 32)``.  The features are the penultimate activations times
    :data:`CLASSIFIER_FEATURE_SCALE` (0.1), which brings their mean square per dimension (27.7 on the training
    digits) to about 0.28, the scale of Inception's pool features that KID's kernel :math:`(x^\top y/d + 1)^3`
    was made for; unscaled, the kernel's cube makes KID's variance swamp its mean.  FID scales with the square.
    Scores are labelled FID_clf/KID_clf: not comparable with Inception numbers.
    """

    name = f"mnist-classifier-128-x{CLASSIFIER_FEATURE_SCALE}"  # the scale is part of what caches are keyed by

    def __init__(self, classifier: torch.nn.Module | None = None) -> None:
        super().__init__()
        if classifier is None:
            from .pretrained import load_mnist_classifier

            classifier = load_mnist_classifier()
        self.classifier = classifier.eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dtype != torch.uint8 or images.shape[1] != 1:
            raise ValueError(f"the MNIST classifier's features need grey uint8 images (N, 1, H, W), got "
                             f"{images.dtype} {tuple(images.shape)}")
        x = data_module.to_unit_range(images)
        if x.shape[-1] == 32:
            x = x[..., 2:30, 2:30]
        net = self.classifier.net
        features = net[:-1](x)
        return {"features": features * CLASSIFIER_FEATURE_SCALE, "logits": net[-1](features)}


class InceptionFeatures(torch.nn.Module):
    """Inception-v3 as the papers use it (torch-fidelity's ``inception-v3-compat``): 2048-d pool features and the
    1008 unbiased logits.  Grey images are repeated to three channels."""

    name = "inception-v3-compat"

    def __init__(self, weights: str | os.PathLike | None = None, *, download: bool = True) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = inception_weights(weights, download=download)
        # Loaded once safely first (weights_only=True): torch-fidelity's own load below is not weights-only.
        io.load_checkpoint(path, what="Inception-v3 weights file", required=("fc.weight",), quiet=True)
        self.weights_checksum = _file_digest(path)
        self.net = FeatureExtractorInceptionV3(self.name, ["2048", "logits_unbiased"],
                                               feature_extractor_weights_path=str(path))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dtype != torch.uint8:
            raise ValueError(f"Inception features need uint8 images, got {images.dtype}")
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        features, logits = self.net(images)
        return {"features": features, "logits": logits}


def inception_weights(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The Inception-v3 weights file: ``path`` if given, else ``<data>/inception/<file>``, downloaded there
    (sha256-checked) if missing and ``download``.  Offline and absent: ``FileNotFoundError`` saying what to do."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Inception weights {path}: no such file")
        return path
    target = data_module.default_data_dir() / "inception" / INCEPTION_FILE
    if target.is_file():
        return target
    hint = (f"Inception-v3 weights are not in {target.parent} and could not be downloaded (no network?). "
            f"Download them with `python -m ddpm_core evaluate --download-inception` on a machine with internet "
            f"(or fetch {INCEPTION_URL} into that folder), or pass --inception-weights PATH")
    if not download:
        raise FileNotFoundError(hint)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with data_module._socket_timeout(_DOWNLOAD_TIMEOUT_S):  # a closed network fails fast
            torch.hub.download_url_to_file(INCEPTION_URL, str(tmp), hash_prefix=INCEPTION_HASH_PREFIX,
                                           progress=True)
        os.replace(tmp, target)
    except Exception as err:  # noqa: BLE001 - any network or mirror failure means "not available here"
        tmp.unlink(missing_ok=True)
        raise FileNotFoundError(hint) from err
    return target


def feature_extractor(kind: str = "classifier", *, inception_weights_path: str | os.PathLike | None = None,
                      download: bool = True) -> torch.nn.Module:
    """A feature extractor by name (:data:`FEATURES`)."""
    if kind == "classifier":
        return ClassifierFeatures()
    if kind == "inception":
        return InceptionFeatures(inception_weights_path, download=download)
    raise ValueError(f"unknown features {kind!r}; accepted: {', '.join(FEATURES)}")


def _digest(images: torch.Tensor) -> str:
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def extractor_id(extractor: torch.nn.Module) -> str:
    """What a feature cache is keyed by: the extractor's name and a checksum of its weights."""
    if hasattr(extractor, "weights_checksum"):
        return f"{extractor.name}-{extractor.weights_checksum[:16]}"
    return f"{extractor.name}-{io.checksum(extractor.state_dict())[:16]}"


@torch.no_grad()
def extract_features(images: torch.Tensor, extractor: torch.nn.Module, *, batch_size: int = 250,
                     device: str | torch.device = "cpu", progress: bool = False,
                     cache_dir: str | os.PathLike | None = None, cache_key: str | None = None) -> dict[str, torch.Tensor]:
    """Features and logits (float64, on the CPU) of uint8 ``images``, in batches, with a progress bar.

    With ``cache_dir`` and ``cache_key`` (e.g. the reference's name) the result is stored once as a checksummed
    file keyed by the key, the extractor's id and a digest of the images, and read back next time.
    """
    from tqdm.auto import tqdm

    images = to_uint8(images)
    cache = None
    if cache_dir is not None and cache_key is not None:
        cache = Path(cache_dir) / f"{cache_key}-{extractor_id(extractor)}-{_digest(images)[:16]}.pt"
        if cache.is_file():
            try:
                return io.load_checkpoint(cache, what="feature cache", required=("features",))
            except (ValueError, OSError):
                pass  # a damaged cache is recomputed
    extractor = extractor.to(device).eval()
    parts: dict[str, list[torch.Tensor]] = {}
    for i in tqdm(range(0, len(images), batch_size), disable=not progress, desc=f"features ({extractor.name})",
                  unit="batch"):
        out = extractor(images[i:i + batch_size].to(device))
        for k, v in out.items():
            parts.setdefault(k, []).append(v.double().cpu())
    result = {k: torch.cat(v) for k, v in parts.items()}
    if cache is not None:
        io.save_checkpoint(result, cache)
    return result


# ============================================================================ the metrics, on features
def _check_features(f: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(f, torch.Tensor) or f.ndim != 2:
        raise ValueError(f"{what}: expected a 2-d tensor of features (N, D), got "
                         f"{tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__}")
    if not torch.isfinite(f).all():
        raise ValueError(f"{what}: features hold NaN or inf values")
    return f.double().cpu()


def _check_pair(f1: torch.Tensor, f2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f1, f2 = _check_features(f1, "generated features"), _check_features(f2, "reference features")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"the two feature sets differ in dimension: {f1.shape[1]} vs {f2.shape[1]}")
    return f1, f2


def gaussian_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (with N - 1) of ``features`` in float64: the Gaussian fit FID compares."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    f = _check_features(features, "features")
    if len(f) < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {len(f)}")
    stats = fid_features_to_statistics(f)
    return stats["mu"], stats["sigma"]


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    r"""The Frechet distance between :math:`N(\mu_1, \Sigma_1)` and :math:`N(\mu_2, \Sigma_2)` (torch-fidelity)."""
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs "
                         f"{sigma2.shape}")
    out = fid_statistics_to_metric({"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}, verbose=False)
    return max(0.0, float(out["frechet_inception_distance"]))


def fid(generated: torch.Tensor, reference: torch.Tensor) -> float:
    """FID between two feature sets (see the module docstring)."""
    f1, f2 = _check_pair(generated, reference)
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


def kid(generated: torch.Tensor, reference: torch.Tensor, *, subsets: int = KID_SUBSETS,
        subset_size: int | None = None, seed: int = SEED) -> dict[str, float]:
    """KID: the unbiased MMD^2 with the cubic polynomial kernel, mean and std over ``subsets`` random subsets.

    ``subset_size`` None: 1,000 (the papers'), or the smaller set's size when there are fewer samples.
    """
    from torch_fidelity.metric_kid import kid_features_to_metric

    f1, f2 = _check_pair(generated, reference)
    size = _kid_subset_size(subset_size, len(f1), len(f2))
    if not isinstance(subsets, int) or subsets < 1:
        raise ValueError(f"KID subsets must be a positive integer, got {subsets!r}")
    out = kid_features_to_metric(f1, f2, kid_subsets=subsets, kid_subset_size=size, kid_kernel="poly",
                                 kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
                                 rng_seed=seed, verbose=False)
    return {"kid": out["kernel_inception_distance_mean"], "kid_std": out["kernel_inception_distance_std"],
            "kid_subset_size": size, "kid_subsets": subsets}


def _kid_subset_size(subset_size: int | None, n: int, m: int) -> int:
    """KID's subset size for ``n`` generated and ``m`` reference features: 1,000 or the smaller set by default."""
    smallest = min(n, m)
    size = min(KID_SUBSET_SIZE, smallest) if subset_size is None else subset_size
    if not isinstance(size, int) or isinstance(size, bool) or size < 2:
        raise ValueError(f"KID subset size must be an integer >= 2, got {size!r}")
    if size > smallest:
        raise ValueError(f"KID subset size {size} is larger than the smaller set ({n} generated, {m} reference): "
                         f"pass more samples or a subset size (--kid-subset-size) <= {smallest}")
    return size


def inception_score(logits: torch.Tensor, *, splits: int = 10, seed: int = SEED) -> dict[str, float]:
    """Inception score from class logits: exp(E KL(p(y|x) || p(y))), mean and std over ``splits``."""
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = _check_features(logits, "logits")
    if len(logits) < splits:
        raise ValueError(f"the Inception score needs at least {splits} samples (one per split), got {len(logits)}")
    out = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=seed)
    return {"is": out["inception_score_mean"], "is_std": out["inception_score_std"]}


def _check_k(k: int, f1: torch.Tensor, f2: torch.Tensor, what: str) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{what}: k must be a positive integer, got {k!r}")
    if min(len(f1), len(f2)) <= k:
        raise ValueError(f"{what} with k = {k} needs more than {k} samples in each set, got {len(f1)} generated "
                         f"and {len(f2)} reference")


def precision_recall(generated: torch.Tensor, reference: torch.Tensor, *, k: int = PR_K) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN balls, k = 3 (torch-fidelity)."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    f1, f2 = _check_pair(generated, reference)
    _check_k(k, f1, f2, "precision/recall")
    out = prc_features_to_metric(f1, f2, prc_neighborhood=k, prc_batch_size=10000, save_cpu_ram=False,
                                 verbose=False)
    return {"precision": out["precision"], "recall": out["recall"]}


def _kth_neighbour_distance(f: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row."""
    return torch.cdist(f, f).kthvalue(k + 1, dim=1).values


def density_coverage(generated: torch.Tensor, reference: torch.Tensor, *, k: int = DC_K) -> dict[str, float]:
    r"""Density and coverage (Naeem et al. 2020) with the real images' k-NN balls :math:`B(X_i, r_i)`, k = 5.

    density :math:`= \frac{1}{kM}\sum_j \sum_i 1[Y_j \in B(X_i, r_i)]` (about 1 when samples follow the data);
    coverage :math:`= \frac{1}{N}\sum_i 1[\exists j: Y_j \in B(X_i, r_i)]` (the share of real balls reached).
    """
    fake, real = _check_pair(generated, reference)
    _check_k(k, fake, real, "density/coverage")
    radii = _kth_neighbour_distance(real, k)
    inside = torch.cdist(real, fake) <= radii[:, None]  # (N real, M fake)
    return {"density": float(inside.sum()) / (k * len(fake)), "coverage": float(inside.any(dim=1).double().mean())}


def nearest_neighbours(queries: torch.Tensor, keys: torch.Tensor, k: int, *, batch_size: int = 1000
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances and indices of each query's ``k`` nearest keys (float64, in batches)."""
    q, kk = queries.flatten(1).double(), keys.flatten(1).double()
    dists, idx = [], []
    for i in range(0, len(q), batch_size):
        d = torch.cdist(q[i:i + batch_size], kk)
        v, j = d.topk(k, dim=1, largest=False)
        dists.append(v)
        idx.append(j)
    return torch.cat(dists), torch.cat(idx)


def memorisation(samples: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor | None = None, *,
                 alpha: float = 1 / 3, neighbours: int = 50) -> dict[str, Any]:
    """How many samples are near-copies of a training image (pixel space, images as uint8 -> [-1, 1]).

    A sample is a copy when ``d_1 < alpha * mean(d_2 .. d_{neighbours+1})``: its nearest training image is much
    closer than the training images around it (Carlini et al. 2023's criterion).  ``held_out`` real images,
    which cannot be copies, give the rate at which the criterion fires anyway.  Returns the shares, the median
    nearest-neighbour distances, and each sample's nearest training index and distance.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    train = to_uint8(train, "training images")
    samples = match_to_reference(to_uint8(samples, "samples"), train)
    if neighbours < 1 or len(train) <= neighbours:
        raise ValueError(f"the memorisation check needs more than {neighbours} training images, got {len(train)}")

    def scores(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d, j = nearest_neighbours(data_module.to_unit_range(x), data_module.to_unit_range(train), neighbours + 1)
        return d[:, 0], d[:, 1:].mean(1), j[:, 0]

    d1, rest, nearest = scores(samples)
    out: dict[str, Any] = {
        "memorised": float((d1 < alpha * rest).double().mean()),
        "median_nn_distance": float(d1.median()),
        "nearest_index": nearest, "nearest_distance": d1, "alpha": alpha, "neighbours": neighbours,
    }
    if held_out is not None:
        held_out = match_to_reference(to_uint8(held_out, "held-out images"), train)
        h1, hrest, _ = scores(held_out)
        out["memorised_held_out"] = float((h1 < alpha * hrest).double().mean())
        out["median_nn_distance_held_out"] = float(h1.median())
    return out


# ============================================================================ everything at once
def parse_metrics(metrics: str | Iterable[str]) -> list[str]:
    """``"fid,kid"`` or a list of names, checked against :data:`METRICS`."""
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metrics {unknown or names}; accepted: {', '.join(METRICS)}")
    return names


def evaluate(samples: torch.Tensor, reference: Reference | torch.Tensor, *, features: str = "classifier",
             metrics: str | Iterable[str] = ("fid", "kid", "pr", "dc"), extractor: torch.nn.Module | None = None,
             train: torch.Tensor | None = None, held_out: torch.Tensor | None = None,
             kid_subset_size: int | None = None, device: str | torch.device = "cpu", batch_size: int = 250,
             progress: bool = False, cache_dir: str | os.PathLike | None = None,
             inception_weights_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Every requested metric of ``samples`` (uint8 or [-1, 1] floats) against ``reference``, as one flat dict.

    ``features`` picks the extractor (:data:`FEATURES`; Inception-v3 from ``inception_weights_path`` or
    :func:`inception_weights`) unless ``extractor`` is given.  ``memorisation`` needs
    ``train`` (the model's training images) and uses ``held_out`` (default: the reference) as its baseline.
    All checks on the inputs run before any features are computed.
    """
    names = parse_metrics(metrics)
    if isinstance(reference, torch.Tensor):
        reference = Reference(f"tensor-{_digest(to_uint8(reference, 'reference'))[:16]}", to_uint8(reference))
    samples = match_to_reference(to_uint8(samples, "samples"), reference.images)
    n, m = len(samples), len(reference.images)
    if "kid" in names:
        _kid_subset_size(kid_subset_size, n, m)
    for name, k in (("pr", PR_K), ("dc", DC_K)):
        if name in names and min(n, m) <= k:
            raise ValueError(f"{name} needs more than k = {k} samples in each set, got {n} generated and {m} "
                             "reference")
    if "is" in names and n < 10:
        raise ValueError(f"the Inception score needs at least 10 samples, got {n}")
    if "fid" in names and min(n, m) < 2:
        raise ValueError(f"FID needs at least 2 samples in each set, got {n} generated and {m} reference")
    if "memorisation" in names and train is None:
        raise ValueError("the memorisation check needs the training images (train=...; on the command line "
                         "--train-reference)")
    if features not in FEATURES:
        raise ValueError(f"unknown features {features!r}; accepted: {', '.join(FEATURES)}")
    if extractor is None and any(x in names for x in ("fid", "kid", "is", "pr", "dc")):
        extractor = feature_extractor(features, inception_weights_path=inception_weights_path)

    out: dict[str, Any] = {"features": "FID_clf (the MNIST classifier's 128-d features, not Inception)"
                           if features == "classifier" else "Inception-v3 (pool3, 2048-d), the papers' FID",
                           "n_samples": n, "n_reference": m, "reference": reference.name}
    if extractor is not None:
        kw = dict(batch_size=batch_size, device=device, progress=progress)
        fg = extract_features(samples, extractor, **kw)
        fr = extract_features(reference.images, extractor, cache_dir=cache_dir, cache_key=reference.name, **kw)
        if "fid" in names:
            out["fid"] = fid(fg["features"], fr["features"])
        if "kid" in names:
            out.update(kid(fg["features"], fr["features"], subset_size=kid_subset_size))
        if "is" in names:
            out.update(inception_score(fg["logits"]))
        if "pr" in names:
            out.update(precision_recall(fg["features"], fr["features"]))
        if "dc" in names:
            out.update(density_coverage(fg["features"], fr["features"]))
    if "memorisation" in names:
        mem = memorisation(samples, train, reference.images if held_out is None else held_out)
        out.update({k: v for k, v in mem.items() if not isinstance(v, torch.Tensor)})
    return out


# ============================================================================ during training
class FIDTracker:
    """FID and KID of samples against one reference set whose features are computed once: what training-time
    evaluation (``experiment.eval_every``) runs.  Built before training starts, so a missing weights file or a
    mismatched reference fails before any step."""

    def __init__(self, reference: torch.Tensor, *, features: str = "classifier",
                 inception_weights_path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 cache_dir: str | os.PathLike | None = None, reference_name: str | None = None) -> None:
        self.reference = to_uint8(reference, "reference images")
        self.features, self.device = features, device
        self.extractor = feature_extractor(features, inception_weights_path=inception_weights_path)
        self.reference_features = extract_features(self.reference, self.extractor, device=device,
                                                   cache_dir=cache_dir, cache_key=reference_name)["features"]

    def score(self, samples: torch.Tensor) -> dict[str, float]:
        """``{"fid", "kid", "kid_std"}`` of ``samples`` (uint8, or floats in [-1, 1])."""
        samples = match_to_reference(to_uint8(samples, "samples"), self.reference)
        f = extract_features(samples, self.extractor, device=self.device)["features"]
        k = kid(f, self.reference_features)
        return {"fid": fid(f, self.reference_features), "kid": k["kid"], "kid_std": k["kid_std"]}


# ============================================================================ bits/dim on held-out data
@torch.no_grad()
def bits_per_dim(model: torch.nn.Module, diffusion: Any, images: torch.Tensor, *,
                 timesteps_subset: int | None = None, batch_size: int = 100, model_kwargs: dict[str, Any] | None = None,
                 seed: int = 0, device: str | torch.device = "cpu", progress: bool = False) -> dict[str, Any]:
    r"""The negative ELBO in bits/dim, :math:`L_T + \sum_{t>1} L_{t-1} + L_0`, on ``images`` in [-1, 1], with its terms.

    ``timesteps_subset`` None: all T terms (:meth:`GaussianDiffusion.calc_bpd_loop`, T network calls per
    batch).  An integer K: the decoder term :math:`L_0` and the prior exactly, and the sum over
    :math:`t = 2..T` estimated without bias from K timesteps per image spread evenly (a random offset for each
    image), weighted by (T - 1) / K.  The terms near t = 1 are steep, so a small K is noisy: report
    ``bpd_std_error`` with it, or use the exact loop for final numbers.  Returns ``bpd`` (the mean over images), ``prior_bpd``, ``decoder_bpd``,
    ``diffusion_bpd`` (the sum of the other terms), ``terms`` (per code timestep, the mean over images of the
    weighted terms, so that ``prior_bpd + terms.sum() == bpd``; zeros where a subset chose no image's t),
    ``timesteps`` (with a subset: the ``(N, K)`` timesteps each image used, ascending) and ``n``.
    """
    from tqdm.auto import tqdm

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError("images must be a float tensor (N, C, H, W) in [-1, 1] (convert uint8 with "
                         "ddpm_core.data.to_unit_range)")
    diffusion.check_decoder_range(images)
    T = diffusion.num_timesteps
    if timesteps_subset is not None and (not isinstance(timesteps_subset, int) or isinstance(timesteps_subset, bool)
                                         or not 1 <= timesteps_subset <= T - 1):
        raise ValueError(f"timesteps_subset must be an integer in [1, T - 1 = {T - 1}] or None, got "
                         f"{timesteps_subset!r}")
    model = model.to(device).eval()
    g = torch.Generator(device=device).manual_seed(seed)
    kwargs = model_kwargs or {}
    totals, priors, decoders, used, terms = [], [], [], [], torch.zeros(T, dtype=torch.float64)
    batches = range(0, len(images), batch_size)
    # The exact loop shows its own bar for each batch (one per network call); the subset estimate shows this one.
    calls = timesteps_subset + 1 if timesteps_subset else 0
    bar = tqdm(total=len(batches) * calls, desc="bits/dim", unit="net call", disable=not progress or not calls)
    for i in batches:
        x0 = images[i:i + batch_size].to(device)
        kw = {k: (v[i:i + batch_size].to(device) if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
        if timesteps_subset is None:
            exact = diffusion.calc_bpd_loop(model, x0, clip_denoised=True, model_kwargs=kw, generator=g,
                                            progress=progress)
            vb, prior = exact["vb"].double().cpu(), exact["prior_bpd"].double().cpu()
        else:
            vb, prior, steps = _subset_terms(model, diffusion, x0, kw, timesteps_subset, g, bar)
            used.append(steps)
        totals.append(vb.sum(1) + prior)
        priors.append(prior)
        decoders.append(vb[:, 0])
        terms += vb.sum(0)
    bar.close()
    total, prior, decoder = torch.cat(totals), torch.cat(priors), torch.cat(decoders)
    if not torch.isfinite(total).all():
        raise io.NonFiniteError("bits/dim came out non-finite: the model's outputs hold NaN or inf")
    n = len(total)
    return {"bpd": float(total.mean()), "bpd_std_error": float(total.std() / n ** 0.5) if n > 1 else float("nan"),
            "prior_bpd": float(prior.mean()), "decoder_bpd": float(decoder.mean()),
            "diffusion_bpd": float(total.mean() - prior.mean() - decoder.mean()), "terms": terms / n, "n": n,
            "timesteps_subset": timesteps_subset, "timesteps": torch.cat(used) if used else None}


def _subset_terms(model: torch.nn.Module, diffusion: Any, x0: torch.Tensor, kw: dict[str, Any], k: int,
                  g: torch.Generator, bar: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``(N, T)`` weighted terms of :func:`bits_per_dim`'s estimate from K timesteps per image, the prior, and
    the ``(N, K)`` timesteps used."""
    T, n = diffusion.num_timesteps, len(x0)
    # Code t = 1..T-1 in K evenly spaced strata, with a random offset of its own for every image: each t is chosen
    # with probability K / (T - 1), so (T - 1) / K times the sum of the chosen terms is an unbiased estimate of
    # their total.  Independent offsets per image keep the mean over images from hanging on one draw of the steep
    # terms near t = 1.
    offsets = torch.rand(n, generator=g, device=g.device).cpu().double()
    weight = (T - 1) / k
    vb = torch.zeros(n, T, dtype=torch.float64)
    rows, used = torch.arange(n), []
    for j in [None, *range(k)]:
        steps = torch.zeros(n, dtype=torch.long) if j is None else 1 + ((j + offsets) * (T - 1) / k).long()
        if j is not None:
            used.append(steps)
        t = steps.to(x0.device)
        noise = torch.randn(x0.shape, generator=g, device=g.device, dtype=x0.dtype)
        x_t = diffusion.q_sample(x0, t, noise=noise)
        out = diffusion.vb_terms_bpd(model(x_t, t, **kw), x0, x_t, t, clip_denoised=True, check_range=False)
        vb[rows, steps] = out["output"].double().cpu() * (1.0 if j is None else weight)
        bar.update(1)
    return vb, diffusion.prior_bpd(x0).double().cpu(), torch.stack(used, dim=1)
