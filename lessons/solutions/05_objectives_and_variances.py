"""Lesson 05's solutions. Try each exercise yourself first.

Exercises 1 and 2 use the notebook's tables of the toy chain (``beta``, ``alpha``, ``abar``, ``abar_prev``); the
``make_*`` functions here build the same functions from ``beta``.
"""

import torch


def tables(beta):
    """alpha, abar and abar_prev (abar_{t-1}, 1 at code t = 0), as the notebook builds them."""
    alpha = 1 - beta
    abar = torch.cumprod(alpha, dim=0)
    return alpha, abar, torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])


def make_posterior_mean(beta):
    alpha, abar, abar_prev = tables(beta)

    def posterior_mean(x_0, x_t, t):
        """Exercise 1: tilde_mu_t(x_t, x_0) of eq. 7 for code timesteps t of shape (N,)."""
        c1 = abar_prev[t].sqrt() * beta[t] / (1 - abar[t])
        c2 = alpha[t].sqrt() * (1 - abar_prev[t]) / (1 - abar[t])
        return c1.reshape(-1, 1) * x_0 + c2.reshape(-1, 1) * x_t

    return posterior_mean


def make_eps_from_x0(beta):
    _, abar, _ = tables(beta)

    def eps_from_x0(x_t, x0_pred, t):
        """Exercise 2: the eps an x_0-prediction implies (eq. 4 solved for eps)."""
        a = abar[t].reshape(-1, 1)
        return (x_t - a.sqrt() * x0_pred) / (1 - a).sqrt()

    return eps_from_x0


def make_true_reverse_variance(beta):
    alpha, abar, abar_prev = tables(beta)

    def true_reverse_variance(t, s):
        """Exercise 3: Var[x_{t-1} | x_t] for data N(m, s^2 I): tilde_beta_t + c_1^2 Var[x_0 | x_t] (section 2.1)."""
        tilde_beta = (1 - abar_prev[t]) / (1 - abar[t]) * beta[t]
        c1 = abar_prev[t].sqrt() * beta[t] / (1 - abar[t])
        var_x0 = s**2 * (1 - abar[t]) / (abar[t] * s**2 + 1 - abar[t])   # the blob after seeing x_t
        return tilde_beta + c1**2 * var_x0

    return true_reverse_variance
