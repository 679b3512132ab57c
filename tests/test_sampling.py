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


# ==================================================================================================== extensions
from ddpm_core.respace import respace, space_timesteps  # noqa: E402
from ddpm_core.sampling import (  # noqa: E402
    ClassifierFreeGuidance,
    ddim_sample,
    ddim_sample_loop,
    ddim_sample_loop_progressive,
    interpolate,
    sample,
    sample_progressive,
)


def small_net(out_channels=2, seed=0):
    """A small random float64 network of (x, t) for 2-D points: a stand-in for a trained eps/x0/v model."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, out_channels)).double()
    return lambda x, t, **kwargs: net(torch.cat([x, t[:, None].to(x.dtype) / 50], dim=1))


class LabelNet(torch.nn.Module):
    """A class-conditional stand-in: ``net(x, t) + embedding[y]``, counting calls; ``null_label`` = 3."""

    null_label = 3

    def __init__(self, out_channels=2):
        super().__init__()
        torch.manual_seed(1)
        self.net = small_net(out_channels, seed=2)
        self.embed = torch.randn(4, out_channels, dtype=torch.float64)
        self.calls = []

    def forward(self, x, t, y):
        self.calls.append((x.shape[0], y.tolist()))
        return self.net(x, t) + self.embed[y] * (1 + x.sum(1, keepdim=True))


# ------------------------------------------------------------------------------ DDIM
@pytest.mark.parametrize("steps", [None, 7])
@pytest.mark.parametrize("mean_type", ["eps", "x0"])
def test_ddim_with_eta_1_is_fixed_small_ancestral_sampling_step_for_step(steps, mean_type):
    d = GaussianDiffusion.from_schedule("linear", 50, 1e-3, 0.2, mean_type=mean_type, var_type="fixed_small")
    if steps is not None:
        d = respace(d, steps, "quadratic")
    model = small_net()
    x_T = torch.randn(6, 2, generator=gen(0), dtype=torch.float64)
    ddim = list(ddim_sample_loop_progressive(d, model, (6, 2), eta=1.0, noise=x_T, generator=gen(1)))
    ddpm = list(p_sample_loop_progressive(d, model, (6, 2), noise=x_T, generator=gen(1)))
    assert [o["t"] for o in ddim] == [o["t"] for o in ddpm] == list(range(d.num_timesteps - 1, -1, -1))
    for a, b in zip(ddim, ddpm):
        torch.testing.assert_close(a["sample"], b["sample"], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(a["pred_xstart"], b["pred_xstart"], rtol=1e-9, atol=1e-9)


def test_ddim_with_eta_0_is_deterministic_and_draws_no_noise():
    d = GaussianDiffusion.from_schedule("linear", 40, 1e-3, 0.2)
    model = small_net()
    x_T = torch.randn(4, 2, generator=gen(0), dtype=torch.float64)
    g = gen(5)
    a = ddim_sample_loop(d, model, (4, 2), noise=x_T, generator=g)
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=gen(5)))  # generator untouched
    assert torch.equal(a, ddim_sample_loop(d, model, (4, 2), noise=x_T, generator=gen(6)))
    c = ddim_sample_loop(d, model, (4, 2), noise=x_T, eta=0.3, generator=gen(6))
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("steps", [50, 1000])
def test_ddim_eta_0_with_the_exact_denoiser_is_the_closed_form_affine_map(steps):
    # Data N(mu, s2) in 1-D.  With the exact denoiser, each deterministic DDIM step is affine:
    #   x_{i-1} - sqrt(abar') mu = k_i (x_i - sqrt(abar) mu),
    #   k_i = (sqrt(abar' abar) s2 + sqrt((1 - abar')(1 - abar))) / (abar s2 + 1 - abar),
    # so x_0 = mu + prod(k) (x_T - sqrt(abar_last) mu).  prod(k) -> s as the steps get finer.
    base = GaussianDiffusion.from_schedule("linear", 1000, var_type="fixed_small")
    d = respace(base, steps)
    mu, s2 = 0.3, 0.25
    oracle_x0 = gaussian_x0_oracle(base, mu, s2)  # sees original timesteps: the sampler maps them

    def eps_model(xt, t):
        ab = base.alphas_cumprod[t].reshape(-1, 1).to(xt.dtype)
        return (xt - ab.sqrt() * oracle_x0(xt, t)) / (1 - ab).sqrt()

    kept = space_timesteps(1000, steps)
    abar = [math.prod(1 - b for b in base.betas[: k + 1].tolist()) for k in kept]
    slope = 1.0
    for i in range(steps):
        a, a_prev = abar[i], (abar[i - 1] if i > 0 else 1.0)
        slope *= (math.sqrt(a_prev * a) * s2 + math.sqrt((1 - a_prev) * (1 - a))) / (a * s2 + 1 - a)
    x_T = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    x0 = ddim_sample_loop(d, eps_model, (7, 1), noise=x_T)
    torch.testing.assert_close(x0, mu + slope * (x_T - math.sqrt(abar[-1]) * mu), rtol=1e-9, atol=1e-9)
    if steps == 1000:  # x_T ~ N(0, 1) then maps to N(mu - slope sqrt(abar_T) mu, slope^2): the data's N(mu, s2)
        assert slope == pytest.approx(math.sqrt(s2), rel=0.005)
        assert mu - slope * math.sqrt(abar[-1]) * mu == pytest.approx(mu, abs=0.002)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_one_ddim_step_equals_the_hand_computed_formula(eta):
    base = GaussianDiffusion.from_schedule("linear", 100, 1e-3, 0.05)
    d = respace(base, [0, 10, 30, 60, 99])
    kept = [0, 10, 30, 60, 99]
    i = 3  # spaced index 3 = original step 60, previous kept step 30
    abar = [math.prod(1 - b for b in base.betas[: k + 1].tolist()) for k in kept]
    a, a_prev = abar[i], abar[i - 1]
    seen = []

    def eps_model(x, t):
        seen.append(t.tolist())
        return torch.sin(3 * x) + t[:, None].to(x.dtype) / 100

    x = torch.tensor([[0.7, -1.2], [0.1, 2.0]], dtype=torch.float64)
    z = torch.tensor([[0.5, -0.25], [1.5, 0.3]], dtype=torch.float64)
    out = ddim_sample(d, eps_model, x, i, eta=eta, noise=z)
    assert seen == [[60, 60]]
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a)) * math.sqrt(1 - a / a_prev)
    for n in range(2):
        for c in range(2):
            xv, zv = x[n, c].item(), z[n, c].item()
            e = math.sin(3 * xv) + 0.6
            x0 = (xv - math.sqrt(1 - a) * e) / math.sqrt(a)
            expected = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - sigma**2) * e + sigma * zv
            assert out["pred_xstart"][n, c].item() == pytest.approx(x0, rel=1e-12, abs=1e-12)
            assert out["sample"][n, c].item() == pytest.approx(expected, rel=1e-10, abs=1e-10)
    last = ddim_sample(d, eps_model, x, 0, eta=eta, noise=z)  # t = 0: no noise, the sample is x0_hat
    torch.testing.assert_close(last["sample"], last["pred_xstart"], rtol=1e-12, atol=1e-12)


def test_ddim_gives_the_same_step_whatever_the_network_predicts():
    # One underlying eps function, written as an eps, x0 and v network: the DDIM step must not change.
    base = GaussianDiffusion.from_schedule("cosine", 60)
    eps_fn = small_net()

    def sqrt_abar(t, x):
        ab = base.alphas_cumprod[t].reshape(-1, 1).to(x.dtype)
        return ab.sqrt(), (1 - ab).sqrt()

    def as_x0(x, t):
        a, b = sqrt_abar(t, x)
        return (x - b * eps_fn(x, t)) / a

    def as_v(x, t):
        a, b = sqrt_abar(t, x)
        return a * eps_fn(x, t) - b * as_x0(x, t)

    x = torch.randn(5, 2, generator=gen(3), dtype=torch.float64)
    z = torch.randn(5, 2, generator=gen(4), dtype=torch.float64)
    outs = [
        ddim_sample(GaussianDiffusion.from_schedule("cosine", 60, mean_type=mt), m, x, 41, eta=0.7, noise=z)
        for mt, m in (("eps", eps_fn), ("x0", as_x0), ("v", as_v))
    ]
    for out in outs[1:]:
        torch.testing.assert_close(out["sample"], outs[0]["sample"], rtol=1e-9, atol=1e-9)


def test_ddim_errors():
    d = GaussianDiffusion.from_schedule("linear", 20)
    model = small_net()
    with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\]"):
        ddim_sample_loop(d, model, (2, 2), eta=1.5)
    with pytest.raises(ValueError, match="noise must have the shape of x_t"):
        ddim_sample(d, model, torch.zeros(2, 2, dtype=torch.float64), 3, eta=0.5, noise=torch.zeros(3, 2))


# ------------------------------------------------------------------------------ loops: start_t, shared noise
def test_loops_can_start_at_any_step_from_a_given_x_t():
    d = GaussianDiffusion.from_schedule("linear", 30, 1e-3, 0.3)
    model = small_net()
    x = torch.randn(3, 2, generator=gen(0), dtype=torch.float64)
    outs = list(p_sample_loop_progressive(d, model, (3, 2), noise=x, start_t=12, generator=gen(1)))
    assert [o["t"] for o in outs] == list(range(12, -1, -1))
    # the same as running the tail of a full loop that reached this x at step 12
    full = p_sample_loop(d, model, (3, 2), noise=x, start_t=29, generator=gen(1))
    torch.testing.assert_close(full, p_sample_loop(d, model, (3, 2), noise=x, generator=gen(1)))
    sp = respace(d, 6)
    outs = list(ddim_sample_loop_progressive(sp, model, (3, 2), noise=x, start_t=3))
    assert [o["t"] for o in outs] == [3, 2, 1, 0]
    assert [o["original_t"] for o in outs] == sp.timestep_map[:4].flip(0).tolist()
    with pytest.raises(ValueError, match="needs the starting x_t"):
        p_sample_loop(d, model, (3, 2), start_t=5)
    with pytest.raises(ValueError, match=r"start_t must be an integer in \[0, 29\]"):
        p_sample_loop(d, model, (3, 2), noise=x, start_t=30)


@pytest.mark.parametrize("loop", [p_sample_loop, lambda *a, **k: ddim_sample_loop(*a, eta=1.0, **k)])
def test_shared_noise_gives_every_batch_element_the_same_noise(loop):
    d = GaussianDiffusion.from_schedule("linear", 20, 1e-3, 0.3)
    model = small_net()
    x_T = torch.randn(1, 2, generator=gen(0), dtype=torch.float64).expand(4, 2)
    shared = loop(d, model, (4, 2), noise=x_T, shared_noise=True, generator=gen(1))
    assert torch.equal(shared, shared[:1].expand(4, 2))
    alone = loop(d, model, (1, 2), noise=x_T[:1], generator=gen(1))  # the shared draw is a batch-of-one draw
    torch.testing.assert_close(shared[:1], alone)
    separate = loop(d, model, (4, 2), noise=x_T, generator=gen(1))
    assert not torch.allclose(separate, separate[:1].expand(4, 2))


# ------------------------------------------------------------------------------ one entry point
def test_sample_matches_the_underlying_loops_exactly():
    d = GaussianDiffusion.from_schedule("linear", 40, 1e-3, 0.2, var_type="fixed_small")
    model = small_net()
    x_T = torch.randn(3, 2, generator=gen(0), dtype=torch.float64)
    assert torch.equal(sample(d, model, (3, 2), noise=x_T, generator=gen(1)),
                       p_sample_loop(d, model, (3, 2), noise=x_T, generator=gen(1)))
    assert torch.equal(sample(d, model, (3, 2), sampler="ddpm", steps=8, noise=x_T, generator=gen(1)),
                       p_sample_loop(respace(d, 8), model, (3, 2), noise=x_T, generator=gen(1)))
    assert torch.equal(sample(d, model, (3, 2), sampler="ddim", steps=8, skip="quadratic", eta=0.4, noise=x_T,
                              generator=gen(1)),
                       ddim_sample_loop(respace(d, 8, "quadratic"), model, (3, 2), eta=0.4, noise=x_T,
                                        generator=gen(1)))
    clipped = sample(d, model, (3, 2), sampler="ddim", steps=[0, 20, 39], noise=x_T, clip_denoised=True)
    assert torch.isfinite(clipped).all() and clipped.abs().max() <= 1 + 1e-12  # DDIM at t = 0 returns x0_hat


def test_sample_passes_labels_and_guidance():
    d = GaussianDiffusion.from_schedule("linear", 10, 1e-3, 0.3)
    net = LabelNet()
    x_T = torch.randn(2, 2, generator=gen(0), dtype=torch.float64)
    sample(d, net, (2, 2), y=1, noise=x_T, generator=gen(1))
    assert net.calls[0] == (2, [1, 1]) and len(net.calls) == 10
    net.calls.clear()
    guided = sample(d, net, (2, 2), sampler="ddim", steps=4, guidance_scale=2.5, y=torch.tensor([0, 2]), noise=x_T)
    assert net.calls == [(4, [0, 2, 3, 3])] * 4  # one batched call per step, null label from the model
    by_hand = ddim_sample_loop(respace(d, 4), ClassifierFreeGuidance(net, 2.5), (2, 2), noise=x_T,
                               model_kwargs={"y": torch.tensor([0, 2])})
    assert torch.equal(guided, by_hand)


def test_sample_errors_name_what_is_accepted():
    d = GaussianDiffusion.from_schedule("linear", 10, 1e-3, 0.3)
    model = small_net()
    with pytest.raises(ValueError, match="unknown sampler 'plms'; accepted: 'ddpm', 'ddim'"):
        sample(d, model, (2, 2), sampler="plms")
    with pytest.raises(ValueError, match="unknown spacing 'cubic'; accepted: 'linear', 'quadratic'"):
        sample(d, model, (2, 2), steps=5, skip="cubic")
    with pytest.raises(ValueError, match="eta is a DDIM parameter"):
        sample(d, model, (2, 2), eta=0.5)
    with pytest.raises(ValueError, match="needs class labels y"):
        sample(d, LabelNet(), (2, 2), guidance_scale=2.0)
    with pytest.raises(ValueError, match="labels given twice"):
        sample(d, LabelNet(), (2, 2), y=1, model_kwargs={"y": torch.tensor([1, 1])})
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        sample(d, LabelNet(), (2, 2), y=torch.tensor([1, 1, 1]))
    with pytest.raises(ValueError, match="only used with guidance_scale"):
        sample(d, LabelNet(), (2, 2), y=1, null_label=3)
    with pytest.raises(ValueError, match=r"count must lie in \[1, 10\]"):
        sample_progressive(d, model, (2, 2), steps=11)


def test_trajectories_record_original_timesteps_for_any_sampler():
    d = GaussianDiffusion.from_schedule("linear", 30, 1e-3, 0.3)
    model = small_net()
    x_T = torch.randn(2, 2, generator=gen(0), dtype=torch.float64)
    traj = sample_trajectory(d, model, (2, 2), sampler="ddim", steps=5, noise=x_T)
    assert traj.steps == [29, 22, 15, 7, 0] and traj.x_t.shape == (5, 2, 2)
    torch.testing.assert_close(traj.sample, sample(d, model, (2, 2), sampler="ddim", steps=5, noise=x_T))
    part = sample_trajectory(d, model, (2, 2), [22, 0], sampler="ddim", steps=5, noise=x_T)
    assert part.steps == [22, 0]
    torch.testing.assert_close(part.x_t, traj.x_t[[1, 4]])
    with pytest.raises(ValueError, match=r"record_steps \[10\] are not visited by this sampler; it visits 5"):
        sample_trajectory(d, model, (2, 2), [10], sampler="ddim", steps=5)
    assert len(sample_trajectory(d, model, (2, 2), noise=x_T).steps) == 30  # None records every step


# ------------------------------------------------------------------------------ classifier-free guidance
def test_guidance_scales_0_and_1_are_exactly_the_two_models_with_one_call():
    net = LabelNet()
    x = torch.randn(3, 2, generator=gen(0), dtype=torch.float64)
    t, y = torch.tensor([4, 9, 0]), torch.tensor([0, 1, 2])
    cond, uncond = net(x, t, y=y), net(x, t, y=torch.full_like(y, 3))
    net.calls.clear()
    assert torch.equal(ClassifierFreeGuidance(net, 1.0)(x, t, y), cond)
    assert torch.equal(ClassifierFreeGuidance(net, 0.0, null_label=3)(x, t, y), uncond)
    assert net.calls == [(3, [0, 1, 2]), (3, [3, 3, 3])]


@pytest.mark.parametrize("learned_variance", [False, True])
def test_guidance_formula_against_two_separate_calls(learned_variance):
    C = 2
    net = LabelNet(out_channels=2 * C if learned_variance else C)
    x = torch.randn(3, C, generator=gen(0), dtype=torch.float64)
    t, y = torch.tensor([4, 9, 0]), torch.tensor([0, 1, 2])
    cond, uncond = net(x, t, y=y), net(x, t, y=torch.full_like(y, 3))
    net.calls.clear()
    guided = ClassifierFreeGuidance(net, 3.0)(x, t, y)
    assert net.calls == [(6, [0, 1, 2, 3, 3, 3])]  # one batched call
    assert guided.shape == cond.shape
    torch.testing.assert_close(guided[:, :C], uncond[:, :C] + 3.0 * (cond[:, :C] - uncond[:, :C]))
    torch.testing.assert_close(guided[:, :C], 3.0 * cond[:, :C] - 2.0 * uncond[:, :C])  # paper: w = s - 1 = 2
    if learned_variance:
        torch.testing.assert_close(guided[:, C:], cond[:, C:])  # the conditional variance, unguided


def test_guiding_x0_predictions_equals_guiding_eps():
    # The combination is affine, so guiding an x0 network gives the x0 that eps guidance gives.
    d = GaussianDiffusion.from_schedule("linear", 50, mean_type="x0")
    net = LabelNet()
    x = torch.randn(3, 2, generator=gen(0), dtype=torch.float64)
    t, y = torch.tensor([4, 30, 49]), torch.tensor([0, 1, 2])
    x0_cond, x0_uncond = net(x, t, y=y), net(x, t, y=torch.full_like(y, 3))
    ab = d.alphas_cumprod[t].reshape(-1, 1)
    to_eps = lambda x0: (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # noqa: E731
    eps_guided = to_eps(x0_uncond) + 4.0 * (to_eps(x0_cond) - to_eps(x0_uncond))
    torch.testing.assert_close(to_eps(ClassifierFreeGuidance(net, 4.0)(x, t, y)), eps_guided)


def test_guidance_works_with_the_unet_and_reports_errors():
    from ddpm_core.models.unet import UNet

    unet = UNet(in_channels=1, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), dropout=0.0,
                resolution=8, num_classes=3).eval()
    guided = ClassifierFreeGuidance(unet, 2.0)
    assert guided.null_label == 3 and "guidance_scale=2.0" in repr(guided)
    with torch.no_grad():
        out = guided(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 2]))
    assert out.shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="needs class labels y"):
        guided(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="no null_label attribute"):
        ClassifierFreeGuidance(small_net(), 2.0)
    with pytest.raises(ValueError, match="finite number"):
        ClassifierFreeGuidance(unet, float("nan"))
    with pytest.raises(ValueError, match="expected 2 or 4"):
        ClassifierFreeGuidance(lambda x, t, y: torch.zeros(x.shape[0], 3), 2.0, null_label=0)(
            torch.zeros(2, 2), torch.tensor([0, 1]), torch.tensor([1, 1]))


# ------------------------------------------------------------------------------ interpolation
def image_model():
    """A small random float64 convolutional eps model on (N, 1, 4, 4) images."""
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1).double()
    return lambda x, t, **kwargs: torch.tanh(conv(x) + t.to(x.dtype).reshape(-1, 1, 1, 1) / 20)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_interpolation_endpoints_reproduce_denoising_each_image_alone(sampler):
    d = GaussianDiffusion.from_schedule("linear", 20, 1e-3, 0.3)
    model = image_model()
    x0_a, x0_b = torch.rand(2, 1, 4, 4, generator=gen(0), dtype=torch.float64) * 2 - 1
    enc = torch.randn(2, 1, 4, 4, generator=gen(1), dtype=torch.float64)
    eta = 0.5 if sampler == "ddim" else 0.0
    out = interpolate(d, model, x0_a, x0_b, 12, [0.0, 0.25, 1.0], noise=enc, generator=gen(2), sampler=sampler,
                      eta=eta)
    assert out.shape == (3, 1, 4, 4)
    for row, x0, e in ((0, x0_a, enc[0]), (2, x0_b, enc[1])):
        x_t = math.sqrt(d.alphas_cumprod[12]) * x0 + math.sqrt(1 - d.alphas_cumprod[12]) * e  # q(x_t | x_0)
        *_, alone = sample_progressive(d, model, (1, 1, 4, 4), sampler=sampler, eta=eta, noise=x_t[None],
                                       generator=gen(2), start_t=12)
        torch.testing.assert_close(out[row:row + 1], alone["sample"])


def test_interpolation_decodes_the_linear_mix_of_the_encodings():
    d = GaussianDiffusion.from_schedule("linear", 20, 1e-3, 0.3)
    inner = image_model()
    first_inputs = []

    def model(x, t):
        if not first_inputs:
            first_inputs.append((x.clone(), t.clone()))
        return inner(x, t)

    x0_a, x0_b = torch.rand(2, 1, 4, 4, generator=gen(0), dtype=torch.float64) * 2 - 1
    lambdas = [0.0, 0.3, 0.5, 1.0]
    interpolate(d, model, x0_a, x0_b, 7, lambdas, same_noise=True, generator=gen(1))
    x, t = first_inputs[0]
    assert t.tolist() == [7] * 4
    a, b = math.sqrt(d.alphas_cumprod[7]), math.sqrt(1 - d.alphas_cumprod[7])
    eps = torch.randn(1, 4, 4, generator=gen(1), dtype=torch.float64)  # the single shared encoder draw
    for i, lam in enumerate(lambdas):
        expected = (1 - lam) * (a * x0_a + b * eps) + lam * (a * x0_b + b * eps)
        torch.testing.assert_close(x[i], expected)


def test_interpolation_errors():
    d = GaussianDiffusion.from_schedule("linear", 20, 1e-3, 0.3)
    model = image_model()
    a = torch.zeros(1, 4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"t must be an integer in \[0, 19\]"):
        interpolate(d, model, a, a, 20, [0.5])
    with pytest.raises(ValueError, match=r"t must be an integer in \[0, 19\]"):
        interpolate(d, model, a, a, -1, [0.5])
    with pytest.raises(ValueError, match="same shape"):
        interpolate(d, model, a, torch.zeros(1, 4, 5, dtype=torch.float64), 5, [0.5])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        interpolate(d, model, a, a, 5, [])
    with pytest.raises(ValueError, match=r"noise must have shape \(2, 1, 4, 4\)"):
        interpolate(d, model, a, a, 5, [0.5], noise=torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="same_noise applies only"):
        interpolate(d, model, a, a, 5, [0.5], noise=torch.zeros(2, 1, 4, 4), same_noise=True)
    with pytest.raises(ValueError, match="one example"):
        interpolate(d, model, torch.zeros(4, dtype=torch.long), a, 5, [0.5])


def test_guidance_accepts_a_scalar_timestep_at_every_scale():
    from ddpm_core.models.unet import UNet, unet_config

    torch.manual_seed(0)
    model = UNet(unet_config("mnist_cpu", ch=32, ch_mult=(1, 2), num_classes=3, resolution=16)).eval()
    x, y = torch.randn(2, 1, 16, 16), torch.tensor([0, 2])
    for s in (0.0, 1.0, 2.0):
        guided = ClassifierFreeGuidance(model, s)
        torch.testing.assert_close(guided(x, torch.tensor(5), y), guided(x, torch.tensor([5, 5]), y))
