"""The toy network's input features: dyadic (axis-aligned) and Gaussian random Fourier features (Tancik et al. 2020)."""

import math

import pytest
import torch

from ddpm_core import io, toy
from ddpm_core.models import FourierFeatures, ToyMLP
from ddpm_core.models.mlp import GaussianFourierFeatures


def test_gaussian_features_shapes_and_formula():
    features = GaussianFourierFeatures(2, 16, 1.5, seed=3)
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(0))
    out = features(x)
    assert out.shape == (7, 2 + 2 * 16) and features.out_features(2) == 34
    # by hand, in float64, from the stored matrix: [x, sin(2 pi B x), cos(2 pi B x)]
    B = features.B.double()
    angles = [[2 * math.pi * sum(float(B[j, i]) * float(x[n, i]) for i in range(2)) for j in range(16)] for n in range(7)]
    expected = torch.tensor([[*x[n].tolist(), *map(math.sin, angles[n]), *map(math.cos, angles[n])] for n in range(7)])
    torch.testing.assert_close(out, expected.float(), atol=1e-5, rtol=1e-5)
    assert torch.equal(GaussianFourierFeatures(2, 0, 1.0)(x), x)


def test_toy_mlp_with_gaussian_features_has_the_same_width_and_shapes():
    dyadic, gaussian = ToyMLP(hidden=16, depth=2), ToyMLP(hidden=16, depth=2, fourier_kind="gaussian", fourier_scale=2.0)
    assert isinstance(dyadic.features, FourierFeatures) and isinstance(gaussian.features, GaussianFourierFeatures)
    assert gaussian.features.B.shape == (2 * 4, 2)  # data_dim * fourier_features random frequency vectors
    assert gaussian.in_fc.in_features == dyadic.in_fc.in_features == 2 * (1 + 2 * 4)
    assert sum(p.numel() for p in gaussian.parameters()) == sum(p.numel() for p in dyadic.parameters())
    x, t = torch.randn(5, 2), torch.arange(5)
    assert gaussian(x, t).shape == (5, 2)
    assert ToyMLP(out_dim=4, fourier_kind="gaussian")(x, t).shape == (5, 4)
    assert ToyMLP(fourier_kind="gaussian", fourier_features=0).in_fc.in_features == 2


def test_frequency_matrix_is_a_seeded_buffer_saved_and_never_trained():
    model = ToyMLP(hidden=8, depth=1, fourier_kind="gaussian", fourier_scale=0.5, fourier_seed=7)
    assert "features.B" in model.state_dict()
    assert all("features" not in name for name, _ in model.named_parameters())
    assert not model.features.B.requires_grad
    # seeded by its own generator: the same seed gives the same B whatever the global state, another seed another B
    torch.manual_seed(123)
    again = ToyMLP(hidden=8, depth=1, fourier_kind="gaussian", fourier_scale=0.5, fourier_seed=7)
    assert torch.equal(model.features.B, again.features.B)
    assert not torch.equal(model.features.B, ToyMLP(fourier_kind="gaussian", fourier_scale=0.5, fourier_seed=8).features.B)
    # ... and drawing it leaves the global random state alone: the layers initialise as with dyadic features
    torch.manual_seed(0)
    a = ToyMLP(hidden=8, depth=1)
    torch.manual_seed(0)
    b = ToyMLP(hidden=8, depth=1, fourier_kind="gaussian")
    assert torch.equal(a.in_fc.weight, b.in_fc.weight) and torch.equal(a.out_fc.weight, b.out_fc.weight)
    # an optimiser step moves the weights, not B
    torch.nn.init.normal_(model.out_fc.weight)
    before = model.features.B.clone()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(16, 2), torch.zeros(16, dtype=torch.long)).square().mean().backward()
    opt.step()
    assert torch.equal(model.features.B, before)
    # the state_dict carries B: a model built with another seed becomes this one
    other = ToyMLP(hidden=8, depth=1, fourier_kind="gaussian", fourier_scale=0.5, fourier_seed=99)
    other.load_state_dict(model.state_dict())
    x, t = torch.randn(9, 2), torch.randint(0, 10, (9,))
    torch.testing.assert_close(other(x, t), model(x, t))


def _kernel(features, d):
    """k(x, x + d) = phi(x) . phi(x + d) / m for the sin/cos part (independent of x for Fourier features)."""
    x = torch.randn(1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    m = (features.out_features(2) - 2) // 2
    return float((features(x)[:, 2:] * features(x + d)[:, 2:]).sum() / m)


def test_gaussian_kernel_is_rotation_invariant_and_matches_the_closed_form():
    # E_b cos(2 pi b.d) with b ~ N(0, sigma^2 I) is the Gaussian characteristic function exp(-2 pi^2 sigma^2 |d|^2)
    sigma, m = 0.6, 20_000
    features = GaussianFourierFeatures(2, m, sigma, seed=0).double()
    for r in (0.0, 0.1, 0.25, 0.4, 0.7):
        closed = math.exp(-2 * math.pi**2 * sigma**2 * r**2)
        values = [_kernel(features, torch.tensor([[r * math.cos(a), r * math.sin(a)]], dtype=torch.float64))
                  for a in torch.linspace(0, math.pi, 9).tolist()]
        # Monte-Carlo error of a mean of m cosines: below 1 / sqrt(2 m) ~ 0.005 in standard deviation
        assert max(abs(v - closed) for v in values) < 0.03, (r, closed, values)
    # the dyadic features are not: along an axis and along the diagonal, at the same distance, they differ
    dyadic = FourierFeatures(4).double()
    r = 0.5
    along_axis = _kernel(dyadic, torch.tensor([[r, 0.0]], dtype=torch.float64))
    diagonal = _kernel(dyadic, torch.tensor([[r / math.sqrt(2), r / math.sqrt(2)]], dtype=torch.float64))
    assert abs(along_axis - diagonal) > 0.1, (along_axis, diagonal)


@pytest.mark.parametrize("kwargs, match", [
    ({"fourier_kind": "random"}, "unknown fourier_kind 'random'; accepted: dyadic, gaussian"),
    ({"fourier_kind": "gaussian", "fourier_scale": 0.0}, "fourier_scale must be a positive finite number"),
    ({"fourier_kind": "gaussian", "fourier_scale": -1.0}, "fourier_scale must be a positive finite number"),
    ({"fourier_kind": "gaussian", "fourier_scale": float("nan")}, "fourier_scale must be a positive finite number"),
    ({"fourier_kind": "gaussian", "fourier_scale": float("inf")}, "fourier_scale must be a positive finite number"),
    ({"fourier_kind": "gaussian", "fourier_scale": True}, "fourier_scale must be a positive finite number"),
    ({"fourier_kind": "gaussian", "fourier_features": -1}, "fourier_features must be an integer >= 0"),
    ({"fourier_kind": "gaussian", "fourier_seed": -2}, "seed must be an integer >= 0"),
])
def test_toy_mlp_refuses_bad_feature_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ToyMLP(**kwargs)


def test_gaussian_features_refuse_bad_values():
    with pytest.raises(ValueError, match="num_features must be an integer >= 0"):
        GaussianFourierFeatures(2, -1, 1.0)
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        GaussianFourierFeatures(2, 4, 0)
    with pytest.raises(ValueError, match="drawn for 2 inputs, not 3"):
        GaussianFourierFeatures(2, 4, 1.0).out_features(3)


def test_toy_config_feature_options():
    config = toy.ToyConfig(fourier_kind="gaussian", fourier_scale=2, fourier_seed=4)
    assert config.fourier_scale == 2.0 and isinstance(config.fourier_scale, float)
    _, model = toy.build(config)
    assert model.config()["fourier_kind"] == "gaussian" and model.config()["fourier_scale"] == 2.0
    assert torch.equal(model.features.B, GaussianFourierFeatures(2, 8, 2.0, seed=4).B)
    assert toy.ToyConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown toy.fourier_kind 'axis'; accepted: dyadic, gaussian"):
        toy.ToyConfig(fourier_kind="axis")
    with pytest.raises(ValueError, match="toy.fourier_scale must be a positive finite number, got 0.0"):
        toy.ToyConfig(fourier_kind="gaussian", fourier_scale=0)
    with pytest.raises(TypeError, match="toy.fourier_scale: expected a float, got 'big'"):
        toy.ToyConfig(fourier_scale="big")
    with pytest.raises(ValueError, match="toy.fourier_seed must be an integer >= 0"):
        toy.ToyConfig(fourier_seed=-1)


def test_model_config_round_trips_and_an_old_config_builds_dyadic():
    model = ToyMLP(hidden=8, depth=1, fourier_kind="gaussian", fourier_scale=0.5, fourier_seed=2)
    assert ToyMLP(**model.config()).config() == model.config()
    old = {"data_dim": 2, "out_dim": 2, "hidden": 8, "depth": 1, "fourier_features": 4}  # saved before the option
    rebuilt = ToyMLP(**old)
    assert isinstance(rebuilt.features, FourierFeatures) and rebuilt.config()["fourier_kind"] == "dyadic"


def _tiny(config_kwargs, steps=3):
    config = toy.ToyConfig(timesteps=10, hidden=8, depth=1, **config_kwargs)
    return toy.make_trainer(config, toy.default_train_config(steps=steps, batch_size=16, log_every=1))


def test_an_old_checkpoint_loads_and_resumes_as_dyadic(tmp_path):
    trainer = _tiny({})
    trainer.train(progress=False)
    path = trainer.save(tmp_path / "old.pt")
    saved = io.load_checkpoint(path, required=("model",), what="checkpoint")["extra"]["toy"]
    # a dyadic checkpoint stores exactly the fields that existed before the Gaussian features
    assert not set(toy.LEGACY_FEATURE_FIELDS) & set(saved) and saved["fourier_features"] == 4
    diffusion, model, config = toy.load(path)
    assert config.fourier_kind == "dyadic" and isinstance(model.features, FourierFeatures)
    torch.testing.assert_close(model.state_dict(), trainer.ema.model.state_dict())
    resumed = _tiny({"fourier_kind": "dyadic"}, steps=5)
    resumed.resume(path)
    resumed.train(progress=False)
    assert resumed.step == 5
    # a Gaussian run cannot resume a dyadic checkpoint
    with pytest.raises(ValueError, match="toy.fourier_kind"):
        _tiny({"fourier_kind": "gaussian"}, steps=5).resume(path)


def test_a_gaussian_checkpoint_round_trips(tmp_path):
    trainer = _tiny({"fourier_kind": "gaussian", "fourier_scale": 1.5, "fourier_seed": 3})
    trainer.train(progress=False)
    path = trainer.save(tmp_path / "g.pt")
    diffusion, model, config = toy.load(path)
    assert (config.fourier_kind, config.fourier_scale, config.fourier_seed) == ("gaussian", 1.5, 3)
    assert torch.equal(model.features.B, trainer.ema.model.features.B)
    torch.testing.assert_close(toy.sample(model, diffusion, 20, seed=1), toy.sample(trainer.ema.model, diffusion, 20, seed=1))
