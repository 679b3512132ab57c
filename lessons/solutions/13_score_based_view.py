"""Lesson 13's solutions. Try each exercise yourself first."""

import torch


def tweedie_ve(y, score, sigma):
    """Exercise 1: E[x_0 | y] for y = x_0 + sigma z, from the score of p_sigma (Tweedie's formula)."""
    return y + sigma**2 * score


def mixture_score(x, means, variances, weights):
    """Exercise 2: the score of sum_k w_k N(mu_k, v_k I): the responsibility-weighted components' scores."""
    D = x.shape[1]
    sq = (x[:, None, :] - means[None]).pow(2).sum(-1)                        # (N, K)
    log_joint = weights.log() - sq / (2 * variances) - 0.5 * D * torch.log(2 * torch.pi * variances)
    r = torch.softmax(log_joint, dim=1)                                      # p(k | x), Bayes' rule
    return (r[:, :, None] * (means[None] - x[:, None, :]) / variances[None, :, None]).sum(1)


def langevin_variance(v, delta):
    """Exercise 3: x' = rho x + sqrt(delta) z with rho = 1 - delta / (2v), so V = rho^2 V + delta."""
    rho = 1 - delta / (2 * v)
    return delta / (1 - rho**2)          # = v / (1 - delta / (4v))


def guided_eps(eps, grad_log_p_y, alpha_bar, s):
    """Exercise 4: eps for the score -eps / sqrt(1 - abar) + s grad log p(y | x_t) (Dhariwal & Nichol 2021)."""
    return eps - s * (1 - alpha_bar) ** 0.5 * grad_log_p_y
