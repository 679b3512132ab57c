"""Lesson 09's solutions. Try each exercise yourself first."""

import math

import torch


def exercise_1(alphas_cumprod):
    """The betas of the chain that keeps code timesteps 0, 250, 500, 750, 999: 1 - abar_(t_i) / abar_(t_(i-1))."""
    ab_kept = alphas_cumprod[[0, 250, 500, 750, 999]]
    return 1 - ab_kept / torch.cat([torch.ones(1, dtype=torch.float64), ab_kept[:-1]])


def exercise_2(alphas_cumprod):
    """(var_mix, t_match): the mix's noise variance at code t = 500, lambda = 1/2, and the code t with that noise."""
    ab500 = float(alphas_cumprod[500])
    var_mix = (1 - ab500) * ((1 - 0.5) ** 2 + 0.5**2)
    t_match = int((1 - alphas_cumprod - var_mix).abs().argmin())
    return var_mix, t_match


def ddim_update(x_t, eps, abar_t, abar_prev, eta, z):
    """Exercise 3: one DDIM step (eq. 12) from x_t (alpha-bar abar_t) to the previous kept step (abar_prev)."""
    x0_hat = (x_t - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)
    sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar_t)) * math.sqrt(1 - abar_t / abar_prev)
    return math.sqrt(abar_prev) * x0_hat + math.sqrt(1 - abar_prev - sigma**2) * eps + sigma * z


@torch.no_grad()
def ddim_invert(model, x_0, y, timesteps):
    """Exercise 4: DDIM (eta = 0) run upwards from x_(t_0) = x_0 to x_(t_(S-1)), eps taken at the current kept step.
    Uses the linear schedule's alpha-bar (the pretrained model's)."""
    from ddpm_core.schedules import alphas_cumprod, get_beta_schedule

    abar = alphas_cumprod(get_beta_schedule("linear"))
    x = x_0.clone()
    for i in range(len(timesteps) - 1):
        eps_i = model(x, torch.full((len(x),), timesteps[i]), y=y)
        ab_i, ab_next = float(abar[timesteps[i]]), float(abar[timesteps[i + 1]])
        x0_i = (x - math.sqrt(1 - ab_i) * eps_i) / math.sqrt(ab_i)
        x = math.sqrt(ab_next) * x0_i + math.sqrt(1 - ab_next) * eps_i
    return x
