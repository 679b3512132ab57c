"""Toy metrics on cases with known answers."""

import pytest
import torch

from ddpm_core import metrics
from ddpm_core.data import toy_distribution


def g(seed):
    return torch.Generator().manual_seed(seed)


def test_histogram_kl_identical_sets_is_zero_and_independent_sets_are_small():
    dist = toy_distribution("gaussian8")
    x = dist.sample(30_000, g(0))
    assert metrics.histogram_kl(x, x) == pytest.approx(0.0, abs=1e-6)
    assert metrics.histogram_kl(dist.sample(30_000, g(1)), x) < 0.1


def test_histogram_kl_detects_a_dropped_mode_and_noise():
    dist = toy_distribution("gaussian8")
    ref = dist.sample(30_000, g(2))
    x = dist.sample(40_000, g(3))
    dropped = x[torch.cdist(x, dist.modes).argmin(1) != 0][:30_000]
    kl_dropped = metrics.histogram_kl(dropped, ref)
    kl_noise = metrics.histogram_kl(torch.randn(30_000, 2, generator=g(4)), ref)
    # one of eight modes missing: KL of about p(mode) * log(p(mode) / eps) = (1/8) * log(0.125 / 1e-9)
    assert kl_dropped == pytest.approx(0.125 * 18.6, rel=0.15)
    assert kl_noise > 2 * kl_dropped


def test_histogram_kl_known_two_bin_value():
    # Reference all in one half of the box, samples split evenly: KL = log 2.
    ref = torch.tensor([[-0.5, 0.0], [-0.5, 0.0]])
    samples = torch.tensor([[-0.5, 0.0], [0.5, 0.0]])
    kl = metrics.histogram_kl(samples, ref, bins=2, value_range=(-1.0, 1.0, -1.0, 1.0))
    assert kl == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-6)


def test_mode_stats_perfect_samples_and_a_dropped_mode():
    dist = toy_distribution("gaussian25")
    x = dist.sample(25_000, g(5))
    stats = metrics.mode_stats(x, dist)
    # within 5 sigma in 2-D: P(chi_2 < 5) = 1 - exp(-12.5)
    assert stats["high_quality"] > 0.999 and stats["modes_covered"] == 25 == stats["num_modes"]
    keep = torch.cdist(x, dist.modes).argmin(1) != 7
    stats = metrics.mode_stats(x[keep], dist)
    assert stats["modes_covered"] == 24 and stats["counts"][7] == 0


def test_mode_stats_on_off_mode_samples():
    dist = toy_distribution("gaussian8")
    far = dist.modes.mean(0, keepdim=True).expand(1000, 2) + 0.3  # between modes
    stats = metrics.mode_stats(far, dist)
    assert stats["high_quality"] == 0.0 and stats["modes_covered"] == 0


def test_metric_errors():
    dist = toy_distribution("swissroll")
    with pytest.raises(ValueError, match="no modes"):
        metrics.mode_stats(torch.zeros(3, 2), dist)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        metrics.histogram_kl(torch.zeros(3, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="NaN or infinite"):
        metrics.histogram_kl(torch.tensor([[float("nan"), 0.0]]), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="bins"):
        metrics.histogram_kl(torch.zeros(3, 2), torch.zeros(3, 2), bins=0)


def test_class_accuracy_refuses_uint8_images():
    with pytest.raises(ValueError, match="to_unit_range"):
        metrics.class_accuracy(metrics.MNISTClassifier(), torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.zeros(2))
