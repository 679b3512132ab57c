import math

import pytest
import torch

from ddpm_core.models import FourierFeatures, TimestepEmbedding, ToyMLP, timestep_embedding


def test_timestep_embedding_formula():
    t = torch.tensor([0, 1, 7, 999])
    emb = timestep_embedding(t, 8)
    half = 4
    for i, tv in enumerate(t.tolist()):
        for k in range(half):
            freq = math.exp(-math.log(10_000) * k / (half - 1))
            assert float(emb[i, k]) == pytest.approx(math.sin(tv * freq), abs=1e-5)
            assert float(emb[i, half + k]) == pytest.approx(math.cos(tv * freq), abs=1e-5)
    assert timestep_embedding(t, 9).shape == (4, 9) and float(timestep_embedding(t, 9)[:, -1].abs().max()) == 0


def test_timestep_embedding_errors():
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        timestep_embedding(torch.zeros(2, 2, dtype=torch.long), 8)
    with pytest.raises(ValueError, match="at least 4"):
        timestep_embedding(torch.zeros(2, dtype=torch.long), 2)
    assert TimestepEmbedding(16, 64)(torch.arange(3)).shape == (3, 64)


def test_toy_mlp_shapes_and_zero_init():
    model = ToyMLP(data_dim=2, out_dim=4, hidden=32, depth=3)
    out = model(torch.randn(5, 2), torch.arange(5)).detach()
    assert out.shape == (5, 4) and float(out.abs().max()) == 0.0  # zero-initialised output layer
    assert model.config() == {"data_dim": 2, "out_dim": 4, "hidden": 32, "depth": 3, "fourier_features": 4,
                              "fourier_kind": "dyadic", "fourier_scale": 1.0, "fourier_seed": 0}


def test_toy_mlp_layers_are_distinct():
    model = ToyMLP(hidden=16, depth=3)
    ptrs = [p.data_ptr() for p in model.parameters()]
    assert len(ptrs) == len(set(ptrs)), "no two parameters share storage"
    assert len(model.blocks) == 3 and model.blocks[0].fc1 is not model.blocks[1].fc1
    with torch.no_grad():
        model.blocks[0].fc1.weight.add_(1.0)
    assert not torch.equal(model.blocks[0].fc1.weight, model.blocks[1].fc1.weight)


def test_toy_mlp_errors():
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        ToyMLP(hidden=0)
    with pytest.raises(ValueError, match=r"input of shape \(N, 2\)"):
        ToyMLP()(torch.randn(3, 3), torch.arange(3))


def test_fourier_features_formula():
    x = torch.tensor([[0.25, -0.5]])
    out = FourierFeatures(2)(x)
    expected = [0.25, -0.5]
    expected += [math.sin(math.pi * 0.25), math.sin(2 * math.pi * 0.25), math.sin(-math.pi * 0.5), math.sin(-2 * math.pi * 0.5)]
    expected += [math.cos(math.pi * 0.25), math.cos(2 * math.pi * 0.25), math.cos(-math.pi * 0.5), math.cos(-2 * math.pi * 0.5)]
    torch.testing.assert_close(out, torch.tensor([expected]))
    assert torch.equal(FourierFeatures(0)(x), x)
    with pytest.raises(ValueError, match="num_frequencies"):
        FourierFeatures(-1)


def test_time_pathway_on_unique_timesteps_equals_per_row_computation():
    torch.manual_seed(0)
    model = ToyMLP(hidden=16, depth=3)
    torch.nn.init.normal_(model.out_fc.weight)
    x, t = torch.randn(300, 2), torch.randint(0, 50, (300,))
    # the same network evaluated row by row, with the time projection applied to every row's embedding
    h = model.in_fc(model.features(x))
    biases = model.time_proj(model.time_embed(t)).chunk(3, dim=1)
    for block, bias in zip(model.blocks, biases):
        h = block(h, bias)
    reference = model.out_fc(torch.nn.functional.silu(h))
    torch.testing.assert_close(model(x, t), reference)
