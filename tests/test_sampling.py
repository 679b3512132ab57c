"""Ancestral sampling checked end to end with models whose optimal output is known in closed form."""

import math

import pytest
import torch

from ddpm_core import GaussianDiffusion
from ddpm_core.sampling import p_sample, p_sample_loop, p_sample_loop_progressive, sample_trajectory


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def gaussian_x0_oracle(d, mu, s2):
    """E[x_0 | x_t] for data ~ N(mu, s2): the Bayes-optimal x0 prediction."""

    def model(xt, t):
        ab = d.alphas_cumprod[t].reshape(-1, 1).to(xt.dtype)
        return mu + ab.sqrt() * s2 / (ab * s2 + 1 - ab) * (xt - ab.sqrt() * mu)

    return model


@pytest.mark.parametrize("mean_type", ["x0", "eps", "v"])
def test_sampling_with_the_exact_denoiser_recovers_gaussian_data(mean_type):
    # With the Bayes-optimal mean and the posterior variance, Algorithm 2 must produce N(mu, s2) when T is large.
    d = GaussianDiffusion.from_schedule("linear", 1000, mean_type=mean_type, var_type="fixed_small")
    mu, s2 = 0.3, 0.25
    oracle_x0 = gaussian_x0_oracle(d, mu, s2)

    def model(xt, t):
        x0 = oracle_x0(xt, t)
        if mean_type == "x0":
            return x0
        eps = d.predict_eps_from_xstart(xt, t, x0)
        return eps if mean_type == "eps" else d.get_v(x0, eps, t)

    x = p_sample_loop(d, model, (20_000, 1), generator=gen(1), noise=torch.randn(20_000, 1, generator=gen(2), dtype=torch.float64))
    assert float(x.mean()) == pytest.approx(mu, abs=5 * math.sqrt(s2 / 20_000) + 0.01)
    assert float(x.var()) == pytest.approx(s2, rel=0.05)


def test_sampling_a_point_mass_returns_the_point():
    d = GaussianDiffusion.from_schedule("linear", 100, 1e-3, 0.2, mean_type="x0", var_type="fixed_large")
    target = torch.tensor([[0.25, -0.75]])
    x = p_sample_loop(d, lambda xt, t: target.expand_as(xt), (5, 2), generator=gen(3))
    torch.testing.assert_close(x, target.expand(5, 2))


def test_p_sample_adds_no_noise_at_t0_and_the_right_noise_elsewhere():
    d = GaussianDiffusion.from_schedule("linear", 100, 1e-3, 0.2, mean_type="x0", var_type="fixed_large")
    xt = torch.randn(4, 2, generator=gen(4))
    model = lambda x, t: 0.5 * x  # noqa: E731
    noise = torch.randn(4, 2, generator=gen(5))
    out0 = p_sample(d, model, xt, 0, noise=noise)
    torch.testing.assert_close(out0["sample"], d.p_mean_variance(model(xt, 0), xt, 0)["mean"])
    out = p_sample(d, model, xt, 50, noise=noise)
    expected = d.p_mean_variance(model(xt, 50), xt, 50)["mean"] + math.sqrt(float(d.betas[50])) * noise
    torch.testing.assert_close(out["sample"], expected)


def test_sampling_is_reproducible_with_a_seed():
    d = GaussianDiffusion.from_schedule("linear", 50, 1e-3, 0.2)
    model = lambda x, t: 0.1 * x  # noqa: E731
    a = p_sample_loop(d, model, (3, 2), generator=gen(7))
    b = p_sample_loop(d, model, (3, 2), generator=gen(7))
    c = p_sample_loop(d, model, (3, 2), generator=gen(8))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_progressive_and_trajectory_agree_with_the_loop():
    d = GaussianDiffusion.from_schedule("linear", 30, 1e-3, 0.3)
    model = lambda x, t: 0.1 * x  # noqa: E731
    steps = [out["t"] for out in p_sample_loop_progressive(d, model, (2, 2), generator=gen(9))]
    assert steps == list(range(29, -1, -1))
    traj = sample_trajectory(d, model, (2, 2), record_steps=[29, 10, 0], generator=gen(9))
    assert traj.steps == [29, 10, 0] and traj.x_t.shape == (3, 2, 2) and traj.pred_xstart.shape == (3, 2, 2)
    torch.testing.assert_close(traj.sample, p_sample_loop(d, model, (2, 2), generator=gen(9)))
    torch.testing.assert_close(traj.x_t[-1], traj.sample)


def test_sampling_errors():
    d = GaussianDiffusion.from_schedule("linear", 30, 1e-3, 0.3)
    model = lambda x, t: x  # noqa: E731
    with pytest.raises(ValueError, match=r"noise must have shape \(2, 2\)"):
        p_sample_loop(d, model, (2, 2), noise=torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"record_steps must lie in \[0, 29\]"):
        sample_trajectory(d, model, (2, 2), record_steps=[30])
    with pytest.raises(ValueError, match="noise must have the shape of x_t"):
        p_sample(d, model, torch.zeros(2, 2), 3, noise=torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"model output must have shape"):
        p_sample_loop(d, lambda x, t: x[:, :1], (2, 2))


def test_jsd_sampling_is_finite_with_x0_and_an_error_with_eps():
    d = GaussianDiffusion.from_schedule("jsd", 20, mean_type="x0", var_type="fixed_small")
    x = p_sample_loop(d, lambda xt, t: torch.tanh(xt), (4, 2), generator=gen(10))
    assert torch.isfinite(x).all()
    d_eps = GaussianDiffusion.from_schedule("jsd", 20)
    with pytest.raises(ValueError, match="alphas_cumprod = 0"):
        p_sample_loop(d_eps, lambda xt, t: torch.zeros_like(xt), (4, 2))
