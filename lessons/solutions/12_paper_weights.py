"""Lesson 12's solutions. Try each exercise yourself first."""

import torch


def same_padding(n, k, s):
    """Exercise 1: TensorFlow's 'SAME' padding (before, after) along one axis of size n, kernel k, stride s.

    For k = 3, s = 2: an even n gives (0, 1) (the paper's layout), an odd n gives (1, 1) (PyTorch's padding=1).
    """
    n_out = -(-n // s)                          # ceil(n / s), in integers
    total = max((n_out - 1) * s + k - n, 0)     # the last window starts at (n_out - 1) s and needs k pixels
    return total // 2, total - total // 2


def leading_timesteps(T, S, offset=0):
    """Exercise 2: diffusers' DDIM timesteps with timestep_spacing="leading" and steps_offset, largest first.

    For T = 1000, S = 10: diffusers visits 900, 800, ..., 0; respace.space_timesteps(1000, 10) visits 0, 111, 222,
    ..., 999. Only ddpm_core starts at code t = 999. diffusers starts its chain from N(0, I) at t = 900, where the
    data's share of x_900 is sqrt(abar_900) ~ 0.016 (at 999: 0.006). Both are almost pure noise, so the mismatch is
    small for this schedule. For schedules whose last abar is not near 0 it is not, and diffusers also offers
    timestep_spacing="trailing" (999, 899, ..., 99).
    """
    step_ratio = T // S
    return [i * step_ratio + offset for i in reversed(range(S))]


def count_parameters(c):
    """Exercise 3: the parameters of UNet(c) by arithmetic, in the order UNet.__init__ builds the network."""
    conv = lambda i, o, k: i * o * k * k + o                  # noqa: E731  weight + bias
    norm = lambda ch: 2 * ch                                  # noqa: E731  GroupNorm: scale and shift
    temb = 4 * c.ch
    res = lambda i, o: (norm(i) + conv(i, o, 3) + (temb * o + o) + norm(o) + conv(o, o, 3)  # noqa: E731
                        + (conv(i, o, 1) if i != o else 0))
    attn = lambda ch: norm(ch) + conv(ch, 3 * ch, 1) + conv(ch, ch, 1)  # noqa: E731
    total = (c.ch * temb + temb) + (temb * temb + temb) + conv(c.in_channels, c.ch, 3)
    if c.num_classes:
        total += (c.num_classes + 1) * temb                   # the label table, with the null label's row
    skips, ch_in, r = [c.ch], c.ch, c.resolution
    for level, mult in enumerate(c.ch_mult):
        for _ in range(c.num_res_blocks):
            total += res(ch_in, c.ch * mult) + (attn(c.ch * mult) if r in c.attn_resolutions else 0)
            ch_in = c.ch * mult
            skips.append(ch_in)
        if level != len(c.ch_mult) - 1:
            total += conv(ch_in, ch_in, 3)
            skips.append(ch_in)
            r //= 2
    total += 2 * res(ch_in, ch_in) + attn(ch_in)
    for level, mult in reversed(list(enumerate(c.ch_mult))):
        for _ in range(c.num_res_blocks + 1):
            total += res(ch_in + skips.pop(), c.ch * mult) + (attn(c.ch * mult) if r in c.attn_resolutions else 0)
            ch_in = c.ch * mult
        if level != 0:
            total += conv(ch_in, ch_in, 3)
            r *= 2
    out_channels = c.out_channels or c.in_channels
    return total + norm(ch_in) + conv(ch_in, out_channels, 3)


BETAS = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)     # the paper's schedule (tiny_diffusion.betas)
ALPHAS_BAR = torch.cumprod(1 - BETAS, dim=0)


def paper_step(x_t, eps, t, z):
    """Exercise 4: DDPMScheduler.step with clip_sample=True and fixed_large, at code index t."""
    abar = ALPHAS_BAR[t]
    abar_prev = ALPHAS_BAR[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
    x0_hat = ((x_t - (1 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1, 1)
    mean = (abar_prev.sqrt() * BETAS[t] / (1 - abar)) * x0_hat + ((1 - BETAS[t]).sqrt() * (1 - abar_prev) / (1 - abar)) * x_t
    return mean + BETAS[t].sqrt() * z if t > 0 else mean
