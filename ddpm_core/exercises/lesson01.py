"""Lesson 01's exercise checks (the forward process)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._common import NOT_ATTEMPTED, _say, _is_int, _scalar, _number, _run, _linear_abar, _linear_half_signal


def lesson01_half_signal(answer: Any) -> bool | None:
    """Exercise 1: the first code ``t`` with :math:`\\bar\\alpha_t < 0.5` (linear, T = 1000)."""
    name = "Exercise 1"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    if not _is_int(answer) and not (isinstance(answer, torch.Tensor) and answer.numel() == 1
                                    and not answer.is_floating_point()):
        return _say(name, False, f"give an integer index (int(...)), got {answer!r}")
    answer, truth = int(answer), _linear_half_signal()
    if answer == truth:
        return _say(name, True, f"alpha-bar first drops below 0.5 at code t = {truth} (paper t = {truth + 1}); "
                                "there the SNR crosses 1.")
    if answer == truth + 1:
        return _say(name, False, "that is the paper's index; give the code index (code t = paper t - 1).")
    return _say(name, False, "find the first index where alphas_bar < 0.5 (torch.nonzero on a boolean mask).")


def lesson01_noise_std(answer: Any, t: int = 500) -> bool | None:
    """Exercise 2: the standard deviation of :math:`x_t` at code ``t`` when :math:`x_0 = 0`."""
    name = "Exercise 2"
    done, value = _number(name, answer)
    if done:
        return value
    abar = _linear_abar()
    abar_t = abar[t + 1]
    truth = math.sqrt(1.0 - abar_t)
    if abs(value - truth) < 1e-6:
        return _say(name, True, "with x_0 = 0 only the noise term is left: std = sqrt(1 - alpha-bar_t).")
    if abs(value - truth**2) < 1e-6:
        return _say(name, False, "that is the variance, 1 - alpha-bar_t; take its square root.")
    if abs(value - math.sqrt(abar_t)) < 1e-6:
        return _say(name, False, "sqrt(alpha-bar_t) scales the signal; with x_0 = 0 the noise term is what is left.")
    if abs(value - math.sqrt(1.0 - abar[t])) < 1e-6 or abs(value - math.sqrt(1.0 - abar[t + 2])) < 1e-6:
        return _say(name, False, f"that is the value one step off; use alphas_bar[{t}] (code t = {t}).")
    return _say(name, False, "x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps; what is its std at x_0 = 0?")


def lesson01_moment_kl(function: Callable[[torch.Tensor], Any]) -> bool | None:
    """Exercise 3: ``function(x)`` = KL(N(m, v) || N(0, 1)) per dimension, m and v the mean and variance of all of x.

    The check calls it on tensors of its own with known moments (a shift, a scale, unit Gaussian noise) and compares
    with the closed form in float64.
    """
    name = "Exercise 3"
    g = torch.Generator().manual_seed(11)
    probes = [2.0 + 3.0 * torch.randn(4000, generator=g, dtype=torch.float64),
              0.5 * torch.randn(50, 40, generator=g, dtype=torch.float64) - 1.0,
              torch.randn(3, 1, 32, 32, generator=g, dtype=torch.float64)]
    for x in probes:
        done, value = _run(name, function, x.clone())
        if done:
            return value
        value = _scalar(value)
        if value is None:
            return _say(name, False, "return one number (a float or a 0-d tensor) for the whole tensor.")
        n = x.numel()
        m = sum(x.flatten().tolist()) / n
        v = sum((e - m) ** 2 for e in x.flatten().tolist()) / (n - 1)
        truth = 0.5 * (v + m * m - 1.0 - math.log(v))
        if abs(value - truth) > 1e-6 * max(1.0, abs(truth)):
            s = math.sqrt(v)
            if abs(value - 0.5 * (s + m * m - 1.0 - math.log(s))) < 1e-6 * max(1.0, abs(truth)):
                return _say(name, False, "that uses the standard deviation; the formula needs the variance v.")
            if abs(value - 2 * truth) < 1e-6 * max(1.0, abs(truth)):
                return _say(name, False, "twice the KL: the formula has a factor 1/2.")
            if abs(value - 0.5 * (v - 1.0 - math.log(v))) < 1e-6 * max(1.0, abs(truth)):
                return _say(name, False, "the mean's term is missing: a shifted Gaussian is further from N(0, 1).")
            return _say(name, False, "KL(N(m, v) || N(0, 1)) = (v + m^2 - 1 - log v) / 2, with m and v over all "
                                     "entries.")
    return _say(name, True, "your moment-matched KL agrees with the closed form on three test tensors.")
