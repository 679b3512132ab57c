"""Lesson 05's exercise checks (objectives and variances).

All three use the lesson's chain, the toy schedule (T = 100, beta linear from 1e-3 to 0.2), rebuilt here in plain
Python floats; code t = paper t - 1.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._common import TOY_T, _run, _say, _toy_tables

# Code timesteps the function checks are called on: both ends (code t = 0 has alpha-bar_{t-1} = 1), and between.
_CHECK_T = (0, 1, 2, 9, 37, 50, 98, 99)


def _inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two seeded float64 point sets of shape (8, 2) and the code timesteps, one per row."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(len(_CHECK_T), 2, generator=g, dtype=torch.float64)
    b = torch.randn(len(_CHECK_T), 2, generator=g, dtype=torch.float64)
    return a, b, torch.tensor(_CHECK_T)


def _rows(coef: Callable[[int], tuple[float, float]], first: torch.Tensor, second: torch.Tensor,
          t: torch.Tensor) -> torch.Tensor:
    """Row n: ``coef(t_n)[0] * first[n] + coef(t_n)[1] * second[n]``, the coefficients in plain floats."""
    out = torch.empty_like(first)
    for n, tn in enumerate(t.tolist()):
        u, w = coef(tn)
        out[n] = u * first[n] + w * second[n]
    return out


def _close(out: torch.Tensor, expected: torch.Tensor) -> bool:
    """Within 1e-6 (relative and absolute): float64 tables pass, a wrong coefficient does not."""
    return torch.allclose(out.double(), expected, rtol=1e-6, atol=1e-6)


def lesson05_posterior_mean(function: Callable[..., Any]) -> bool | None:
    """Exercise 1: ``function(x_0, x_t, t)`` -> :math:`\\tilde\\mu_t(x_t, x_0)` of eq. 7, row by row.

    ``x_0``, ``x_t``: float64 ``(N, 2)``; ``t``: code timesteps, shape ``(N,)``.  The truth comes by Bayes' rule,
    completing the square in :math:`q(x_{t-1} \\mid x_t, x_0) \\propto q(x_t \\mid x_{t-1})\\,q(x_{t-1} \\mid x_0)`:
    precision :math:`\\alpha_t/\\beta_t + 1/(1-\\bar\\alpha_{t-1})`, mean = precision-weighted sum of the two
    Gaussians' estimates of :math:`x_{t-1}`, not eq. 7's coefficients.  At code t = 0 the prior
    :math:`q(x_{t-1} \\mid x_0)` is a point at :math:`x_0`, so the mean is :math:`x_0`.
    """
    name = "Exercise 1"
    betas, abar = _toy_tables()
    prev = [1.0] + abar[:-1]

    def bayes(tn: int) -> tuple[float, float]:  # coefficients of x_0 and x_t
        if tn == 0:
            return 1.0, 0.0
        alpha = 1 - betas[tn]
        precision = alpha / betas[tn] + 1 / (1 - prev[tn])
        return math.sqrt(prev[tn]) / (1 - prev[tn]) / precision, math.sqrt(alpha) / betas[tn] / precision

    def eq7(tn: int, a_prev: float, root: bool = True) -> tuple[float, float]:  # eq. 7 with a chosen alpha-bar_{t-1}
        b, a = betas[tn], abar[tn]
        scale = math.sqrt if root else (lambda v: v)
        return scale(a_prev) * b / (1 - a), scale(1 - b) * (1 - a_prev) / (1 - a)

    slips = [
        ("the coefficients are swapped: c_1 = sqrt(abar_{t-1}) beta_t / (1 - abar_t) multiplies x_0, c_2 "
         "multiplies x_t", lambda tn: bayes(tn)[::-1]),
        ("the tables are read one step late (the paper's t for the code's): use beta[t], abar[t], abar_prev[t] at "
         "code t", lambda tn: eq7(min(tn + 1, TOY_T - 1), prev[min(tn + 1, TOY_T - 1)])),
        ("the square roots are missing: c_1 has sqrt(abar_{t-1}) and c_2 has sqrt(alpha_t)",
         lambda tn: eq7(tn, prev[tn], root=False)),
        ("that uses alpha-bar_t where eq. 7 has alpha-bar_{t-1}", lambda tn: eq7(tn, abar[tn])),
        ("at code t = 0, abar[t - 1] is abar[-1], the LAST entry: alpha-bar_{t-1} at code t = 0 is 1 (abar_prev)",
         lambda tn: eq7(tn, prev[tn] if tn > 0 else abar[-1])),
    ]
    x_0, x_t, t = _inputs(15)
    done, out = _run(name, function, x_0.clone(), x_t.clone(), t.clone())
    if done:
        return out
    if not isinstance(out, torch.Tensor) or out.shape != x_0.shape:
        return _say(name, False, f"return a tensor shaped like x_0, {tuple(x_0.shape)}; got "
                                 f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}.")
    if _close(out, _rows(bayes, x_0, x_t, t)):
        return _say(name, True, "eq. 7 agrees with Bayes' rule (completing the square) at eight code timesteps, "
                                "code t = 0 (mean = x_0) and t = T - 1 included.")
    for why, coef in slips:
        if _close(out, _rows(coef, x_0, x_t, t)):
            return _say(name, False, why + ".")
    wrong = [tn for n, tn in enumerate(t.tolist())
             if not _close(out[n], _rows(bayes, x_0[n:n + 1], x_t[n:n + 1], t[n:n + 1])[0])]
    return _say(name, False, f"wrong at code t = {', '.join(map(str, wrong))}: tilde_mu = c_1 x_0 + c_2 x_t with "
                             "c_1 = sqrt(abar_{t-1}) beta_t / (1 - abar_t), c_2 = sqrt(alpha_t) (1 - abar_{t-1}) / "
                             "(1 - abar_t), gathered per row.")


def lesson05_eps_from_x0(function: Callable[..., Any]) -> bool | None:
    """Exercise 2: ``function(x_t, x0_pred, t)`` -> the :math:`\\epsilon` that an :math:`x_0`-prediction implies.

    Eq. 4 solved for :math:`\\epsilon`: :math:`(x_t - \\sqrt{\\bar\\alpha_t}\\,\\hat x_0)/\\sqrt{1-\\bar\\alpha_t}`,
    code t per row; the check's coefficients are plain floats.
    """
    name = "Exercise 2"
    _, abar = _toy_tables()

    def coef(tn: int, a: float | None = None, root: bool = True) -> tuple[float, float]:  # of x_t and x0_pred
        a = abar[tn] if a is None else a
        s = math.sqrt if root else (lambda v: v)
        return 1 / s(1 - a), -s(a) / s(1 - a)

    slips = [
        ("the square roots are missing: eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)",
         lambda tn: coef(tn, root=False)),
        ("the tables are read one step late (the paper's t for the code's): abar[t] at code t",
         lambda tn: coef(min(tn + 1, TOY_T - 1))),
        ("sqrt(abar_t) and sqrt(1 - abar_t) are swapped (that formula turns an eps-prediction into x_0)",
         lambda tn: (1 / math.sqrt(abar[tn]), -math.sqrt(1 - abar[tn]) / math.sqrt(abar[tn]))),
        ("a sign: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, so eps = (x_t - sqrt(abar_t) x_0) / ...",
         lambda tn: (coef(tn)[0], -coef(tn)[1])),
    ]
    x_t, x0_pred, t = _inputs(16)
    done, out = _run(name, function, x_t.clone(), x0_pred.clone(), t.clone())
    if done:
        return out
    if not isinstance(out, torch.Tensor) or out.shape != x_t.shape:
        return _say(name, False, f"return a tensor shaped like x_t, {tuple(x_t.shape)}; got "
                                 f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}.")
    if _close(out, _rows(coef, x_t, x0_pred, t)):
        near, far = math.sqrt(abar[0] / (1 - abar[0])), math.sqrt(abar[-1] / (1 - abar[-1]))
        return _say(name, True, f"an error in x0_pred reaches eps multiplied by sqrt(SNR_t): {near:.1f}x at code "
                                f"t = 0, {far:.4f}x at code t = {TOY_T - 1} (section 1.1).")
    for why, c in slips:
        if _close(out, _rows(c, x_t, x0_pred, t)):
            return _say(name, False, why + ".")
    return _say(name, False, "eps = (x_t - sqrt(abar_t) x0_pred) / sqrt(1 - abar_t), with abar_t gathered per row "
                             "and shaped (N, 1) to broadcast.")


def lesson05_true_reverse_variance(function: Callable[..., Any]) -> bool | None:
    r"""Exercise 3: ``function(t, s)`` -> the variance (per axis) of the true reverse step :math:`q(x_{t-1} \mid x_t)`
    when the data is one blob :math:`\mathcal N(m, s^2 I)`, for code timesteps ``t`` of shape ``(N,)``.

    The lesson's route is :math:`\tilde\beta_t + c_1^2\,\mathrm{Var}[x_0 \mid x_t]`; the check's is Gaussian
    conditioning on the joint of :math:`(x_{t-1}, x_t)`: :math:`V_{t-1} - \mathrm{Cov}^2/V_t` with
    :math:`V_{t-1} = \bar\alpha_{t-1}s^2 + 1 - \bar\alpha_{t-1}`, :math:`\mathrm{Cov} = \sqrt{\alpha_t}\,V_{t-1}`,
    :math:`V_t = \bar\alpha_t s^2 + 1 - \bar\alpha_t`, in plain floats.
    """
    name = "Exercise 3"
    betas, abar = _toy_tables()
    prev = [1.0] + abar[:-1]
    t = torch.tensor(_CHECK_T)

    def joint(tn: int, s: float) -> float:
        v_prev, v_t = prev[tn] * s**2 + 1 - prev[tn], abar[tn] * s**2 + 1 - abar[tn]
        return v_prev - (1 - betas[tn]) * v_prev**2 / v_t

    def route(tn: int, s: float, posterior: bool = True, square: bool = True) -> float:  # the lesson's, with slips
        c1 = math.sqrt(prev[tn]) * betas[tn] / (1 - abar[tn])
        tilde = (1 - prev[tn]) / (1 - abar[tn]) * betas[tn]
        v0 = s**2 * (1 - abar[tn]) / (abar[tn] * s**2 + 1 - abar[tn]) if posterior else s**2
        return tilde + (c1**2 if square else c1) * v0

    slips = [
        ("that is tilde_beta_t alone, the variance for a point-like blob (s = 0); add c_1^2 Var[x_0 | x_t], the "
         "uncertainty about x_0", lambda tn, s: (1 - prev[tn]) / (1 - abar[tn]) * betas[tn]),
        ("c_1 must be squared: x_{t-1} = c_1 x_0 + ..., so x_0's variance enters multiplied by c_1^2",
         lambda tn, s: route(tn, s, square=False)),
        ("Var[x_0 | x_t] is the blob's variance after seeing x_t, s^2 (1 - abar_t) / (abar_t s^2 + 1 - abar_t), not "
         "its prior variance s^2", lambda tn, s: route(tn, s, posterior=False)),
        ("the tables are read one step late (the paper's t for the code's): abar[t], abar_prev[t] at code t",
         lambda tn, s: joint(min(tn + 1, TOY_T - 1), s)),
        ("that is a standard deviation; the exercise asks for the variance", lambda tn, s: math.sqrt(joint(tn, s))),
        ("that is beta_t, fixed_large's variance; it is right only for s = 1", lambda tn, s: betas[tn]),
    ]
    from ..data import toy_distribution

    blob = float(toy_distribution("gaussian25").mode_std[0])   # the lesson's blob std, 0.0177
    for s in (blob, 0.3, 1.0):
        done, out = _run(name, function, t.clone(), s)
        if done:
            return out
        out = torch.as_tensor(out) if isinstance(out, (torch.Tensor, list, tuple)) else out
        if not isinstance(out, torch.Tensor) or out.shape != t.shape:
            return _say(name, False, f"return one variance per timestep, a tensor of shape {tuple(t.shape)}; got "
                                     f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}.")
        expected = torch.tensor([joint(tn, s) for tn in _CHECK_T], dtype=torch.float64)
        close = lambda c: torch.allclose(out.double(), torch.tensor([c(tn, s) for tn in _CHECK_T],  # noqa: E731
                                                                  dtype=torch.float64), rtol=1e-6, atol=1e-12)
        if torch.allclose(out.double(), expected, rtol=1e-6, atol=1e-12):
            continue
        for why, c in slips:
            if close(c):
                return _say(name, False, f"for s = {s:.4f}: {why}.")
        return _say(name, False, f"for s = {s:.4f}: Var = tilde_beta_t + c_1^2 s^2 (1 - abar_t) / (abar_t s^2 + 1 - "
                                 "abar_t), per code t.")
    s, tn = blob, 1
    return _say(name, True, f"for s -> 0 it is tilde_beta_t, for s = 1 exactly beta_t: the paper's two extremes. "
                            f"For the gaussian25 blob at paper t = 2 the true std is "
                            f"{math.sqrt(joint(tn, s)) / s:.1f} blob std, fixed_small's "
                            f"{math.sqrt(route(tn, 0.0)) / s:.1f}, fixed_large's {math.sqrt(betas[tn]) / s:.1f}.")
