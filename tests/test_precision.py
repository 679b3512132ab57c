"""Mixed precision that fits the device (bf16, fp16 with a GradScaler, fp32), its checkpoints and skipped steps;
wall-clock checkpoints and resume="auto" for runs that must survive a disconnect."""

import pytest
import torch

from ddpm_core import GaussianDiffusion, images, io, training
from ddpm_core.data import toy_distribution
from ddpm_core.models import ToyMLP
from ddpm_core.training import (MAX_SKIPPED_IN_A_ROW, NonFiniteLossError, SampledData, Trainer, TrainConfig,
                                resolve_precision, precision_autocast)

from test_images import tiny_config_file


def toy_trainer(precision="fp16", **cfg):
    torch.manual_seed(0)
    d = GaussianDiffusion.from_schedule("linear", 50, 1e-3, 0.3)
    values = dict(steps=12, batch_size=16, lr=1e-3, log_every=2, warmup_steps=3)
    values.update(cfg)
    return Trainer(ToyMLP(hidden=16, depth=1), d, SampledData(toy_distribution("gaussian8").sample),
                   TrainConfig(**values), precision=precision, extra_state={"toy": {"timesteps": 50}})


def test_auto_precision_follows_the_device(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu) == resolve_precision(None, cpu) == "fp32"
    monkeypatch.setattr(training, "bf16_autocast_default", lambda device: True)     # A100, H100, RTX 30xx+
    assert resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(training, "bf16_autocast_default", lambda device: False)    # T4, V100, RTX 20xx
    assert resolve_precision("auto", cuda) == "fp16"
    assert [resolve_precision(p, cpu) for p in ("bf16", "fp16", "fp32")] == ["bf16", "fp16", "fp32"]
    with pytest.raises(ValueError, match="unknown precision 'half'; accepted: auto, bf16, fp16, fp32"):
        resolve_precision("half", cpu)
    assert not torch.is_autocast_enabled("cpu")
    with precision_autocast(cpu):
        assert not torch.is_autocast_enabled("cpu")                                # fp32 on the CPU


def test_the_old_amp_switch_still_means_bf16_or_fp32():
    d = GaussianDiffusion.from_schedule("linear", 10)
    data = SampledData(toy_distribution("gaussian8").sample)
    assert Trainer(ToyMLP(hidden=8, depth=1), d, data, TrainConfig(steps=1, batch_size=4), amp=True).precision == "bf16"
    assert Trainer(ToyMLP(hidden=8, depth=1), d, data, TrainConfig(steps=1, batch_size=4), amp=False).precision == "fp32"
    plain = Trainer(ToyMLP(hidden=8, depth=1), d, data, TrainConfig(steps=1, batch_size=4))
    assert plain.precision == "fp32" and plain.scaler is None and "scaler" not in plain.state_dict()


def test_fp16_resume_with_the_scaler_in_the_checkpoint_is_exact(tmp_path):
    straight = toy_trainer()
    straight.train(progress=False)
    assert straight.scaler is not None and straight.skipped_steps == 0

    first = toy_trainer()
    first.train(6, progress=False)
    path = first.save(tmp_path / "half.pt")
    saved = io.load_checkpoint(path)
    assert saved["precision"] == "fp16" and saved["scaler"]["scale"] == first.scaler.get_scale()
    second = toy_trainer()
    assert second.resume(path, log=None) == []
    assert second.scaler.state_dict() == first.scaler.state_dict()
    second.train(progress=False)
    for a, b in zip(straight.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert straight.scaler.state_dict() == second.scaler.state_dict()


def test_an_overflowing_step_is_skipped_counted_and_leaves_the_weights(tmp_path):
    tr = toy_trainer(grad_clip=None)
    tr.train(2, progress=False)
    params = list(tr.model.parameters())
    poison = [True]
    params[0].register_hook(lambda g: torch.full_like(g, float("inf")) if poison[0] else g)
    before = [p.detach().clone() for p in params]
    lr_before, scale_before = tr.scheduler.get_last_lr(), tr.scaler.get_scale()
    tr.train(1, progress=False)
    assert tr.skipped_steps == 1 and tr.step == 3
    assert all(torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))  # the step was not taken
    assert tr.scheduler.get_last_lr() == lr_before                                 # nor its learning-rate step
    assert tr.scaler.get_scale() == scale_before / 2                               # the scale backed off
    assert io.load_checkpoint(tr.save(tmp_path / "c.pt"))["skipped_steps"] == 1
    poison[0] = False
    tr.train(1, progress=False)
    assert tr.skipped_steps == 1 and not all(torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))


def test_a_run_that_keeps_overflowing_stops_with_a_clear_error():
    tr = toy_trainer(steps=MAX_SKIPPED_IN_A_ROW + 5, grad_clip=None)
    next(tr.model.parameters()).register_hook(lambda g: torch.full_like(g, float("nan")))
    with pytest.raises(NonFiniteLossError, match=f"overflowed in {MAX_SKIPPED_IN_A_ROW} steps in a row.*bf16 or fp32"):
        tr.train(progress=False)
    assert tr.skipped_steps == MAX_SKIPPED_IN_A_ROW


def test_a_changed_precision_is_applied_on_resume_and_reported(tmp_path):
    first = toy_trainer(precision="fp32")
    first.train(4, progress=False)
    path = first.save(tmp_path / "c.pt")
    second = toy_trainer(precision="fp16")
    assert second.resume(path, log=None) == ["precision: 'fp32' -> 'fp16'"]
    second.train(progress=False)
    assert second.step == 12 and second.scaler is not None


# ----------------------------------------------------------------------------- runs that survive a disconnect
def test_image_config_checks_precision_and_checkpoint_minutes(tmp_path):
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        images.load_config(tiny_config_file(tmp_path, precision="fp8"))
    with pytest.raises(ValueError, match="checkpoint_minutes must be a number >= 0"):
        images.load_config(tiny_config_file(tmp_path, checkpoint_minutes=-1))


def test_wall_clock_checkpoints_and_resume_auto(tmp_path, monkeypatch):
    exp, tr_cfg = images.load_config(tiny_config_file(tmp_path, checkpoint_minutes=1e-9), {"train.steps": 3},
                                     quick=False)
    saves = []
    real_save = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self, path: saves.append(self.step) or real_save(self, path))
    logged = []
    out = tmp_path / "run"
    images.run(exp, tr_cfg, out, device="cpu", progress=False, resume="auto", log=logged.append)
    assert saves == [1, 2, 3]  # the wall-clock interval (here: always past) saves after every step, the end too
    assert f"no checkpoint in {out} yet: starting a new run" in logged
    assert "precision: fp32 (auto: cpu)" in logged
    exp, tr_cfg = images.load_config(tiny_config_file(tmp_path), {"train.steps": 5}, quick=False)
    logged.clear()
    resumed = images.run(exp, tr_cfg, out, device="cpu", progress=False, resume="auto", log=logged.append)
    assert f"resuming from {out / 'checkpoint.pt'}" in logged and resumed.step == 5
    assert "  changed on resume: experiment.checkpoint_minutes: 1e-09 -> 0.0 (applied)" in logged
    assert saves == [1, 2, 3, 5]  # no wall-clock saves any more: only the end of the run


def test_run_folders_live_in_the_repository_or_under_ddpm_runs_dir(tmp_path, monkeypatch):
    from ddpm_core import budget

    monkeypatch.delenv("DDPM_RUNS_DIR", raising=False)
    assert budget.runs_dir("07_mnist") == budget.REPO_RUNS / "07_mnist"
    monkeypatch.setenv("DDPM_RUNS_DIR", str(tmp_path / "drive"))
    assert budget.runs_dir("07_mnist") == tmp_path / "drive" / "07_mnist"
    for bad in ("", "a/b", "..", "x\\y"):
        with pytest.raises(ValueError, match="one plain folder name"):
            budget.runs_dir(bad)


def test_checkpoints_callback_saves_by_step_by_time_and_at_the_end(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(training.time, "monotonic", lambda: now[0])
    saved = []
    cb = training.Checkpoints(lambda tr: saved.append(tr.step), every=4, minutes=1.0)

    class Fake:
        step = 0
        config = TrainConfig(steps=10)

    fake = Fake()
    for step, minutes_later in [(1, 0.5), (2, 1.1), (3, 1.2), (4, 1.3), (5, 2.4), (10, 2.5)]:
        fake.step, now[0] = step, 1000.0 + 60 * minutes_later
        cb(fake)
    assert saved == [2, 4, 5, 10]  # 2: a minute passed; 4: the step interval; 5: a minute since 4; 10: the end
    with pytest.raises(ValueError, match="every must be a positive integer"):
        training.Checkpoints(print, every=0)
    with pytest.raises(ValueError, match="minutes must be a number >= 0"):
        training.Checkpoints(print, every=1, minutes=-1)


def test_mnist_cpu_short_is_a_valid_config_for_the_cpu():
    exp, tr = images.load_config("mnist_cpu_short", quick=False)
    assert (exp.dataset, exp.unet, exp.conditional) == ("mnist28", "mnist_cpu_short", True)
    assert exp.unet_config().norm_groups == 8 and tr.steps == 3250 and tr.batch_size == 32
    assert tr.ema_warmup and tr.ema_decay == 0.999 and exp.checkpoint_minutes > 0
    assert exp.unet_config().resolution == 28 and exp.eval_feature_kind() == "classifier"
    quick_exp, quick_tr = images.load_config("mnist_cpu_short", quick=True)
    assert quick_tr.steps <= 50  # the test run never trains the 20-minute budget
