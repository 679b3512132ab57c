"""Lesson 09's exercise checks (sampling and GIFs: respacing, DDIM, interpolation)."""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import torch

from ._common import NOT_ATTEMPTED, _is_int, _linear_abar, _linear_betas, _number, _run, _say, _tensor_close

KEPT = [0, 250, 500, 750, 999]   # exercise 1's kept code timesteps


@functools.lru_cache(maxsize=1)
def _abar_table() -> tuple[float, ...]:
    return tuple(_linear_abar())


def _abar_code(t: int) -> float:
    """alpha-bar of code t (code t = paper t - 1) for the linear schedule, a plain float product."""
    return _abar_table()[t + 1]


def lesson09_respaced_betas(answer: Any) -> bool | None:
    """Exercise 1: the five betas of the chain that keeps code timesteps 0, 250, 500, 750, 999.

    The truth: :math:`\\beta^{new}_i = 1 - \\bar\\alpha_{t_i}/\\bar\\alpha_{t_{i-1}}` with :math:`\\bar\\alpha_{t_{-1}} = 1`, from the
    running products of the linear schedule's ``1 - beta`` in plain Python floats.
    """
    name = "Exercise 1"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    try:
        value = torch.as_tensor(answer, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        return _say(name, False, f"give the 5 betas as a tensor (or a list of numbers), got {type(answer).__name__}")
    if value.numel() != len(KEPT):
        return _say(name, False, f"give one beta per kept step, {len(KEPT)} numbers; got {value.numel()}.")
    abar = [_abar_code(t) for t in KEPT]
    prev = [1.0] + abar[:-1]
    truth = torch.tensor([1 - a / p for a, p in zip(abar, prev)], dtype=torch.float64)
    if torch.allclose(value, truth, rtol=1e-9, atol=1e-12):
        return _say(name, True, "beta_new_i = 1 - abar_(t_i) / abar_(t_(i-1)): the last jumps are huge (beta_new "
                                "close to 1), those steps must remove most of the noise at once.")
    betas, full = _linear_betas(), _linear_abar()
    paper = [full[t] for t in KEPT]   # abar of the paper's t = code t (one factor short)
    if torch.allclose(value, torch.tensor([betas[t] for t in KEPT], dtype=torch.float64), rtol=1e-9):
        return _say(name, False, "those are the original beta_t at the kept steps; the respaced chain's beta must "
                                 "cover all the steps it skips: 1 - abar_(t_i) / abar_(t_(i-1)).")
    if torch.allclose(value, torch.tensor([1 - a / p for a, p in zip(paper, [1.0] + paper[:-1])],
                                          dtype=torch.float64), rtol=1e-9, atol=1e-12):
        return _say(name, False, "off by one: code t's alpha-bar is the product of t + 1 factors "
                                 "(diffusion.alphas_cumprod[t]), not t.")
    if torch.allclose(value, torch.tensor([1 - a for a in abar], dtype=torch.float64), rtol=1e-9):
        return _say(name, False, "that is 1 - abar_(t_i), the jump from x_0; divide by abar of the previous *kept* "
                                 "step.")
    if torch.allclose(value, torch.tensor([a / p for a, p in zip(abar, prev)], dtype=torch.float64), rtol=1e-9):
        return _say(name, False, "those are the new alphas, abar_(t_i) / abar_(t_(i-1)); beta_new = 1 - alpha_new.")
    if abs(float(value[0]) - truth[0].item()) > 1e-12:
        return _say(name, False, "the first kept step starts from alpha-bar = 1, so its beta is beta_0 itself.")
    return _say(name, False, "beta_new_i = 1 - abar[t_i] / abar[t_(i-1)], with abar of the previous kept step and "
                             "abar = 1 before the first.")


def lesson09_mix_noise(var_mix: Any, t_match: Any) -> bool | None:
    """Exercise 2: the noise variance of the mix (1 - l) x_t + l x'_t at code t = 500, l = 1/2, with independent
    noises, and the code timestep whose own noise variance 1 - alpha-bar_t is closest to it.

    The truth: :math:`(1-\\bar\\alpha_{500})\\big((1-\\lambda)^2 + \\lambda^2\\big)` and a brute-force search over the plain
    float table.
    """
    name = "Exercise 2"
    if var_mix is None or t_match is None:
        return _say(name, None, NOT_ATTEMPTED)
    done, value = _number(name, var_mix)
    if done:
        return value
    one_minus = [1 - _abar_code(t) for t in range(1000)]
    truth = one_minus[500] * (0.5**2 + 0.5**2)
    if abs(value - truth) > 1e-9:
        if abs(value - math.sqrt(truth)) < 1e-9:
            return _say(name, False, "that is the standard deviation of the mixed noise; give the variance.")
        if abs(value - one_minus[500]) < 1e-9:
            return _say(name, False, "that is the noise variance of x_t alone: the weights (1 - l) and l enter the "
                                     "variance squared, and independent noises add their variances.")
        if abs(value - one_minus[499] * 0.5) < 1e-9 or abs(value - one_minus[501] * 0.5) < 1e-9:
            return _say(name, False, "off by one: use alpha-bar of code t = 500, diffusion.alphas_cumprod[500].")
        return _say(name, False, "Var((1 - l) a e + l a e') = a^2 ((1 - l)^2 + l^2) for independent unit-variance e, "
                                 "e'; here a^2 = 1 - abar_500.")
    if isinstance(t_match, torch.Tensor) and t_match.numel() == 1:
        t_match = t_match.item()
    if not _is_int(t_match):
        return _say(name, False, f"var_mix is right; give t_match as an integer code timestep, got "
                                 f"{type(t_match).__name__}")
    best = min(range(1000), key=lambda t: abs(one_minus[t] - truth))
    if t_match == best:
        return _say(name, True, f"the mix at code t = 500 has the noise of code t = {best}: the middle of the row is "
                                "decoded from an image much less noisy than the sampler assumes.")
    if t_match == best + 1:
        return _say(name, False, f"off by one: {t_match} is the paper's index; the code's is one less.")
    return _say(name, False, "var_mix is right; search all code t for the smallest |(1 - abar_t) - var_mix|.")


def lesson09_ddim_update(function: Callable[..., Any]) -> bool | None:
    """Exercise 3: ``function(x_t, eps, abar_t, abar_prev, eta, z)`` -> x_prev, one DDIM step (eq. 12), no clipping.

    The truth does not come from eq. 12: at ``eta = 1`` the step must be the DDPM posterior of the (respaced) chain,
    :math:`\\tilde\\mu(x_t, \\hat x_0) + \\sqrt{\\tilde\\beta}\\,z` with :math:`\\beta = 1 - \\bar\\alpha_t/\\bar\\alpha_{prev}`
    (Bayes' route, lesson 03); at ``eta = 0`` it must ignore ``z`` and keep both estimates (the same
    :math:`\\hat x_0` and :math:`\\epsilon`); in between the noise must be :math:`\\sigma z` with eq. 12's sigma and the
    variance :math:`1 - \\bar\\alpha_{prev}` preserved.  Float64 inputs of the check's own, the linear schedule's tables.
    """
    name = "Exercise 3"
    g = torch.Generator().manual_seed(9)
    x_t, eps, z, z2 = (torch.randn(32, 3, generator=g, dtype=torch.float64) for _ in range(4))

    def call(ab_t: float, ab_prev: float, eta: float, noise: torch.Tensor) -> tuple[bool, Any]:
        done, out = _run(name, function, x_t.clone(), eps.clone(), ab_t, ab_prev, eta, noise.clone())
        if not done and isinstance(out, tuple):
            return True, _say(name, False, "return x_prev only (one tensor), not a tuple.")
        if not done and not (isinstance(out, torch.Tensor) and out.shape == x_t.shape):
            return True, _say(name, False, f"return a tensor of the shape of x_t, {tuple(x_t.shape)}.")
        return done, out

    # eta = 1: consecutive steps (code t -> t - 1, and t = 0 -> x_0 with abar_prev = 1) and two skipped steps
    for t_hi, t_lo in ((999, 998), (500, 499), (1, 0), (0, None), (555, 444), (999, 888)):
        a = _abar_code(t_hi)
        p = _abar_code(t_lo) if t_lo is not None else 1.0
        b = 1 - a / p                                  # the (respaced) chain's beta of this step
        x0_hat = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
        mean = math.sqrt(p) * b / (1 - a) * x0_hat + math.sqrt(1 - b) * (1 - p) / (1 - a) * x_t   # tilde-mu
        tilde_beta = (1 - p) / (1 - a) * b
        done, out = call(a, p, 1.0, z)
        if done:
            return out
        if _tensor_close(out, mean + math.sqrt(tilde_beta) * z, 1e-5):
            continue
        where = f"code t = {t_hi} -> {t_lo if t_lo is not None else 'x_0 (abar_prev = 1)'}, eta = 1"
        if torch.isnan(out).any():
            return _say(name, False, f"at {where} you return NaN: a square root of a negative number? (abar_t < "
                                     "abar_prev: check which ratio goes under the root)")
        if _tensor_close(out, mean + math.sqrt(b) * z, 1e-5):
            return _say(name, False, f"at {where} your noise is sqrt(beta) z (fixed-large): eta = 1 must give "
                                     "tilde_beta, sigma = sqrt((1 - abar_prev)/(1 - abar_t)) sqrt(1 - abar_t/abar_prev).")
        if _tensor_close(out, math.sqrt(p) * x0_hat + math.sqrt(1 - p) * eps + math.sqrt(tilde_beta) * z, 1e-5):
            return _say(name, False, f"at {where} the variance grows: the eps term's coefficient is "
                                     "sqrt(1 - abar_prev - sigma^2), not sqrt(1 - abar_prev).")
        if _tensor_close(out, mean + tilde_beta * z, 1e-5):
            return _say(name, False, f"at {where} the noise is sigma^2 z: sigma is the square root.")
        return _say(name, False, f"at {where} your step is not the DDPM posterior tilde-mu(x_t, x0_hat) + "
                                 "sqrt(tilde_beta) z that eta = 1 must give.")
    # eta = 0: deterministic, and the step keeps the estimates: x_prev = sqrt(abar_prev) x0_hat + sqrt(1-abar_prev) eps
    for t_hi, t_lo in ((999, 888), (555, 444), (300, 299)):
        a, p = _abar_code(t_hi), _abar_code(t_lo)
        x0_hat = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
        done, out = call(a, p, 0.0, z)
        if done:
            return out
        done, out2 = call(a, p, 0.0, z2)
        if done:
            return out2
        if not torch.allclose(out.double(), out2.double(), rtol=0, atol=1e-12):
            return _say(name, False, f"at eta = 0 (code t = {t_hi} -> {t_lo}) your step depends on z: sigma must be "
                                     "eta times the square roots, 0 here.")
        kept = math.sqrt(p) * x0_hat + math.sqrt(1 - p) * eps    # the x_prev whose estimates are x0_hat and eps
        if not _tensor_close(out, kept, 1e-5):
            return _say(name, False, f"at eta = 0 (code t = {t_hi} -> {t_lo}) the step must keep both estimates: "
                                     "x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps with the same x0_hat.")
    # eta = 1/2 on a skipped step: sigma = eta * (the eta = 1 value), the marginal variance 1 - abar_prev kept
    a, p, eta = _abar_code(600), _abar_code(450), 0.5
    sigma = eta * math.sqrt((1 - p) / (1 - a)) * math.sqrt(1 - a / p)
    x0_hat = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
    done, out = call(a, p, eta, z)
    if done:
        return out
    done, out_neg = call(a, p, eta, -z)
    if done:
        return out_neg
    noise_part = (out.double() - out_neg.double()) / 2        # sigma z
    rest = (out.double() + out_neg.double()) / 2              # sqrt(abar_prev) x0_hat + c eps
    if not torch.allclose(noise_part, sigma * z, rtol=0, atol=1e-5):
        return _say(name, False, "at eta = 0.5 your noise is not sigma z with sigma = eta sqrt((1 - abar_prev) / "
                                 "(1 - abar_t)) sqrt(1 - abar_t / abar_prev): eta enters once, not squared.")
    if not torch.allclose(rest, math.sqrt(p) * x0_hat + math.sqrt(1 - p - sigma**2) * eps, rtol=0, atol=1e-5):
        return _say(name, False, "at eta = 0.5 the noise is right but the rest is not sqrt(abar_prev) x0_hat + "
                                 "sqrt(1 - abar_prev - sigma^2) eps.")
    return _say(name, True, "eta = 1 is the DDPM posterior (tilde-mu at x0_hat, tilde_beta) on consecutive and skipped "
                            "steps, eta = 0 ignores z and keeps x0_hat, eta = 0.5 scales the noise and keeps the "
                            "variance 1 - abar_prev.")


class _GaussianDenoiser:
    """A stand-in for the network whose eps is known in closed form: the exact E[eps | x_t] when x_0 ~ N(m_y, c^2 I)
    with class means m_y = 0.1 y and c^2 = 0.25, for the linear schedule.  It is affine in x_t, so a whole DDIM
    inversion is a product of scalars that plain Python floats give exactly."""

    null_label = 10
    c2 = 0.25

    def __init__(self) -> None:
        self.calls: list[int] = []

    @staticmethod
    def mean(y: int) -> float:
        return 0.1 * y

    def coefficients(self, t: int) -> tuple[float, float]:
        """eps = k (x_t - sqrt(abar_t) m_y) with this k."""
        a = _abar_code(t)
        return a, math.sqrt(1 - a) / (a * self.c2 + 1 - a)

    def __call__(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        t = torch.as_tensor(t).long().flatten()
        t = t.expand(len(x)) if t.numel() == 1 else t
        y = torch.full((len(x),), self.null_label) if y is None else torch.as_tensor(y).long().flatten()
        y = y.expand(len(x)) if y.numel() == 1 else y
        if t.numel() != len(x) or y.numel() != len(x):
            raise ValueError("give one timestep and one label per image")
        self.calls.extend(int(v) for v in t.unique())
        shape = (-1,) + (1,) * (x.dim() - 1)
        a = torch.tensor([self.coefficients(int(v))[0] for v in t], dtype=torch.float64).view(shape)
        k = torch.tensor([self.coefficients(int(v))[1] for v in t], dtype=torch.float64).view(shape)
        m = torch.tensor([self.mean(int(v)) if int(v) != self.null_label else 0.0 for v in y],
                         dtype=torch.float64).view(shape)
        return (k * (x.double() - a.sqrt() * m)).to(x.dtype)


def lesson09_ddim_inversion(function: Callable[..., Any]) -> bool | None:
    """Exercise 4: ``function(model, x_0, y, timesteps)`` -> x_T: DDIM (eta = 0) run upwards over the kept
    ``timesteps``, from :math:`x_{t_0} = x_0`, with eps taken at the current kept step.

    The check passes a stand-in for the network whose eps is known in closed form (Gaussian data per class, see
    :class:`_GaussianDenoiser`) and affine in x_t, so the whole inversion is x_T = P x_0 + Q_y with P, Q_y products
    of per-step scalars in plain Python floats.
    """
    name = "Exercise 4"
    fake = _GaussianDenoiser()
    timesteps = [(2 * i * 999 + 19) // 38 for i in range(20)]   # 20 linear kept steps, round(i 999 / 19)
    g = torch.Generator().manual_seed(12)
    y = torch.tensor([2, 7, 0])
    x_0 = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    done, x_T = _run(name, function, fake, x_0.clone(), y.clone(), list(timesteps))
    if done:
        return x_T
    if not isinstance(x_T, torch.Tensor) or x_T.shape != x_0.shape:
        return _say(name, False, f"return x_T, a tensor of the shape of x_0, {tuple(x_0.shape)}.")
    expected = []
    for label in y.tolist():
        p_coef, q_coef, m = 1.0, 0.0, fake.mean(label)      # x = p_coef x_0 + q_coef
        for t_i, t_next in zip(timesteps[:-1], timesteps[1:]):
            a, k = fake.coefficients(t_i)
            n = _abar_code(t_next)
            # eps = k (x - sqrt(a) m); x0_hat = (x - sqrt(1 - a) eps) / sqrt(a); x <- sqrt(n) x0_hat + sqrt(1 - n) eps
            c_x = math.sqrt(n) * (1 - math.sqrt(1 - a) * k) / math.sqrt(a) + math.sqrt(1 - n) * k
            c_0 = (math.sqrt(n) * math.sqrt(1 - a) / math.sqrt(a) - math.sqrt(1 - n)) * k * math.sqrt(a) * m
            p_coef, q_coef = c_x * p_coef, c_x * q_coef + c_0
        expected.append((p_coef, q_coef))
    truth = torch.stack([p * x_0[i] + q for i, (p, q) in enumerate(expected)])
    if _tensor_close(x_T.detach(), truth, 1e-5):
        return _say(name, True, "DDIM run upwards with a denoiser whose eps is known exactly: x_T agrees with the "
                                "closed form (the eta = 0 sampler is an invertible map; ancestral sampling has none).")
    if not set(timesteps[:-1]) <= set(fake.calls):
        return _say(name, False, "call the network at every kept step t_0 .. t_(S-2), with its own timestep t_i "
                                 "(torch.full((len(x),), t_i)).")
    if timesteps[-1] in fake.calls:
        return _say(name, False, "the last kept step needs no network call: take eps at the *current* step t_i, "
                                 "then abar of the *next* step t_(i+1).")
    return _say(name, False, "from x at t_i: eps = model(x, t_i, y), x0_hat = (x - sqrt(1 - abar_(t_i)) eps) / "
                             "sqrt(abar_(t_i)), then x = sqrt(abar_(t_(i+1))) x0_hat + sqrt(1 - abar_(t_(i+1))) eps.")
