"""Lesson 03's solutions. Try each exercise yourself first."""

import math

import torch


def exercise_1(betas):
    """tilde_beta_t at paper t = 10 (code index 9), from the betas alone."""
    abar = torch.cumprod(1 - betas, dim=0)
    tc = 9  # paper t = 10
    return ((1 - abar[tc - 1]) / (1 - abar[tc]) * betas[tc]).item()


def eps_from_v(x_t, abar_t, v):
    """Exercise 2: (x_t, v) is (x_0, eps) rotated; turning back gives eps."""
    return (1 - abar_t).sqrt() * x_t + abar_t.sqrt() * v


def uniform_bpd(x, levels):
    """Exercise 3: every entry costs -log(1 / levels) nats; / ln 2 for bits, / the dimensions per image."""
    nll_nats = -torch.log(torch.full_like(x, 1 / levels, dtype=torch.float64)).sum(dim=tuple(range(1, x.ndim)))
    return (nll_nats / (x[0].numel() * math.log(2))).mean().item()


def exercise_4(betas):
    """lambda_2 / lambda_500 of eq. 12 with sigma_t^2 = beta_t (code indices 1 and 499)."""
    alphas = 1 - betas
    abar = torch.cumprod(alphas, dim=0)

    def weight(tc):
        sigma2 = betas[tc]
        return betas[tc] ** 2 / (2 * sigma2 * alphas[tc] * (1 - abar[tc]))

    return (weight(1) / weight(499)).item()
