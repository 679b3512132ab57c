"""Respacing checked against hand-written spacings and float64 products computed here, not by the code under test."""

import math

import numpy as np
import pytest
import torch

from ddpm_core import GaussianDiffusion
from ddpm_core.respace import SpacedDiffusion, respace, space_timesteps
from ddpm_core.sampling import ddim_sample_loop, p_sample_loop

TABLES = [
    "betas", "log_betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "alphas_cumprod_next",
    "sqrt_alphas_cumprod", "one_minus_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "fixed_large_variance", "fixed_large_log_variance",
]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def small_net(out_channels=2, seed=0):
    """A small random float64 network of (x, t) for 2-D points."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, out_channels)).double()
    return lambda x, t: net(torch.cat([x, t[:, None].to(x.dtype) / 50], dim=1))


# ------------------------------------------------------------------------------ space_timesteps
def test_linear_spacing_by_hand():
    assert space_timesteps(10, 4) == [0, 3, 6, 9]
    assert space_timesteps(10, 3) == [0, 5, 9]  # 4.5 rounds up
    assert space_timesteps(10, 10) == list(range(10))
    assert space_timesteps(50, 2) == [0, 49]
    assert space_timesteps(50, 1) == [0]
    # improved-diffusion's evenly spaced steps: round(i * 999 / 9)
    assert space_timesteps(1000, 10) == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]


def test_quadratic_spacing_matches_ddims_floor_c_i_squared():
    expected = np.floor(999 / 81 * np.arange(10) ** 2 + 1e-9).astype(int).tolist()  # t_i = floor(c i^2)
    assert space_timesteps(1000, 10, "quadratic") == expected == [0, 12, 49, 111, 197, 308, 444, 604, 789, 999]
    # many steps for a short process: distinct, dense at the start
    assert space_timesteps(20, 15, "quadratic") == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 16, 19]


@pytest.mark.parametrize("kind", ["linear", "quadratic"])
def test_spacings_are_distinct_sorted_and_span_the_process(kind):
    for T in (2, 3, 7, 20, 64, 1000):
        for count in sorted({2, 3, T // 3 + 1, T // 2 + 1, T - 1, T} - {1}):
            if not 2 <= count <= T:
                continue
            s = space_timesteps(T, count, kind)
            assert len(s) == count and s[0] == 0 and s[-1] == T - 1, (T, count, s)
            assert all(b > a for a, b in zip(s, s[1:])), (T, count, s)
    gaps = np.diff(space_timesteps(1000, 7))
    assert gaps.max() - gaps.min() <= 1  # near-uniform
    quad_gaps = np.diff(space_timesteps(1000, 7, "quadratic"))
    assert (np.diff(quad_gaps) > 0).all()  # gaps grow: dense near 0


def test_explicit_timesteps_are_validated_and_sorted():
    assert space_timesteps(10, [9, 0, 4]) == [0, 4, 9]
    assert space_timesteps(10, torch.tensor([5, 1])) == [1, 5]
    assert space_timesteps(10, np.array([3, 2])) == [2, 3]
    with pytest.raises(ValueError, match=r"lie in \[0, 9\]"):
        space_timesteps(10, [0, 10])
    with pytest.raises(ValueError, match="distinct"):
        space_timesteps(10, [0, 3, 3])
    with pytest.raises(ValueError, match="not be empty"):
        space_timesteps(10, [])
    with pytest.raises(TypeError, match="integers"):
        space_timesteps(10, [0.5, 2])


def test_spacing_errors_name_what_is_accepted():
    with pytest.raises(ValueError, match=r"count must lie in \[1, 10\]"):
        space_timesteps(10, 0)
    with pytest.raises(ValueError, match=r"count must lie in \[1, 10\]"):
        space_timesteps(10, 11)
    with pytest.raises(ValueError, match="unknown spacing 'cubic'; accepted: 'linear', 'quadratic'"):
        space_timesteps(10, 5, "cubic")
    with pytest.raises(TypeError, match="count must be an int or an iterable"):
        space_timesteps(10, "5")


# ------------------------------------------------------------------------------ SpacedDiffusion
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_spacing_to_all_steps_rebuilds_the_same_tables(schedule):
    d = GaussianDiffusion.from_schedule(schedule, 40, var_type="fixed_small")
    sp = respace(d, 40)
    assert sp.num_timesteps == 40 and torch.equal(sp.timestep_map, torch.arange(40))
    for name in TABLES:
        assert torch.equal(getattr(sp, name), getattr(d, name)), name


@pytest.mark.parametrize("var_type", ["fixed_small", "fixed_large"])
def test_spacing_to_all_steps_samples_exactly_like_the_original(var_type):
    d = GaussianDiffusion.from_schedule("linear", 30, 1e-3, 0.3, var_type=var_type)
    sp = SpacedDiffusion(d, range(30))
    model = small_net()
    x_T = torch.randn(5, 2, generator=gen(1), dtype=torch.float64)
    assert torch.equal(p_sample_loop(sp, model, (5, 2), noise=x_T, generator=gen(2)),
                       p_sample_loop(d, model, (5, 2), noise=x_T, generator=gen(2)))
    assert torch.equal(ddim_sample_loop(sp, model, (5, 2), noise=x_T, eta=0.5, generator=gen(3)),
                       ddim_sample_loop(d, model, (5, 2), noise=x_T, eta=0.5, generator=gen(3)))


@pytest.mark.parametrize("kind", ["linear", "quadratic"])
def test_spaced_alphas_cumprod_are_the_base_ones_at_the_kept_steps(kind):
    d = GaussianDiffusion.from_schedule("linear", 200, var_type="fixed_large")
    sp = respace(d, 13, kind)
    kept = space_timesteps(200, 13, kind)
    # independent: abar_t = prod_{s <= t} (1 - beta_s) as a float64 product of Python floats
    betas = d.betas.tolist()
    expected = torch.tensor([math.prod(1 - b for b in betas[: t + 1]) for t in kept], dtype=torch.float64)
    torch.testing.assert_close(sp.alphas_cumprod, expected, rtol=1e-12, atol=0)
    expected_betas = [1 - expected[0].item()] + [1 - (expected[i] / expected[i - 1]).item() for i in range(1, 13)]
    torch.testing.assert_close(sp.betas, torch.tensor(expected_betas, dtype=torch.float64), rtol=1e-10, atol=0)
    assert sp.timestep_map.tolist() == kept and sp.base_num_timesteps == 200


def test_spaced_diffusion_keeps_the_types_and_composes():
    d = GaussianDiffusion.from_schedule("linear", 100, mean_type="v", var_type="learned_range", loss_type="hybrid",
                                        hybrid_lambda=0.01, decoder="continuous")
    sp = respace(d, 20)
    assert (sp.mean_type, sp.var_type, sp.loss_type) == (d.mean_type, d.var_type, d.loss_type)
    assert sp.hybrid_lambda == 0.01 and sp.decoder == "continuous"
    assert "20 of T=100" in repr(sp)
    again = respace(sp, [0, 5, 19])  # indices of sp: map through to the original steps
    assert again.timestep_map.tolist() == [sp.timestep_map[i].item() for i in (0, 5, 19)]
    torch.testing.assert_close(again.alphas_cumprod, d.alphas_cumprod[again.timestep_map], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="at least 2 timesteps"):
        SpacedDiffusion(d, [7])
    with pytest.raises(TypeError, match="GaussianDiffusion"):
        SpacedDiffusion("ddpm", [0, 1])


def test_learned_range_interpolates_between_the_spaced_variances():
    d = GaussianDiffusion.from_schedule("linear", 100, var_type="learned_range", loss_type="hybrid")
    sp = respace(d, 10)
    kept = sp.timestep_map.tolist()
    abar = d.alphas_cumprod.tolist()
    x = torch.zeros(1, 2, dtype=torch.float64)
    for i in range(1, 10):
        beta = 1 - abar[kept[i]] / abar[kept[i - 1]]
        beta_tilde = (1 - abar[kept[i - 1]]) / (1 - abar[kept[i]]) * beta
        for o, expected in ((1.0, beta), (-1.0, beta_tilde), (0.0, math.sqrt(beta * beta_tilde))):
            out = sp.p_mean_variance(torch.cat([x, torch.full_like(x, o)], dim=1), x, i)
            torch.testing.assert_close(out["variance"], torch.full_like(x, expected), rtol=1e-10, atol=0)


# ------------------------------------------------------------------------------ the model sees original timesteps
def test_wrapped_model_receives_original_timesteps():
    d = GaussianDiffusion.from_schedule("linear", 100)
    sp = respace(d, 8, "quadratic")
    seen = []

    def model(x, t, **kwargs):
        seen.append(t.tolist())
        return torch.zeros_like(x)

    wrapped = sp.wrap_model(model)
    wrapped(torch.zeros(3, 2), torch.tensor([0, 4, 7]))
    assert seen[-1] == [sp.timestep_map[i].item() for i in (0, 4, 7)]
    assert sp.wrap_model(wrapped) is wrapped  # never mapped twice
    with pytest.raises(ValueError, match="different spacing"):
        respace(d, 5).wrap_model(wrapped)

    seen.clear()
    p_sample_loop(sp, model, (2, 2), generator=gen(0))  # the samplers wrap by themselves
    assert [s[0] for s in seen] == space_timesteps(100, 8, "quadratic")[::-1]
    seen.clear()
    sp.training_losses(model, torch.zeros(2, 2), torch.tensor([7, 1]))
    assert seen == [[99, space_timesteps(100, 8, "quadratic")[1]]]
