"""Lesson 12's exercise checks (the paper's weights).

Each check calls the learner's function on inputs of its own: TensorFlow's 'SAME' padding against known cases and its
defining property (the least padding that gives ceil(n / s) outputs, the odd pixel after); diffusers' 'leading' DDIM
timesteps against values read off diffusers and the properties that fix them; the UNet's parameter count against the
modules themselves (built on the meta device, no memory) and the published totals; and one step of the paper's sampler
against Bayes' rule for the posterior mean, rebuilt in float64 from the paper's schedule.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._common import _is_int, _linear_betas, _running_abar, _run, _say, _tensor_close


# ----------------------------------------------------------------------------- exercise 1: 'SAME' padding
def _pair(out: Any) -> tuple[int, int] | None:
    try:
        pair = tuple(out)
    except TypeError:
        return None
    if len(pair) != 2 or not all(_is_int(v) for v in pair):
        return None
    return int(pair[0]), int(pair[1])


def lesson12_same_padding(function: Callable[..., Any]) -> bool | None:
    """Exercise 1: ``function(n, k, s)`` -> ``(before, after)``, TensorFlow's ``'SAME'`` padding along one axis.

    Known cases from TensorFlow's definition (the output has ceil(n / s) pixels, the odd padding pixel goes after),
    then the defining property for every n <= 40 and several kernels and strides.
    """
    name = "Exercise 1"
    known = {(32, 3, 2): (0, 1), (31, 3, 2): (1, 1), (8, 1, 2): (0, 0), (7, 4, 1): (1, 2), (10, 5, 3): (2, 2),
             (5, 1, 3): (0, 0)}
    for (n, k, s), truth in known.items():
        done, out = _run(name, function, n, k, s)
        if done:
            return out
        pair = _pair(out)
        if pair is None:
            return _say(name, False, f"return a pair of ints (before, after); for n = {n}, k = {k}, s = {s} got "
                                     f"{out!r}.")
        if pair == truth:
            continue
        if pair == truth[::-1]:
            return _say(name, False, f"n = {n}, k = {k}, s = {s}: the odd pixel goes AFTER (TensorFlow pads the right "
                                     f"and bottom more), expected {truth}.")
        if pair == (k // 2, k // 2):
            return _say(name, False, f"n = {n}, k = {k}, s = {s}: that is PyTorch's symmetric k // 2 on each side; "
                                     f"'SAME' pads what ceil(n / s) outputs need, here {truth}.")
        return _say(name, False, f"n = {n}, k = {k}, s = {s}: got {pair}, expected {truth}. n_out = ceil(n / s); "
                                 "total = max((n_out - 1) s + k - n, 0); before = total // 2, after = the rest.")
    for n in range(1, 41):
        for k in (1, 2, 3, 4, 5, 7):
            for s in (1, 2, 3):
                done, out = _run(name, function, n, k, s)
                if done:
                    return out
                pair = _pair(out)
                n_out = -(-n // s)
                least = next(p for p in range(k + s) if (n + p - k) // s + 1 >= n_out)   # the least total that fits
                if pair is None or pair != (least // 2, least - least // 2):
                    return _say(name, False, f"n = {n}, k = {k}, s = {s}: got {pair}; the output must have ceil(n / s) "
                                             f"= {n_out} pixels with the least padding ({least} in all), the odd pixel "
                                             "after (and never a negative padding).")
    return _say(name, True, "known cases, and for every n <= 40: ceil(n / s) outputs with the least padding, the odd "
                            "pixel after.")


# ----------------------------------------------------------------------------- exercise 2: diffusers' DDIM steps
# Read off diffusers' DDIMScheduler(num_train_timesteps=T, steps_offset=offset).set_timesteps(S) ("leading" spacing);
# tests/test_exercises_12.py checks these against diffusers itself.
LEADING_KNOWN = {(1000, 10, 0): [900, 800, 700, 600, 500, 400, 300, 200, 100, 0],
                 (1000, 7, 0): [852, 710, 568, 426, 284, 142, 0],
                 (1000, 6, 1): [831, 665, 499, 333, 167, 1]}


def lesson12_leading_timesteps(function: Callable[..., Any]) -> bool | None:
    """Exercise 2: ``function(T, S, offset)`` -> the S timesteps of diffusers' DDIM, ``"leading"`` spacing, largest
    first.

    Known lists read off diffusers, then the properties that fix them for other T, S and offsets: S integers,
    equally spaced by T // S (integer division), the last one equal to the offset.
    """
    name = "Exercise 2"
    cases = list(LEADING_KNOWN) + [(1000, 20, 0), (1000, 50, 1), (4000, 64, 1), (1000, 1000, 0), (1000, 3, 0)]
    for T, S, offset in cases:
        done, out = _run(name, function, T, S, offset)
        if done:
            return out
        try:
            got = [int(v) for v in out]
            exact = all(_is_int(v) or (isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_floating_point())
                        or float(v) == int(v) for v in out)
        except (TypeError, ValueError):
            return _say(name, False, f"return a list of S ints; for T = {T}, S = {S} got {type(out).__name__}.")
        if not exact:
            return _say(name, False, f"T = {T}, S = {S}: timesteps are integers.")
        ratio = T // S
        truth = LEADING_KNOWN.get((T, S, offset), [i * ratio + offset for i in reversed(range(S))])
        if got == truth and len(got) == S and got[-1] == offset and all(a - b == ratio for a, b in zip(got, got[1:])):
            continue
        if got == truth[::-1]:
            return _say(name, False, "largest first: the sampler visits the timesteps from T towards 0.")
        if offset and got == [v - offset for v in truth]:
            return _say(name, False, f"T = {T}, S = {S}, offset = {offset}: steps_offset is added to every timestep.")
        if got and got[0] == T - 1:
            return _say(name, False, f"T = {T}, S = {S}: that starts at T - 1 = {T - 1}; 'leading' starts at "
                                     f"(S - 1) (T // S) + offset = {truth[0]} (you may have 'trailing' spacing or "
                                     "ddpm_core's linear spacing).")
        return _say(name, False, f"T = {T}, S = {S}, offset = {offset}: got {got[:4]}..., expected {truth[:4]}...: "
                                 "step_ratio = T // S (integer division), timesteps i * step_ratio + offset for "
                                 "i = S - 1 .. 0.")
    return _say(name, True, "diffusers' 'leading' timesteps: S integers T // S apart, from (S - 1) (T // S) + offset "
                            "down to the offset.")


# ----------------------------------------------------------------------------- exercise 3: the parameter count
def lesson12_count_parameters(function: Callable[..., Any]) -> bool | None:
    """Exercise 3: ``function(config)`` -> the number of parameters of ``UNet(config)``, by arithmetic.

    The truth: the published totals of the paper's networks (35,746,307 for CIFAR-10, 113,673,219 at 256x256), and,
    for those and three more configurations, the modules themselves built on the meta device (no memory).
    """
    from ..models.unet import UNet, UNetConfig, unet_config

    name = "Exercise 3"
    configs = [("the paper's CIFAR-10 UNet", unet_config("ddpm_cifar10"), 35_746_307),
               ("the paper's 256x256 UNet", unet_config("ddpm_256"), 113_673_219),
               ("the MNIST model (10 classes)", unet_config("mnist_cpu", num_classes=10), None),
               ("the lesson's tiny network", UNetConfig(in_channels=3, ch=32, ch_mult=(1, 2), num_res_blocks=1,
                                                        attn_resolutions=(8,), dropout=0.0, resolution=16,
                                                        downsample_padding="same"), None),
               ("a wider MNIST UNet", unet_config("mnist_gpu", ch_mult=(1, 2, 3, 4), attn_resolutions=(16, 8)), None)]
    for label, config, published in configs:
        with torch.device("meta"):
            truth = sum(p.numel() for p in UNet(config).parameters())
        if published is not None and truth != published:   # the modules agree with the published count
            raise RuntimeError(f"ddpm_core bug: {label} has {truth:,} parameters, the paper publishes {published:,}")
        done, out = _run(name, function, config)
        if done:
            return out
        if not _is_int(out) and not (isinstance(out, float) and out.is_integer()):
            return _say(name, False, f"return an int, got {type(out).__name__}.")
        if int(out) == truth:
            continue
        return _say(name, False, f"{label}: got {int(out):,}, expected {truth:,} (off by {int(out) - truth:+,}). Walk "
                                 "the network as UNet.__init__ does: the time MLP (ch -> 4ch -> 4ch), conv_in, each "
                                 "ResBlock (two GroupNorms, two 3x3 convs, the time projection, a 1x1 skip when the "
                                 "channels change), attention (GroupNorm, qkv, proj_out), the down/up-sampling convs, "
                                 "the middle, norm_out and conv_out, and the label table (num_classes + 1 rows); every "
                                 "conv and linear layer has a bias, every GroupNorm a scale and a shift.")
    return _say(name, True, "35,746,307 for the paper's CIFAR-10 UNet, 113,673,219 at 256x256, and the modules' own "
                            "count for three more configurations.")


# ----------------------------------------------------------------------------- exercise 4: the paper's sampler step
def lesson12_paper_step(function: Callable[..., Any]) -> bool | None:
    """Exercise 4: ``function(x_t, eps, t, z)`` -> x_{t-1}: one step of the paper's sampler (``DDPMScheduler.step``
    with ``clip_sample=True``, ``variance_type="fixed_large"``) on the paper's linear schedule, T = 1000, code t.

    The truth: :math:`\\hat x_0` clipped to [-1, 1], then the mean of :math:`q(x_{t-1} \\mid x_t, \\hat x_0)` by Bayes'
    rule (the precision-weighted combination of the prior :math:`N(\\sqrt{\\bar\\alpha_{t-1}}\\hat x_0,
    1 - \\bar\\alpha_{t-1})` and the likelihood of :math:`x_t`, :math:`N(\\sqrt{\\alpha_t} x_{t-1}, \\beta_t)`), not
    eq. 7's coefficients; plus :math:`\\sqrt{\\beta_t} z` for code t > 0.
    """
    name = "Exercise 4"
    betas = _linear_betas()
    abar = _running_abar(betas)          # abar[k] = prod of the first k factors: code t's alpha-bar is abar[t + 1]
    g = torch.Generator().manual_seed(114)
    x_t = 1.3 * torch.randn(8, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(8, 3, 4, 4, generator=g, dtype=torch.float64)
    z = torch.randn(8, 3, 4, 4, generator=g, dtype=torch.float64)
    for t in (999, 500, 10, 1, 0):
        a_t, a_prev, beta = abar[t + 1], abar[t], betas[t]
        raw = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        x0_hat = raw.clamp(-1, 1)
        if t == 0:
            mean = x0_hat                     # abar_{t-1} = 1: the prior is a point mass at x0_hat
        else:
            precision = 1 / (1 - a_prev) + (1 - beta) / beta
            mean = (math.sqrt(a_prev) / (1 - a_prev) * x0_hat + math.sqrt(1 - beta) / beta * x_t) / precision
        expected = mean + math.sqrt(beta) * z if t > 0 else mean
        done, out = _run(name, function, x_t.clone(), eps.clone(), t, z.clone())
        if done:
            return out
        if _tensor_close(out, expected, 1e-6):
            continue
        if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
            return _say(name, False, f"return a tensor shaped like x_t, {tuple(x_t.shape)}.")
        if t > 0:
            tilde = (1 - a_prev) / (1 - a_t) * beta
            unclipped = (x_t - beta / math.sqrt(1 - a_t) * eps) / math.sqrt(1 - beta) + math.sqrt(beta) * z
            if _tensor_close(out, unclipped, 1e-6):
                return _say(name, False, f"at code t = {t} that is eq. 11 without clipping; the paper's sampler "
                                         "clips x0_hat to [-1, 1] first, then takes the posterior mean at it.")
            if _tensor_close(out, mean + math.sqrt(tilde) * z, 1e-6):
                return _say(name, False, f"at code t = {t} that uses sigma_t^2 = tilde_beta_t (fixed-small); the "
                                         "paper's CIFAR-10 sampler uses fixed-large, sigma_t^2 = beta_t.")
        elif _tensor_close(out, mean + math.sqrt(beta) * z, 1e-6):
            return _say(name, False, "at code t = 0 the last step adds no noise: x_0 is the mean itself.")
        return _say(name, False, f"at code t = {t}: x0_hat = clip((x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), -1, 1); "
                                 "x_(t-1) = sqrt(abar_(t-1)) beta_t / (1 - abar_t) x0_hat + sqrt(alpha_t) (1 - "
                                 "abar_(t-1)) / (1 - abar_t) x_t + sqrt(beta_t) z, with abar_(t-1) = 1 and no noise at "
                                 "code t = 0.")
    return _say(name, True, "x0_hat clipped, then the posterior mean by Bayes' rule plus sqrt(beta_t) z, at code "
                            "t = 999, 500, 10, 1 and 0 (no noise at the last step).")
