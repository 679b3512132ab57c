"""ddpm_core.score against independent computations: autograd of float64 log-densities written out here, brute-force
posterior means by quadrature and by Bayes' rule, and Langevin chains on a 1-D Gaussian whose stationary variance is
known in closed form."""

import math

import pytest
import torch

from ddpm_core import GaussianDiffusion, score

D64 = torch.float64


def _log_density(x, means, variances, weights):
    """log sum_k w_k N(x; mu_k, v_k I), written out component by component (no ddpm_core)."""
    D = x.shape[1]
    total = 0
    for mu, v, w in zip(means, variances, weights):
        total = total + w * torch.exp(-((x - mu) ** 2).sum(1) / (2 * v)) / (2 * math.pi * v) ** (D / 2)
    return torch.log(total)


def _autograd_score(x, means, variances, weights):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_log_density(x, means, variances, weights).sum(), x)
    return grad


@pytest.fixture
def mixture():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(3, 2, generator=g, dtype=D64) * 2
    variances = torch.tensor([0.3, 0.8, 0.5], dtype=D64)
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=D64)
    x = torch.randn(200, 2, generator=g, dtype=D64) * 2
    return x, means, variances, weights


def test_score_from_eps_is_the_score_of_q_xt_given_x0_and_inverts():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(50, 2, generator=g, dtype=D64), torch.randn(50, 2, generator=g, dtype=D64)
    for a in (0.999, 0.5, 1e-3):
        x_t = (math.sqrt(a) * x0 + math.sqrt(1 - a) * eps).requires_grad_(True)
        log_q = -((x_t - math.sqrt(a) * x0) ** 2).sum() / (2 * (1 - a))   # log N(x_t; sqrt(a) x_0, (1-a) I) + const
        (grad,) = torch.autograd.grad(log_q, x_t)
        torch.testing.assert_close(score.score_from_eps(eps, a), grad)
        torch.testing.assert_close(score.eps_from_score(grad, a), eps)
    abar = torch.tensor([[0.9], [0.1]], dtype=D64)    # a tensor broadcasts per example
    torch.testing.assert_close(score.score_from_eps(eps[:2], abar), -eps[:2] / (1 - abar).sqrt())


def test_mixture_score_matches_autograd_of_the_log_density(mixture):
    x, means, variances, weights = mixture
    torch.testing.assert_close(score.mixture_log_prob(x, means, variances, weights),
                               _log_density(x, means, variances, weights))
    torch.testing.assert_close(score.mixture_score(x, means, variances, weights),
                               _autograd_score(x, means, variances, weights))
    # one shared variance and equal weights (the defaults), in 3-D
    m3 = torch.randn(5, 3, dtype=D64, generator=torch.Generator().manual_seed(2))
    x3 = torch.randn(40, 3, dtype=D64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(score.mixture_score(x3, m3, 0.4), _autograd_score(x3, m3, [0.4] * 5, [0.2] * 5))


def test_responsibilities_are_bayes_rule(mixture):
    x, means, variances, weights = mixture
    r = score.mixture_responsibilities(x, means, variances, weights)
    joint = torch.stack([w * torch.exp(-((x - m) ** 2).sum(1) / (2 * v)) / (2 * math.pi * v)
                         for m, v, w in zip(means, variances, weights)], dim=1)
    torch.testing.assert_close(r, joint / joint.sum(1, keepdim=True))


def _quadrature_1d(x_t, a, means, variances, weights):
    """q(x_t) and E[x_0 | x_t] for a 1-D mixture prior, by brute-force integration over x_0 on a fine grid."""
    x0 = torch.linspace(-12, 12, 48_001, dtype=D64)
    prior = sum(w * torch.exp(-(x0 - m) ** 2 / (2 * v)) / math.sqrt(2 * math.pi * v)
                for m, v, w in zip(means, variances, weights))
    lik = torch.exp(-(x_t[:, None] - math.sqrt(a) * x0[None]) ** 2 / (2 * (1 - a))) / math.sqrt(2 * math.pi * (1 - a))
    joint = prior[None] * lik
    dx = (x0[1] - x0[0]).item()
    return joint.sum(1) * dx, (joint * x0[None]).sum(1) / joint.sum(1)


def test_noised_mixture_and_tweedie_against_quadrature():
    means = torch.tensor([[-1.5], [0.5], [2.0]], dtype=D64)
    variances = torch.tensor([0.04, 0.2, 0.1], dtype=D64)
    weights = torch.tensor([0.5, 0.2, 0.3], dtype=D64)
    x_t = torch.linspace(-3, 3, 41, dtype=D64)
    for a in (0.98, 0.6, 0.1):
        density, posterior_mean = _quadrature_1d(x_t, a, means[:, 0], variances, weights)
        m_t, v_t = score.noised_mixture(means, variances, a)
        torch.testing.assert_close(score.mixture_log_prob(x_t[:, None], m_t, v_t, weights), density.log())
        s = score.mixture_score(x_t[:, None], m_t, v_t, weights)
        torch.testing.assert_close(score.tweedie_x0(x_t[:, None], s, a)[:, 0], posterior_mean, rtol=1e-7, atol=1e-8)


def test_tweedie_is_the_mixture_posterior_mean_in_2d(mixture):
    x, means, variances, weights = mixture
    for a in (0.95, 0.3):
        m_t, v_t = score.noised_mixture(means, variances, a)
        r = score.mixture_responsibilities(x, m_t, v_t, weights)
        # per component: x_0 | x_t, k is Gaussian with mean mu_k + sqrt(a) v_k / v_t,k (x_t - sqrt(a) mu_k)
        gain = (math.sqrt(a) * variances / v_t)[None, :, None]
        post = means[None] + gain * (x[:, None, :] - math.sqrt(a) * means[None])
        brute = (r[:, :, None] * post).sum(1)
        torch.testing.assert_close(score.tweedie_x0(x, score.mixture_score(x, m_t, v_t, weights), a), brute)


def test_guided_score_is_prior_score_plus_s_times_classifier_gradient(mixture):
    x, means, variances, weights = mixture
    y = 1
    for s in (0.0, 1.0, 3.0, -0.5):
        xr = x.clone().requires_grad_(True)
        log_p = _log_density(xr, means, variances, weights)
        log_joint_y = math.log(weights[y]) - ((xr - means[y]) ** 2).sum(1) / (2 * variances[y]) \
            - math.log(2 * math.pi * variances[y])
        (grad,) = torch.autograd.grad((log_p + s * (log_joint_y - log_p)).sum(), xr)   # log p(x) + s log p(y | x)
        torch.testing.assert_close(score.guided_mixture_score(x, means, variances, y, s, weights), grad)
    torch.testing.assert_close(score.guided_mixture_score(x, means, variances, y, 1.0, weights),
                               (means[y] - x) / variances[y])


def test_langevin_step_formula_and_the_stationary_variance_of_a_gaussian():
    g = torch.Generator().manual_seed(4)
    x, s, z = (torch.randn(10, 2, generator=g, dtype=D64) for _ in range(3))
    torch.testing.assert_close(score.langevin_step(x, s, 0.09, z), x + 0.045 * s + 0.3 * z)
    m, v, delta = 1.5, 0.5, 0.4
    chains = torch.zeros(40_000, 1, dtype=D64)
    out = score.langevin(lambda x: -(x - m) / v, chains, delta, 300, generator=torch.Generator().manual_seed(5))
    # AR(1): x' - m = (1 - delta / 2v)(x - m) + sqrt(delta) z, so var = delta / (1 - (1 - delta/2v)^2) = v / (1 - delta/4v)
    expected = v / (1 - delta / (4 * v))
    assert abs(out.mean().item() - m) < 0.02
    assert abs(out.var().item() / expected - 1) < 0.03     # 40,000 chains: the standard error is 0.7%
    assert abs(out.var().item() / v - 1) > 0.15            # and the bias is real: not v itself


def test_annealed_langevin_step_sizes_and_end_distribution():
    sigmas, steps, eps = [2.0, 1.0, 0.5], 20, 0.01
    x = torch.zeros(40_000, 1, dtype=D64)
    # with a zero score, each step adds variance alpha_i = eps sigma_i^2 / sigma_L^2
    out = score.annealed_langevin(lambda y, i: torch.zeros_like(y), x, sigmas, steps, eps,
                                  generator=torch.Generator().manual_seed(6))
    expected = steps * sum(eps * s**2 / sigmas[-1] ** 2 for s in sigmas)
    assert abs(out.var().item() / expected - 1) < 0.03
    # on N(0, v) smoothed by each sigma_i the chain ends near N(0, v + sigma_L^2) (up to the step's small bias)
    v = 0.3
    out = score.annealed_langevin(lambda y, i: -y / (v + sigmas[i] ** 2), x, sigmas, 200, 0.05,
                                  generator=torch.Generator().manual_seed(7))
    final = v + sigmas[-1] ** 2
    assert abs(out.var().item() / (final / (1 - 0.05 / (4 * final))) - 1) < 0.03


class _ExactEps(torch.nn.Module):
    """A 'perfect network' for a mixture: eps(x_t, t) = -sqrt(1 - abar_t) * score of q(x_t)."""

    def __init__(self, diffusion, means, var):
        super().__init__()
        self.diffusion, self.means, self.var = diffusion, means, var

    def forward(self, x, t):
        a = self.diffusion.alphas_cumprod[int(t[0])].item()
        m_t, v_t = score.noised_mixture(self.means, self.var, a)
        return score.eps_from_score(score.mixture_score(x, m_t, v_t), a)


def test_model_score_and_the_ve_view_of_a_ddpm_model():
    diffusion = GaussianDiffusion.from_schedule("linear", 100, 1e-3, 0.2)
    means = torch.tensor([[1.0, 0.0], [-1.0, 0.5]], dtype=D64)
    model = _ExactEps(diffusion, means, 0.01)
    y = torch.randn(30, 2, dtype=D64, generator=torch.Generator().manual_seed(8))
    a = diffusion.alphas_cumprod[40].item()
    m_t, v_t = score.noised_mixture(means, 0.01, a)
    torch.testing.assert_close(score.model_score(model, diffusion, y, 40), score.mixture_score(y, m_t, v_t))
    ts = [60, 20, 0]
    score_fn, sigmas = score.ve_score_fn(model, diffusion, ts)
    for i, t in enumerate(ts):
        a = diffusion.alphas_cumprod[t].item()
        assert sigmas[i] == pytest.approx(math.sqrt((1 - a) / a))
        # x_t / sqrt(abar) = x_0 + sigma eps: the VE mixture has the same means and variance 0.01 + sigma^2
        torch.testing.assert_close(score_fn(y, i), score.mixture_score(y, means, 0.01 + sigmas[i] ** 2))


def test_bad_inputs_are_refused_by_name():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="alpha_bar"):
        score.score_from_eps(x, 1.0)
    with pytest.raises(ValueError, match="alpha_bar"):
        score.tweedie_x0(x, x, 0.0)
    with pytest.raises(TypeError, match="eps"):
        score.score_from_eps([1.0], 0.5)
    with pytest.raises(ValueError, match="means"):
        score.mixture_score(x, torch.zeros(3, 3), 1.0)
    with pytest.raises(ValueError, match="var"):
        score.mixture_score(x, torch.zeros(3, 2), -1.0)
    with pytest.raises(ValueError, match="weights"):
        score.mixture_score(x, torch.zeros(3, 2), 1.0, torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="y must be"):
        score.guided_mixture_score(x, torch.zeros(3, 2), 1.0, 3, 2.0)
    with pytest.raises(ValueError, match="step_size"):
        score.langevin_step(x, x, 0.0, x)
    with pytest.raises(ValueError, match="decreasing"):
        score.annealed_langevin(lambda y, i: y, x, [0.1, 1.0], 5, 0.1)
    diffusion = GaussianDiffusion.from_schedule("linear", 10, 1e-3, 0.2, mean_type="x0")
    with pytest.raises(ValueError, match="eps-predicting"):
        score.model_score(lambda x, t: x, diffusion, x, 0)
    with pytest.raises(ValueError, match="decreasing"):
        score.ve_score_fn(lambda x, t: x, GaussianDiffusion.from_schedule("linear", 10, 1e-3, 0.2), [0, 5])
