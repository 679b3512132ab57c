"""Sample-quality metrics for toy 2-D data, where the true distribution is known.

* :func:`histogram_kl`: the 2-D histogram KL divergence the reference toy evaluator reports
  (tqch/ddpm-torch): both sets binned on a 54 x 54 grid over the data's range,
  :math:`\\mathrm{KL}(p_\\text{data} \\| p_\\text{model}) = \\sum_b p_b (\\log(p_b + \\epsilon) - \\log(q_b + \\epsilon))`,
  with :math:`\\epsilon = 10^{-9}`.  54 = floor(sqrt(30000 / 10)), the reference's bin count for
  30,000 evaluation samples.
* :func:`mode_stats`: for Gaussian mixtures, the share of samples within ``n_std`` true standard
  deviations of their nearest mode ("high quality") and how many modes receive them.
"""

from __future__ import annotations

import math

import torch

from .data import ToyDistribution

DEFAULT_BINS = 54
KL_EPS = 1e-9


def _check_points(x: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} must be a non-empty tensor of shape (N, 2), got {shape}")
    x = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return x


def data_range(reference: torch.Tensor, precision: int = 1) -> tuple[float, float, float, float]:
    """Per-axis ``(xmin, xmax, ymin, ymax)`` of the reference, rounded outwards to ``precision`` decimals."""
    ref = _check_points(reference, "reference")
    scale = 10**precision
    lo = torch.floor(ref.min(0).values * scale) / scale
    hi = torch.ceil(ref.max(0).values * scale) / scale
    return (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))


def histogram_2d(points: torch.Tensor, bins: int, value_range: tuple[float, float, float, float]) -> torch.Tensor:
    """Normalised ``bins x bins`` histogram (points outside the range are dropped, as in the reference)."""
    hist = torch.histogramdd(_check_points(points, "points"), bins=[bins, bins], range=list(value_range)).hist
    return hist / (hist.sum() + KL_EPS)


def histogram_kl(
    samples: torch.Tensor,
    reference: torch.Tensor,
    *,
    bins: int = DEFAULT_BINS,
    value_range: tuple[float, float, float, float] | None = None,
) -> float:
    """KL(reference || samples) between 2-D histograms, in nats (0 for identical sets; lower is better)."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    value_range = value_range or data_range(reference)
    p = histogram_2d(reference, bins, value_range)
    q = histogram_2d(samples, bins, value_range)
    return float((p * (torch.log(p + KL_EPS) - torch.log(q + KL_EPS))).sum())


def mode_stats(
    samples: torch.Tensor, dist: ToyDistribution, *, n_std: float = 5.0, min_share: float = 0.2
) -> dict[str, float | int | list[int]]:
    """Quality and coverage of samples from a Gaussian mixture.

    A sample is *high quality* when its Euclidean distance to the nearest mode is at most
    ``n_std`` times the component's standard deviation.  A mode is *covered* when it receives at
    least ``min_share`` of its fair share (N / number of modes) of high-quality samples.

    Returns ``high_quality`` (share in [0, 1]), ``modes_covered``, ``num_modes`` and ``counts``
    (high-quality samples per mode).
    """
    if dist.modes is None or dist.mode_std is None:
        raise ValueError(f"mode_stats needs a Gaussian mixture; {dist.name!r} has no modes")
    if not (n_std > 0 and 0 <= min_share <= 1):
        raise ValueError(f"need n_std > 0 and min_share in [0, 1], got {n_std!r}, {min_share!r}")
    x = _check_points(samples, "samples")
    modes = dist.modes.to(torch.float64)
    distance, nearest = torch.cdist(x, modes).min(dim=1)
    good = distance <= n_std * dist.mode_std[0]
    counts = torch.bincount(nearest[good], minlength=len(modes))
    threshold = max(1, math.ceil(min_share * len(x) / len(modes)))
    return {
        "high_quality": float(good.double().mean()),
        "modes_covered": int((counts >= threshold).sum()),
        "num_modes": len(modes),
        "counts": counts.tolist(),
    }


# --------------------------------------------------------------------------- image metrics
class MNISTClassifier(torch.nn.Module):
    """A small CNN (~0.1M parameters) that scores generated digits: "is this sample the class we asked for?".

    Input: ``(N, 1, 28, 28)`` or ``(N, 1, 32, 32)`` images in [-1, 1] (32x32 inputs are centre-cropped).
    """

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] not in (28, 32):
            raise ValueError(f"MNISTClassifier expects (N, 1, 28 or 32, 28 or 32), got {tuple(x.shape)}")
        if x.shape[-1] == 32:
            x = x[..., 2:30, 2:30]
        return self.net(x)


def train_mnist_classifier(images: torch.Tensor, labels: torch.Tensor, *, steps: int = 2000, batch_size: int = 128,
                           seed: int = 0, device: str | torch.device = "cpu") -> MNISTClassifier:
    """Train :class:`MNISTClassifier` with Adam on ``images`` in [-1, 1] (random 2-pixel shifts as augmentation)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MNISTClassifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=g)
        x = images[idx].to(device)
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        loss = torch.nn.functional.cross_entropy(model(x), labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def class_accuracy(classifier: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   num_classes: int = 10) -> dict[str, float | list[float]]:
    """Share of ``images`` (floats in [-1, 1]) the classifier assigns to their ``labels``, overall and per class."""
    if not images.is_floating_point():
        raise ValueError(f"images must be floats in [-1, 1], got {images.dtype} (convert uint8 images with "
                         "ddpm_core.data.to_unit_range)")
    pred = torch.cat([classifier(images[i:i + 1000]).argmax(1).cpu() for i in range(0, len(images), 1000)])
    labels = labels.cpu()
    hits = pred == labels
    per_class = [float(hits[labels == c].double().mean()) if (labels == c).any() else float("nan")
                 for c in range(num_classes)]
    return {"accuracy": float(hits.double().mean()), "per_class": per_class}
