r"""Respacing: a diffusion over a subset of the timesteps (Nichol & Dhariwal 2021; DDIM, Song et al. 2021).

Keep timesteps :math:`0 \le t_0 < t_1 < \dots < t_{S-1} \le T-1` of a trained diffusion.  The forward
marginals at the kept steps are
:math:`q(x_{t_i} \mid x_0) = \mathcal N(\sqrt{\bar\alpha_{t_i}}\,x_0, (1-\bar\alpha_{t_i}) I)`,
and a Markov chain with exactly these marginals has the betas

.. math::
    \beta^{\text{new}}_i = 1 - \frac{\bar\alpha_{t_i}}{\bar\alpha_{t_{i-1}}}, \qquad \bar\alpha_{t_{-1}} = 1,

so :math:`\prod_{j \le i} (1 - \beta^{\text{new}}_j) = \bar\alpha_{t_i}`.  :class:`SpacedDiffusion` is an
ordinary :class:`~ddpm_core.diffusion.GaussianDiffusion` built from these betas: every table (posterior,
fixed variances, the learned-range interpolation bounds) is rebuilt from them, so every sampler works on it
unchanged.  Only the network must still see its *training* timesteps: :meth:`SpacedDiffusion.wrap_model`
maps the spaced index ``i`` to ``t_i`` before calling it (the samplers in :mod:`ddpm_core.sampling` do this
for you).  This is improved-diffusion's ``respace.py``, respacing as a transformation of the diffusion
rather than a special case inside each sampler.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Iterable

import torch

from .diffusion import GaussianDiffusion

SPACINGS = ("linear", "quadratic")

Model = Callable[..., torch.Tensor]


def _linear_spacing(num_timesteps: int, count: int) -> list[int]:
    r""":math:`t_i = \lfloor i\,(T-1)/(S-1) + \tfrac12 \rfloor`: evenly spread from 0 to T-1 (integer arithmetic)."""
    if count == 1:
        return [0]
    den = count - 1
    return [(2 * i * (num_timesteps - 1) + den) // (2 * den) for i in range(count)]


def _quadratic_spacing(num_timesteps: int, count: int) -> list[int]:
    r"""DDIM's quadratic spacing :math:`t_i = \lfloor c\,i^2 \rfloor` with :math:`c = (T-1)/(S-1)^2`, dense near 0.

    Where consecutive values would collide (many steps, small T), :math:`t_i = \max(i, \lfloor c\,i^2 \rfloor)`
    keeps them distinct: :math:`\lfloor c\,i^2 \rfloor \ge i` exactly when :math:`c\,i \ge 1`, and from there on
    the gaps :math:`c\,(2i+1) > 2` exceed one, so the sequence is strictly increasing and ends at T-1.
    """
    if count == 1:
        return [0]
    den = (count - 1) ** 2
    return [max(i, (num_timesteps - 1) * i * i // den) for i in range(count)]


def _explicit_timesteps(num_timesteps: int, timesteps: Iterable[int]) -> list[int]:
    """Validate an explicit collection of timesteps; return them sorted."""
    raw = list(timesteps)
    try:
        if any(isinstance(v, bool) for v in raw):
            raise TypeError
        values = [operator.index(v) for v in raw]
    except TypeError:
        raise TypeError(f"explicit timesteps must be integers, got {raw[:5]}") from None
    if not values:
        raise ValueError("explicit timesteps must not be empty")
    bad = sorted(v for v in values if not 0 <= v < num_timesteps)
    if bad:
        raise ValueError(f"explicit timesteps must lie in [0, {num_timesteps - 1}], got {bad[:5]}")
    if len(set(values)) != len(values):
        raise ValueError(f"explicit timesteps must be distinct, got duplicates in {sorted(values)[:10]}")
    return sorted(values)


def space_timesteps(num_timesteps: int, count: int | Iterable[int], kind: str = "linear") -> list[int]:
    r"""Choose ``count`` of the timesteps ``0 .. num_timesteps - 1`` to keep; sorted ascending.

    Args:
        num_timesteps: T of the diffusion being respaced.
        count: how many steps to keep, ``1 <= count <= T``; or an explicit iterable of timesteps (validated
            and sorted; ``kind`` is then ignored).
        kind: ``"linear"``: :math:`t_i = \mathrm{round}(i\,(T-1)/(S-1))`, evenly spaced, always including 0 and
            T-1 (for ``count >= 2``); ``"quadratic"``: :math:`t_i = \lfloor c\,i^2 \rfloor` with
            :math:`c = (T-1)/(S-1)^2`, the DDIM paper's choice (dense near 0, also from 0 to T-1).

    ``count = T`` gives every timestep (``list(range(T))``) for both kinds.  ``count = 1`` gives ``[0]``, which
    is not a usable diffusion (it needs 2 steps).
    """
    if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int) or num_timesteps < 1:
        raise ValueError(f"num_timesteps must be a positive integer, got {num_timesteps!r}")
    if not isinstance(count, int) or isinstance(count, bool):
        if isinstance(count, (str, bytes)) or not isinstance(count, Iterable):
            raise TypeError(f"count must be an int or an iterable of timesteps, got {type(count).__name__}")
        return _explicit_timesteps(num_timesteps, count)
    if not 1 <= count <= num_timesteps:
        raise ValueError(f"count must lie in [1, {num_timesteps}] (the number of timesteps kept), got {count}")
    if kind == "linear":
        return _linear_spacing(num_timesteps, count)
    if kind == "quadratic":
        return _quadratic_spacing(num_timesteps, count)
    raise ValueError(f"unknown spacing {kind!r}; accepted: {', '.join(repr(k) for k in SPACINGS)}")


class _WrappedModel:
    """Calls ``model(x, timestep_map[t], **kwargs)``: the network sees the timesteps it was trained on."""

    def __init__(self, model: Model, timestep_map: torch.Tensor) -> None:
        self.model = model
        self.timestep_map = timestep_map
        self._maps: dict[str, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        key = str(t.device)
        if key not in self._maps:
            self._maps[key] = self.timestep_map.to(t.device)
        return self.model(x, self._maps[key][t], **kwargs)

    def __repr__(self) -> str:
        return f"_WrappedModel({self.model!r}, {len(self.timestep_map)} timesteps)"


class SpacedDiffusion(GaussianDiffusion):
    r"""The diffusion ``base`` restricted to the timesteps ``use_timesteps`` (a :class:`GaussianDiffusion`).

    Its betas are :math:`\beta_i = 1 - \bar\alpha_{t_i} / \bar\alpha_{t_{i-1}}` (see the module docstring); where
    :math:`t_{i-1} = t_i - 1` (and for :math:`t_0 = 0`) that ratio is exactly :math:`1 - \beta_{t_i}`, and the
    base's own :math:`\beta_{t_i}` is used, so keeping all T steps rebuilds the base's tables bit for bit.
    Mean, variance and loss types, ``hybrid_lambda`` and the decoder are the base's.

    Attributes:
        timestep_map: ``(S,)`` long tensor, ``timestep_map[i] = t_i``, the original timestep of spaced index i.
        base_num_timesteps: the original T.

    Respacing a :class:`SpacedDiffusion` again composes the maps, so ``timestep_map`` always points into the
    original process.
    """

    def __init__(self, base: GaussianDiffusion, use_timesteps: Iterable[int]) -> None:
        if not isinstance(base, GaussianDiffusion):
            raise TypeError(f"base must be a GaussianDiffusion, got {type(base).__name__}")
        kept = _explicit_timesteps(base.num_timesteps, use_timesteps)
        if len(kept) < 2:
            raise ValueError(f"a spaced diffusion needs at least 2 timesteps, got {kept}")
        index = torch.tensor(kept, dtype=torch.long)
        alphas_cumprod = base.alphas_cumprod[index]
        alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        consecutive = torch.cat([index[:1] == 0, index[1:] == index[:-1] + 1])
        betas = torch.where(consecutive, base.betas[index], 1.0 - alphas_cumprod / alphas_cumprod_prev)
        super().__init__(
            betas, mean_type=base.mean_type, var_type=base.var_type, loss_type=base.loss_type,
            hybrid_lambda=base.hybrid_lambda, decoder=base.decoder,
        )
        if isinstance(base, SpacedDiffusion):
            self.timestep_map = base.timestep_map[index]
            self.base_num_timesteps = base.base_num_timesteps
        else:
            self.timestep_map = index
            self.base_num_timesteps = base.num_timesteps

    def __repr__(self) -> str:
        return (
            f"SpacedDiffusion({self.num_timesteps} of T={self.base_num_timesteps} steps, "
            f"mean_type={self.mean_type.value!r}, var_type={self.var_type.value!r}, "
            f"loss_type={self.loss_type.value!r})"
        )

    def wrap_model(self, model: Model) -> Model:
        """A callable ``(x, i, **kwargs) -> model(x, timestep_map[i], **kwargs)``; a model wrapped for this
        spacing is returned as is (never mapped twice)."""
        if isinstance(model, _WrappedModel):
            if torch.equal(model.timestep_map, self.timestep_map):
                return model
            raise ValueError("this model is already wrapped for a different spacing; pass the unwrapped model")
        return _WrappedModel(model, self.timestep_map)

    def training_losses(self, model: Model, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """:meth:`GaussianDiffusion.training_losses` with the model wrapped (it sees original timesteps)."""
        return super().training_losses(self.wrap_model(model), *args, **kwargs)

    def calc_bpd_loop(self, model: Model, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """:meth:`GaussianDiffusion.calc_bpd_loop` with the model wrapped: the bound of the S-step process."""
        return super().calc_bpd_loop(self.wrap_model(model), *args, **kwargs)


def respace(diffusion: GaussianDiffusion, steps: int | Iterable[int], kind: str = "linear") -> SpacedDiffusion:
    """``SpacedDiffusion(diffusion, space_timesteps(diffusion.num_timesteps, steps, kind))``."""
    return SpacedDiffusion(diffusion, space_timesteps(diffusion.num_timesteps, steps, kind))


def model_for(diffusion: GaussianDiffusion, model: Model) -> Model:
    """The callable a sampler should call: ``model`` wrapped for a :class:`SpacedDiffusion`, else ``model`` itself."""
    return diffusion.wrap_model(model) if isinstance(diffusion, SpacedDiffusion) else model
