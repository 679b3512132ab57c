"""Beta schedules against their closed forms, computed independently in plain Python floats."""

import math

import pytest
import torch

from ddpm_core import schedules
from ddpm_core.schedules import SCHEDULES, alphas_cumprod, check_betas, get_beta_schedule, snr

T = 1000


def as_list(x):
    return [float(v) for v in x]


def test_linear_is_the_papers_default():
    betas = get_beta_schedule("linear", T)
    expected = [1e-4 + (0.02 - 1e-4) * i / (T - 1) for i in range(T)]
    assert betas.dtype == torch.float64 and betas.shape == (T,)
    assert as_list(betas) == pytest.approx(expected, rel=1e-12)


def test_quad_is_linear_in_sqrt_beta():
    betas = get_beta_schedule("quad", 10, 1e-4, 0.02)
    a, b = math.sqrt(1e-4), math.sqrt(0.02)
    assert as_list(betas) == pytest.approx([(a + (b - a) * i / 9) ** 2 for i in range(10)], rel=1e-12)


def test_cosine_matches_nichol_dhariwal_alpha_bar_where_unclipped():
    betas = get_beta_schedule("cosine", T)
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    ab = alphas_cumprod(betas)
    unclipped = int((betas < 0.999).sum())
    assert unclipped == T - 1  # only the very last step hits the clip at T = 1000
    for t in (0, 10, 500, unclipped - 1):
        assert float(ab[t]) == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)
    assert float(betas.max()) == pytest.approx(0.999)


def test_sigmoid_closed_form():
    betas = get_beta_schedule("sigmoid", 7, 1e-4, 0.02)
    xs = [-6 + 12 * i / 6 for i in range(7)]
    expected = [1 / (1 + math.exp(-x)) * (0.02 - 1e-4) + 1e-4 for x in xs]
    assert as_list(betas) == pytest.approx(expected, rel=1e-12)


def test_const_and_warmups():
    assert as_list(get_beta_schedule("const", 5, 1e-4, 0.02)) == [0.02] * 5
    w10 = get_beta_schedule("warmup10", 100, 1e-4, 0.02)
    assert as_list(w10[:10]) == pytest.approx([1e-4 + (0.02 - 1e-4) * i / 9 for i in range(10)])
    assert as_list(w10[10:]) == [0.02] * 90
    w50 = get_beta_schedule("warmup50", 100, 1e-4, 0.02)
    assert float(w50[49]) == pytest.approx(0.02) and float(w50[0]) == pytest.approx(1e-4)
    assert as_list(w50[50:]) == [0.02] * 50


def test_jsd_alpha_bar_telescopes_to_zero():
    # beta_s = 1/(T - s + 1) => prod (T - s)/(T - s + 1) telescopes: abar at code t = (T - t - 1) / T.
    betas = get_beta_schedule("jsd", 20)
    assert float(betas[0]) == pytest.approx(1 / 20) and float(betas[-1]) == 1.0
    ab = alphas_cumprod(betas)
    assert as_list(ab) == pytest.approx([(20 - t - 1) / 20 for t in range(20)], abs=1e-12)
    assert float(ab[-1]) == 0.0


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_is_valid(name):
    betas = get_beta_schedule(name, T)
    ab = alphas_cumprod(betas)
    assert ((betas > 0) & (betas <= 1)).all()
    assert (ab[1:] <= ab[:-1]).all(), "alpha-bar must decrease"
    assert float(ab[0]) < 1 and float(ab[-1]) < 0.01


def test_alpha_bar_equals_exp_sum_log():
    betas = get_beta_schedule("linear", T)
    expected = torch.exp(torch.cumsum(torch.log1p(-betas), 0))
    torch.testing.assert_close(alphas_cumprod(betas), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(snr(betas), expected / (1 - expected), rtol=1e-10, atol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="lineer"), "unknown beta schedule 'lineer'; accepted: linear"),
        (dict(name="linear", num_diffusion_timesteps=0), "positive integer"),
        (dict(name="linear", num_diffusion_timesteps=10.0), "positive integer"),
        (dict(name="linear", beta_start=0.0), r"beta_start must lie in \(0, 1\)"),
        (dict(name="quad", beta_end=1.5), r"beta_end must lie in \(0, 1\)"),
    ],
)
def test_schedule_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_beta_schedule(**kwargs)


@pytest.mark.parametrize(
    "betas, match",
    [
        ([0.1, 0.0, 0.2], r"\(0, 1\)"),
        ([0.1, 1.0, 0.2], r"\(0, 1\)"),
        ([0.1, -0.2], r"\(0, 1\)"),
        ([0.1, 1.5], r"\(0, 1\)"),
        ([0.1, float("nan")], "NaN"),
        ([[0.1, 0.2]], "1-D"),
        ([], "non-empty"),
    ],
)
def test_check_betas_rejects(betas, match):
    with pytest.raises(ValueError, match=match):
        check_betas(torch.tensor(betas, dtype=torch.float64))


def test_check_betas_allows_a_final_one():
    assert float(check_betas([0.5, 1.0])[-1]) == 1.0


def test_betas_for_alpha_bar_recovers_a_known_curve():
    # abar(s) = 1 - s/2 (never zero): then abar_t / abar_0 must be reproduced exactly.
    betas = schedules.betas_for_alpha_bar(10, lambda s: 1 - s / 2)
    assert as_list(alphas_cumprod(betas)) == pytest.approx([1 - (t + 1) / 20 for t in range(10)], rel=1e-12)
