"""Gaussian KL and the discretized decoder against known values and independent computations."""

import math

import pytest
import torch

from ddpm_core.losses import (
    approx_standard_normal_cdf,
    discretized_gaussian_log_likelihood,
    mean_flat,
    normal_kl,
)


def test_normal_kl_known_values():
    zero = torch.zeros(())
    assert float(normal_kl(zero, zero, zero, zero)) == 0.0
    # KL(N(1, 1) || N(0, 1)) = 1/2
    assert float(normal_kl(torch.tensor(1.0), 0.0, 0.0, 0.0)) == pytest.approx(0.5)
    # KL(N(0, s1^2) || N(0, s2^2)) = log(s2/s1) + s1^2 / (2 s2^2) - 1/2
    s1, s2 = 0.5, 2.0
    expected = math.log(s2 / s1) + s1**2 / (2 * s2**2) - 0.5
    got = normal_kl(zero, torch.tensor(2 * math.log(s1)), 0.0, torch.tensor(2 * math.log(s2)))
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(100, generator=g, dtype=torch.float64), torch.randn(100, generator=g, dtype=torch.float64)
    lv1, lv2 = torch.randn(100, generator=g, dtype=torch.float64), torch.randn(100, generator=g, dtype=torch.float64)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, (0.5 * lv1).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp())
    )
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), reference, rtol=1e-10, atol=1e-12)


def test_normal_kl_needs_a_tensor():
    with pytest.raises(TypeError, match="at least one tensor"):
        normal_kl(0.0, 0.0, 0.0, 0.0)


def test_approx_cdf_is_close_to_exact():
    x = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    assert float((approx_standard_normal_cdf(x) - torch.special.ndtr(x)).abs().max()) < 4e-4


def _all_bins() -> torch.Tensor:
    return torch.linspace(-1, 1, 256, dtype=torch.float64)


@pytest.mark.parametrize("mean, log_scale", [(0.0, math.log(0.1)), (0.7, math.log(0.02)), (-1.3, math.log(1.0)), (0.0, math.log(1e-3))])
def test_discretized_likelihood_sums_to_one_over_256_bins(mean, log_scale):
    x = _all_bins()
    logp = discretized_gaussian_log_likelihood(
        x, means=torch.full_like(x, mean), log_scales=torch.full_like(x, log_scale)
    )
    assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-6)


def test_discretized_likelihood_matches_exact_bin_integrals():
    # Independent: integrate the exact normal density over each bin with the exact CDF.
    x = _all_bins()
    mean, sigma = 0.2, 0.3
    edges_hi = torch.where(x > 0.999, torch.full_like(x, math.inf), x + 1 / 255)
    edges_lo = torch.where(x < -0.999, torch.full_like(x, -math.inf), x - 1 / 255)
    exact = torch.special.ndtr((edges_hi - mean) / sigma) - torch.special.ndtr((edges_lo - mean) / sigma)
    got = discretized_gaussian_log_likelihood(
        x, means=torch.full_like(x, mean), log_scales=torch.full_like(x, math.log(sigma))
    ).exp()
    # Each bin is a difference of two approximate CDFs, each within 3.5e-4 of the exact one; the edge bins
    # take one tail directly, so their error is the CDF's own.
    assert float((got - exact).abs().max()) < 3.5e-4
    assert float((got - exact)[1:-1].abs().max()) < 2e-5


def test_discretized_likelihood_edges_use_the_tails():
    x = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    logp = discretized_gaussian_log_likelihood(x, means=torch.zeros(2, dtype=torch.float64), log_scales=torch.zeros(2, dtype=torch.float64))
    expected = torch.log(torch.special.ndtr(torch.tensor([-1 + 1 / 255, -1 + 1 / 255], dtype=torch.float64)))
    torch.testing.assert_close(logp, expected, atol=5e-4, rtol=1e-3)


def test_discretized_likelihood_is_finite_for_tiny_scales():
    x = _all_bins()
    logp = discretized_gaussian_log_likelihood(x, means=x + 0.5, log_scales=torch.full_like(x, -20.0))
    assert torch.isfinite(logp).all()


def test_discretized_likelihood_shape_error():
    with pytest.raises(ValueError, match="share one shape"):
        discretized_gaussian_log_likelihood(torch.zeros(3), means=torch.zeros(3), log_scales=torch.zeros(4))


def test_mean_flat():
    x = torch.arange(24.0).reshape(2, 3, 4)
    torch.testing.assert_close(mean_flat(x), torch.tensor([5.5, 17.5]))


def test_continuous_log_likelihood_matches_torch_distributions():
    from ddpm_core.losses import continuous_gaussian_log_likelihood

    g = torch.Generator().manual_seed(3)
    x, m = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    ls = 0.3 * torch.randn(50, generator=g, dtype=torch.float64)
    expected = torch.distributions.Normal(m, ls.exp()).log_prob(x)
    torch.testing.assert_close(continuous_gaussian_log_likelihood(x, means=m, log_scales=ls), expected)
    with pytest.raises(ValueError, match="share one shape"):
        continuous_gaussian_log_likelihood(x, means=m[:3], log_scales=ls)
