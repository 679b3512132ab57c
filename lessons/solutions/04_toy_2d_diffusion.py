"""Lesson 04's solutions. Try each exercise yourself first."""

import torch


def exercise_1(betas, alphas_bar):
    """sigma_t of the fixed-small variance for every code index (alpha-bar_{t-1} = 1 at code t = 0)."""
    alphas_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_bar[:-1]])
    return ((1 - alphas_bar_prev) / (1 - alphas_bar) * betas).sqrt()


def share_within(samples, modes, std):
    """Exercise 2: the share of samples within 5 std (Euclidean) of their nearest mode."""
    diff = samples.double()[:, None, :] - modes.double()[None, :, :]   # (N, modes, 2)
    nearest = diff.pow(2).sum(-1).sqrt().min(dim=1).values
    return (nearest <= 5 * std).double().mean().item()


def exercise_3():
    """alpha-bar_T for T = 10, linear from 1e-3 to 0.2."""
    return torch.cumprod(1 - torch.linspace(1e-3, 0.2, 10, dtype=torch.float64), dim=0)[-1].item()


def make_ancestral_step(betas, alphas_bar):
    """Exercise 4 uses the notebook's tables; this builds the same function from them."""
    alphas = 1 - betas
    alphas_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_bar[:-1]])
    tilde_beta = (1 - alphas_bar_prev) / (1 - alphas_bar) * betas

    def ancestral_step(x_t, eps, t, z):
        """One step of Algorithm 2 with sigma_t^2 = tilde_beta_t (fixed-small)."""
        mean = (x_t - betas[t] / (1 - alphas_bar[t]).sqrt() * eps) / alphas[t].sqrt()
        return mean + tilde_beta[t].sqrt() * z

    return ancestral_step
