r"""Pure functions behind the variational bound: Gaussian KL and the discretized decoder.

These follow the paper's own code (``diffusion_utils_2.py``) to the letter:
images live in [-1, 1] on 256 levels, so a pixel value x owns the bin
:math:`[x - 1/255, x + 1/255]`, and the two edge bins extend to :math:`\pm\infty`
(selected with the thresholds :math:`\pm 0.999`).
"""

from __future__ import annotations

import math

import torch

BIN_HALF_WIDTH = 1.0 / 255.0
EDGE = 0.999
_LOG_FLOOR = 1e-12


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the first (batch): works for points and images alike."""
    return x.mean(dim=tuple(range(1, x.ndim))) if x.ndim > 1 else x


def normal_kl(
    mean1: torch.Tensor | float,
    logvar1: torch.Tensor | float,
    mean2: torch.Tensor | float,
    logvar2: torch.Tensor | float,
) -> torch.Tensor:
    r"""Elementwise :math:`\mathrm{KL}\big(\mathcal N(\mu_1, \sigma_1^2) \,\|\, \mathcal N(\mu_2, \sigma_2^2)\big)` in nats.

    .. math::
        \tfrac12\Big(-1 + \log\sigma_2^2 - \log\sigma_1^2 + \frac{\sigma_1^2}{\sigma_2^2}
        + \frac{(\mu_1 - \mu_2)^2}{\sigma_2^2}\Big)

    Arguments broadcast; at least one must be a tensor.  Variances are given as logs.
    """
    tensor = next((a for a in (mean1, logvar1, mean2, logvar2) if isinstance(a, torch.Tensor)), None)
    if tensor is None:
        raise TypeError("normal_kl needs at least one tensor argument")
    logvar1, logvar2 = (
        x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=tensor.dtype, device=tensor.device)
        for x in (logvar1, logvar2)
    )
    return 0.5 * (
        -1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    r"""The paper code's fast approximation of :math:`\Phi(x)`:
    :math:`\tfrac12\big(1 + \tanh\big(\sqrt{2/\pi}\,(x + 0.044715 x^3)\big)\big)` (max error about 3e-4)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, *, means: torch.Tensor, log_scales: torch.Tensor
) -> torch.Tensor:
    r"""Log-probability (nats, elementwise) of data x in [-1, 1] under a Gaussian discretized to 256 bins.

    The paper's decoder :math:`p_\theta(x_0 \mid x_1) = \prod_i \int_{\delta_-(x_0^i)}^{\delta_+(x_0^i)}
    \mathcal N(x; \mu_\theta^i(x_1, 1), \sigma_1^2)\,dx` (eq. 13), with
    :math:`\delta_+(x) = \infty` if :math:`x = 1` else :math:`x + 1/255`, and
    :math:`\delta_-(x) = -\infty` if :math:`x = -1` else :math:`x - 1/255`.

    ``log_scales`` is :math:`\log\sigma` (half the log-variance).  Summed over the 256
    possible values of x, the probabilities telescope to exactly 1.
    """
    if x.shape != means.shape or x.shape != log_scales.shape:
        raise ValueError(
            f"x, means and log_scales must share one shape; got {tuple(x.shape)}, "
            f"{tuple(means.shape)}, {tuple(log_scales.shape)}"
        )
    centered_x = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered_x + BIN_HALF_WIDTH))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered_x - BIN_HALF_WIDTH))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=_LOG_FLOOR))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=_LOG_FLOOR))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -EDGE,
        log_cdf_plus,
        torch.where(x > EDGE, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=_LOG_FLOOR))),
    )


def continuous_gaussian_log_likelihood(
    x: torch.Tensor, *, means: torch.Tensor, log_scales: torch.Tensor
) -> torch.Tensor:
    r"""Log-density (nats, elementwise) of real-valued x under :math:`\mathcal N(\mu, \sigma^2)`, ``log_scales`` = :math:`\log\sigma`.

    The decoder :math:`L_0` for continuous data (toy 2-D points), where the 8-bit bins of
    :func:`discretized_gaussian_log_likelihood` do not apply.  Being a density, it can exceed 0.
    """
    if x.shape != means.shape or x.shape != log_scales.shape:
        raise ValueError(
            f"x, means and log_scales must share one shape; got {tuple(x.shape)}, "
            f"{tuple(means.shape)}, {tuple(log_scales.shape)}"
        )
    return -0.5 * (math.log(2 * math.pi) + 2 * log_scales + (x - means) ** 2 * torch.exp(-2 * log_scales))
