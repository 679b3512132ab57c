"""Lesson 03's exercise checks (the posterior and the bound)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._common import _say, _scalar, _number, _run, _linear_betas, _linear_abar


def lesson03_posterior_variance(answer: Any) -> bool | None:
    """Exercise 1: :math:`\\tilde\\beta_t` at paper t = 10 (code 9) as a float, from the betas alone."""
    name = "Exercise 1"
    done, value = _number(name, answer)
    if done:
        return value
    betas, abar = _linear_betas(), _linear_abar()

    def tilde_beta(code_t: int) -> float:  # (1 - abar_{t-1}) / (1 - abar_t) beta_t, paper t = code_t + 1
        return (1.0 - abar[code_t]) / (1.0 - abar[code_t + 1]) * betas[code_t]

    close = lambda a, b: abs(a - b) <= 1e-9 * abs(b)  # noqa: E731
    if close(value, tilde_beta(9)):
        return _say(name, True, "tilde_beta_10 is a little below beta_10: the posterior is narrower than one step.")
    if close(value, tilde_beta(10)) or close(value, tilde_beta(8)):
        return _say(name, False, "that is one step off: paper t = 10 is code index 9.")
    if close(value, betas[9]):
        return _say(name, False, "that is beta_10 itself; the posterior variance multiplies it by "
                                 "(1 - abar_{t-1}) / (1 - abar_t).")
    if close(value, (1.0 - abar[10]) / (1.0 - abar[9]) * betas[9]):
        return _say(name, False, "the ratio is upside down: (1 - abar_{t-1}) / (1 - abar_t), smaller than 1.")
    return _say(name, False, "tilde_beta_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t, with abar the running "
                             "product of (1 - beta).")


def lesson03_eps_from_v(function: Callable[..., Any]) -> bool | None:
    """Exercise 2: ``function(x_t, abar_t, v)`` -> the :math:`\\epsilon` that the v-prediction ``v`` stands for.

    The check builds ``x_t`` and ``v`` from known ``x_0`` and ``eps`` by their definitions
    (:math:`x_t = \\sqrt{\\bar\\alpha}x_0 + \\sqrt{1-\\bar\\alpha}\\epsilon`, :math:`v = \\sqrt{\\bar\\alpha}\\epsilon -
    \\sqrt{1-\\bar\\alpha}x_0`) and asks for ``eps`` back.
    """
    name = "Exercise 2"
    g = torch.Generator().manual_seed(12)
    x0 = torch.rand(5, 1, 6, 6, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(5, 1, 6, 6, generator=g, dtype=torch.float64)
    abar = torch.tensor([0.9999, 0.9, 0.5, 0.1, 4e-5], dtype=torch.float64).view(5, 1, 1, 1)
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    v = abar.sqrt() * eps - (1 - abar).sqrt() * x0
    done, out = _run(name, function, x_t.clone(), abar.clone(), v.clone())
    if done:
        return out
    if not isinstance(out, torch.Tensor) or out.shape != eps.shape:
        return _say(name, False, f"return a tensor shaped like x_t {tuple(eps.shape)}.")
    if torch.allclose(out.double(), eps, rtol=0, atol=1e-6):
        return _say(name, True, "eps = sqrt(1 - abar) x_t + sqrt(abar) v recovers the noise at every noise level.")
    if torch.allclose(out.double(), x0, rtol=0, atol=1e-6):
        return _say(name, False, "that is x_0 (sqrt(abar) x_t - sqrt(1 - abar) v); the question asks for eps.")
    if torch.allclose(out.double(), (abar * x_t + (1 - abar) * v), rtol=0, atol=1e-6) or \
            torch.allclose(out.double(), ((1 - abar) * x_t + abar * v), rtol=0, atol=1e-6):
        return _say(name, False, "a square root is missing: the coefficients are sqrt(abar) and sqrt(1 - abar).")
    return _say(name, False, "invert the rotation: (x_t, v) is (x_0, eps) turned by the angle with cos = sqrt(abar).")


def lesson03_uniform_bpd(function: Callable[..., Any]) -> bool | None:
    """Exercise 3: ``function(x, levels)`` -> bits/dim of the model that gives each of ``levels`` values the same
    probability, independently per entry, on the images ``x`` (a float).

    The check varies ``levels`` and the image shapes, so a remembered "8" does not pass.
    """
    name = "Exercise 3"
    g = torch.Generator().manual_seed(13)
    cases = [(torch.rand(4, 1, 28, 28, generator=g) * 2 - 1, 256), (torch.rand(3, 3, 8, 8, generator=g) * 2 - 1, 16),
             (torch.rand(2, 1, 5, 7, generator=g) * 2 - 1, 3)]
    for x, levels in cases:
        done, out = _run(name, function, x.clone(), levels)
        if done:
            return out
        value = _scalar(out)
        if value is None:
            return _say(name, False, "return one number: the bits per dimension averaged over the images.")
        truth = math.log2(levels)  # every entry costs log2(levels) bits, whatever its value
        if abs(value - truth) < 1e-6:
            continue
        if abs(value - math.log(levels)) < 1e-6:
            return _say(name, False, "that is nats per dimension; divide by ln 2 for bits.")
        if abs(value - truth * x[0].numel()) < 1e-3 * truth * x[0].numel():
            return _say(name, False, "that is bits per image; divide by the number of dimensions C x H x W.")
        return _say(name, False, f"with {levels} equally likely values, what does each entry cost in bits? "
                                 f"(got {value:.4g} for levels = {levels})")
    return _say(name, True, "-log(1/K) nats per entry, / ln 2 for bits: log2(K) bits/dim, 8 for 8-bit images.")


def lesson03_weight_ratio(answer: Any) -> bool | None:
    """Exercise 4: :math:`\\lambda_2 / \\lambda_{500}` (paper t) of eq. 12 with :math:`\\sigma_t^2 = \\beta_t`."""
    name = "Exercise 4"
    done, value = _number(name, answer)
    if done:
        return value
    betas, abar = _linear_betas(), _linear_abar()

    def lam(paper_t: int, with_alpha: bool = True) -> float:  # beta^2 / (2 sigma^2 alpha (1 - abar)), sigma^2 = beta
        b = betas[paper_t - 1]
        return b / (2 * ((1 - b) if with_alpha else 1.0) * (1 - abar[paper_t]))

    truth = lam(2) / lam(500)
    close = lambda a, b: abs(a - b) <= 1e-6 * abs(b)  # noqa: E731
    if close(value, truth):
        return _say(name, True, f"the true bound weights paper t = 2 about {truth:.0f} times more than t = 500; "
                                "L_simple drops that weight.")
    if close(value, 1 / truth):
        return _say(name, False, "the ratio is upside down: lambda_2 / lambda_500 is far above 1.")
    if close(value, lam(3) / lam(501)) or close(value, lam(1) / lam(499)):
        return _say(name, False, "the indices are one step off: paper t = 2 and 500 are code 1 and 499.")
    if close(value, 1.0):
        return _say(name, False, "1 is L_simple's ratio; the question asks for the true bound's lambda_t.")
    if close(value, lam(2, False) / lam(500, False)):
        return _say(name, False, "alpha_t is missing from the denominator of lambda_t.")
    return _say(name, False, "lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)) with sigma_t^2 = beta_t.")
