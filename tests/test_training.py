"""The trainer: exact resume across processes, atomic checkpoints, NaN stops, warm-up, clipping, EMA."""

import subprocess
import sys
import textwrap

import pytest
import torch

from ddpm_core import GaussianDiffusion
from ddpm_core.data import toy_distribution
from ddpm_core.models import ToyMLP
from ddpm_core.training import (
    EMA,
    ImageBatches,
    NonFiniteLossError,
    Periodic,
    SampledData,
    Trainer,
    TrainConfig,
)

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from ddpm_core import GaussianDiffusion
    from ddpm_core.data import toy_distribution
    from ddpm_core.models import ToyMLP
    from ddpm_core.training import SampledData, Trainer, TrainConfig
    mode, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.manual_seed(0)
    d = GaussianDiffusion.from_schedule("linear", 50, 1e-3, 0.3)
    cfg = TrainConfig(steps=24, batch_size=32, lr=1e-3, warmup_steps=5, ema_decay=0.9, ema_warmup=True, log_every=4)
    tr = Trainer(ToyMLP(hidden=16, depth=2), d, SampledData(toy_distribution("gaussian8").sample), cfg)
    if mode == "half":
        tr.train(12, progress=False); tr.save(path); sys.exit(0)
    if mode == "resume":
        tr.resume(path)
    tr.train(progress=False)
    torch.save({"model": tr.model.state_dict(), "ema": tr.ema.model.state_dict(), "step": tr.step,
                "history": tr.history}, out)
    """
)


def run_script(tmp_path, *args):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    subprocess.run([sys.executable, str(script), *map(str, args)], check=True)


def test_resume_in_a_fresh_process_is_exact(tmp_path):
    ckpt = tmp_path / "half.pt"
    run_script(tmp_path, "straight", ckpt, tmp_path / "straight.pt")
    run_script(tmp_path, "half", ckpt, "-")
    run_script(tmp_path, "resume", ckpt, tmp_path / "resumed.pt")
    a = torch.load(tmp_path / "straight.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert a["step"] == b["step"] == 24
    for part in ("model", "ema"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name} differs after resume"
    assert a["history"] == b["history"]


def small_trainer(steps=10, **kw):
    torch.manual_seed(0)
    d = GaussianDiffusion.from_schedule("linear", 50, 1e-3, 0.3)
    cfg = TrainConfig(steps=steps, batch_size=16, lr=1e-3, log_every=2, **kw)
    return Trainer(ToyMLP(hidden=8, depth=1), d, SampledData(toy_distribution("gaussian8").sample), cfg)


def test_checkpoint_is_weights_only_and_complete(tmp_path):
    tr = small_trainer()
    tr.train(progress=False)
    path = tr.save(tmp_path / "c.pt")
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) >= {"model", "ema", "optimizer", "scheduler", "step", "rng", "config"}
    assert ckpt["step"] == 10 and ckpt["config"]["batch_size"] == 16
    assert {"torch", "generator", "data_generator"} <= set(ckpt["rng"])


def test_nan_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path):
    tr = small_trainer(steps=20)
    tr.train(5, progress=False)
    path = tr.save(tmp_path / "good.pt")
    before = path.read_bytes()
    with torch.no_grad():
        tr.model.out_fc.bias.fill_(float("nan"))
    tr.callbacks.append(Periodic(1, lambda t: t.save(path)))
    with pytest.raises(NonFiniteLossError, match="loss became nan at step 6"):
        tr.train(progress=False)
    assert path.read_bytes() == before


def test_warmup_schedule_and_gradient_clipping():
    tr = small_trainer(steps=6, warmup_steps=4, grad_clip=1e-3)
    lrs = []
    norms = []

    def spy(optimizer, args, kwargs):
        lrs.append(optimizer.param_groups[0]["lr"])
        norms.append(torch.sqrt(sum(p.grad.pow(2).sum() for p in tr.model.parameters() if p.grad is not None)))

    tr.optimizer.register_step_pre_hook(spy)
    tr.train(progress=False)
    assert lrs == pytest.approx([1e-3 * k / 4 for k in (1, 2, 3, 4)] + [1e-3, 1e-3])
    assert max(float(n) for n in norms) <= 1e-3 * (1 + 1e-4)


def test_ema_matches_the_formula():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.9)
    start = ema.model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=1)
    torch.testing.assert_close(ema.model.weight, 0.9 * start + 0.1 * model.weight.detach())
    warm = EMA(model, decay=0.999, warmup=True)
    assert warm.current_decay(0) == pytest.approx(0.1) and warm.current_decay(10_000) == 0.999


def test_periodic_callbacks_fire_on_schedule():
    seen = []
    tr = small_trainer(steps=7)
    tr.callbacks.append(Periodic(3, lambda t: seen.append(t.step)))
    tr.train(progress=False)
    assert seen == [3, 6, 7]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps must be a positive integer"),
        (dict(lr=-1.0), "lr must be a positive number"),
        (dict(optimizer="sgd"), "unknown optimizer 'sgd'; accepted: adam, adamw"),
        (dict(ema_decay=1.0), r"ema_decay must lie in \[0, 1\)"),
        (dict(grad_clip=0.0), "grad_clip"),
        (dict(warmup_steps=-2), "warmup_steps"),
    ],
)
def test_train_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_dict({"stepz": 3})


def test_image_batches_and_conditional_training():
    from ddpm_core.models.unet import UNet, UNetConfig

    images = torch.rand(20, 1, 8, 8) * 2 - 1
    labels = torch.arange(20) % 4
    source = ImageBatches(images, labels, hflip=True)
    x, y = source.next_batch(6, torch.Generator().manual_seed(0))
    assert x.shape == (6, 1, 8, 8) and y.shape == (6,)
    # every image in the batch is a (possibly flipped) training image with its own label
    for xi, yi in zip(x, y):
        match = [(torch.equal(xi, im) or torch.equal(xi, im.flip(-1))) and int(l) == int(yi) for im, l in zip(images, labels)]
        assert any(match)
    torch.manual_seed(0)
    model = UNet(UNetConfig(in_channels=1, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), resolution=8,
                            num_classes=4, dropout=0.0))
    seen = []
    model.label_embed.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    d = GaussianDiffusion.from_schedule("linear", 50, 1e-3, 0.3)
    tr = Trainer(model, d, source, TrainConfig(steps=2, batch_size=4, log_every=1), conditional=True)
    tr.train(progress=False)
    assert len(seen) == 2 and all(s.shape == (4,) for s in seen)
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)"):
        ImageBatches(torch.zeros(3, 8, 8))
    unlabeled = Trainer(model, d, ImageBatches(images), TrainConfig(steps=1, batch_size=2), conditional=True)
    with pytest.raises(ValueError, match="needs \\(x, labels\\) batches"):
        unlabeled.train(progress=False)


def test_bf16_autocast_defaults_off_without_native_bf16(monkeypatch):
    from ddpm_core.training import bf16_autocast_default

    assert bf16_autocast_default(torch.device("cpu")) is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: not including_emulation and False)
    assert bf16_autocast_default(torch.device("cuda")) is False  # e.g. a T4: emulated bf16 only
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert bf16_autocast_default(torch.device("cuda")) is True
