r"""Ancestral sampling (Algorithm 2 of the paper).

.. math::
    x_T \sim \mathcal N(0, I), \qquad
    x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z,\ z \sim \mathcal N(0, I) \text{ if } t > 1 \text{ else } z = 0.

The network is called as ``model(x_t, t, **model_kwargs)`` with integer code
timesteps (0 ... T-1).  Every random draw goes through the optional
``torch.Generator``, so a seed fixes the whole trajectory.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from .diffusion import GaussianDiffusion

Model = Callable[..., torch.Tensor]


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
    out = diffusion.p_mean_variance(model(x_t, t, **(model_kwargs or {})), x_t, t, clip_denoised=clip_denoised)
    if noise is None:
        noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
    elif noise.shape != x_t.shape:
        raise ValueError(f"noise must have the shape of x_t {tuple(x_t.shape)}, got {tuple(noise.shape)}")
    nonzero_mask = (t != 0).to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
    sample = out["mean"] + nonzero_mask * torch.exp(0.5 * out["log_variance"]) * noise
    return {"sample": sample, "pred_xstart": out["pred_xstart"]}


def _initial_noise(
    shape: Sequence[int], noise: torch.Tensor | None, device: torch.device | str | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    if noise is not None:
        if tuple(noise.shape) != tuple(shape):
            raise ValueError(f"noise must have shape {tuple(shape)}, got {tuple(noise.shape)}")
        return noise
    if generator is not None and device is None:
        device = generator.device
    return torch.randn(tuple(shape), generator=generator, device=device)


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
) -> Iterator[dict[str, torch.Tensor | int]]:
    """Yield ``{"t", "sample", "pred_xstart"}`` after every reverse step, from t = T-1 down to 0.

    ``sample`` after the step at ``t`` is x_{t-1} in code indexing (x_0-ish data after t = 0).
    """
    x = _initial_noise(shape, noise, device, generator)
    for step in tqdm(range(diffusion.num_timesteps - 1, -1, -1), disable=not progress, desc="sampling"):
        t = torch.full((x.shape[0],), step, device=x.device, dtype=torch.long)
        out = p_sample(diffusion, model, x, t, clip_denoised=clip_denoised, model_kwargs=model_kwargs,
                       generator=generator)
        x = out["sample"]
        yield {"t": step, "sample": x, "pred_xstart": out["pred_xstart"]}


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


@dataclass
class Trajectory:
    """Snapshots of a reverse process: ``x_t[i]`` and ``pred_xstart[i]`` were taken after step ``steps[i]``."""

    sample: torch.Tensor
    steps: list[int] = field(default_factory=list)
    x_t: torch.Tensor | None = None
    pred_xstart: torch.Tensor | None = None


@torch.no_grad()
def sample_trajectory(
    diffusion: GaussianDiffusion,
    model: Model,
    shape: Sequence[int],
    record_steps: Iterable[int],
    **kwargs: Any,
) -> Trajectory:
    """Algorithm 2, keeping x_{t-1} and the predicted x_0 after each step in ``record_steps`` (on the CPU)."""
    wanted = set(int(s) for s in record_steps)
    bad = [s for s in wanted if not 0 <= s < diffusion.num_timesteps]
    if bad:
        raise ValueError(f"record_steps must lie in [0, {diffusion.num_timesteps - 1}], got {sorted(bad)[:5]}")
    steps, xs, x0s = [], [], []
    out: dict[str, Any] = {}
    for out in p_sample_loop_progressive(diffusion, model, shape, **kwargs):
        if out["t"] in wanted:
            steps.append(out["t"])
            xs.append(out["sample"].cpu())
            x0s.append(out["pred_xstart"].cpu())
    return Trajectory(
        sample=out["sample"],
        steps=steps,
        x_t=torch.stack(xs) if xs else None,
        pred_xstart=torch.stack(x0s) if x0s else None,
    )
