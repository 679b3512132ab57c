"""Lesson 12's exercise checks pass their solutions (lessons/solutions/12_paper_weights.py), reject the plausible wrong
answers ('SAME' padding split the wrong way, ddpm_core's spacing for diffusers', a forgotten tensor in the parameter
count, the sampler step without clipping or with the other variance) and say 'not attempted yet' for an unanswered
exercise; the lesson's exercise cells hold no solution."""


import pytest
import torch

from ddpm_core import exercises, respace
from ddpm_core.diffusion import GaussianDiffusion
from ddpm_core.models.unet import ResBlock, UNet
from ddpm_core.sampling import p_sample
from ddpm_core.schedules import get_beta_schedule
from exercise_helpers import solution, verdicts

LESSON = "12_paper_weights"


def not_yet(*args):
    raise NotImplementedError


# ----------------------------------------------------------------------------- exercise 1: 'SAME' padding
def test_lesson12_same_padding(capsys):
    s = solution(LESSON)
    check = exercises.lesson12_same_padding

    def brute_force(n, k, s_):                 # another route: the least total padding that gives ceil(n / s) outputs
        n_out = -(-n // s_)
        total = next(p for p in range(k + s_) if (n + p - k) // s_ + 1 >= n_out)
        return total // 2, total - total // 2

    def no_max(n, k, s_):                      # a negative total when k < s
        total = (-(-n // s_) - 1) * s_ + k - n
        return total // 2, total - total // 2

    def floor_out(n, k, s_):                   # floor(n / s) outputs instead of ceil
        total = max((n // s_ - 1) * s_ + k - n, 0)
        return total // 2, total - total // 2

    wrong = [lambda n, k, s_: (k // 2, k // 2),                       # PyTorch's symmetric padding
             lambda n, k, s_: s.same_padding(n, k, s_)[::-1],         # the odd pixel before
             no_max, floor_out,
             lambda n, k, s_: (0, 1),                                  # the paper's case hard-coded
             lambda n, k, s_: sum(s.same_padding(n, k, s_)),           # the total, not a pair
             lambda n, k, s_: (0.0, 1.0)]
    assert verdicts(capsys, check, [s.same_padding, brute_force]) == [True, True]
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]


# ----------------------------------------------------------------------------- exercise 2: diffusers' DDIM steps
def _diffusers_timesteps(T, S, offset=0, spacing="leading"):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=T, steps_offset=offset, timestep_spacing=spacing)
    sched.set_timesteps(S)
    return sched.timesteps.tolist()


def test_lesson12_leading_timesteps_known_values_are_diffusers():
    pytest.importorskip("diffusers")
    from ddpm_core.exercises.lesson12 import LEADING_KNOWN

    for (T, S, offset), known in LEADING_KNOWN.items():
        assert _diffusers_timesteps(T, S, offset) == known
    s = solution(LESSON)
    for T, S, offset in ((1000, 20, 0), (1000, 50, 1), (4000, 64, 1), (1000, 1000, 0), (1000, 3, 0)):
        assert s.leading_timesteps(T, S, offset) == _diffusers_timesteps(T, S, offset)


def test_lesson12_leading_timesteps(capsys):
    s = solution(LESSON)
    check = exercises.lesson12_leading_timesteps
    wrong = [lambda T, S, o=0: respace.space_timesteps(T, S)[::-1],           # ddpm_core's linear spacing
             lambda T, S, o=0: s.leading_timesteps(T, S, o)[::-1],            # smallest first
             lambda T, S, o=0: s.leading_timesteps(T, S, 0),                  # the offset ignored
             lambda T, S, o=0: [round(i * T / S) + o for i in reversed(range(S))],   # T / S, not T // S
             lambda T, S, o=0: [T - 1 - i * (T // S) + o for i in range(S)],  # "trailing" spacing
             lambda T, S, o=0: [float(v) + 0.5 for v in s.leading_timesteps(T, S, o)],
             lambda T, S, o=0: [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]]   # the printed list hard-coded
    right = [s.leading_timesteps, lambda T, S, o=0: torch.tensor(s.leading_timesteps(T, S, o))]
    assert verdicts(capsys, check, right) == [True, True]
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]


# ----------------------------------------------------------------------------- exercise 3: the parameter count
def _without(c, kind):
    """The count with one kind of tensor left out: the typical slips."""
    with torch.device("meta"):
        model = UNet(c)
    total = sum(p.numel() for p in model.parameters())
    if kind == "skip":
        return total - sum(sum(p.numel() for p in m.skip.parameters()) for m in model.modules()
                           if isinstance(m, ResBlock))
    if kind == "time":
        return total - sum(p.numel() for p in model.time_embed.parameters())
    if kind == "null":
        return total - (model.label_embed.embedding_dim if model.label_embed is not None else 0)
    if kind == "bias":
        return total - sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    if kind == "norm_scale_only":
        return total - sum(m.bias.numel() for m in model.modules() if isinstance(m, torch.nn.GroupNorm))
    raise ValueError(kind)


def test_lesson12_count_parameters(capsys):
    s = solution(LESSON)
    check = exercises.lesson12_count_parameters

    def from_modules(c):                       # another route: ddpm_core's UNet on the meta device
        with torch.device("meta"):
            return sum(p.numel() for p in UNet(c).parameters())

    wrong = [lambda c: _without(c, "skip"), lambda c: _without(c, "time"), lambda c: _without(c, "null"),
             lambda c: _without(c, "bias"), lambda c: _without(c, "norm_scale_only"),
             lambda c: 35_746_307,                                      # the published number hard-coded
             lambda c: float(from_modules(c)) + 0.5, lambda c: "35746307"]
    assert verdicts(capsys, check, [s.count_parameters, from_modules]) == [True, True]
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]


# ----------------------------------------------------------------------------- exercise 4: the paper's sampler step
def test_lesson12_paper_step_solution_is_ddpm_cores_p_sample():
    """The solution equals ddpm_core's p_sample with the paper's settings (fixed-large, clip_denoised=True)."""
    s = solution(LESSON)
    diffusion = GaussianDiffusion(get_beta_schedule("linear"), mean_type="eps", var_type="fixed_large")
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    for t in (999, 300, 2, 0):
        ours = p_sample(diffusion, lambda *a, **k: eps, x_t, t, clip_denoised=True, noise=z)["sample"]
        torch.testing.assert_close(s.paper_step(x_t, eps, t, z), ours.double(), rtol=1e-10, atol=1e-10)


def test_lesson12_paper_step(capsys):
    s = solution(LESSON)
    check = exercises.lesson12_paper_step
    betas, abar = s.BETAS, s.ALPHAS_BAR
    one = torch.tensor(1.0, dtype=torch.float64)

    def step(x_t, eps, t, z, clip=(-1, 1), variance="large", noise_at_0=False, shift=0, clip_xt=False):
        tt = min(t + shift, 999)
        a, prev, b = abar[tt], (abar[tt - 1] if tt > 0 else one), betas[tt]
        x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
        if clip_xt:
            x0 = (x_t.clamp(-1, 1) - (1 - a).sqrt() * eps) / a.sqrt()
        elif clip is not None:
            x0 = x0.clamp(*clip)
        mean = prev.sqrt() * b / (1 - a) * x0 + (1 - b).sqrt() * (1 - prev) / (1 - a) * x_t
        sigma = b.sqrt() if variance == "large" else ((1 - prev) / (1 - a) * b).sqrt()
        return mean + sigma * z if (t > 0 or noise_at_0) else mean

    wrong = [lambda *a: step(*a, clip=None),                 # eq. 11: no clipping
             lambda *a: step(*a, variance="small"),          # fixed-small
             lambda *a: step(*a, noise_at_0=True),           # noise at the last step
             lambda *a: step(*a, shift=1),                   # the paper's index for the code's
             lambda *a: step(*a, clip=(0, 1)),               # the [0, 1] image range
             lambda *a: step(*a, clip_xt=True),              # x_t clipped instead of x0_hat
             lambda x_t, eps, t, z: x_t, lambda x_t, eps, t, z: x_t[0]]
    assert verdicts(capsys, check, [s.paper_step, lambda *a: step(*a)]) == [True, True]
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]
    check(wrong[0])
    assert "without clipping" in capsys.readouterr().out
    check(wrong[1])
    assert "fixed-small" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the notebook
