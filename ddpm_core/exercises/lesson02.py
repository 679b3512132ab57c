"""Lesson 02's exercise checks (noise schedules)."""

from __future__ import annotations

import math
from typing import Any

import torch

from ._common import NOT_ATTEMPTED, _say, _is_int, _linear_half_signal


def _cosine_abar(t_paper: int, T: int, s: float = 0.008) -> float:
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(t_paper) / f(0)


def lesson02_cosine_half(answer: Any) -> bool | None:
    """Exercise 1: the first code ``t`` at which the cosine schedule's SNR drops below 1 (T = 1000)."""
    name = "Exercise 1"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    if not _is_int(answer):
        return _say(name, False, f"give a plain Python int (int(tensor_index)), got {answer!r}")
    T = 1000
    # SNR < 1 exactly when alpha-bar < 1/2; the closed form f(t)/f(0) at paper t = code t + 1 (beta clipping at
    # 0.999 only touches the last steps)
    truth = next(t for t in range(T) if _cosine_abar(t + 1, T) < 0.5)
    linear = _linear_half_signal()
    if answer == truth:
        return _say(name, True, f"the cosine schedule's SNR first drops below 1 at code t = {truth} (paper t = "
                                f"{truth + 1}), about twice as late as linear's {linear}: it keeps signal longer.")
    if answer == truth + 1:
        return _say(name, False, "that is the paper's t; give the code index (code t = paper t - 1).")
    if answer == linear:
        return _say(name, False, "that is the linear schedule's crossing (lesson 01); use the cosine betas.")
    return _say(name, False, "compute SNR = abar / (1 - abar) for the cosine betas and find the first index below 1.")


def lesson02_beta_end(betas: Any, target: float = 1e-3, T: int = 1000, beta_start: float = 1e-4) -> bool | None:
    """Exercise 2: a linear schedule from ``beta_start`` whose :math:`\\bar\\alpha_T` is ``target``."""
    name = "Exercise 2"
    if betas is None:
        return _say(name, None, NOT_ATTEMPTED)
    betas = torch.as_tensor(betas, dtype=torch.float64)
    if betas.shape != (T,):
        return _say(name, False, f"return all {T} betas as one 1-D tensor, got shape {tuple(betas.shape)}.")
    values = betas.tolist()
    steps = [b - a for a, b in zip(values, values[1:])]
    if abs(values[0] - beta_start) > 1e-12 or max(steps) - min(steps) > 1e-12:
        return _say(name, False, f"keep the linear shape: start at {beta_start:g} and space the betas evenly.")
    log_abar_T = sum(math.log1p(-b) for b in values)  # plain Python, no cumprod
    if abs(log_abar_T - math.log(target)) < 1e-6:
        return _say(name, True, f"beta_end = {values[-1]:.5f} gives alpha-bar_T = {target:.0e} "
                                "(the paper's 0.02 leaves about 4e-05).")
    return _say(name, False, f"your alpha-bar_T is {math.exp(log_abar_T):.3e}, the target {target:.0e}: "
                             "bisect on beta_end.")


def lesson02_largest_prior(answer: Any) -> bool | None:
    """Exercise 3: the schedule (of the eight, paper defaults) with the largest prior term :math:`L_T`."""
    name = "Exercise 3"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    from ..schedules import SCHEDULES, get_beta_schedule

    if answer not in SCHEDULES:
        return _say(name, False, f"answer with one of {', '.join(SCHEDULES)}, got {answer!r}")
    # L_T per dimension for pixel value x: (abar (x^2 - 1) - log(1 - abar)) / 2; check the ranking at black, grey and
    # white pixels, with alpha-bar_T a running product of plain floats (jsd's last beta is 1: alpha-bar_T = 0)
    abar_T = {n: math.prod(1.0 - b for b in get_beta_schedule(n).tolist()) for n in SCHEDULES}
    winners = set()
    for x in (-1.0, 0.0, 1.0):
        prior = {n: 0.5 * (a * (x * x - 1.0) - math.log1p(-a)) for n, a in abar_T.items()}
        winners.add(max(prior, key=prior.get))
    (truth,) = winners
    if answer == truth:
        return _say(name, True, f"'{truth}' ends with the most signal left (alpha-bar_T = {abar_T[truth]:.1e}), "
                                "so its L_T is the largest for every image.")
    return _say(name, False, f"'{answer}' leaves alpha-bar_T = {abar_T[answer]:.1e}; L_T grows with alpha-bar_T, "
                             "so compare alpha-bar_T across the schedules.")
