r"""Sampling: ancestral (Algorithm 2), DDIM, respaced sampling, classifier-free guidance, interpolation.

Ancestral sampling (Ho et al. 2020, Algorithm 2):

.. math::
    x_T \sim \mathcal N(0, I), \qquad
    x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z,\ z \sim \mathcal N(0, I) \text{ if } t > 1 \text{ else } z = 0.

DDIM (Song et al. 2021, eq. 12), with :math:`\hat x_0, \hat\epsilon` the network's estimates at :math:`x_t`:

.. math::
    x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t-1} - \sigma_t^2}\;\hat\epsilon + \sigma_t z,
    \qquad
    \sigma_t = \eta\,\sqrt{\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}}\,\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}}}.

:math:`\eta = 0` is deterministic; :math:`\eta = 1` is ancestral sampling with the ``fixed_small`` variance.
Fewer steps come from *respacing* (:mod:`ddpm_core.respace`): both samplers run on a
:class:`~ddpm_core.respace.SpacedDiffusion` unchanged.  :func:`sample` is the one entry point (sampler,
steps, spacing, eta, guidance); :func:`sample_trajectory` records snapshots of the same run.

The network is called as ``model(x_t, t, **model_kwargs)`` with integer timesteps of the process it was
trained on (0 ... T-1; a spaced diffusion maps its indices back for you).  Every random draw goes through
the optional ``torch.Generator``, so a seed fixes the whole trajectory.
"""

from __future__ import annotations

import math
import numbers
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .diffusion import GaussianDiffusion
from .respace import SPACINGS, SpacedDiffusion, model_for, respace

Model = Callable[..., torch.Tensor]
StepFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], dict[str, torch.Tensor]]

SAMPLERS = ("ddpm", "ddim")


# ------------------------------------------------------------------------------ helpers
def _broadcast(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example values ``(N,)`` cast to x's dtype and shaped ``(N, 1, 1, ...)``."""
    return values.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def _nonzero_mask(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """1 where t > 0, 0 at t = 0: no noise is added in the last step."""
    return _broadcast((t != 0).to(x.dtype), x)


def _step_noise(
    x: torch.Tensor, noise: torch.Tensor | None, generator: torch.Generator | None
) -> torch.Tensor:
    """The noise z of one step: ``noise`` checked against x, or a fresh draw from ``generator``."""
    if noise is None:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if noise.shape != x.shape:
        raise ValueError(f"noise must have the shape of x_t {tuple(x.shape)}, got {tuple(noise.shape)}")
    return noise


def _check_eta(eta: float) -> float:
    """DDIM's eta as a float in [0, 1] (above 1, :math:`1-\\bar\\alpha_{t-1}-\\sigma_t^2` can go negative)."""
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be a number in [0, 1] (0: deterministic DDIM, 1: ancestral-like), got {eta!r}")
    return float(eta)


# ------------------------------------------------------------------------------ single steps
@torch.no_grad()
def p_sample(
    diffusion: GaussianDiffusion,
    model: Model,
    x_t: torch.Tensor,
    t: torch.Tensor | int,
    *,
    clip_denoised: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    r"""One reverse step :math:`x_t \to x_{t-1} \sim p_\theta(x_{t-1} \mid x_t)`.

    No noise is added at code t = 0 (the paper's t = 1): the output there is the mean.
    Returns ``sample`` (x_{t-1}) and ``pred_xstart`` (the network's estimate of x_0).
    """
    t = diffusion.check_timesteps(t, x_t)
    model = model_for(diffusion, model)
    out = diffusion.p_mean_variance(model(x_t, t, **(model_kwargs or {})), x_t, t, clip_denoised=clip_denoised)
    noise = _step_noise(x_t, noise, generator)
    sample = out["mean"] + _nonzero_mask(t, x_t) * torch.exp(0.5 * out["log_variance"]) * noise
    return {"sample": sample, "pred_xstart": out["pred_xstart"]}


def ddim_coefficients(
    diffusion: GaussianDiffusion, t: torch.Tensor, eta: float, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The DDIM step's coefficients :math:`(\sqrt{\bar\alpha_{t-1}}, \sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}, \sigma_t)`.

    Computed in float64 from the diffusion's tables (float32 would lose :math:`1 - \bar\alpha_t/\bar\alpha_{t-1}`
    near t = 0), then cast to x's dtype and shaped ``(N, 1, ...)``.
    """
    abar = diffusion._table("alphas_cumprod", x.device)[t]
    abar_prev = diffusion._table("alphas_cumprod_prev", x.device)[t]
    sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
    eps_coef = (1 - abar_prev - sigma**2).clamp(min=0).sqrt()
    return _broadcast(abar_prev.sqrt(), x), _broadcast(eps_coef, x), _broadcast(sigma, x)


@torch.no_grad()
def ddim_sample(
    diffusion: GaussianDiffusion,
    model: Model,
    x_t: torch.Tensor,
    t: torch.Tensor | int,
    *,
    eta: float = 0.0,
    clip_denoised: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    r"""One DDIM step (Song et al. 2021, eq. 12) from :math:`x_t` to :math:`x_{t-1}`.

    .. math::
        x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\;\hat\epsilon + \sigma_t z,
        \qquad
        \sigma_t = \eta\sqrt{\tfrac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_{t-1}}}

    :math:`\hat x_0` is the diffusion's ``pred_xstart`` (whatever the network predicts: eps, x0, v or the mean;
    clipped to [-1, 1] if ``clip_denoised``) and
    :math:`\hat\epsilon = (x_t - \sqrt{\bar\alpha_t}\,\hat x_0)/\sqrt{1-\bar\alpha_t}` is the noise consistent
    with it.  At t = 0, :math:`\bar\alpha_{t-1} = 1` and the step returns :math:`\hat x_0`.  With ``eta = 0`` no
    noise is drawn (the generator is not touched).  The variance type of the diffusion is not used.

    Returns ``sample`` (x_{t-1}) and ``pred_xstart``.
    """
    eta = _check_eta(eta)
    t = diffusion.check_timesteps(t, x_t)
    model = model_for(diffusion, model)
    out = diffusion.p_mean_variance(model(x_t, t, **(model_kwargs or {})), x_t, t, clip_denoised=clip_denoised)
    pred_xstart = out["pred_xstart"]
    eps = diffusion.predict_eps_from_xstart(x_t, t, pred_xstart)
    xstart_coef, eps_coef, sigma = ddim_coefficients(diffusion, t, eta, x_t)
    sample = xstart_coef * pred_xstart + eps_coef * eps
    if eta > 0:
        sample = sample + _nonzero_mask(t, x_t) * sigma * _step_noise(x_t, noise, generator)
    return {"sample": sample, "pred_xstart": pred_xstart}


# ------------------------------------------------------------------------------ loops
def _initial_noise(
    shape: Sequence[int], noise: torch.Tensor | None, device: torch.device | str | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The starting x: ``noise`` checked against ``shape``, or a draw from N(0, I) (on the generator's device)."""
    if noise is not None:
        if tuple(noise.shape) != tuple(shape):
            raise ValueError(f"noise must have shape {tuple(shape)}, got {tuple(noise.shape)}")
        return noise
    if generator is not None and device is None:
        device = generator.device
    return torch.randn(tuple(shape), generator=generator, device=device)


def _start_step(diffusion: GaussianDiffusion, start_t: int | None, noise: torch.Tensor | None) -> int:
    """The first step of a reverse loop: T-1, or ``start_t`` (which needs the starting x_t in ``noise``)."""
    last = diffusion.num_timesteps - 1
    if start_t is None:
        return last
    if isinstance(start_t, bool) or not isinstance(start_t, int) or not 0 <= start_t <= last:
        raise ValueError(f"start_t must be an integer in [0, {last}] (this diffusion's steps), got {start_t!r}")
    if start_t < last and noise is None:
        raise ValueError(
            f"start_t = {start_t} < {last} needs the starting x_t passed as noise= (e.g. from q_sample); "
            "pure noise is only the right start at the last step"
        )
    return start_t


def original_timesteps(diffusion: GaussianDiffusion) -> list[int]:
    """The model's (original) timestep for each step of ``diffusion``: its ``timestep_map``, or 0 .. T-1."""
    if isinstance(diffusion, SpacedDiffusion):
        return [int(v) for v in diffusion.timestep_map]
    return list(range(diffusion.num_timesteps))


def _reverse_loop(
    diffusion: GaussianDiffusion,
    step_fn: StepFn,
    shape: Sequence[int],
    *,
    stochastic: bool,
    noise: torch.Tensor | None,
    start_t: int | None,
    shared_noise: bool,
    generator: torch.Generator | None,
    device: torch.device | str | None,
    progress: bool,
    desc: str,
) -> Iterator[dict[str, Any]]:
    """Run ``step_fn(x, t, z)`` from ``start_t`` (default T-1) down to 0, yielding each step's output.

    ``z`` is drawn here (None when ``stochastic`` is False): ``shape``-sized, or, with ``shared_noise``, one
    draw of shape ``(1, *shape[1:])`` shared by the whole batch.
    """
    first = _start_step(diffusion, start_t, noise)
    x = _initial_noise(shape, noise, device, generator)
    timesteps = original_timesteps(diffusion)
    for step in tqdm(range(first, -1, -1), disable=not progress, desc=desc):
        t = torch.full((x.shape[0],), step, device=x.device, dtype=torch.long)
        z = None
        if stochastic:
            z_shape = (1, *x.shape[1:]) if shared_noise else x.shape
            z = torch.randn(z_shape, generator=generator, device=x.device, dtype=x.dtype).expand_as(x)
        out = step_fn(x, t, z)
        x = out["sample"]
        yield {"t": step, "original_t": timesteps[step], "sample": x, "pred_xstart": out["pred_xstart"]}


@torch.no_grad()
def p_sample_loop_progressive(
    diffusion: GaussianDiffusion,
    model: Model,
    shape: Sequence[int],
    *,
    noise: torch.Tensor | None = None,
    clip_denoised: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    start_t: int | None = None,
    shared_noise: bool = False,
) -> Iterator[dict[str, torch.Tensor | int]]:
    """Yield ``{"t", "original_t", "sample", "pred_xstart"}`` after every reverse step, from t = T-1 down to 0.

    ``sample`` after the step at ``t`` is x_{t-1} in code indexing (x_0-ish data after t = 0).  ``t`` indexes
    ``diffusion``; ``original_t`` is the timestep the model saw (they differ for a spaced diffusion).

    Args:
        noise: the starting point, shape ``shape``: x_T (drawn from N(0, I) if None), or x_{start_t}.
        start_t: start the reverse process at this step instead of T-1 (interpolation, SDEdit-style editing);
            ``noise`` must then hold x_{start_t}, e.g. from :meth:`GaussianDiffusion.q_sample`.
        shared_noise: draw each step's noise z once and use it for every batch element.
    """
    model = model_for(diffusion, model)

    def step(x: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return p_sample(diffusion, model, x, t, clip_denoised=clip_denoised, model_kwargs=model_kwargs, noise=z)

    yield from _reverse_loop(diffusion, step, shape, stochastic=True, noise=noise, start_t=start_t,
                             shared_noise=shared_noise, generator=generator, device=device, progress=progress,
                             desc="sampling")


@torch.no_grad()
def p_sample_loop(
    diffusion: GaussianDiffusion,
    model: Model,
    shape: Sequence[int],
    **kwargs: Any,
) -> torch.Tensor:
    """Run Algorithm 2 to the end and return x_0, shape ``shape``.

    Keyword arguments as :func:`p_sample_loop_progressive`.
    """
    (final,) = deque(p_sample_loop_progressive(diffusion, model, shape, **kwargs), maxlen=1)
    return final["sample"]  # type: ignore[return-value]


@torch.no_grad()
def ddim_sample_loop_progressive(
    diffusion: GaussianDiffusion,
    model: Model,
    shape: Sequence[int],
    *,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip_denoised: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    start_t: int | None = None,
    shared_noise: bool = False,
) -> Iterator[dict[str, torch.Tensor | int]]:
    """DDIM (:func:`ddim_sample`) over every step of ``diffusion``; yields as :func:`p_sample_loop_progressive`.

    For fewer steps pass a spaced diffusion (:func:`ddpm_core.respace.respace`) or use :func:`sample`.
    ``eta = 0`` draws no noise after the start: the map from x_T to x_0 is deterministic.
    """
    eta = _check_eta(eta)
    model = model_for(diffusion, model)

    def step(x: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return ddim_sample(diffusion, model, x, t, eta=eta, clip_denoised=clip_denoised, model_kwargs=model_kwargs,
                           noise=z)

    yield from _reverse_loop(diffusion, step, shape, stochastic=eta > 0, noise=noise, start_t=start_t,
                             shared_noise=shared_noise, generator=generator, device=device, progress=progress,
                             desc="ddim")


@torch.no_grad()
def ddim_sample_loop(
    diffusion: GaussianDiffusion,
    model: Model,
    shape: Sequence[int],
    **kwargs: Any,
) -> torch.Tensor:
    """Run DDIM to the end and return x_0; keyword arguments as :func:`ddim_sample_loop_progressive`."""
    (final,) = deque(ddim_sample_loop_progressive(diffusion, model, shape, **kwargs), maxlen=1)
    return final["sample"]  # type: ignore[return-value]


# ------------------------------------------------------------------------------ classifier-free guidance
class ClassifierFreeGuidance(nn.Module):
    r"""Classifier-free guidance (Ho & Salimans 2021) around a class-conditional network.

    Called as ``guided(x_t, t, y)``, it returns

    .. math::
        \tilde\epsilon = \epsilon_\theta(x_t, \varnothing)
            + s\,\big(\epsilon_\theta(x_t, y) - \epsilon_\theta(x_t, \varnothing)\big)

    with :math:`\varnothing` the null label.  Conventions: ours is the scale ``s`` (s = 0 unconditional,
    s = 1 conditional, s > 1 guided); the paper writes
    :math:`\tilde\epsilon = (1+w)\,\epsilon_\theta(x_t, y) - w\,\epsilon_\theta(x_t, \varnothing)`, i.e. s = 1 + w.

    s = 1 returns exactly the conditional output and s = 0 exactly the unconditional one (one network call);
    otherwise the network is called once on the doubled batch ``cat([x, x])`` with labels ``cat([y, null])``.
    With a learned variance (the network outputs 2C channels for C data channels) only the first C channels
    are guided and the conditional variance channels are kept.

    Valid for every mean type, not only eps: the combination is affine (weights 1 - s and s sum to 1), and
    x0, v and the posterior mean are affine maps of eps with the same x_t-dependent offset, so guiding any of
    them linearly gives the same :math:`\hat x_0` as guiding eps.

    Args:
        model: ``model(x, t, y=labels)``.
        guidance_scale: s, any finite number.
        null_label: the "no class" label; defaults to ``model.null_label`` (as :class:`ddpm_core.models.UNet` has).
    """

    def __init__(self, model: Model, guidance_scale: float, null_label: int | None = None) -> None:
        super().__init__()
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, numbers.Real) \
                or not math.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale!r}")
        if null_label is None:
            null_label = getattr(model, "null_label", None)
            if null_label is None:
                raise ValueError("the model has no null_label attribute: pass null_label= (the 'no class' label)")
        if isinstance(null_label, bool) or not isinstance(null_label, int):
            raise ValueError(f"null_label must be an integer, got {null_label!r}")
        self.model = model
        self.guidance_scale = float(guidance_scale)
        self.null_label = null_label

    def extra_repr(self) -> str:
        return f"guidance_scale={self.guidance_scale}, null_label={self.null_label}"

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("classifier-free guidance needs class labels y")
        y = _labels(y, x.shape[0], x.device)
        t = t.expand(x.shape[0]) if t.ndim == 0 else t  # a scalar t works at every scale, not only s != 0, 1
        s = self.guidance_scale
        if s == 1.0:
            return self.model(x, t, y=y)
        null = torch.full_like(y, self.null_label)
        if s == 0.0:
            return self.model(x, t, y=null)
        cond, uncond = self.model(torch.cat([x, x]), torch.cat([t, t]), y=torch.cat([y, null])).chunk(2)
        channels = x.shape[1]
        if cond.shape[1] == channels:
            return uncond + s * (cond - uncond)
        if cond.shape[1] == 2 * channels:
            guided = uncond[:, :channels] + s * (cond[:, :channels] - uncond[:, :channels])
            return torch.cat([guided, cond[:, channels:]], dim=1)
        raise ValueError(
            f"model output has {cond.shape[1]} channels for {channels} data channels; expected {channels} "
            f"or {2 * channels} (learned variance)"
        )


def _labels(y: torch.Tensor | int, batch: int, device: torch.device | str | None) -> torch.Tensor:
    """Class labels as a long tensor ``(batch,)``: an int is broadcast."""
    if isinstance(y, bool):
        raise TypeError("labels must be integers, got a bool")
    if isinstance(y, int):
        return torch.full((batch,), y, dtype=torch.long, device=device)
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"labels must be an int or an integer tensor, got {getattr(y, 'dtype', type(y).__name__)}")
    if y.shape != (batch,):
        raise ValueError(f"labels must have shape ({batch},) to match the batch, got {tuple(y.shape)}")
    return y.to(device=device, dtype=torch.long)


def check_labels(y: torch.Tensor, num_classes: int | None) -> None:
    """Refuse labels a class-conditional network with ``num_classes`` classes cannot take (the null label
    ``num_classes`` is allowed); ``num_classes=None`` (an unconditional network) refuses any labels."""
    if num_classes is None:
        raise ValueError("labels given, but this model is unconditional (num_classes=None)")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1} (or {num_classes}, the null label), "
                         f"got values from {int(y.min())} to {int(y.max())}")


# ------------------------------------------------------------------------------ one entry point
def _sampling_process(diffusion: GaussianDiffusion, steps: int | Iterable[int] | None, skip: str) -> GaussianDiffusion:
    """``diffusion`` itself (steps=None), or respaced to ``steps`` timesteps with spacing ``skip``."""
    if skip not in SPACINGS:
        raise ValueError(f"unknown spacing {skip!r}; accepted: {', '.join(repr(k) for k in SPACINGS)}")
    if steps is None:
        return diffusion
    return respace(diffusion, steps, skip)


def _conditioning(
    model: Model,
    batch: int,
    device: torch.device | str | None,
    guidance_scale: float | None,
    y: torch.Tensor | int | None,
    null_label: int | None,
    model_kwargs: dict[str, Any] | None,
) -> tuple[Model, dict[str, Any]]:
    """The model to call (guided or not) and its keyword arguments (with the labels)."""
    kwargs = dict(model_kwargs or {})
    if y is not None:
        if "y" in kwargs:
            raise ValueError("labels given twice: as y= and in model_kwargs")
        kwargs["y"] = _labels(y, batch, device)
    if kwargs.get("y") is not None and hasattr(model, "config") and hasattr(model.config, "num_classes"):
        check_labels(kwargs["y"], model.config.num_classes)
    if guidance_scale is None:
        if null_label is not None:
            raise ValueError("null_label is only used with guidance_scale")
        return model, kwargs
    if "y" not in kwargs:
        raise ValueError("classifier-free guidance (guidance_scale) needs class labels y")
    if set(kwargs) != {"y"}:
        raise ValueError(f"guidance passes only y to the model; got model_kwargs {sorted(kwargs)}")
    return ClassifierFreeGuidance(model, guidance_scale, null_label), kwargs


def _resolve_device(
    noise: torch.Tensor | None, device: torch.device | str | None, generator: torch.Generator | None
) -> torch.device | str | None:
    """Where the samples will live: the given noise's device, ``device``, or the generator's."""
    if noise is not None:
        return noise.device
    if device is not None:
        return device
    return generator.device if generator is not None else None


def sample_progressive(
    diffusion: GaussianDiffusion,
    model: Model,
    shape: Sequence[int],
    *,
    sampler: str = "ddpm",
    steps: int | Iterable[int] | None = None,
    skip: str = "linear",
    eta: float = 0.0,
    guidance_scale: float | None = None,
    y: torch.Tensor | int | None = None,
    null_label: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    **loop_kwargs: Any,
) -> Iterator[dict[str, torch.Tensor | int]]:
    """The iterator behind :func:`sample`: yields ``{"t", "original_t", "sample", "pred_xstart"}`` per step.

    Arguments as :func:`sample`; they are checked before the iterator is returned.  ``t`` indexes the
    (possibly respaced) process, ``original_t`` is the model's timestep.  ``loop_kwargs`` go to the loop
    (``noise``, ``clip_denoised``, ``generator``, ``device``, ``progress``, ``start_t``, ``shared_noise``).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; accepted: {', '.join(repr(s) for s in SAMPLERS)}")
    if sampler == "ddpm" and eta != 0:
        raise ValueError(f"eta is a DDIM parameter (sampler='ddim'); got eta={eta!r} with sampler='ddpm'")
    process = _sampling_process(diffusion, steps, skip)
    device = _resolve_device(loop_kwargs.get("noise"), loop_kwargs.get("device"), loop_kwargs.get("generator"))
    model, kwargs = _conditioning(model, shape[0], device, guidance_scale, y, null_label, model_kwargs)
    if sampler == "ddim":
        return ddim_sample_loop_progressive(process, model, shape, eta=_check_eta(eta), model_kwargs=kwargs,
                                            **loop_kwargs)
    return p_sample_loop_progressive(process, model, shape, model_kwargs=kwargs, **loop_kwargs)


@torch.no_grad()
def sample(
    diffusion: GaussianDiffusion,
    model: Model,
    shape: Sequence[int],
    *,
    sampler: str = "ddpm",
    steps: int | Iterable[int] | None = None,
    skip: str = "linear",
    eta: float = 0.0,
    guidance_scale: float | None = None,
    y: torch.Tensor | int | None = None,
    null_label: int | None = None,
    clip_denoised: bool = False,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    model_kwargs: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Draw samples of shape ``shape`` from ``model``: the one entry point for the command line and the lessons.

    Args:
        sampler: ``"ddpm"`` (ancestral, Algorithm 2, with the diffusion's variance) or ``"ddim"`` (eq. 12).
        steps: None for all T steps; an int S to respace to S steps (``"ddpm"`` then is respaced ancestral
            sampling, Improved DDPM; ``"ddim"`` DDIM with S steps); or an explicit list of timesteps.
        skip: how S steps are chosen (:func:`ddpm_core.respace.space_timesteps`): ``"linear"`` | ``"quadratic"``.
        eta: DDIM's noise level in [0, 1] (0: deterministic); must stay 0 for ``"ddpm"``.
        guidance_scale: None for no guidance, else the classifier-free guidance scale s
            (:class:`ClassifierFreeGuidance`; the paper's w is s - 1); needs ``y``.
        y: class labels, an int (for the whole batch) or a ``(N,)`` tensor; passed to the model as ``y=``.
        null_label: the guidance's "no class" label; defaults to ``model.null_label``.
        clip_denoised: clamp the predicted x_0 to [-1, 1] at every step; use True for images in [-1, 1],
            False (the default) for data with another range such as the toy 2-D sets.
        noise: x_T, shape ``shape`` (drawn with ``generator`` if None).
        generator, device, progress: the random source, where x_T is drawn, a tqdm progress bar.
        model_kwargs: further keyword arguments for the model (not with guidance).

    Returns x_0, shape ``shape``.  For snapshots along the way use :func:`sample_trajectory` with the same
    arguments, or iterate :func:`sample_progressive`.
    """
    iterator = sample_progressive(
        diffusion, model, shape, sampler=sampler, steps=steps, skip=skip, eta=eta, guidance_scale=guidance_scale,
        y=y, null_label=null_label, model_kwargs=model_kwargs, clip_denoised=clip_denoised, noise=noise,
        generator=generator, device=device, progress=progress,
    )
    (final,) = deque(iterator, maxlen=1)
    return final["sample"]  # type: ignore[return-value]


# ------------------------------------------------------------------------------ trajectories
@dataclass
class Trajectory:
    """Snapshots of a reverse process: ``x_t[i]`` and ``pred_xstart[i]`` were taken after the step at
    the model's timestep ``steps[i]`` (an original timestep, also for respaced sampling)."""

    sample: torch.Tensor
    steps: list[int] = field(default_factory=list)
    x_t: torch.Tensor | None = None
    pred_xstart: torch.Tensor | None = None


def _check_record_steps(
    record_steps: Iterable[int] | None, visited: list[int], num_timesteps: int
) -> set[int]:
    """The steps to record: ``record_steps`` (each in range and visited by the sampler), or all visited steps."""
    if record_steps is None:
        return set(visited)
    wanted = set(int(s) for s in record_steps)
    bad = [s for s in wanted if not 0 <= s < num_timesteps]
    if bad:
        raise ValueError(f"record_steps must lie in [0, {num_timesteps - 1}], got {sorted(bad)[:5]}")
    missed = sorted(wanted - set(visited))
    if missed:
        shown = ", ".join(str(s) for s in visited[:12]) + (", ..." if len(visited) > 12 else "")
        raise ValueError(
            f"record_steps {missed[:5]} are not visited by this sampler; it visits {len(visited)} timesteps: {shown}"
        )
    return wanted


@torch.no_grad()
def sample_trajectory(
    diffusion: GaussianDiffusion,
    model: Model,
    shape: Sequence[int],
    record_steps: Iterable[int] | None = None,
    *,
    steps: int | Iterable[int] | None = None,
    skip: str = "linear",
    **kwargs: Any,
) -> Trajectory:
    """Sample as :func:`sample`, keeping x_{t-1} and the predicted x_0 after each step in ``record_steps`` (on the CPU).

    ``record_steps`` are the model's (original) timesteps, each visited by the sampler (with ``steps``, one of
    the respaced timesteps); None records every step.  Other keyword arguments as :func:`sample`
    (``sampler``, ``eta``, ``guidance_scale``, ``y``, ``noise``, ``generator``, ...).
    """
    process = _sampling_process(diffusion, steps, skip)
    base_steps = process.base_num_timesteps if isinstance(process, SpacedDiffusion) else process.num_timesteps
    visited = original_timesteps(process)[: _start_step(process, kwargs.get("start_t"), kwargs.get("noise")) + 1]
    wanted = _check_record_steps(record_steps, visited, base_steps)
    recorded, xs, x0s = [], [], []
    out: dict[str, Any] = {}
    for out in sample_progressive(process, model, shape, **kwargs):
        if out["original_t"] in wanted:
            recorded.append(out["original_t"])
            xs.append(out["sample"].cpu())
            x0s.append(out["pred_xstart"].cpu())
    return Trajectory(
        sample=out["sample"],
        steps=recorded,
        x_t=torch.stack(xs) if xs else None,
        pred_xstart=torch.stack(x0s) if x0s else None,
    )


# ------------------------------------------------------------------------------ interpolation
def _check_endpoints(x0_a: torch.Tensor, x0_b: torch.Tensor) -> None:
    """Both endpoints: one floating-point example each, of one shape."""
    for name, x in (("x0_a", x0_a), ("x0_b", x0_b)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 1:
            raise ValueError(f"{name} must be one example as a floating-point tensor, e.g. images[0] of shape "
                             f"(C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if x0_a.shape != x0_b.shape:
        raise ValueError(f"x0_a and x0_b must have the same shape, got {tuple(x0_a.shape)} and {tuple(x0_b.shape)}")


def _check_lambdas(lambdas: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """The mixing weights as a non-empty float64 vector of finite numbers."""
    lam = torch.as_tensor(lambdas, dtype=torch.float64)
    if lam.ndim != 1 or lam.numel() == 0 or not torch.isfinite(lam).all():
        raise ValueError(f"lambdas must be a non-empty 1-D sequence of finite numbers, got {lambdas!r}")
    return lam


@torch.no_grad()
def interpolate(
    diffusion: GaussianDiffusion,
    model: Model,
    x0_a: torch.Tensor,
    x0_b: torch.Tensor,
    t: int,
    lambdas: Sequence[float] | torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    same_noise: bool = False,
    generator: torch.Generator | None = None,
    sampler: str = "ddpm",
    eta: float = 0.0,
    clip_denoised: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    r"""Interpolate two examples in the diffusion's latent space (Ho et al. 2020, Sec. 4.3, Fig. 8-9).

    Encode both with the stochastic encoder :math:`q(x_t \mid x_0)`, mix, and decode with the reverse process:

    .. math::
        x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\quad
        x'_t = \sqrt{\bar\alpha_t}\,x'_0 + \sqrt{1-\bar\alpha_t}\,\epsilon',\quad
        \bar x_t = (1-\lambda)\,x_t + \lambda\,x'_t,\quad \bar x_0 \sim p_\theta(x_0 \mid \bar x_t).

    As in the paper, the noise is fixed across the lambdas: one encoding of each endpoint, and one reverse-process
    noise draw per step shared by every lambda, so lambda = 0 and 1 reconstruct the endpoints exactly as
    denoising each alone with that noise would.  By default :math:`\epsilon, \epsilon'` are independent (two
    draws of the encoder, as in the paper); ``same_noise=True`` uses one draw for both, which keeps the mix's
    noise variance at :math:`1-\bar\alpha_t` (with independent draws it shrinks by
    :math:`(1-\lambda)^2 + \lambda^2`, to half at lambda = 1/2).

    Args:
        x0_a, x0_b: one example each, without a batch dimension, e.g. ``images[0]`` of shape ``(C, H, W)``.
        t: the diffusion step to encode to, in [0, T-1] (the paper uses 500 of 1000; larger t, more change).
        lambdas: the mixing weights (0 gives x0_a's reconstruction, 1 x0_b's).
        noise: the encoder noise, shape ``(2, *x0_a.shape)`` (row 0 for x0_a, row 1 for x0_b); drawn with
            ``generator`` if None.
        sampler, eta, clip_denoised, model_kwargs, progress: as :func:`sample` (``model_kwargs`` tensors need
            the batch size ``len(lambdas)``).

    Returns ``(len(lambdas), *x0_a.shape)``.
    """
    _check_endpoints(x0_a, x0_b)
    lam = _check_lambdas(lambdas)
    last = diffusion.num_timesteps - 1
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= last:
        raise ValueError(f"t must be an integer in [0, {last}], got {t!r}")
    if noise is None:
        eps_a = torch.randn(x0_a.shape, generator=generator, device=x0_a.device, dtype=x0_a.dtype)
        eps_b = eps_a if same_noise else torch.randn(x0_a.shape, generator=generator, device=x0_a.device,
                                                     dtype=x0_a.dtype)
    else:
        if same_noise:
            raise ValueError("same_noise applies only when the noise is drawn here (noise=None)")
        if tuple(noise.shape) != (2, *x0_a.shape):
            raise ValueError(f"noise must have shape {(2, *x0_a.shape)} (one row per endpoint), "
                             f"got {tuple(noise.shape)}")
        eps_a, eps_b = noise[0], noise[1]
    x_t_a = diffusion.q_sample(x0_a[None], t, noise=eps_a[None])
    x_t_b = diffusion.q_sample(x0_b[None], t, noise=eps_b[None])
    weights = lam.to(device=x0_a.device, dtype=x0_a.dtype).reshape(-1, *([1] * x0_a.ndim))
    mixed = (1 - weights) * x_t_a + weights * x_t_b
    iterator = sample_progressive(diffusion, model, mixed.shape, sampler=sampler, eta=eta, model_kwargs=model_kwargs,
                                  clip_denoised=clip_denoised, noise=mixed, generator=generator, progress=progress,
                                  start_t=t, shared_noise=True)
    (final,) = deque(iterator, maxlen=1)
    return final["sample"]  # type: ignore[return-value]
