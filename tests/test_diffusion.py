"""The diffusion math against independent computations: Gaussian products in float64, Bayes' rule on a
grid, moments of samples, oracle models whose optimal outputs are known in closed form."""

import math

import pytest
import torch

from ddpm_core import GaussianDiffusion
from ddpm_core.diffusion import LossType, ModelMeanType, ModelVarType

MEAN_TYPES = ["eps", "x0", "mean", "v"]
VAR_TYPES = ["fixed_small", "fixed_large", "learned", "learned_range"]


def make(T=100, schedule="linear", **kw):
    beta_end = 0.02 if T >= 1000 else 0.2 if T <= 100 else 0.05
    return GaussianDiffusion.from_schedule(schedule, T, 1e-4 if schedule != "linear" or T >= 1000 else 1e-3, beta_end, **kw)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------- construction and tables
def test_tables_are_float64_and_consistent():
    d = make(T=1000)
    for name in ("betas", "alphas_cumprod", "posterior_variance", "posterior_mean_coef1", "posterior_log_variance_clipped"):
        assert getattr(d, name).dtype == torch.float64
    # the clipped log-variance replaces t = 0 (beta-tilde = 0) by the t = 1 value
    assert float(d.posterior_variance[0]) == 0.0
    assert float(d.posterior_log_variance_clipped[0]) == float(d.posterior_log_variance_clipped[1])
    torch.testing.assert_close(d.posterior_log_variance_clipped[1:], d.posterior_variance[1:].log())
    # fixed-large: beta_t, except t = 0 takes the posterior's t = 1 variance (paper's code)
    assert float(d.fixed_large_variance[0]) == float(d.posterior_variance[1])
    torch.testing.assert_close(d.fixed_large_variance[1:], d.betas[1:])


def test_enums_parse_names_values_and_aliases():
    assert ModelMeanType.parse("epsilon") is ModelMeanType.EPSILON
    assert ModelMeanType.parse("START_X") is ModelMeanType.START_X
    assert ModelVarType.parse("fixed-large") is ModelVarType.FIXED_LARGE
    assert ModelVarType.parse("fixedsmall") is ModelVarType.FIXED_SMALL
    assert LossType.parse("Hybrid") is LossType.HYBRID


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mean_type="noise2"), "unknown model mean type 'noise2'; accepted: 'eps', 'x0', 'mean', 'v'"),
        (dict(var_type="big"), "unknown model variance type 'big'; accepted"),
        (dict(loss_type="l1"), "unknown loss type 'l1'; accepted: 'mse', 'kl', 'hybrid'"),
        (dict(var_type="learned", loss_type="mse"), "gives the learned variance"),
        (dict(hybrid_lambda=-1.0), "hybrid_lambda"),
    ],
)
def test_construction_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_needs_two_timesteps():
    with pytest.raises(ValueError, match="at least 2 timesteps"):
        GaussianDiffusion(torch.tensor([0.1], dtype=torch.float64))


# ------------------------------------------------------------------------- forward process
def test_q_sample_is_the_closed_form():
    d = make(T=1000)
    x0, noise = torch.randn(4, 3, 8, 8, generator=gen(1)), torch.randn(4, 3, 8, 8, generator=gen(2))
    t = torch.tensor([0, 10, 500, 999])
    ab = [float(torch.prod(1 - d.betas[: int(s) + 1])) for s in t]  # independent product
    expected = torch.stack([math.sqrt(a) * x0[i] + math.sqrt(1 - a) * noise[i] for i, a in enumerate(ab)])
    torch.testing.assert_close(d.q_sample(x0, t, noise=noise), expected, rtol=1e-5, atol=1e-6)


def test_q_sample_moments_statistically():
    d = make(T=1000)
    x0 = torch.full((200_000, 1), 0.8, dtype=torch.float64)
    for step in (0, 300, 999):
        xt = d.q_sample(x0, step, generator=gen(step))
        ab = float(d.alphas_cumprod[step])
        se_mean = math.sqrt((1 - ab) / len(xt))
        assert abs(float(xt.mean()) - math.sqrt(ab) * 0.8) < 5 * se_mean + 1e-12
        assert float(xt.var()) == pytest.approx(1 - ab, rel=0.02, abs=1e-7)
    mean, var, logvar = d.q_mean_variance(x0[:2], 300)
    torch.testing.assert_close(var, torch.full_like(x0[:2], 1 - float(d.alphas_cumprod[300])))
    torch.testing.assert_close(logvar, var.log())


def test_q_variance_is_exact_in_float32_at_small_t():
    # 1 - abar must be formed in float64 before the cast: in float32, 1 - 0.9999 loses ~2e-4 relative.
    d = make(T=1000)
    _, var, logvar = d.q_mean_variance(torch.zeros(1, 2), 0)
    assert float(var[0, 0]) == pytest.approx(1e-4, rel=1e-6)
    assert float(logvar[0, 0]) == pytest.approx(math.log(1e-4), rel=1e-6)


def test_iterating_the_markov_chain_matches_the_marginal():
    # x_t from t single steps sqrt(1 - beta) x + sqrt(beta) z has the marginal's mean and variance.
    d = make(T=100)
    n, steps = 100_000, 40
    x = torch.full((n, 1), -0.5, dtype=torch.float64)
    g = gen(3)
    for s in range(steps):
        x = (1 - d.betas[s]).sqrt() * x + d.betas[s].sqrt() * torch.randn(n, 1, generator=g, dtype=torch.float64)
    ab = float(d.alphas_cumprod[steps - 1])
    assert float(x.mean()) == pytest.approx(math.sqrt(ab) * -0.5, abs=0.01)
    assert float(x.var()) == pytest.approx(1 - ab, rel=0.02)


# ------------------------------------------------------------------------------- posterior
def gaussian_product(m1, v1, m2, v2):
    """N(m1, v1) * N(m2, v2) as a density in x: precision-weighted mean and the inverse summed precision."""
    prec = 1 / v1 + 1 / v2
    return (m1 / v1 + m2 / v2) / prec, 1 / prec


@pytest.mark.parametrize("schedule", ["linear", "cosine", "quad", "jsd"])
def test_posterior_is_a_brute_force_gaussian_product(schedule):
    d = make(T=200, schedule=schedule)
    x0 = torch.randn(16, 2, dtype=torch.float64, generator=gen(4))
    xt = torch.randn(16, 2, dtype=torch.float64, generator=gen(5))
    t = torch.arange(1, 200, 12)[:16]
    mean, var, logvar = d.q_posterior_mean_variance(x0, xt, t)
    for i, s in enumerate(t.tolist()):
        beta, ab_prev = float(d.betas[s]), float(torch.prod(1 - d.betas[:s]))
        alpha = 1 - beta
        # prior q(x_{t-1} | x_0) times likelihood q(x_t | x_{t-1}) seen as a density in x_{t-1}
        m, v = gaussian_product(math.sqrt(ab_prev) * x0[i], 1 - ab_prev, xt[i] / math.sqrt(alpha), beta / alpha)
        torch.testing.assert_close(mean[i], m, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(var[i], torch.full_like(var[i], v), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(logvar[i], var[i].log(), rtol=1e-9, atol=1e-12)


def test_posterior_by_bayes_rule_on_a_grid():
    d = make(T=100)
    s, x0, xt = 30, 0.4, -0.3
    beta, ab_prev = float(d.betas[s]), float(d.alphas_cumprod[s - 1])
    grid = torch.linspace(-6, 6, 200_001, dtype=torch.float64)
    log_prior = -0.5 * (grid - math.sqrt(ab_prev) * x0) ** 2 / (1 - ab_prev)
    log_lik = -0.5 * (xt - math.sqrt(1 - beta) * grid) ** 2 / beta
    w = torch.softmax(log_prior + log_lik, 0)
    grid_mean = float((w * grid).sum())
    grid_var = float((w * (grid - grid_mean) ** 2).sum())
    mean, var, _ = d.q_posterior_mean_variance(
        torch.tensor([[x0]], dtype=torch.float64), torch.tensor([[xt]], dtype=torch.float64), s
    )
    assert float(mean) == pytest.approx(grid_mean, abs=1e-7)
    assert float(var) == pytest.approx(grid_var, rel=1e-5)


def test_posterior_at_t0_returns_x0():
    d = make(T=100)
    x0, xt = torch.randn(3, 2, generator=gen(6)), torch.randn(3, 2, generator=gen(7))
    mean, var, _ = d.q_posterior_mean_variance(x0, xt, 0)
    torch.testing.assert_close(mean, x0)
    assert float(var.abs().max()) == 0.0


# ------------------------------------------------------------------------ parameterisations
def test_parameterisation_round_trips():
    d = make(T=1000)
    x0 = torch.rand(6, 1, 8, 8, generator=gen(8), dtype=torch.float64) * 2 - 1
    eps = torch.randn(6, 1, 8, 8, generator=gen(9), dtype=torch.float64)
    t = torch.tensor([0, 1, 10, 400, 800, 999])
    xt = d.q_sample(x0, t, noise=eps)
    torch.testing.assert_close(d.predict_xstart_from_eps(xt, t, eps), x0)
    torch.testing.assert_close(d.predict_eps_from_xstart(xt, t, x0), eps)
    v = d.get_v(x0, eps, t)
    torch.testing.assert_close(d.predict_xstart_from_v(xt, t, v), x0)
    torch.testing.assert_close(d.predict_eps_from_v(xt, t, v), eps)
    mu, _, _ = d.q_posterior_mean_variance(x0, xt, t)
    torch.testing.assert_close(d.predict_xstart_from_xprev(xt, t, mu), x0)
    # v's definition, independently: sqrt(abar) eps - sqrt(1 - abar) x0
    ab = d.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(v, ab.sqrt() * eps - (1 - ab).sqrt() * x0)


@pytest.mark.parametrize("mean_type", MEAN_TYPES)
def test_oracle_outputs_give_the_true_posterior_mean(mean_type):
    d = make(T=100, mean_type=mean_type, var_type="fixed_small")
    x0 = torch.rand(5, 2, generator=gen(10), dtype=torch.float64) * 2 - 1
    eps = torch.randn(5, 2, generator=gen(11), dtype=torch.float64)
    t = torch.tensor([0, 1, 50, 98, 99])
    xt = d.q_sample(x0, t, noise=eps)
    oracle = d.training_target(x0, xt, t, eps)
    out = d.p_mean_variance(oracle, xt, t)
    true_mean, true_var, true_logvar = d.q_posterior_mean_variance(x0, xt, t)
    torch.testing.assert_close(out["mean"], true_mean)
    torch.testing.assert_close(out["pred_xstart"], x0)
    torch.testing.assert_close(out["variance"], true_var)


def test_eps_mean_is_equation_11():
    d = make(T=1000)
    xt, eps = torch.randn(4, 3, generator=gen(12), dtype=torch.float64), torch.randn(4, 3, generator=gen(13), dtype=torch.float64)
    t = torch.tensor([1, 2, 500, 999])
    beta, ab = d.betas[t].unsqueeze(1), d.alphas_cumprod[t].unsqueeze(1)
    eq11 = (xt - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()
    torch.testing.assert_close(d.p_mean_variance(eps, xt, t)["mean"], eq11)


@pytest.mark.parametrize("var_type", VAR_TYPES)
def test_variance_types(var_type):
    loss = "hybrid" if var_type.startswith("learned") else "mse"
    d = make(T=100, var_type=var_type, loss_type=loss)
    t = torch.tensor([0, 1, 50, 99])
    xt = torch.randn(4, 2, generator=gen(14), dtype=torch.float64)
    if var_type.startswith("learned"):
        o = torch.tensor([[0.3, -0.7], [1.0, -1.0], [0.0, 0.5], [-1.0, 1.0]], dtype=torch.float64)
        out = d.p_mean_variance(torch.cat([xt, o], 1), xt, t)
        if var_type == "learned":
            expected_log = o
        else:
            lo, hi = d.posterior_log_variance_clipped[t].unsqueeze(1), d.betas[t].log().unsqueeze(1)
            expected_log = (o + 1) / 2 * hi + (1 - o) / 2 * lo
            # the endpoints: o = 1 -> log beta_t, o = -1 -> log beta-tilde_t (clipped)
            assert float(out["log_variance"][1, 0]) == pytest.approx(math.log(float(d.betas[1])))
            assert float(out["log_variance"][1, 1]) == pytest.approx(float(d.posterior_log_variance_clipped[1]))
    else:
        out = d.p_mean_variance(xt, xt, t)
        table = d.posterior_variance if var_type == "fixed_small" else torch.cat([d.posterior_variance[1:2], d.betas[1:]])
        expected_log = d.posterior_log_variance_clipped[t] if var_type == "fixed_small" else table[t].log()
        expected_log = expected_log.unsqueeze(1).expand(4, 2)
        torch.testing.assert_close(out["variance"], table[t].unsqueeze(1).expand(4, 2))
    torch.testing.assert_close(out["log_variance"], expected_log)


def test_clip_denoised_clamps_pred_xstart_and_uses_it_for_the_mean():
    d = make(T=100, mean_type="x0")
    xt = torch.zeros(2, 2, dtype=torch.float64)
    raw = torch.tensor([[3.0, -0.5], [-2.0, 0.2]], dtype=torch.float64)
    out = d.p_mean_variance(raw, xt, 10, clip_denoised=True)
    torch.testing.assert_close(out["pred_xstart"], raw.clamp(-1, 1))
    torch.testing.assert_close(out["mean"], d.q_posterior_mean_variance(raw.clamp(-1, 1), xt, 10)[0])


# ------------------------------------------------------------------------------ the bound
def test_vb_terms_vanish_for_the_oracle_with_posterior_variance():
    d = make(T=100, mean_type="x0", var_type="fixed_small", loss_type="kl")
    x0 = torch.rand(4, 2, generator=gen(15), dtype=torch.float64) * 2 - 1
    t = torch.tensor([1, 20, 60, 99])
    xt = d.q_sample(x0, t, generator=gen(16))
    out = d.vb_terms_bpd(x0, x0, xt, t)["output"]
    torch.testing.assert_close(out, torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)


def test_vb_term_is_a_weighted_eps_mse_for_fixed_variance():
    # KL between Gaussians of equal variance sigma^2 = ||mu_q - mu_p||^2 / (2 sigma^2); with eps:
    # beta^2 / (2 sigma^2 alpha (1 - abar)) ||eps - eps_theta||^2  (eq. 12).
    d = make(T=100, var_type="fixed_small", loss_type="kl")
    x0 = torch.rand(3, 4, generator=gen(17), dtype=torch.float64) * 2 - 1
    eps = torch.randn(3, 4, generator=gen(18), dtype=torch.float64)
    eps_theta = eps + 0.1 * torch.randn(3, 4, generator=gen(19), dtype=torch.float64)
    t = torch.tensor([5, 40, 90])
    xt = d.q_sample(x0, t, noise=eps)
    beta, ab, sigma2 = (getattr(d, n)[t] for n in ("betas", "alphas_cumprod", "posterior_variance"))
    weight = beta**2 / (2 * sigma2 * (1 - beta) * (1 - ab))
    expected_bits = weight * ((eps - eps_theta) ** 2).mean(1) / math.log(2)
    torch.testing.assert_close(d.vb_terms_bpd(eps_theta, x0, xt, t)["output"], expected_bits)


def test_decoder_term_at_t0_is_the_discretized_nll():
    d = make(T=100, var_type="fixed_small", loss_type="kl", mean_type="x0")
    x0 = torch.tensor([[-1.0, 1.0, 0.0, 2 / 255 - 1]], dtype=torch.float64)
    xt = d.q_sample(x0, 0, generator=gen(20))
    out = d.vb_terms_bpd(x0, x0, xt, 0)["output"]
    sigma = math.exp(0.5 * float(d.posterior_log_variance_clipped[0]))
    lo = torch.tensor([-math.inf, 1 - 1 / 255, -1 / 255, 2 / 255 - 1 - 1 / 255], dtype=torch.float64)
    hi = torch.tensor([-1 + 1 / 255, math.inf, 1 / 255, 2 / 255 - 1 + 1 / 255], dtype=torch.float64)
    p = torch.special.ndtr((hi - x0[0]) / sigma) - torch.special.ndtr((lo - x0[0]) / sigma)
    assert float(out) == pytest.approx(float(-p.log().mean() / math.log(2)), rel=1e-3)


def test_prior_bpd_closed_form():
    d = make(T=1000)
    x0 = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    ab = float(torch.prod(1 - d.betas))
    per_dim = [0.5 * (-1 - math.log(1 - ab) + (1 - ab) + ab * v**2) for v in (0.5, -1.0)]
    assert float(d.prior_bpd(x0)) == pytest.approx(sum(per_dim) / 2 / math.log(2), rel=1e-9)


def gaussian_oracle(d, mu, s2):
    """The exact E[x_0 | x_t] for data ~ N(mu, s2) per dimension, returned as an x0 prediction."""

    def model(xt, t):
        ab = d.alphas_cumprod[t].reshape(-1, *([1] * (xt.ndim - 1))).to(xt.dtype)
        gain = ab.sqrt() * s2 / (ab * s2 + 1 - ab)
        return mu + gain * (xt - ab.sqrt() * mu)

    return model


def test_calc_bpd_loop_total_is_the_sum_of_its_terms():
    d = make(T=50, mean_type="x0", var_type="fixed_small", loss_type="kl")
    x0 = torch.rand(3, 1, 4, 4, generator=gen(21)) * 2 - 1
    out = d.calc_bpd_loop(gaussian_oracle(d, 0.0, 0.33), x0, generator=gen(22))
    assert out["vb"].shape == (3, 50) and out["xstart_mse"].shape == (3, 50) and out["mse"].shape == (3, 50)
    torch.testing.assert_close(out["total_bpd"], out["prior_bpd"] + out["vb"].sum(1))
    assert torch.isfinite(out["total_bpd"]).all() and (out["vb"][:, 1:] >= 0).all()


def test_calc_bpd_prefers_the_better_model():
    d = make(T=50, mean_type="x0", var_type="fixed_small", loss_type="kl")
    x0 = (torch.randn(64, 1, 2, 2, generator=gen(23)) * 0.3).clamp(-1, 1)
    good = d.calc_bpd_loop(gaussian_oracle(d, 0.0, 0.09), x0, generator=gen(24))["total_bpd"].mean()
    bad = d.calc_bpd_loop(lambda xt, t: torch.zeros_like(xt), x0, generator=gen(24))["total_bpd"].mean()
    assert float(good) < float(bad)


# -------------------------------------------------------------------------------- training
def test_mse_loss_targets_by_mean_type():
    for mean_type in MEAN_TYPES:
        d = make(T=100, mean_type=mean_type)
        x0 = torch.randn(4, 2, generator=gen(25))
        noise = torch.randn(4, 2, generator=gen(26))
        t = torch.tensor([0, 3, 50, 99])
        xt = d.q_sample(x0, t, noise=noise)
        ab = d.alphas_cumprod[t].unsqueeze(1).float()
        target = {
            "eps": noise,
            "x0": x0,
            "mean": d.q_posterior_mean_variance(x0, xt, t)[0],
            "v": ab.sqrt() * noise - (1 - ab).sqrt() * x0,
        }[mean_type]
        seen = {}

        def model(x, tt):
            seen["x"] = x
            return torch.zeros_like(x)

        losses = d.training_losses(model, x0, t, noise=noise)
        torch.testing.assert_close(seen["x"], xt)
        torch.testing.assert_close(losses["loss"], (target**2).mean(1))


def test_kl_loss_is_the_vb_term():
    d = make(T=100, loss_type="kl")
    x0 = torch.rand(3, 2, generator=gen(27)) * 2 - 1  # data in [-1, 1], as the 8-bit decoder needs
    noise, t = torch.randn(3, 2, generator=gen(28)), torch.tensor([0, 7, 99])
    model = lambda x, tt: 0.5 * x  # noqa: E731
    losses = d.training_losses(model, x0, t, noise=noise)
    xt = d.q_sample(x0, t, noise=noise)
    torch.testing.assert_close(losses["loss"], d.vb_terms_bpd(model(xt, t), x0, xt, t)["output"])


def test_hybrid_loss_formula_and_stop_gradient():
    d = make(T=100, var_type="learned_range", loss_type="hybrid")
    x0, noise, t = torch.randn(8, 2, generator=gen(29)), torch.randn(8, 2, generator=gen(30)), torch.arange(0, 100, 13)[:8]
    w = torch.tensor([[0.5, -0.2, 0.1, 0.3], [0.1, 0.7, -0.4, 0.2]], requires_grad=True)
    model = lambda x, tt: x @ w  # noqa: E731
    losses = d.training_losses(model, x0, t, noise=noise)
    torch.testing.assert_close(losses["loss"], losses["mse"] + 0.001 * 100 * losses["vb"])
    losses["loss"].sum().backward()
    grad_hybrid = w.grad.clone()
    w.grad = None
    d.training_losses(model, x0, t, noise=noise)["mse"].sum().backward()
    # the mean columns get exactly the mse gradient (the VLB term is stop-gradiented there) ...
    torch.testing.assert_close(grad_hybrid[:, :2], w.grad[:, :2])
    # ... and the variance columns are trained only by the VLB term
    assert float(w.grad[:, 2:].abs().max()) == 0.0 and float(grad_hybrid[:, 2:].abs().max()) > 0


VALID_COMBINATIONS = [  # learned variances with plain mse are rejected (see test_construction_errors)
    (m, v, l) for m in MEAN_TYPES for v in VAR_TYPES for l in ("mse", "kl", "hybrid")
    if not (v.startswith("learned") and l == "mse")
]


@pytest.mark.parametrize("mean_type, var_type, loss_type", VALID_COMBINATIONS)
def test_every_combination_gives_finite_losses_and_gradients(mean_type, var_type, loss_type):
    d = make(T=50, mean_type=mean_type, var_type=var_type, loss_type=loss_type)
    net = torch.nn.Linear(2, d.model_output_channels(2))
    x0 = torch.rand(16, 2, generator=gen(31)) * 2 - 1
    t = d.sample_timesteps(16, generator=gen(32))
    losses = d.training_losses(lambda x, tt: torch.tanh(net(x)), x0, t, generator=gen(33))
    losses["loss"].mean().backward()
    assert torch.isfinite(losses["loss"]).all()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


# --------------------------------------------------------------------- zero terminal SNR (jsd)
def test_jsd_with_eps_raises_instead_of_nan():
    d = make(T=20, schedule="jsd")
    xt = torch.randn(2, 2)
    with pytest.raises(ValueError, match="alphas_cumprod = 0"):
        d.p_mean_variance(torch.zeros(2, 2), xt, 19)
    out = d.p_mean_variance(torch.zeros(2, 2), xt, 18)  # earlier steps are fine
    assert torch.isfinite(out["mean"]).all()
    with pytest.raises(ValueError, match="alphas_cumprod = 0"):
        make(T=20, schedule="jsd", loss_type="kl")


@pytest.mark.parametrize("mean_type", ["x0", "v", "mean"])
def test_jsd_works_with_other_parameterisations(mean_type):
    d = make(T=20, schedule="jsd", mean_type=mean_type, loss_type="kl")
    x0 = torch.rand(4, 2, generator=gen(34)) * 2 - 1
    out = d.p_mean_variance(torch.zeros(4, 2), torch.randn(4, 2, generator=gen(35)), 19)
    assert torch.isfinite(out["mean"]).all() and torch.isfinite(out["log_variance"]).all()
    losses = d.training_losses(lambda x, t: torch.zeros_like(x), x0, torch.full((4,), 19))
    assert torch.isfinite(losses["loss"]).all()


# ---------------------------------------------------------------------------- error paths
def test_timestep_errors():
    d = make(T=100)
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 99\]"):
        d.q_sample(x, torch.tensor([0, 100, 5]))
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 99\]"):
        d.q_sample(x, -1)
    with pytest.raises(TypeError, match="integer dtype"):
        d.q_sample(x, torch.tensor([0.5, 1.0, 2.0]))
    with pytest.raises(TypeError, match="int or an integer tensor"):
        d.q_sample(x, "5")
    with pytest.raises(TypeError, match="bool"):
        d.q_sample(x, True)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        d.q_sample(x, torch.tensor([1, 2]))


def test_shape_and_dtype_errors():
    d = make(T=100)
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="noise must have the shape of x_start"):
        d.q_sample(x, 5, noise=torch.randn(3, 3))
    with pytest.raises(ValueError, match="x_t must have the shape of x_start"):
        d.q_posterior_mean_variance(x, torch.randn(2, 2), 5)
    with pytest.raises(ValueError, match=r"model output must have shape \(3, 2\)"):
        d.p_mean_variance(torch.randn(3, 4), x, 5)
    with pytest.raises(ValueError, match=r"model output must have shape"):
        d.training_losses(lambda xt, t: torch.zeros(3, 5), x, 5)
    with pytest.raises(TypeError, match="floating-point"):
        d.q_sample(torch.ones(3, 2, dtype=torch.long), 5)
    with pytest.raises(ValueError, match=r"shape \(N, C, \.\.\.\)"):
        d.q_sample(torch.randn(3), 5)
    dl = make(T=100, var_type="learned", loss_type="kl")
    with pytest.raises(ValueError, match=r"model output must have shape \(3, 4\)"):
        dl.p_mean_variance(torch.randn(3, 2), x, 5)


def test_dtype_and_device_follow_the_input():
    d = make(T=100)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        x = torch.randn(2, 3, dtype=dtype)
        assert d.q_sample(x, 5).dtype == dtype
        assert d.p_mean_variance(torch.zeros_like(x), x, 5)["mean"].dtype == dtype


def test_continuous_decoder_for_real_valued_data():
    # Outside [-1, 1] the 8-bit decoder makes overshooting free; the continuous one penalises it.
    kw = dict(mean_type="x0", var_type="fixed_small", loss_type="kl")
    d8, dc = make(T=100, **kw), make(T=100, decoder="continuous", **kw)
    x0 = torch.tensor([[1.414, -1.414]], dtype=torch.float64)
    xt = d8.q_sample(x0, 0, generator=gen(40))
    overshoot = torch.tensor([[3.0, -3.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"needs x_0 scaled to \[-1, 1\], got values in \[-1.414, 1.414\]"):
        d8.vb_terms_bpd(overshoot, x0, xt, 0)
    assert float(d8.vb_terms_bpd(overshoot, x0, xt, 0, check_range=False)["output"]) < 1e-6
    assert float(dc.vb_terms_bpd(overshoot, x0, xt, 0)["output"]) > 100
    sigma = math.exp(0.5 * float(d8.posterior_log_variance_clipped[0]))
    expected = -torch.distributions.Normal(x0, sigma).log_prob(x0).mean() / math.log(2)
    assert float(dc.vb_terms_bpd(x0, x0, xt, 0)["output"]) == pytest.approx(float(expected), rel=1e-9)
    t = torch.tensor([5])
    xt5 = dc.q_sample(x0, t, generator=gen(41))
    torch.testing.assert_close(dc.vb_terms_bpd(overshoot, x0, xt5, t)["output"],
                               d8.vb_terms_bpd(overshoot, x0, xt5, t, check_range=False)["output"])
    with pytest.raises(ValueError, match="unknown decoder 'png'; accepted: discretized, continuous"):
        make(decoder="png")
