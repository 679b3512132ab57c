r"""The score-based view of DDPM (lesson 13): scores from noise predictions, Tweedie's formula, the exact score of a
noised Gaussian mixture, guidance as an added gradient, and (annealed) Langevin dynamics.

The score of a density is :math:`\nabla_x \log p(x)`.  Since :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0,
(1-\bar\alpha_t) I)`, its score is :math:`-\epsilon/\sqrt{1-\bar\alpha_t}`, and a network trained with
:math:`L_\text{simple}` estimates the score of the marginal :math:`q(x_t)` (denoising score matching, Vincent 2011):

.. math::
    s_\theta(x_t, t) = -\frac{\epsilon_\theta(x_t, t)}{\sqrt{1-\bar\alpha_t}}, \qquad
    \mathbb E[x_0 \mid x_t] = \frac{x_t + (1-\bar\alpha_t)\,\nabla \log q(x_t)}{\sqrt{\bar\alpha_t}} \quad\text{(Tweedie)}.

Mixtures here are isotropic Gaussian mixtures :math:`\sum_k w_k\,\mathcal N(\mu_k, v_k I)` in any dimension, ``means``
of shape ``(K, D)``, ``var`` one variance or one per component (``(K,)``), ``weights`` summing to 1 (default: equal).
Everything follows the inputs' dtype and device; use float64 for reference computations.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import torch

from .diffusion import GaussianDiffusion, ModelMeanType

ScoreFn = Callable[[torch.Tensor, int], torch.Tensor]


# ------------------------------------------------------------------------------ checks
def _check_tensor(x: object, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{what} must be a floating-point tensor, got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    return x


def _check_alpha_bar(alpha_bar: float | torch.Tensor, *, allow_one: bool = False) -> float | torch.Tensor:
    """alpha-bar must lie in (0, 1) (in (0, 1] where ``allow_one``): a float or a tensor that broadcasts."""
    if isinstance(alpha_bar, bool) or not isinstance(alpha_bar, (numbers.Real, torch.Tensor)):
        raise TypeError(f"alpha_bar must be a number or a tensor, got {type(alpha_bar).__name__}")
    values = torch.as_tensor(alpha_bar, dtype=torch.float64)
    upper_ok = (values <= 1) if allow_one else (values < 1)
    if not bool(((values > 0) & upper_ok).all()):
        raise ValueError(f"alpha_bar must lie in (0, 1{']' if allow_one else ')'}, got values in "
                         f"[{values.min().item():.3g}, {values.max().item():.3g}]")
    return alpha_bar


def _check_positive(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return float(value)


def _mixture_args(x: torch.Tensor, means: torch.Tensor, var: float | torch.Tensor,
                  weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(means, variances (K,), log-weights (K,)) in x's dtype and device, after checking shapes and values."""
    _check_tensor(x, "x")
    _check_tensor(means, "means")
    if x.ndim != 2 or means.ndim != 2 or x.shape[1] != means.shape[1] or means.shape[0] == 0:
        raise ValueError(f"x must have shape (N, D) and means (K, D) with the same D and K >= 1, got "
                         f"{tuple(x.shape)} and {tuple(means.shape)}")
    K = means.shape[0]
    v = torch.as_tensor(var, dtype=x.dtype, device=x.device)
    if v.ndim == 0:
        v = v.expand(K)
    if v.shape != (K,) or not bool((v > 0).all()) or not bool(torch.isfinite(v).all()):
        raise ValueError(f"var must be one positive variance or one per component (shape ({K},)), got {var!r}")
    if weights is None:
        log_w = torch.full((K,), -math.log(K), dtype=x.dtype, device=x.device)
    else:
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (K,) or bool((w <= 0).any()) or abs(w.sum().item() - 1) > 1e-6:
            raise ValueError(f"weights must be {K} positive numbers summing to 1, got {weights!r}")
        log_w = w.log().to(dtype=x.dtype, device=x.device)
    return means.to(dtype=x.dtype, device=x.device), v, log_w


# ------------------------------------------------------------------------------ scores, eps and Tweedie
def score_from_eps(eps: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
    r""":math:`s = -\epsilon / \sqrt{1-\bar\alpha_t}` (the noise prediction as a score; Ho et al. 2020, sec. 3.2)."""
    _check_tensor(eps, "eps")
    alpha_bar = _check_alpha_bar(alpha_bar)
    return -eps / torch.as_tensor(1 - alpha_bar, dtype=eps.dtype, device=eps.device).sqrt()


def eps_from_score(score: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
    r""":math:`\epsilon = -\sqrt{1-\bar\alpha_t}\, s`, the inverse of :func:`score_from_eps`."""
    _check_tensor(score, "score")
    alpha_bar = _check_alpha_bar(alpha_bar)
    return -score * torch.as_tensor(1 - alpha_bar, dtype=score.dtype, device=score.device).sqrt()


def tweedie_x0(x_t: torch.Tensor, score: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
    r"""Tweedie's formula for :math:`x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon`:

    .. math:: \mathbb E[x_0 \mid x_t] = \big(x_t + (1-\bar\alpha_t)\,\nabla_{x_t} \log q(x_t)\big) / \sqrt{\bar\alpha_t}.

    With :math:`s = -\epsilon_\theta/\sqrt{1-\bar\alpha_t}` it is the usual
    :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta)/\sqrt{\bar\alpha_t}`.
    """
    _check_tensor(x_t, "x_t")
    _check_tensor(score, "score")
    if x_t.shape != score.shape:
        raise ValueError(f"x_t and score must have the same shape, got {tuple(x_t.shape)} and {tuple(score.shape)}")
    a = torch.as_tensor(_check_alpha_bar(alpha_bar, allow_one=True), dtype=x_t.dtype, device=x_t.device)
    return (x_t + (1 - a) * score) / a.sqrt()


def model_score(model: Callable[..., torch.Tensor], diffusion: GaussianDiffusion, x_t: torch.Tensor,
                t: int, **model_kwargs) -> torch.Tensor:
    r""":math:`s_\theta(x_t, t) = -\epsilon_\theta(x_t, t)/\sqrt{1-\bar\alpha_t}` for an eps-predicting model at code
    index ``t`` (code t = paper t - 1), with a fixed variance (the model outputs as many channels as the data)."""
    if diffusion.mean_type is not ModelMeanType.EPSILON:
        raise ValueError(f"model_score needs an eps-predicting model, this diffusion's mean type is "
                         f"{diffusion.mean_type.value!r}")
    steps = diffusion.check_timesteps(t, x_t)
    eps = model(x_t, steps, **model_kwargs)
    if eps.shape != x_t.shape:
        raise ValueError(f"model output has shape {tuple(eps.shape)}, expected {tuple(x_t.shape)} (a fixed variance)")
    return score_from_eps(eps, diffusion.alphas_cumprod[t].item())


# ------------------------------------------------------------------------------ isotropic Gaussian mixtures
def _component_log_probs(x: torch.Tensor, means: torch.Tensor, v: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """log w_k + log N(x; mu_k, v_k I), shape (N, K)."""
    D = x.shape[1]
    sq = (x[:, None, :] - means[None]).pow(2).sum(-1)
    return log_w - 0.5 * sq / v - 0.5 * D * torch.log(2 * math.pi * v)


def mixture_log_prob(x: torch.Tensor, means: torch.Tensor, var: float | torch.Tensor,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    r""":math:`\log \sum_k w_k \mathcal N(x; \mu_k, v_k I)` (by ``torch.logsumexp``), shape ``(N,)``."""
    means, v, log_w = _mixture_args(x, means, var, weights)
    return torch.logsumexp(_component_log_probs(x, means, v, log_w), dim=1)


def mixture_responsibilities(x: torch.Tensor, means: torch.Tensor, var: float | torch.Tensor,
                             weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""The posterior over components, :math:`r_k(x) = p(k \mid x) = w_k \mathcal N(x; \mu_k, v_k I) / p(x)`,
    shape ``(N, K)``, each row summing to 1 (Bayes' rule)."""
    means, v, log_w = _mixture_args(x, means, var, weights)
    return torch.softmax(_component_log_probs(x, means, v, log_w), dim=1)


def mixture_score(x: torch.Tensor, means: torch.Tensor, var: float | torch.Tensor,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""The closed-form score of an isotropic Gaussian mixture,

    .. math:: \nabla_x \log p(x) = \sum_k r_k(x)\,\frac{\mu_k - x}{v_k},

    the responsibility-weighted average of the components' own scores; shape ``(N, D)``.
    """
    means, v, log_w = _mixture_args(x, means, var, weights)
    r = torch.softmax(_component_log_probs(x, means, v, log_w), dim=1)
    return ((r / v)[:, :, None] * (means[None] - x[:, None, :])).sum(1)


def noised_mixture(means: torch.Tensor, var: float | torch.Tensor,
                   alpha_bar: float | torch.Tensor) -> tuple[torch.Tensor, float | torch.Tensor]:
    r"""The marginal :math:`q(x_t)` of a mixture :math:`q(x_0) = \sum_k w_k \mathcal N(\mu_k, v_k I)` under the forward
    process (eq. 4): again a mixture with the same weights,

    .. math:: q(x_t) = \sum_k w_k\,\mathcal N\big(\sqrt{\bar\alpha_t}\,\mu_k,\ (\bar\alpha_t v_k + 1 - \bar\alpha_t) I\big).

    Returns ``(means_t, var_t)``; ``alpha_bar`` a float.  The VE noise of NCSN (:math:`x_0 + \sigma z`) is the
    same with means unscaled and variance :math:`v_k + \sigma^2`.
    """
    _check_tensor(means, "means")
    if isinstance(alpha_bar, torch.Tensor):
        if alpha_bar.numel() != 1:
            raise ValueError("noised_mixture takes one alpha_bar (a float); call it once per t")
        alpha_bar = alpha_bar.item()
    a = float(_check_alpha_bar(alpha_bar, allow_one=True))
    return math.sqrt(a) * means, a * var + (1 - a)


def guided_mixture_score(x: torch.Tensor, means: torch.Tensor, var: float | torch.Tensor, y: int, scale: float,
                         weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""The classifier-guided score of a mixture with the component index as the class (Dhariwal & Nichol 2021):

    .. math::
        \nabla \log p(x) + s\,\nabla \log p(y \mid x)
        = (1 - s)\,\nabla \log p(x) + s\,\nabla \log p(x \mid y),

    since :math:`\nabla \log p(y \mid x) = \nabla \log p(x \mid y) - \nabla \log p(x)` (Bayes) and
    :math:`p(x \mid y) = \mathcal N(\mu_y, v_y I)`.  ``scale`` s = 0: unconditional, 1: conditional, > 1: sharpened.
    This is also classifier-free guidance, :math:`\epsilon_\varnothing + s(\epsilon_y - \epsilon_\varnothing)`, in score units.
    """
    means_, v, _ = _mixture_args(x, means, var, weights)
    if isinstance(y, bool) or not isinstance(y, numbers.Integral) or not 0 <= y < means_.shape[0]:
        raise ValueError(f"y must be a component index in [0, {means_.shape[0] - 1}], got {y!r}")
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    uncond = mixture_score(x, means, var, weights)
    cond = (means_[y] - x) / v[y]
    return uncond + scale * (cond - uncond)


# ------------------------------------------------------------------------------ Langevin dynamics
def langevin_step(x: torch.Tensor, score: torch.Tensor, step_size: float, noise: torch.Tensor) -> torch.Tensor:
    r"""One step of (unadjusted) Langevin dynamics, :math:`x \leftarrow x + \frac{\delta}{2}\,\nabla \log p(x)
    + \sqrt{\delta}\,z` with :math:`z \sim \mathcal N(0, I)` given as ``noise``; ``score`` is the score at ``x``."""
    _check_tensor(x, "x")
    if score.shape != x.shape or noise.shape != x.shape:
        raise ValueError(f"x, score and noise must have the same shape, got {tuple(x.shape)}, "
                         f"{tuple(score.shape)} and {tuple(noise.shape)}")
    delta = _check_positive(step_size, "step_size")
    return x + 0.5 * delta * score + math.sqrt(delta) * noise


def langevin(score_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, step_size: float, n_steps: int,
             generator: torch.Generator | None = None) -> torch.Tensor:
    r"""``n_steps`` Langevin steps (:func:`langevin_step`) from ``x`` with the score function ``score_fn(x)``.

    For small steps and many of them, the samples approach :math:`p`; for a Gaussian :math:`\mathcal N(m, v)` the
    chain is an AR(1) process whose stationary variance is :math:`v / (1 - \delta / (4v))` (the discretisation's bias).
    """
    _check_tensor(x, "x")
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 0:
        raise ValueError(f"n_steps must be an integer >= 0, got {n_steps!r}")
    _check_positive(step_size, "step_size")
    for _ in range(n_steps):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = langevin_step(x, score_fn(x), step_size, z)
    return x


def annealed_langevin(score_fn: ScoreFn, x: torch.Tensor, sigmas: Sequence[float], steps_per_level: int,
                      step_scale: float, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

    For noise levels :math:`\sigma_1 > \sigma_2 > \dots > \sigma_L` (``sigmas``, decreasing), run ``steps_per_level``
    Langevin steps on each level with step size :math:`\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2` (``step_scale``
    is :math:`\epsilon`), using ``score_fn(x, i)``, the score of the data convolved with :math:`\mathcal N(0, \sigma_i^2 I)`
    at level ``i`` (0-based).  Each level starts from the last one's samples; returns the final samples.
    """
    _check_tensor(x, "x")
    levels = [float(s) for s in sigmas]
    if not levels or any(not math.isfinite(s) or s <= 0 for s in levels) \
            or any(b >= a for a, b in zip(levels, levels[1:])):
        raise ValueError(f"sigmas must be positive and strictly decreasing, got {list(sigmas)!r}")
    if isinstance(steps_per_level, bool) or not isinstance(steps_per_level, numbers.Integral) or steps_per_level < 1:
        raise ValueError(f"steps_per_level must be a positive integer, got {steps_per_level!r}")
    eps = _check_positive(step_scale, "step_scale")
    for i, sigma in enumerate(levels):
        alpha = eps * sigma**2 / levels[-1] ** 2
        for _ in range(steps_per_level):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = langevin_step(x, score_fn(x, i), alpha, z)
    return x


def ve_sigma(alpha_bar: float | torch.Tensor) -> float | torch.Tensor:
    r"""The variance-exploding noise level of a DDPM step: :math:`x_t/\sqrt{\bar\alpha_t} = x_0 + \sigma_t\,\epsilon` with
    :math:`\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}` (the link between DDPM (VP) and NCSN (VE), Song et al. 2021)."""
    alpha_bar = _check_alpha_bar(alpha_bar)
    if isinstance(alpha_bar, torch.Tensor):
        return ((1 - alpha_bar) / alpha_bar).sqrt()
    return math.sqrt((1 - alpha_bar) / alpha_bar)


def ve_score_fn(model: Callable[..., torch.Tensor], diffusion: GaussianDiffusion, timesteps: Sequence[int],
                **model_kwargs) -> tuple[ScoreFn, list[float]]:
    r"""A DDPM eps-model as an NCSN: ``(score_fn, sigmas)`` for :func:`annealed_langevin` at the code ``timesteps``
    (from noisy to clean, i.e. decreasing).

    With :math:`y = x_t/\sqrt{\bar\alpha_t}`, :math:`p_\sigma(y) \propto q_t(\sqrt{\bar\alpha_t}\,y)`, so
    :math:`\nabla_y \log p_\sigma(y) = \sqrt{\bar\alpha_t}\; s_\theta(\sqrt{\bar\alpha_t}\,y, t)` at
    :math:`\sigma = \sigma_t` of :func:`ve_sigma`.
    """
    ts = [int(t) for t in timesteps]
    if not ts or any(not 0 <= t < diffusion.num_timesteps for t in ts) or any(b >= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"timesteps must be strictly decreasing code indices in [0, {diffusion.num_timesteps - 1}], "
                         f"got {list(timesteps)!r}")
    abar = [diffusion.alphas_cumprod[t].item() for t in ts]
    sigmas = [ve_sigma(a) for a in abar]

    def score_fn(y: torch.Tensor, i: int) -> torch.Tensor:
        root = math.sqrt(abar[i])
        with torch.no_grad():
            return root * model_score(model, diffusion, root * y, ts[i], **model_kwargs)

    return score_fn, sigmas
