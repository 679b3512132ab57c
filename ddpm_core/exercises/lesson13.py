"""Lesson 13's exercise checks (the score-based view)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._common import _say, _scalar, _run, _tensor_close

D64 = torch.float64


def _log_mixture(x: torch.Tensor, means: torch.Tensor, variances: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """log sum_k w_k N(x; mu_k, v_k I), component by component, float64 (the checks' own density)."""
    D = x.shape[1]
    terms = [math.log(w) - ((x - m) ** 2).sum(1) / (2 * v) - 0.5 * D * math.log(2 * math.pi * v)
             for m, v, w in zip(means, variances.tolist(), weights.tolist())]
    return torch.logsumexp(torch.stack(terms, dim=1), dim=1)


def _autograd_score(x: torch.Tensor, means: torch.Tensor, variances: torch.Tensor,
                    weights: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_log_mixture(x, means, variances, weights).sum(), x)
    return grad


def lesson13_tweedie_ve(function: Callable[..., Any]) -> bool | None:
    r"""Exercise 1: ``function(y, score, sigma)`` -> :math:`\mathbb E[x_0 \mid y]` for :math:`y = x_0 + \sigma z`.

    The truth is the posterior mean by brute force: the check integrates :math:`x_0\,p(x_0)\,\mathcal N(y; x_0, \sigma^2)`
    over a fine grid for a 1-D mixture of its own, and hands the function the exact score of :math:`p_\sigma(y)` (from
    autograd of that mixture's log-density).
    """
    name = "Exercise 1"
    means = torch.tensor([[-1.0], [2.0]], dtype=D64)
    variances = torch.tensor([0.25, 0.5], dtype=D64)
    weights = torch.tensor([0.3, 0.7], dtype=D64)
    sigma = 0.8
    y = torch.linspace(-3, 4, 15, dtype=D64)[:, None]
    grid = torch.linspace(-10, 12, 44_001, dtype=D64)
    prior = sum(w * torch.exp(-(grid - m) ** 2 / (2 * v)) / math.sqrt(2 * math.pi * v)
                for m, v, w in zip(means[:, 0].tolist(), variances.tolist(), weights.tolist()))
    joint = prior[None] * torch.exp(-(y - grid[None]) ** 2 / (2 * sigma**2))
    truth = ((joint * grid[None]).sum(1) / joint.sum(1))[:, None]
    s = _autograd_score(y, means, variances + sigma**2, weights)
    done, out = _run(name, function, y.clone(), s.clone(), sigma)
    if done:
        return out
    if not isinstance(out, torch.Tensor) or out.shape != y.shape:
        return _say(name, False, f"return a tensor shaped like y, {tuple(y.shape)}.")
    if _tensor_close(out, truth, 1e-6):
        return _say(name, True, "y + sigma^2 * score is the posterior mean E[x_0 | y], computed here by brute-force "
                                "integration.")
    slips = [(y + sigma * s, "that uses sigma; Tweedie's correction is sigma^2 (the noise variance) times the score."),
             (y - sigma**2 * s, "a sign: the score points towards the data, so add sigma^2 times the score."),
             (y + s, "the score must be scaled by the noise variance sigma^2."),
             (y, "that is y itself: add the correction sigma^2 * score.")]
    for wrong, why in slips:
        if _tensor_close(out, wrong, 1e-6):
            return _say(name, False, why)
    return _say(name, False, "for y = x_0 + sigma z, E[x_0 | y] = y + sigma^2 * grad log p_sigma(y).")


def lesson13_mixture_score(function: Callable[..., Any]) -> bool | None:
    r"""Exercise 2: ``function(x, means, variances, weights)`` -> the score of :math:`\sum_k w_k \mathcal N(\mu_k, v_k I)`.

    The truth is autograd of the check's own float64 log-density (logsumexp), on a 3-component 2-D mixture with
    unequal weights and variances.
    """
    name = "Exercise 2"
    g = torch.Generator().manual_seed(13)
    means = torch.tensor([[0.0, 0.0], [2.0, 1.0], [-1.0, 2.5]], dtype=D64)
    variances = torch.tensor([0.5, 0.2, 1.0], dtype=D64)
    weights = torch.tensor([0.6, 0.3, 0.1], dtype=D64)
    x = torch.randn(100, 2, generator=g, dtype=D64) * 1.5 + 0.5
    truth = _autograd_score(x, means, variances, weights)
    done, out = _run(name, function, x.clone(), means.clone(), variances.clone(), weights.clone())
    if done:
        return out
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        return _say(name, False, f"return one score per point, a tensor of shape {tuple(x.shape)}.")
    if _tensor_close(out, truth, 1e-8):
        return _say(name, True, "the responsibility-weighted average of the components' scores, as autograd of the "
                                "log-density says.")
    if _tensor_close(out, _autograd_score(x, means, variances, torch.full((3,), 1 / 3, dtype=D64)), 1e-8):
        return _say(name, False, "the weights w_k are missing from the responsibilities.")
    if _tensor_close(out, -truth, 1e-8):
        return _say(name, False, "a sign: the score (mu_k - x) / v_k points towards the components.")
    nearest = (((x[:, None] - means[None]) ** 2).sum(-1) / variances).argmin(1)
    for idx in (nearest, ((x[:, None] - means[None]) ** 2).sum(-1).argmin(1)):
        if _tensor_close(out, (means[idx] - x) / variances[idx][:, None], 1e-6):
            return _say(name, False, "that is the score of the nearest component only; average all components' "
                                     "scores with the responsibilities r_k(x).")
    r = torch.softmax(torch.stack([math.log(w) - ((x - m) ** 2).sum(1) / (2 * v) - math.log(2 * math.pi * v)
                                   for m, v, w in zip(means, variances.tolist(), weights.tolist())], 1), 1)
    if _tensor_close(out, (r[:, :, None] * (means[None] - x[:, None])).sum(1), 1e-8):
        return _say(name, False, "each component's score is (mu_k - x) / v_k: divide by its variance.")
    return _say(name, False, "grad log p(x) = sum_k r_k(x) (mu_k - x) / v_k with r_k(x) = w_k N(x; mu_k, v_k I) / p(x).")


def lesson13_langevin_variance(function: Callable[..., Any]) -> bool | None:
    r"""Exercise 3: ``function(v, delta)`` -> the stationary variance of Langevin steps
    :math:`x \leftarrow x + \frac\delta2 \nabla \log \mathcal N(x; 0, v) + \sqrt\delta z` (for :math:`0 < \delta < 4v`).

    The check finds it by iterating the variance of the chain, :math:`V \leftarrow (1 - \delta/2v)^2 V + \delta`, in plain
    Python floats until it stops changing.
    """
    name = "Exercise 3"
    for v, delta in [(1.0, 0.5), (0.3, 0.2), (2.0, 0.1), (0.5, 1.5)]:
        rho, V = 1 - delta / (2 * v), 0.0
        for _ in range(100_000):
            V_next = rho * rho * V + delta
            if abs(V_next - V) < 1e-15 * V_next:
                break
            V = V_next
        done, out = _run(name, function, v, delta)
        if done:
            return out
        value = _scalar(out)
        if value is None:
            return _say(name, False, "return one number, the stationary variance.")
        if abs(value - V) <= 1e-9 * V:
            continue
        if abs(value - v) < 1e-9:
            return _say(name, False, f"at v = {v}, delta = {delta}: that is v, the continuous-time answer; the "
                                     "discrete steps inflate it.")
        if abs(value - delta / (1 - rho)) < 1e-9 * V or abs(value - delta / (1 - abs(rho))) < 1e-9 * V:
            return _say(name, False, "the variance recursion multiplies V by rho squared, rho = 1 - delta / (2v).")
        if abs(value - v * (1 + delta / (4 * v))) < 1e-9 * V:
            return _say(name, False, "that is the first-order approximation; solve the recursion exactly.")
        return _say(name, False, f"at v = {v}, delta = {delta} the chain's variance settles at a different value: "
                                 "write x' = rho x + sqrt(delta) z and solve V = rho^2 V + delta.")
    return _say(name, True, "v / (1 - delta / (4v)): unadjusted Langevin is biased by its step size, checked against "
                            "the iterated recursion at four (v, delta).")


def lesson13_guided_eps(function: Callable[..., Any]) -> bool | None:
    r"""Exercise 4: ``function(eps, grad_log_p_y, alpha_bar, s)`` -> the classifier-guided noise prediction.

    The check works in score units: the guided score is :math:`-\epsilon/\sqrt{1-\bar\alpha} + s\,\nabla \log p(y \mid x_t)`,
    and the eps that gives it is :math:`-\sqrt{1-\bar\alpha}` times that.
    """
    name = "Exercise 4"
    g = torch.Generator().manual_seed(31)
    eps = torch.randn(64, 2, generator=g, dtype=D64)
    grad = torch.randn(64, 2, generator=g, dtype=D64) * 3
    for alpha_bar, s in [(0.9, 2.0), (0.3, 0.5), (0.05, 4.0)]:
        guided_score = -eps / math.sqrt(1 - alpha_bar) + s * grad
        truth = -math.sqrt(1 - alpha_bar) * guided_score
        done, out = _run(name, function, eps.clone(), grad.clone(), alpha_bar, s)
        if done:
            return out
        if _tensor_close(out, truth, 1e-9):
            continue
        root = math.sqrt(1 - alpha_bar)
        slips = [(eps + s * root * grad, "a sign: adding s grad log p(y|x) to the score subtracts from eps."),
                 (eps - s * (1 - alpha_bar) * grad, "the factor is sqrt(1 - alpha_bar), not 1 - alpha_bar."),
                 (eps - s * grad / root, "multiply by sqrt(1 - alpha_bar): eps = -sqrt(1 - alpha_bar) * score."),
                 (eps - root * grad, "the guidance scale s is missing."),
                 (eps - s * math.sqrt(alpha_bar) * grad, "the factor is sqrt(1 - alpha_bar), not sqrt(alpha_bar).")]
        for wrong, why in slips:
            if _tensor_close(out, wrong, 1e-9):
                return _say(name, False, f"at alpha_bar = {alpha_bar}, s = {s}: {why}")
        return _say(name, False, f"at alpha_bar = {alpha_bar}, s = {s}: convert to scores, add s grad log p(y|x_t), "
                                 "convert back.")
    return _say(name, True, "eps - s sqrt(1 - alpha_bar) grad log p(y | x_t), Dhariwal & Nichol's guided eps, at "
                            "three alpha_bar and scales.")
