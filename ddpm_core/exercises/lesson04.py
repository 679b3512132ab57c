"""Lesson 04's exercise checks (the toy 2-D diffusion)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._common import (NOT_ATTEMPTED, _say, _scalar, _number, _run, _linear_betas, TOY_T, TOY_BETA_START, TOY_BETA_END,
                      _toy_tables, _tensor_close)


def lesson04_fixed_small_sigma(answer: Any) -> bool | None:
    """Exercise 1: :math:`\\sigma_t = \\sqrt{\\tilde\\beta_t}` for every code t of the toy schedule, shape (T,)."""
    name = "Exercise 1"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    answer = torch.as_tensor(answer, dtype=torch.float64)
    if answer.shape != (TOY_T,):
        return _say(name, False, f"give one sigma per code index, a tensor of shape ({TOY_T},); got "
                                 f"{tuple(answer.shape)}.")
    betas, abar = _toy_tables()
    prev = [1.0] + abar[:-1]
    tilde = torch.tensor([(1 - p) / (1 - a) * b for b, a, p in zip(betas, abar, prev)], dtype=torch.float64)
    if torch.allclose(answer, tilde.sqrt(), rtol=1e-9, atol=1e-12):
        return _say(name, True, "sigma_t^2 = tilde_beta_t, and sigma = 0 at the last step (code t = 0).")
    if torch.allclose(answer, torch.tensor(betas, dtype=torch.float64).sqrt(), rtol=1e-9):
        return _say(name, False, "that is fixed-large (sigma_t^2 = beta_t); fixed-small uses tilde_beta_t.")
    if torch.allclose(answer, tilde, rtol=1e-9, atol=1e-12):
        return _say(name, False, "that is the variance tilde_beta_t; take its square root.")
    return _say(name, False, "tilde_beta_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t, with abar_{t-1} = 1 at code t = 0.")


def lesson04_share_within(function: Callable[..., Any]) -> bool | None:
    """Exercise 2: ``function(samples, modes, std)`` -> the share of samples within 5 std of their nearest mode.

    The check places points at known distances from known modes, so the truth is known by construction.
    """
    name = "Exercise 2"
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    std = 0.4  # 5 std = 2.0
    # distances 0.5, 1.9, 2.1 (Euclidean, along a diagonal: 1.9 fails a per-axis test the wrong way) and 3 from modes
    r = torch.tensor([0.5, 1.9, 2.1, 3.0, 1.0, 2.5])
    angle = torch.tensor([0.3, 0.785, 0.785, 2.0, 4.0, 1.0])
    centre = torch.tensor([0, 1, 2, 0, 1, 2])
    samples = modes[centre] + torch.stack([r * angle.cos(), r * angle.sin()], dim=1)
    truth = 3 / 6  # 0.5, 1.9 and 1.0 are within 2.0 of their mode
    done, out = _run(name, function, samples.clone(), modes.clone(), std)
    if done:
        return out
    value = _scalar(out)
    if value is None:
        return _say(name, False, "return one number: the share (between 0 and 1).")
    if abs(value - truth) < 1e-9:
        return _say(name, True, "the distance to the nearest mode, compared with 5 std, on points at known "
                                "distances.")
    if abs(value - 3.0) < 1e-9:
        return _say(name, False, "that is a count; divide by the number of samples for the share.")
    return _say(name, False, f"got {value:.3f} on points whose answer is known: use the Euclidean distance to the "
                             "nearest mode, at most 5 std.")


def lesson04_short_chain(answer: Any) -> bool | None:
    """Exercise 3: :math:`\\bar\\alpha_T` for T = 10 with the toy's linear schedule 1e-3 -> 0.2 (a float)."""
    name = "Exercise 3"
    done, value = _number(name, answer)
    if done:
        return value
    truth = math.prod(1.0 - b for b in _linear_betas(10, TOY_BETA_START, TOY_BETA_END))
    if abs(value - truth) < 1e-9:
        return _say(name, True, f"alpha-bar_T = {truth:.3f}: x_T still holds {math.sqrt(truth):.2f} x_0, yet the "
                                "sampler starts from N(0, I).")
    if abs(value - math.sqrt(truth)) < 1e-9:
        return _say(name, False, "that is sqrt(alpha-bar_T); give alpha-bar_T itself.")
    if abs(value - math.prod(1.0 - b for b in _linear_betas(9, TOY_BETA_START, TOY_BETA_END))) < 1e-9 or \
            abs(value - math.prod(1.0 - b for b in _linear_betas(10, TOY_BETA_START, TOY_BETA_END)[:-1])) < 1e-9:
        return _say(name, False, "one factor is missing: the product runs over all T = 10 steps.")
    if abs(value - _toy_tables()[1][-1]) < 1e-9:
        return _say(name, False, "that is the T = 100 chain's alpha-bar_T; use 10 betas from 1e-3 to 0.2.")
    return _say(name, False, "alpha-bar_T is the product of (1 - beta_t) over torch.linspace(1e-3, 0.2, 10).")


def lesson04_ancestral_step(function: Callable[..., Any]) -> bool | None:
    """Exercise 4: ``function(x_t, eps, t, z)`` -> x_{t-1}: one step of Algorithm 2 with the fixed-small variance.

    The toy schedule; ``t`` a code index, ``eps`` the network's prediction, ``z`` the step's noise (unused at
    code t = 0).  The truth comes by the Bayes route: the posterior mean :math:`\\tilde\\mu_t(x_t, \\hat x_0)` of
    eq. 7 at :math:`\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon)/\\sqrt{\\bar\\alpha_t}`, plus
    :math:`\\sqrt{\\tilde\\beta_t}\\,z`, not eq. 11's formula.
    """
    name = "Exercise 4"
    betas, abar = _toy_tables()
    g = torch.Generator().manual_seed(14)
    x_t = torch.randn(64, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(64, 2, generator=g, dtype=torch.float64)
    z = torch.randn(64, 2, generator=g, dtype=torch.float64)
    for t in (TOY_T - 1, 50, 1, 0):
        a, prev, b = abar[t], (abar[t - 1] if t > 0 else 1.0), betas[t]
        x0_hat = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
        mean = (math.sqrt(prev) * b / (1 - a)) * x0_hat + (math.sqrt(1 - b) * (1 - prev) / (1 - a)) * x_t
        sigma = math.sqrt((1 - prev) / (1 - a) * b)
        expected = mean + sigma * z if t > 0 else mean
        done, out = _run(name, function, x_t.clone(), eps.clone(), t, z.clone())
        if done:
            return out
        if _tensor_close(out, expected, 1e-6):
            continue
        if _tensor_close(out, mean + math.sqrt(b) * z, 1e-6):
            return _say(name, False, f"at code t = {t} that uses sigma_t^2 = beta_t (fixed-large); this step uses "
                                     "tilde_beta_t.")
        return _say(name, False, f"at code t = {t}: x_(t-1) = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) "
                                 "+ sigma_t z, with sigma_t^2 = tilde_beta_t.")
    return _say(name, True, "your step agrees with the posterior mean at x0_hat plus sqrt(tilde_beta_t) z, at four "
                            "timesteps (at code t = 0 tilde_beta is 0: no noise).")
