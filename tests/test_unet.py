"""The DDPM UNet: the paper's parameter count, shapes, conditioning and errors."""

import pytest
import torch

from ddpm_core.models.unet import CONFIGS, UNet, UNetConfig, unet_config


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_ddpm_cifar10_has_the_papers_parameter_count():
    assert count(UNet(unet_config("ddpm_cifar10"))) == 35_746_307


@pytest.mark.parametrize("channels, learned", [(1, False), (3, False), (3, True)])
def test_shapes(channels, learned):
    cfg = UNetConfig(in_channels=channels, out_channels=2 * channels if learned else None, ch=32, ch_mult=(1, 2),
                     num_res_blocks=1, attn_resolutions=(8,), resolution=16, dropout=0.0)
    out = UNet(cfg)(torch.randn(2, channels, 16, 16), torch.tensor([0, 999]))
    assert out.shape == (2, (2 if learned else 1) * channels, 16, 16)


def test_output_starts_at_zero():
    model = UNet(unet_config("mnist_cpu"))
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert float(model(x, torch.tensor([1, 2])).abs().max()) == 0.0  # zero-initialised output conv


def test_class_conditioning_and_the_null_label():
    torch.manual_seed(0)
    model = UNet(unet_config("mnist_cpu", num_classes=10, class_dropout=0.0)).eval()
    torch.nn.init.normal_(model.conv_out.weight, std=0.1)
    for block in model.modules():
        if hasattr(block, "conv2"):
            torch.nn.init.normal_(block.conv2.weight, std=0.05)
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([10, 10])
    a = model(x, t, torch.tensor([3, 3]))
    b = model(x, t, torch.tensor([7, 7]))
    assert not torch.allclose(a, b), "the label changes the output"
    torch.testing.assert_close(model(x, t), model(x, t, torch.full((2,), model.null_label)))
    assert model.null_label == 10


def test_label_dropout_only_in_training():
    model = UNet(unet_config("mnist_cpu", num_classes=10, class_dropout=0.999))
    seen = []
    model.label_embed.register_forward_hook(lambda m, inp, out: seen.append(inp[0].clone()))
    x, t, y = torch.randn(4, 1, 32, 32), torch.zeros(4, dtype=torch.long), torch.tensor([1, 2, 3, 4])
    model.train()(x, t, y)
    model.eval()(x, t, y)
    assert torch.equal(seen[0], torch.full((4,), 10)) and torch.equal(seen[1], y)


def test_a_float64_unet_runs_in_float64():
    """The time embedding follows the network's dtype (it was always float32, so .double() failed)."""
    torch.manual_seed(0)
    model = UNet(unet_config("mnist_cpu", num_classes=10, dropout=0.0)).eval()
    for p in model.parameters():  # leave the zero initialisation, so the output depends on every layer
        p.data.normal_(0, 0.05)
    x, t, y = torch.randn(2, 1, 32, 32), torch.tensor([3, 700]), torch.tensor([1, 10])
    with torch.no_grad():
        out32 = model(x, t, y)
        out64 = model.double()(x.double(), t, y)
    assert out64.dtype == torch.float64 and out32.abs().max() > 0.1
    torch.testing.assert_close(out64.float(), out32, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_channels=2), "in_channels must be 1 or 3"),
        (dict(resolution=28, ch_mult=(1, 2, 2, 2)), "not divisible by 2\\^3 = 8"),
        (dict(dropout=1.0), "dropout"),
        (dict(num_classes=0), "num_classes"),
        (dict(norm_groups=0), "norm_groups .* must be a positive integer, got 0"),
        (dict(ch=24, norm_groups=16), "ch must be a multiple of norm_groups \\(16"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNetConfig(**kwargs)


def test_input_errors_before_any_computation():
    model = UNet(unet_config("mnist_cpu"))
    with pytest.raises(ValueError, match=r"expects input \(N, 1, H, W\)"):
        model(torch.randn(1, 3, 32, 32), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="not divisible by 4"):
        model(torch.randn(1, 1, 30, 30), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(1, 1, 32, 32), torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown UNet configuration 'big'"):
        unet_config("big")
    assert set(CONFIGS) == {"ddpm_cifar10", "ddpm_celeba64", "ddpm_256", "mnist_cpu", "mnist_cpu_small", "mnist_cpu_short",
                            "mnist_gpu"}


def test_widths_that_break_group_norm_are_refused_before_building():
    # ch = 16 passes the config check, but a skip concatenation makes a 48-channel layer: GroupNorm(32) cannot split it
    with pytest.raises(ValueError, match="48-channel layer"):
        UNet(UNetConfig(in_channels=1, ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), resolution=16))


def test_a_fractional_norm_groups_is_a_type_error():
    with pytest.raises(TypeError, match="unet.norm_groups: expected an integer, got 8.5"):
        UNetConfig(norm_groups=8.5)


def test_norm_groups_splits_every_group_norm_as_asked():
    # 8 groups let the 16-channel first level and the 48-channel skip concatenation normalise; the default refuses them
    config = unet_config("mnist_cpu_short", num_classes=10)
    assert config.norm_groups == 8 and UNetConfig().norm_groups == 32
    model = UNet(config)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert {m.num_channels for m in norms} >= {16, 48, 64, 96} and all(m.num_groups == 8 for m in norms)
    assert sum(p.numel() for p in model.parameters()) == 687_473
    # a GroupNorm(8) is the independent formula: mean and variance over each group of 2 channels (16 / 8) and all pixels
    norm, x = norms[0], torch.randn(3, 16, 5, 5, dtype=torch.float64)
    g = x.reshape(3, 8, -1)
    expected = ((g - g.mean(-1, keepdim=True)) / (g.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt())
    torch.testing.assert_close(norm.double()(x), expected.reshape_as(x) * 1 + 0)  # weight 1, bias 0 at init
    with pytest.raises(ValueError, match="48-channel layer.*norm_groups"):
        UNet(unet_config("mnist_cpu_short", norm_groups=32))
