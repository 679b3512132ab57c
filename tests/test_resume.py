"""Resume honours what changed or refuses it by name; checkpoints are never non-finite; finished runs do nothing.

Covers the Trainer, `train-toy` and `train` (images), each through the same code the command line uses.
"""

import json

import pytest
import torch

from ddpm_core import GaussianDiffusion, images, io, toy
from ddpm_core.cli import main
from ddpm_core.data import toy_distribution
from ddpm_core.models import ToyMLP
from ddpm_core.training import NonFiniteLossError, Periodic, SampledData, Trainer, TrainConfig

from test_images import tiny_config_file

TINY_TOY = ["train-toy", "--timesteps", "20", "--hidden", "16", "--depth", "1", "--batch-size", "64",
            "--samples", "300", "--no-progress", "--device", "cpu"]


def trainer(**cfg):
    torch.manual_seed(0)
    d = GaussianDiffusion.from_schedule("linear", 50, 1e-3, 0.3)
    values = dict(steps=10, batch_size=16, lr=1e-3, log_every=2, optimizer="adamw")
    values.update(cfg)
    return Trainer(ToyMLP(hidden=8, depth=1), d, SampledData(toy_distribution("gaussian8").sample),
                   TrainConfig(**values), extra_state={"toy": {"timesteps": 50}})


def lrs_used(tr, steps):
    seen = []
    handle = tr.optimizer.register_step_pre_hook(
        lambda opt, a, k: seen.append((opt.param_groups[0]["lr"], opt.param_groups[0]["weight_decay"],
                                       tuple(opt.param_groups[0]["betas"]))))
    tr.train(steps, progress=False)
    handle.remove()
    return seen


# --------------------------------------------------------------------------- the Trainer
def test_a_changed_lr_weight_decay_betas_and_warmup_take_effect_on_resume(tmp_path):
    first = trainer(warmup_steps=0)
    first.train(5, progress=False)
    path = first.save(tmp_path / "c.pt")
    resumed = trainer(lr=5e-4, weight_decay=0.1, betas=(0.8, 0.99), warmup_steps=10, grad_clip=0.5)
    logged = []
    changes = resumed.resume(path, log=logged.append)
    assert changes == ["train.betas: [0.9, 0.999] -> [0.8, 0.99]", "train.grad_clip: 1.0 -> 0.5",
                       "train.lr: 0.001 -> 0.0005", "train.warmup_steps: 0 -> 10", "train.weight_decay: 0.0 -> 0.1"]
    assert logged == [f"resume: {c} (applied)" for c in changes]
    # step k (1-based) of a 10-step warm-up uses lr * k / 10: steps 6, 7, 8 here
    used = lrs_used(resumed, 3)
    assert [u[0] for u in used] == pytest.approx([5e-4 * k / 10 for k in (6, 7, 8)])
    assert {u[1:] for u in used} == {(0.1, (0.8, 0.99))}
    assert resumed.scheduler.get_last_lr() == pytest.approx([5e-4 * 9 / 10])
    # the new checkpoint records the new values, in its config and in its optimizer state alike
    saved = io.load_checkpoint(resumed.save(tmp_path / "d.pt"))
    assert saved["config"]["lr"] == 5e-4 and saved["optimizer"]["param_groups"][0]["weight_decay"] == 0.1
    assert saved["optimizer"]["param_groups"][0]["initial_lr"] == 5e-4


def test_an_unchanged_resume_keeps_the_optimizer_exactly(tmp_path):
    first = trainer()
    first.train(4, progress=False)
    path = first.save(tmp_path / "c.pt")
    again = trainer()
    assert again.resume(path, log=None) == []
    assert again.optimizer.state_dict()["param_groups"] == first.optimizer.state_dict()["param_groups"]


@pytest.mark.parametrize("change, named", [
    (dict(seed=1), "train.seed: 0 -> 1"),
    (dict(batch_size=32), "train.batch_size: 16 -> 32"),
    (dict(optimizer="adam"), "train.optimizer: 'adamw' -> 'adam'"),
])
def test_settings_that_define_the_run_are_refused_by_name(tmp_path, change, named):
    first = trainer()
    first.train(2, progress=False)
    path = first.save(tmp_path / "c.pt")
    other = trainer(**change)
    before = {k: v.clone() for k, v in other.model.state_dict().items()}
    with pytest.raises(ValueError, match="cannot resume: these settings define the run") as info:
        other.resume(path)
    assert named in str(info.value) and "train.lr" in str(info.value)  # what may change is listed too
    assert all(torch.equal(before[k], v) for k, v in other.model.state_dict().items()), "nothing was loaded"


def test_another_experiment_is_refused(tmp_path):
    first = trainer()
    path = first.save(tmp_path / "c.pt")
    other = trainer()
    other.extra_state = {"toy": {"timesteps": 30}}
    with pytest.raises(ValueError, match=r"toy.timesteps: 50 -> 30"):
        other.resume(path)
    other.extra_state = {"experiment": {"timesteps": 50}}
    with pytest.raises(ValueError, match=r"cannot resume: the checkpoint is from another kind of experiment \(it "
                                         r"describes toy; this run describes experiment\)"):
        other.resume(path)


def test_an_export_is_not_resumable(tmp_path):
    path = io.save_checkpoint({"model": trainer().model.state_dict(), "unet_config": {}}, tmp_path / "ema.pt")
    with pytest.raises(io.CheckpointError, match=r"not a training checkpoint \(e.g. checkpoint.pt, not ema.pt\)"):
        trainer().resume(path)


# --------------------------------------------------------------------------- finite checkpoints
def test_a_diverging_run_leaves_only_finite_checkpoints(tmp_path):
    tr = trainer(steps=8, log_every=4)  # the loss is only read every 4 steps: the weights are checked at saves
    path = tmp_path / "c.pt"
    tr.callbacks.append(Periodic(1, lambda t: t.save(path)))

    def blow_up(optimizer, args, kwargs):
        if tr.step == 2:  # the update of step 3 makes a weight infinite; step 3's loss was still finite
            with torch.no_grad():
                tr.model.out_fc.weight[0, 0] = float("inf")

    tr.optimizer.register_step_post_hook(blow_up)
    with pytest.raises(NonFiniteLossError, match=r"training diverged by step 3: the weights hold NaN or infinite "
                                                 r"values \(in model.out_fc.weight, ema.out_fc.weight"):
        tr.train(progress=False)
    saved = io.load_checkpoint(path)
    assert saved["step"] == 2 and io.non_finite_entries(saved) == []
    assert list(tmp_path.iterdir()) == [path]


def test_a_checkpoint_with_non_finite_weights_is_not_resumed(tmp_path):
    state = trainer().state_dict()
    state["model"]["out_fc.bias"][0] = float("nan")
    path = tmp_path / "c.pt"
    torch.save(state, path)  # written by hand: ddpm_core would refuse to
    with pytest.warns(io.ChecksumMissingWarning), pytest.raises(io.NonFiniteError, match="model.out_fc.bias"):
        trainer().resume(path)


def test_train_steps_must_be_positive():
    tr = trainer()
    for bad in (-5, 0, 2.5, True):
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            tr.train(bad, progress=False)
    assert tr.step == 0


# --------------------------------------------------------------------------- train-toy
def test_toy_resume_applies_a_new_lr_and_refuses_a_new_T(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY_TOY, "--steps", "10", "--out-dir", str(out)]) == 0
    capsys.readouterr()
    assert main([*TINY_TOY, "--steps", "14", "--lr", "5e-4", "--out-dir", str(out), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "resume: train.lr: 0.001 -> 0.0005 (applied)" in printed and "train.steps: 10 -> 14" in printed
    ckpt = io.load_checkpoint(out / "gaussian8.pt")
    assert ckpt["step"] == 14 and ckpt["optimizer"]["param_groups"][0]["lr"] == 5e-4
    for args, named in ((["--timesteps", "30"], "toy.timesteps: 20 -> 30"),
                        (["--dataset", "gaussian8", "--beta-schedule", "cosine"], "toy.beta_schedule: 'linear' -> 'cosine'"),
                        (["--model-mean-type", "v"], "toy.mean_type: 'eps' -> 'v'"),
                        (["--seed", "3"], "train.seed: 0 -> 3")):
        assert main([*TINY_TOY, "--steps", "20", "--out-dir", str(out), "--resume", *args]) == 2
        err = capsys.readouterr().err
        assert "cannot resume" in err and named in err and err.count("\n") == 1
    assert io.load_checkpoint(out / "gaussian8.pt")["step"] == 14, "a refused resume changes nothing"


def test_toy_resume_of_a_finished_run_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY_TOY, "--steps", "6", "--out-dir", str(out)]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert main([*TINY_TOY, "--steps", "6", "--out-dir", str(out), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "nothing to do" in printed and "already at step 6 of 6" in printed
    assert "nan" not in printed and "checkpoint:" not in printed
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_a_toy_run_cleans_up_orphans_of_an_interrupted_save(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    orphan = out / ".gaussian8.pt.999999999.deadbeef.tmp"  # no such process
    orphan.write_bytes(b"half a checkpoint")
    assert main([*TINY_TOY, "--steps", "2", "--out-dir", str(out)]) == 0
    assert not orphan.exists() and not list(out.glob("*.tmp"))


# --------------------------------------------------------------------------- train (images)
def test_image_resume_applies_a_new_lr_and_refuses_another_network(tmp_path, capsys):
    path, out = tiny_config_file(tmp_path), tmp_path / "run"
    common = ["train", "--config", str(path), "--device", "cpu", "--out-dir", str(out), "--no-progress"]
    assert main([*common, "--steps", "2"]) == 0
    capsys.readouterr()
    assert main([*common, "--steps", "3", "--resume", "--lr", "1e-5", "--set", "experiment.sample_every=5"]) == 0
    printed = capsys.readouterr().out
    assert "changed on resume: train.lr: 0.0002 -> 1e-05 (applied)" in printed
    assert "experiment.sample_every: 0 -> 5 (applied)" in printed
    assert io.load_checkpoint(out / "checkpoint.pt")["optimizer"]["param_groups"][0]["lr"] == 1e-5
    assert main([*common, "--steps", "4", "--resume", "--set", 'experiment.unet_overrides={"ch": 64, "ch_mult": [1, 2],'
                 ' "num_res_blocks": 1, "attn_resolutions": [16]}']) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "unet_config.ch: 32 -> 64" in err and "experiment.unet_overrides.ch: 32 -> 64" in err
    assert "size mismatch" not in err and err.count("\n") == 1


@pytest.mark.parametrize("unet, resumes", [("mnist_cpu", True), ("ddpm_cifar10", False)])
def test_a_checkpoint_from_before_downsample_padding_resumes_as_symmetric(tmp_path, capsys, unet, resumes):
    path, out = tiny_config_file(tmp_path, unet=unet), tmp_path / "run"
    common = ["train", "--config", str(path), "--device", "cpu", "--out-dir", str(out), "--no-progress"]
    assert main([*common, "--steps", "2"]) == 0
    ckpt = io.load_checkpoint(out / "checkpoint.pt")
    assert ckpt["extra"]["unet_config"].pop("downsample_padding") == ("symmetric" if resumes else "same")
    io.save_checkpoint(ckpt, out / "checkpoint.pt")  # as written before the option existed
    capsys.readouterr()
    assert main([*common, "--steps", "3", "--resume"]) == (0 if resumes else 2)
    err = capsys.readouterr().err
    if not resumes:  # the paper's configs now pad 'same'; the old checkpoint was trained symmetric
        assert "unet_config.downsample_padding: 'symmetric' -> 'same'" in err


def test_image_resume_of_a_finished_run_writes_nothing(tmp_path, capsys):
    path, out = tiny_config_file(tmp_path), tmp_path / "run"
    common = ["train", "--config", str(path), "--device", "cpu", "--out-dir", str(out), "--no-progress", "--steps", "2"]
    assert main(common) == 0
    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    capsys.readouterr()
    assert main([*common, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "nothing to do: the run is already at step 2 of train.steps = 2" in printed
    assert "nan" not in printed and "images/s" not in printed and "ema.pt:" not in printed
    assert {p: p.stat().st_mtime_ns for p in sorted(p for p in out.rglob("*") if p.is_file())} == before


def test_history_and_summary_are_complete_json(tmp_path):
    exp, tr = images.load_config(tiny_config_file(tmp_path), {"train.steps": 2, "train.log_every": 1}, quick=False)
    images.run(exp, tr, tmp_path / "run", device="cpu", progress=False, log=lambda *a: None)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h[0] for h in history["loss"]] == [1, 2] and history["eval"] == []
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 2
    assert not list((tmp_path / "run").rglob("*.tmp"))


def test_a_full_disk_mid_run_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    import errno

    path, out = tiny_config_file(tmp_path, checkpoint_every=2), tmp_path / "run"
    real_save, saves = torch.save, []

    def fill_the_disk(obj, f, *a, **k):
        saves.append(getattr(f, "name", ""))
        if str(f.name).startswith(str(out / ".checkpoint.pt.")) and sum("checkpoint.pt" in s for s in saves) == 2:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", fill_the_disk)
    assert main(["train", "--config", str(path), "--device", "cpu", "--out-dir", str(out), "--no-progress",
                 "--steps", "4"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint.pt: No space left on device; the previous file is kept" in err and err.count("\n") == 1
    assert io.load_checkpoint(out / "checkpoint.pt")["step"] == 2 and not list(out.glob("*.tmp"))
