r"""The paper's equations: forward process, posterior, reverse process, losses and likelihood.

Notation (Ho et al. 2020; the README has the full table).  Code indexes time from 0,
so code ``t`` = paper :math:`t - 1` (code ``t = 0`` is the paper's :math:`t = 1`); ``T = num_timesteps``.

* forward step          :math:`q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)`
* marginal (eq. 4)      :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)`
* posterior (eq. 6, 7)  :math:`q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t(x_t, x_0), \tilde\beta_t I)`
* reverse step          :math:`p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta(x_t, t), \Sigma_\theta(x_t, t))`

Every coefficient table is float64, built once in ``__init__`` and gathered per
timestep, then cast to the data's dtype and device.  Every method works for any
data shape ``(N, C, ...)``: 2-D points ``(N, 2)`` and images ``(N, C, H, W)`` alike;
"channels" means dimension 1 (a learned variance doubles it).
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any, Callable

import torch

from . import schedules
from .losses import continuous_gaussian_log_likelihood, discretized_gaussian_log_likelihood, mean_flat, normal_kl

DECODERS = ("discretized", "continuous")

Model = Callable[..., torch.Tensor]


class _Choice(str, Enum):
    """A string enum whose ``parse`` accepts its value, its name, hyphens or aliases."""

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {}

    @classmethod
    def parse(cls, value: Any) -> "_Choice":
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_")
            key = cls._aliases().get(key, key)
            for member in cls:
                if key in (member.value, member.name.lower()):
                    return member
        accepted = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"unknown {cls._what()} {value!r}; accepted: {accepted}")

    @classmethod
    def _what(cls) -> str:
        return cls.__name__


class ModelMeanType(_Choice):
    """What the network predicts, from which the reverse-process mean is built."""

    @classmethod
    def _what(cls) -> str:
        return "model mean type"

    EPSILON = "eps"  #: the noise epsilon (the paper's choice, eq. 11)
    START_X = "x0"  #: x_0 itself
    PREVIOUS_X = "mean"  #: the mean of x_{t-1} directly
    VELOCITY = "v"  #: v = sqrt(abar) eps - sqrt(1 - abar) x_0 (Salimans & Ho 2022)

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {"epsilon": "eps", "noise": "eps", "xstart": "x0", "x_start": "x0", "start_x": "x0",
                "xprev": "mean", "x_prev": "mean", "previous_x": "mean", "velocity": "v"}


class ModelVarType(_Choice):
    """How the reverse-process variance is chosen."""

    @classmethod
    def _what(cls) -> str:
        return "model variance type"

    FIXED_SMALL = "fixed_small"  #: the posterior variance beta-tilde_t
    FIXED_LARGE = "fixed_large"  #: beta_t (t = 0: beta-tilde_1, as in the paper's code)
    LEARNED = "learned"  #: the network outputs log Sigma directly
    LEARNED_RANGE = "learned_range"  #: Improved DDPM: interpolate between log beta-tilde_t and log beta_t

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {"fixedsmall": "fixed_small", "fixedlarge": "fixed_large", "learnedrange": "learned_range"}


class LossType(_Choice):
    """The training objective."""

    @classmethod
    def _what(cls) -> str:
        return "loss type"

    MSE = "mse"  #: L_simple on the target the mean type implies (eq. 14)
    KL = "kl"  #: the variational bound term L_{t-1} (bits/dim), an unbiased estimate of L_vlb / T
    HYBRID = "hybrid"  #: L_simple + lambda * L_vlb with the mean stop-gradiented in L_vlb (Nichol & Dhariwal)


class GaussianDiffusion:
    r"""A DDPM: beta table plus the choices of mean, variance and loss.

    Args:
        betas: the schedule, shape ``(T,)``, T >= 2, each in (0, 1) (the last may be 1; see below).
        mean_type: ``"eps"`` | ``"x0"`` | ``"mean"`` | ``"v"`` (:class:`ModelMeanType`).
        var_type: ``"fixed_small"`` | ``"fixed_large"`` | ``"learned"`` | ``"learned_range"``.
        loss_type: ``"mse"`` | ``"kl"`` | ``"hybrid"``.
        hybrid_lambda: the :math:`\lambda` of the hybrid loss (0.001, Improved DDPM).
        decoder: the bound's :math:`L_0` term: ``"discretized"`` (the paper's, for 8-bit images in [-1, 1]) or
            ``"continuous"`` (a Gaussian log-density, for real-valued data such as the toy 2-D sets, where the
            8-bit edge bins beyond +-0.999 would make overshooting free).  Used by ``kl``/``hybrid`` and bits/dim.

    A schedule with :math:`\bar\alpha_T = 0` (``jsd``) is handled, not NaN'd: the
    posterior, the fixed variances and the ``x0``/``v``/``mean`` parameterisations are
    all finite there.  Only ``eps`` cannot express the reverse mean at that step
    (:math:`x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}` divides by 0), so
    ``eps`` with such a schedule raises ``ValueError``: at construction for the
    ``kl``/``hybrid`` losses, and in :meth:`p_mean_variance` (the first sampling
    step) for ``mse``, whose training itself is well defined.

    ``mse`` with a learned variance raises ``ValueError``: L_simple gives the variance
    no gradient; use ``hybrid`` or ``kl``.  With a fixed variance ``hybrid`` is valid
    but trains exactly like ``mse`` (its VLB term then has no gradient).
    """

    def __init__(
        self,
        betas: torch.Tensor,
        mean_type: str | ModelMeanType = ModelMeanType.EPSILON,
        var_type: str | ModelVarType = ModelVarType.FIXED_LARGE,
        loss_type: str | LossType = LossType.MSE,
        hybrid_lambda: float = 0.001,
        decoder: str = "discretized",
    ) -> None:
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; accepted: {', '.join(DECODERS)}")
        self.decoder = decoder
        self.mean_type = ModelMeanType.parse(mean_type)
        self.var_type = ModelVarType.parse(var_type)
        self.loss_type = LossType.parse(loss_type)
        if not (isinstance(hybrid_lambda, (int, float)) and hybrid_lambda >= 0 and math.isfinite(hybrid_lambda)):
            raise ValueError(f"hybrid_lambda must be a finite number >= 0, got {hybrid_lambda!r}")
        self.hybrid_lambda = float(hybrid_lambda)

        betas = schedules.check_betas(betas)
        if betas.numel() < 2:
            raise ValueError(f"a diffusion needs at least 2 timesteps, got T = {betas.numel()}")
        self.num_timesteps = int(betas.numel())

        learned = self.var_type in (ModelVarType.LEARNED, ModelVarType.LEARNED_RANGE)
        if learned and self.loss_type is LossType.MSE:
            raise ValueError(
                f"loss 'mse' gives the learned variance ({self.var_type.value!r}) no gradient; "
                "use loss 'hybrid' or 'kl', or a fixed variance ('fixed_small', 'fixed_large')"
            )

        # float64 tables, paper notation; code index t = paper t - 1 (t = 0 is the paper's t = 1).
        self.betas = betas
        self.log_betas = torch.log(betas)
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.alphas_cumprod_next = torch.cat([self.alphas_cumprod[1:], torch.zeros(1, dtype=torch.float64)])
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.one_minus_alphas_cumprod = 1.0 - self.alphas_cumprod
        self.sqrt_one_minus_alphas_cumprod = self.one_minus_alphas_cumprod.sqrt()
        self.log_one_minus_alphas_cumprod = torch.log1p(-self.alphas_cumprod)
        # 1/sqrt(abar) is +inf where abar = 0 (jsd's last step); see the class docstring.
        self.sqrt_recip_alphas_cumprod = self.alphas_cumprod.rsqrt()
        self.sqrt_recipm1_alphas_cumprod = (1.0 / self.alphas_cumprod - 1.0).sqrt()

        # Posterior q(x_{t-1} | x_t, x_0), eq. (6)-(7).
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # beta-tilde_1 = 0 (code t = 0): its log is clipped to the next value, as in the paper's code.
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        )
        self.posterior_mean_coef1 = betas * self.alphas_cumprod_prev.sqrt() / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * self.alphas.sqrt() / (1.0 - self.alphas_cumprod)

        # Fixed-large variance: beta_t, except t = 0 takes beta-tilde_1's value (paper's code).
        self.fixed_large_variance = torch.cat([self.posterior_variance[1:2], betas[1:]])
        self.fixed_large_log_variance = torch.log(self.fixed_large_variance)

        self.has_zero_terminal_snr = bool(self.alphas_cumprod[-1] == 0)
        if (
            self.has_zero_terminal_snr
            and self.mean_type is ModelMeanType.EPSILON
            and self.loss_type in (LossType.KL, LossType.HYBRID)
        ):
            raise ValueError(self._eps_undefined_message())

        self._device_cache: dict[tuple[str, str], torch.Tensor] = {}

    @classmethod
    def from_schedule(
        cls,
        schedule: str = "linear",
        num_timesteps: int = schedules.DEFAULT_T,
        beta_start: float = schedules.DEFAULT_BETA_START,
        beta_end: float = schedules.DEFAULT_BETA_END,
        **kwargs: Any,
    ) -> "GaussianDiffusion":
        """Build from a named schedule (:func:`ddpm_core.schedules.get_beta_schedule`)."""
        return cls(schedules.get_beta_schedule(schedule, num_timesteps, beta_start, beta_end), **kwargs)

    def __repr__(self) -> str:
        return (
            f"GaussianDiffusion(T={self.num_timesteps}, mean_type={self.mean_type.value!r}, "
            f"var_type={self.var_type.value!r}, loss_type={self.loss_type.value!r})"
        )

    def check_can_sample(self) -> None:
        """Raise ``ValueError`` if this diffusion cannot run the reverse process (``eps`` with alpha-bar_T = 0).

        Experiments call it when they are built, so the combination is refused before training, not after."""
        if self.has_zero_terminal_snr and self.mean_type is ModelMeanType.EPSILON:
            raise ValueError(self._eps_undefined_message())

    # ------------------------------------------------------------------ helpers
    def _eps_undefined_message(self) -> str:
        return (
            "this schedule ends with alphas_cumprod = 0 (e.g. 'jsd'), where the 'eps' parameterisation cannot "
            "give the reverse mean (x_0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) divides by zero); "
            "use mean_type 'x0', 'v' or 'mean', or a schedule with alphas_cumprod[-1] > 0"
        )

    def _table(self, name: str, device: torch.device) -> torch.Tensor:
        key = (name, str(device))
        table = self._device_cache.get(key)
        if table is None:
            table = getattr(self, name)
            if device.type == "mps":  # no float64 on Apple GPUs
                table = table.to(torch.float32)
            table = table.to(device)
            self._device_cache[key] = table
        return table

    def _gather(self, name: str, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``table[t]`` cast to x's dtype, shaped ``(N, 1, 1, ...)`` to broadcast against x."""
        out = self._table(name, x.device)[t]
        return out.to(x.dtype).reshape(t.shape[0], *([1] * (x.ndim - 1)))

    def check_timesteps(self, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
        """Validate timesteps for a batch x; an int is broadcast to the batch.

        Accepted: integer tensor of shape ``(N,)`` (or a scalar), values in ``[0, T-1]``.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"data must be a floating-point tensor, got {type(x).__name__}"
                            + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(
                f"data must have shape (N, C, ...) with N >= 1 (2-D points: (N, 2); images: (N, C, H, W)), "
                f"got shape {tuple(x.shape)}"
            )
        if isinstance(t, bool):
            raise TypeError("timesteps must be integers, got a bool")
        if isinstance(t, int):
            t = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"timesteps must be an int or an integer tensor, got {type(t).__name__}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"timesteps must have an integer dtype, got {t.dtype}")
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(
                f"timesteps must have shape ({x.shape[0]},) to match the batch, got {tuple(t.shape)}"
            )
        t = t.to(device=x.device, dtype=torch.long)
        out_of_range = ((t < 0) | (t >= self.num_timesteps)).any()
        if t.device.type != "cpu":
            # On an accelerator, reading the flag would stall the host every call (several times per training
            # step); the check runs asynchronously instead and fails as a device-side assertion.
            torch._assert_async(~out_of_range, f"timesteps must lie in [0, {self.num_timesteps - 1}]")
        elif bool(out_of_range):
            raise ValueError(
                f"timesteps must lie in [0, {self.num_timesteps - 1}] (code t = paper t - 1), "
                f"got values in [{int(t.min())}, {int(t.max())}]"
            )
        return t

    @staticmethod
    def _check_same_shape(a: torch.Tensor, b: torch.Tensor, what_a: str, what_b: str) -> None:
        if not isinstance(b, torch.Tensor):
            raise TypeError(f"{what_b} must be a tensor, got {type(b).__name__}")
        if a.shape != b.shape:
            raise ValueError(f"{what_b} must have the shape of {what_a} {tuple(a.shape)}, got {tuple(b.shape)}")

    def _check_model_output(self, model_output: torch.Tensor, x_t: torch.Tensor) -> int:
        """Check the network's output shape against the data's; return the data's channel count."""
        if not isinstance(model_output, torch.Tensor):
            raise TypeError(f"model output must be a tensor, got {type(model_output).__name__}")
        data_channels = x_t.shape[1]
        expected = (x_t.shape[0], self.model_output_channels(data_channels), *x_t.shape[2:])
        if tuple(model_output.shape) != expected:
            raise ValueError(
                f"model output must have shape {expected} for data of shape {tuple(x_t.shape)} "
                f"and variance type {self.var_type.value!r}, got {tuple(model_output.shape)}"
            )
        return data_channels

    def sample_timesteps(
        self, batch_size: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Uniform timesteps t ~ U{0, ..., T-1} (Algorithm 1, line 3)."""
        return torch.randint(0, self.num_timesteps, (batch_size,), device=device, generator=generator)

    # ------------------------------------------------------- forward process
    def q_mean_variance(
        self, x_start: torch.Tensor, t: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Mean, variance and log-variance of :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)` (eq. 4)."""
        t = self.check_timesteps(t, x_start)
        mean = self._gather("sqrt_alphas_cumprod", t, x_start) * x_start
        variance = self._gather("one_minus_alphas_cumprod", t, x_start).expand_as(x_start)
        log_variance = self._gather("log_one_minus_alphas_cumprod", t, x_start).expand_as(x_start)
        return mean, variance, log_variance

    def q_sample(
        self,
        x_start: torch.Tensor,
        t: torch.Tensor | int,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""Jump to any step in closed form: :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon`, :math:`\epsilon \sim \mathcal N(0, I)`."""
        t = self.check_timesteps(t, x_start)
        if noise is None:
            noise = torch.randn(x_start.shape, generator=generator, device=x_start.device, dtype=x_start.dtype)
        else:
            self._check_same_shape(x_start, noise, "x_start", "noise")
        return (
            self._gather("sqrt_alphas_cumprod", t, x_start) * x_start
            + self._gather("sqrt_one_minus_alphas_cumprod", t, x_start) * noise
        )

    # ------------------------------------------------------------- posterior
    def q_posterior_mean_variance(
        self, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Mean, variance and clipped log-variance of :math:`q(x_{t-1} \mid x_t, x_0)` (eq. 6-7).

        .. math::
            \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0
                        + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,
            \qquad \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t

        At code t = 0, :math:`\tilde\beta = 0` and its log is clipped to the t = 1 value.
        """
        self._check_same_shape(x_start, x_t, "x_start", "x_t")
        t = self.check_timesteps(t, x_t)
        mean = self._gather("posterior_mean_coef1", t, x_t) * x_start + self._gather("posterior_mean_coef2", t, x_t) * x_t
        variance = self._gather("posterior_variance", t, x_t).expand_as(x_t)
        log_variance = self._gather("posterior_log_variance_clipped", t, x_t).expand_as(x_t)
        return mean, variance, log_variance

    # ------------------------------------------------- parameterisations
    def predict_xstart_from_eps(self, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat x_0 = \frac{1}{\sqrt{\bar\alpha_t}}\,x_t - \sqrt{\frac{1}{\bar\alpha_t} - 1}\;\epsilon`."""
        self._check_same_shape(x_t, eps, "x_t", "eps")
        t = self.check_timesteps(t, x_t)
        if self.has_zero_terminal_snr and bool((t == self.num_timesteps - 1).any()):
            raise ValueError(self._eps_undefined_message())
        return self._gather("sqrt_recip_alphas_cumprod", t, x_t) * x_t - self._gather("sqrt_recipm1_alphas_cumprod", t, x_t) * eps

    def predict_eps_from_xstart(self, x_t: torch.Tensor, t: torch.Tensor | int, x_start: torch.Tensor) -> torch.Tensor:
        r""":math:`\epsilon = (x_t - \sqrt{\bar\alpha_t}\,x_0) / \sqrt{1 - \bar\alpha_t}` (the inverse of the above)."""
        self._check_same_shape(x_t, x_start, "x_t", "x_start")
        t = self.check_timesteps(t, x_t)
        return (x_t - self._gather("sqrt_alphas_cumprod", t, x_t) * x_start) / self._gather(
            "sqrt_one_minus_alphas_cumprod", t, x_t
        )

    def get_v(self, x_start: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        r"""The velocity target :math:`v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,x_0` (Salimans & Ho 2022)."""
        self._check_same_shape(x_start, noise, "x_start", "noise")
        t = self.check_timesteps(t, x_start)
        return self._gather("sqrt_alphas_cumprod", t, x_start) * noise - self._gather(
            "sqrt_one_minus_alphas_cumprod", t, x_start
        ) * x_start

    def predict_xstart_from_v(self, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat x_0 = \sqrt{\bar\alpha_t}\,x_t - \sqrt{1-\bar\alpha_t}\,v`."""
        self._check_same_shape(x_t, v, "x_t", "v")
        t = self.check_timesteps(t, x_t)
        return self._gather("sqrt_alphas_cumprod", t, x_t) * x_t - self._gather("sqrt_one_minus_alphas_cumprod", t, x_t) * v

    def predict_eps_from_v(self, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat\epsilon = \sqrt{1-\bar\alpha_t}\,x_t + \sqrt{\bar\alpha_t}\,v`."""
        self._check_same_shape(x_t, v, "x_t", "v")
        t = self.check_timesteps(t, x_t)
        return self._gather("sqrt_one_minus_alphas_cumprod", t, x_t) * x_t + self._gather("sqrt_alphas_cumprod", t, x_t) * v

    def predict_xstart_from_xprev(self, x_t: torch.Tensor, t: torch.Tensor | int, xprev: torch.Tensor) -> torch.Tensor:
        r"""Invert the posterior mean: :math:`\hat x_0 = (\tilde\mu - c_2\,x_t) / c_1` with :math:`c_{1,2}` the posterior mean coefficients."""
        self._check_same_shape(x_t, xprev, "x_t", "xprev")
        t = self.check_timesteps(t, x_t)
        coef1 = self._gather("posterior_mean_coef1", t, x_t)
        return (xprev - self._gather("posterior_mean_coef2", t, x_t) * x_t) / coef1

    def training_target(
        self, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor
    ) -> torch.Tensor:
        """What the network should output for this mean type: eps, x_0, the posterior mean, or v."""
        if self.mean_type is ModelMeanType.EPSILON:
            return noise
        if self.mean_type is ModelMeanType.START_X:
            return x_start
        if self.mean_type is ModelMeanType.PREVIOUS_X:
            return self.q_posterior_mean_variance(x_start, x_t, t)[0]
        return self.get_v(x_start, noise, t)

    def model_output_channels(self, data_channels: int) -> int:
        """Channels the network must output: the data's, doubled for a learned variance."""
        learned = self.var_type in (ModelVarType.LEARNED, ModelVarType.LEARNED_RANGE)
        return data_channels * 2 if learned else data_channels

    # ------------------------------------------------------ reverse process
    def p_mean_variance(
        self,
        model_output: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor | int,
        *,
        clip_denoised: bool = False,
        denoised_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        r"""Mean and variance of :math:`p_\theta(x_{t-1} \mid x_t)` from the network's output.

        The mean: for ``eps``, ``x0`` and ``v`` the network's output is turned into
        :math:`\hat x_0` and the mean is the posterior mean :math:`\tilde\mu_t(x_t, \hat x_0)`;
        for ``eps`` this equals eq. (11),
        :math:`\mu_\theta = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\epsilon_\theta\big)`.
        For ``mean`` the output is the mean itself.

        The variance: ``fixed_small`` :math:`\tilde\beta_t`, ``fixed_large`` :math:`\beta_t`,
        ``learned`` :math:`\exp(o)` for the extra output channels o, ``learned_range``
        :math:`\exp\big(\tfrac{o+1}{2}\log\beta_t + \tfrac{1-o}{2}\log\tilde\beta_t\big)`.

        ``clip_denoised`` clamps :math:`\hat x_0` to [-1, 1] (images) before the mean is
        formed; ``denoised_fn`` applies any other map to :math:`\hat x_0`.

        Returns a dict with ``mean``, ``variance``, ``log_variance``, ``pred_xstart``.
        """
        t = self.check_timesteps(t, x_t)
        data_channels = self._check_model_output(model_output, x_t)

        if self.var_type in (ModelVarType.LEARNED, ModelVarType.LEARNED_RANGE):
            model_output, var_values = torch.split(model_output, data_channels, dim=1)
            if self.var_type is ModelVarType.LEARNED:
                log_variance = var_values
            else:
                min_log = self._gather("posterior_log_variance_clipped", t, x_t)
                max_log = self._gather("log_betas", t, x_t)
                frac = (var_values + 1) / 2  # the network's o in [-1, 1] maps to [log beta-tilde, log beta]
                log_variance = frac * max_log + (1 - frac) * min_log
            variance = torch.exp(log_variance)
        elif self.var_type is ModelVarType.FIXED_SMALL:
            variance = self._gather("posterior_variance", t, x_t).expand_as(x_t)
            log_variance = self._gather("posterior_log_variance_clipped", t, x_t).expand_as(x_t)
        else:
            variance = self._gather("fixed_large_variance", t, x_t).expand_as(x_t)
            log_variance = self._gather("fixed_large_log_variance", t, x_t).expand_as(x_t)

        def process_xstart(x: torch.Tensor) -> torch.Tensor:
            if denoised_fn is not None:
                x = denoised_fn(x)
            return x.clamp(-1, 1) if clip_denoised else x

        if self.mean_type is ModelMeanType.PREVIOUS_X:
            pred_xstart = process_xstart(self.predict_xstart_from_xprev(x_t, t, model_output))
            model_mean = model_output
        else:
            if self.mean_type is ModelMeanType.EPSILON:  # raises at abar_t = 0 (jsd), see the class docstring
                raw_xstart = self.predict_xstart_from_eps(x_t, t, model_output)
            elif self.mean_type is ModelMeanType.START_X:
                raw_xstart = model_output
            else:
                raw_xstart = self.predict_xstart_from_v(x_t, t, model_output)
            pred_xstart = process_xstart(raw_xstart)
            model_mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x_t, t)
        return {"mean": model_mean, "variance": variance, "log_variance": log_variance, "pred_xstart": pred_xstart}

    # ---------------------------------------------------- variational bound
    def vb_terms_bpd(
        self,
        model_output: torch.Tensor,
        x_start: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor | int,
        *,
        clip_denoised: bool = False,
        check_range: bool = True,
    ) -> dict[str, torch.Tensor]:
        r"""One term of the bound, in bits per dimension, per batch element.

        For t > 0 (code): :math:`L_{t} = \mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0) \,\|\, p_\theta(x_{t-1} \mid x_t)\big)`;
        for t = 0: the decoder NLL :math:`L_0 = -\log p_\theta(x_0 \mid x_1)` with the
        discretized Gaussian of eq. (13).  Returns ``output`` (the term) and ``pred_xstart``.

        With the discretized decoder, the ``x_start`` of the t = 0 terms must be 8-bit data scaled to [-1, 1]
        (:meth:`check_decoder_range`; ``check_range=False`` skips that check, which reads the data once: the trainer
        checks its data up front).
        """
        t = self.check_timesteps(t, x_t)
        self._check_same_shape(x_start, x_t, "x_start", "x_t")
        if check_range and self.decoder == "discretized" and bool((t == 0).any()):
            self.check_decoder_range(x_start[t == 0])  # only L_0 (code t = 0) reads x_0 as 8-bit pixels
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x_start, x_t, t)
        out = self.p_mean_variance(model_output, x_t, t, clip_denoised=clip_denoised)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, out["mean"], out["log_variance"])) / math.log(2.0)
        log_likelihood = (
            discretized_gaussian_log_likelihood if self.decoder == "discretized" else continuous_gaussian_log_likelihood
        )
        decoder_nll = -mean_flat(
            log_likelihood(x_start, means=out["mean"], log_scales=0.5 * out["log_variance"])
        ) / math.log(2.0)
        return {"output": torch.where(t == 0, decoder_nll, kl), "pred_xstart": out["pred_xstart"]}

    def check_decoder_range(self, x_start: torch.Tensor) -> None:
        """With the discretized decoder, refuse data outside [-1, 1] (such as pixels on a 0-255 scale): its bins of
        width 2/255 and its edge bins at +-0.999 assume 8-bit images mapped to [-1, 1]."""
        if self.decoder != "discretized" or x_start.numel() == 0:
            return
        lo, hi = float(x_start.min()), float(x_start.max())
        if not (-1.0 - 1e-6 <= lo and hi <= 1.0 + 1e-6):
            raise ValueError(
                f"the discretized decoder (8-bit data) needs x_0 scaled to [-1, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                "map uint8 pixels with ddpm_core.data.to_unit_range, or use decoder='continuous' for real-valued data")

    def prior_bpd(self, x_start: torch.Tensor) -> torch.Tensor:
        r""":math:`L_T = \mathrm{KL}\big(q(x_T \mid x_0) \,\|\, \mathcal N(0, I)\big)` in bits/dim, per batch element.

        No parameters: it only measures how close the schedule gets to pure noise.
        """
        t = self.check_timesteps(self.num_timesteps - 1, x_start)
        mean, _, log_variance = self.q_mean_variance(x_start, t)
        return mean_flat(normal_kl(mean, log_variance, 0.0, 0.0)) / math.log(2.0)

    # --------------------------------------------------------------- training
    def training_losses(
        self,
        model: Model,
        x_start: torch.Tensor,
        t: torch.Tensor | int,
        *,
        noise: torch.Tensor | None = None,
        model_kwargs: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        r"""Per-example losses for one batch (Algorithm 1 for ``mse``).

        ``model(x_t, t, **model_kwargs)`` is called once.  Returns a dict of ``(N,)`` tensors:

        * ``mse``:    :math:`\lVert \text{target} - \text{output} \rVert^2` averaged over dimensions (L_simple);
          the target is eps, x_0, the posterior mean or v by ``mean_type``.
        * ``vb``:     the bound term :math:`L_t` in bits/dim (``kl`` and ``hybrid``); for ``hybrid`` it
          is computed with the mean stop-gradiented, so it trains only the variance.
        * ``loss``:   ``mse`` for ``mse``; ``vb`` for ``kl``; ``mse + lambda * T * vb`` for ``hybrid``
          (:math:`T \cdot L_t` is the one-sample estimate of :math:`L_\text{vlb}`, so this is
          :math:`L_\text{simple} + \lambda L_\text{vlb}` with :math:`\lambda` = ``hybrid_lambda``).
        """
        t = self.check_timesteps(t, x_start)
        if noise is None:
            noise = torch.randn(x_start.shape, generator=generator, device=x_start.device, dtype=x_start.dtype)
        x_t = self.q_sample(x_start, t, noise=noise)
        model_output = model(x_t, t, **(model_kwargs or {}))
        terms: dict[str, torch.Tensor] = {}

        if self.loss_type is LossType.KL:
            terms["vb"] = self.vb_terms_bpd(model_output, x_start, x_t, t, check_range=False)["output"]
            terms["loss"] = terms["vb"]
            return terms

        data_channels = self._check_model_output(model_output, x_t)
        if self.var_type in (ModelVarType.LEARNED, ModelVarType.LEARNED_RANGE):
            mean_output, var_output = torch.split(model_output, data_channels, dim=1)
        else:
            mean_output, var_output = model_output, None
        target = self.training_target(x_start, x_t, t, noise)
        terms["mse"] = mean_flat((target - mean_output) ** 2)
        terms["loss"] = terms["mse"]
        if self.loss_type is LossType.HYBRID:
            frozen = mean_output.detach() if var_output is None else torch.cat([mean_output.detach(), var_output], dim=1)
            terms["vb"] = self.vb_terms_bpd(frozen, x_start, x_t, t, check_range=False)["output"]
            terms["loss"] = terms["mse"] + self.hybrid_lambda * self.num_timesteps * terms["vb"]
        return terms

    # ------------------------------------------------------------- likelihood
    @torch.no_grad()
    def calc_bpd_loop(
        self,
        model: Model,
        x_start: torch.Tensor,
        *,
        clip_denoised: bool = True,
        model_kwargs: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> dict[str, torch.Tensor]:
        r"""The full variational bound :math:`L_\text{vlb} = L_T + \sum_{t \ge 1} L_{t-1}` in bits per dimension.

        Runs the network once per timestep (T calls), drawing fresh noise for each.
        Returns ``(N,)`` tensors ``total_bpd`` and ``prior_bpd``, and ``(N, T)`` tensors
        ``vb`` (the per-t terms, column t = code t), ``xstart_mse`` and ``mse`` (eps MSE).
        ``total_bpd == prior_bpd + vb.sum(1)`` exactly.
        """
        from tqdm.auto import tqdm

        self.check_decoder_range(x_start)
        N, T = x_start.shape[0], self.num_timesteps
        vb, xstart_mse, mse = (torch.zeros(N, T, device=x_start.device, dtype=x_start.dtype) for _ in range(3))
        for step in tqdm(range(T - 1, -1, -1), disable=not progress, desc="bpd"):
            t = torch.full((N,), step, device=x_start.device, dtype=torch.long)
            noise = torch.randn(x_start.shape, generator=generator, device=x_start.device, dtype=x_start.dtype)
            x_t = self.q_sample(x_start, t, noise=noise)
            terms = self.vb_terms_bpd(
                model(x_t, t, **(model_kwargs or {})), x_start, x_t, t, clip_denoised=clip_denoised, check_range=False
            )
            vb[:, step] = terms["output"]
            xstart_mse[:, step] = mean_flat((terms["pred_xstart"] - x_start) ** 2)
            if not (self.has_zero_terminal_snr and step == T - 1):
                eps = self.predict_eps_from_xstart(x_t, t, terms["pred_xstart"])
                mse[:, step] = mean_flat((eps - noise) ** 2)
        prior = self.prior_bpd(x_start)
        return {"total_bpd": vb.sum(dim=1) + prior, "prior_bpd": prior, "vb": vb, "xstart_mse": xstart_mse, "mse": mse}
