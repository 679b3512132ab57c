"""Lesson 02's solutions. Try each exercise yourself first."""

import torch

from ddpm_core.schedules import SCHEDULES, alphas_cumprod, get_beta_schedule


def exercise_1(cosine_betas):
    """The first code index t at which the cosine schedule's SNR drops below 1."""
    abar = torch.cumprod(1 - cosine_betas, dim=0)
    snr = abar / (1 - abar)
    return int((snr < 1).nonzero()[0])


def linear_betas(T, beta_start, beta_end):
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def exercise_2(target=1e-3):
    """A linear schedule from 1e-4 with alpha-bar_T = target: bisection on beta_end."""
    lo, hi = 1e-4, 0.5  # alpha-bar_T(lo) > target > alpha-bar_T(hi)
    for _ in range(60):
        mid = (lo + hi) / 2
        if torch.cumprod(1 - linear_betas(1000, 1e-4, mid), dim=0)[-1] > target:
            lo = mid  # still too much signal: a larger beta_end
        else:
            hi = mid
    return linear_betas(1000, 1e-4, (lo + hi) / 2)


def exercise_3():
    """The schedule with the largest prior term L_T: the one that ends with the largest alpha-bar_T."""
    abar_T = {name: alphas_cumprod(get_beta_schedule(name))[-1].item() for name in SCHEDULES}
    return max(abar_T, key=abar_T.get)
