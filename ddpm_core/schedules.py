r"""Beta schedules: the variances :math:`\beta_1, \dots, \beta_T` of the forward process.

Code indexes time from 0: ``betas[t]`` for ``t = 0, ..., T-1`` is the paper's
:math:`\beta_{t+1}`.  All tables are float64, built once; they are cast to the
data's dtype only when gathered (see :mod:`ddpm_core.diffusion`).

Schedules (names as in the paper's code, ``diffusion_utils.get_beta_schedule``):

=========== ==================================================================
``linear``   :math:`\beta_t` evenly spaced from ``beta_start`` to ``beta_end``
             (the paper: 1e-4 to 0.02, T = 1000).
``quad``     evenly spaced in :math:`\sqrt\beta`, then squared.
``cosine``   Nichol & Dhariwal (2021): :math:`\bar\alpha(t) = \cos^2\big(\frac{t/T + s}{1 + s}\frac{\pi}{2}\big)`,
             s = 0.008, :math:`\beta_t = \min(1 - \bar\alpha(t)/\bar\alpha(t-1), 0.999)`.
             Ignores ``beta_start``/``beta_end``.
``sigmoid``  ``sigmoid(linspace(-6, 6, T)) * (beta_end - beta_start) + beta_start`` (as in DDIM's code).
``const``    :math:`\beta_t = ` ``beta_end`` for all t.
``warmup10`` ``beta_end`` everywhere, except a linear warm-up from ``beta_start`` over the first 10% of steps.
``warmup50`` the same over the first 50%.
``jsd``      :math:`\beta_t = 1/(T - t + 1)`: 1/T, 1/(T-1), ..., 1/2, 1.  Its last
             :math:`\beta` is exactly 1, so :math:`\bar\alpha_T = 0`: x_T carries no
             information about x_0.  Ignores ``beta_start``/``beta_end``.
=========== ==================================================================
"""

from __future__ import annotations

import math
from typing import Callable

import torch

SCHEDULES = ("linear", "quad", "cosine", "sigmoid", "const", "warmup10", "warmup50", "jsd")
RAMPED = ("linear", "quad", "sigmoid", "warmup10", "warmup50")  # these need beta_start < beta_end
DEFAULT_T = 1000
DEFAULT_BETA_START = 1e-4
DEFAULT_BETA_END = 0.02
COSINE_S = 0.008
MAX_BETA = 0.999


def _warmup(beta_start: float, beta_end: float, T: int, frac: float) -> torch.Tensor:
    betas = torch.full((T,), beta_end, dtype=torch.float64)
    warmup_time = int(T * frac)
    betas[:warmup_time] = torch.linspace(beta_start, beta_end, warmup_time, dtype=torch.float64)
    return betas


def betas_for_alpha_bar(
    T: int, alpha_bar: Callable[[float], float], max_beta: float = MAX_BETA
) -> torch.Tensor:
    r"""Discretise a continuous :math:`\bar\alpha(s)`, s in [0, 1], into T betas.

    :math:`\beta_t = \min\big(1 - \bar\alpha(t/T) / \bar\alpha((t-1)/T),\ \text{max\_beta}\big)`,
    so that :math:`\prod_{s \le t} (1 - \beta_s) = \bar\alpha(t/T)/\bar\alpha(0)` wherever no clipping happens.
    """
    betas = [min(1.0 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)]
    return torch.tensor(betas, dtype=torch.float64)


def cosine_alpha_bar(s: float, offset: float = COSINE_S) -> float:
    r""":math:`\bar\alpha(s) = \cos^2\big(\frac{s + \text{offset}}{1 + \text{offset}} \cdot \frac{\pi}{2}\big)` (unnormalised)."""
    return math.cos((s + offset) / (1 + offset) * math.pi / 2) ** 2


def get_beta_schedule(
    name: str,
    num_diffusion_timesteps: int = DEFAULT_T,
    beta_start: float = DEFAULT_BETA_START,
    beta_end: float = DEFAULT_BETA_END,
) -> torch.Tensor:
    """Return the named schedule as a float64 tensor of shape ``(T,)``.

    Raises ``ValueError`` for an unknown name, T < 1, endpoints outside (0, 1), or, for the schedules that rise
    from one to the other (:data:`RAMPED`), ``beta_start >= beta_end``.
    """
    T = num_diffusion_timesteps
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ValueError(f"unknown beta schedule {name!r}; accepted: {', '.join(SCHEDULES)}")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"num_diffusion_timesteps must be a positive integer, got {T!r}")
    if name not in ("cosine", "jsd"):
        for label, value in (("beta_start", beta_start), ("beta_end", beta_end)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{label} must be a number, got {value!r}")
            if not (0.0 < float(value) < 1.0):
                raise ValueError(f"{label} must lie in (0, 1), got {value!r}")
    if name in RAMPED and not beta_start < beta_end:
        raise ValueError(f"the {name!r} schedule rises from beta_start to beta_end, so beta_start must be below "
                         f"beta_end; got beta_start={beta_start!r}, beta_end={beta_end!r} (for a constant beta use "
                         "'const', which takes beta_end)")

    if name == "linear":
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    elif name == "quad":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2
    elif name == "cosine":
        betas = betas_for_alpha_bar(T, cosine_alpha_bar)
    elif name == "sigmoid":
        ramp = torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64))
        betas = ramp * (beta_end - beta_start) + beta_start
    elif name == "const":
        betas = torch.full((T,), float(beta_end), dtype=torch.float64)
    elif name == "warmup10":
        betas = _warmup(beta_start, beta_end, T, 0.1)
    elif name == "warmup50":
        betas = _warmup(beta_start, beta_end, T, 0.5)
    else:  # jsd
        betas = 1.0 / torch.linspace(T, 1, T, dtype=torch.float64)
    check_betas(betas)
    return betas


def check_betas(betas: torch.Tensor) -> torch.Tensor:
    """Validate a beta table and return it as float64.

    Accepted: a 1-D, non-empty, finite tensor with every beta in (0, 1), except
    that the *last* beta may equal 1 (the ``jsd`` schedule, where x_T is pure noise).
    """
    if not isinstance(betas, torch.Tensor):
        betas = torch.as_tensor(betas)
    betas = betas.detach().to(dtype=torch.float64, device="cpu")
    if betas.ndim != 1 or betas.numel() == 0:
        raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(betas.shape)}")
    if not torch.isfinite(betas).all():
        raise ValueError("betas contain NaN or infinite values")
    inner, last = betas[:-1], betas[-1]
    if (inner <= 0).any() or (inner >= 1).any() or not (0 < last <= 1):
        bad = betas[(betas <= 0) | (betas > 1)]
        bad = bad if bad.numel() else inner[inner >= 1]
        raise ValueError(
            f"betas must lie in (0, 1) (the last one may be exactly 1); got offending value(s) {bad[:5].tolist()}"
        )
    return betas


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    r""":math:`\bar\alpha_t = \prod_{s=1}^{t} (1 - \beta_s)`, float64."""
    return torch.cumprod(1.0 - check_betas(betas), dim=0)


def snr(betas: torch.Tensor) -> torch.Tensor:
    r"""Signal-to-noise ratio of the marginal :math:`q(x_t \mid x_0)`: :math:`\bar\alpha_t / (1 - \bar\alpha_t)`."""
    ab = alphas_cumprod(betas)
    return ab / (1.0 - ab)
