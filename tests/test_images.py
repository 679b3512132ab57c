"""Image experiments: config files and their precedence, the shipped configs, a tiny run with grids, exact resume,
the `train` command."""

import json

import pytest
import torch

from ddpm_core import images, pretrained
from ddpm_core.cli import build_parser, main, resolve_train_config
from ddpm_core.training import TrainConfig

TINY_UNET = {"ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [16], "dropout": 0.1}


def write_config(path, **sections):
    path.write_text(json.dumps(sections))
    return path


def tiny_config_file(tmp_path, **experiment):
    exp = {"dataset": "shapes", "data_limit": 64, "unet": "ddpm_cifar10", "unet_overrides": TINY_UNET,
           "timesteps": 20, "grid_size": 4, "grid_steps": 5, "conditional": True, **experiment}
    return write_config(tmp_path / "tiny.json", experiment=exp,
                        train={"steps": 4, "batch_size": 4, "warmup_steps": 2, "ema_decay": 0.9, "log_every": 1})


def test_precedence_defaults_file_quick_overrides(tmp_path):
    path = write_config(tmp_path / "c.json", experiment={"dataset": "shapes", "grid_size": 10},
                        train={"steps": 100, "batch_size": 8},
                        quick={"train": {"steps": 5}, "experiment": {"sample_every": 3}})
    exp, tr = images.load_config(path, quick=False)
    assert (tr.steps, tr.batch_size, exp.grid_size, exp.sample_every) == (100, 8, 10, 0)
    assert tr.lr == TrainConfig().lr and exp.timesteps == images.ImageConfig().timesteps  # untouched: defaults
    exp, tr = images.load_config(path, quick=True)
    assert (tr.steps, tr.batch_size, exp.grid_size, exp.sample_every) == (5, 8, 10, 3)
    exp, tr = images.load_config(path, {"train.steps": 7, "experiment.grid_size": 2}, quick=True)
    assert (tr.steps, exp.grid_size, exp.sample_every) == (7, 2, 3)


def test_named_options_win_over_set(tmp_path):
    path = write_config(tmp_path / "c.json", experiment={"dataset": "shapes"}, train={"steps": 100})
    args = build_parser().parse_args(["train", "--config", str(path), "--set", "train.steps=9",
                                      "--set", "train.lr=0.001", "--steps", "4"])
    exp, tr = resolve_train_config(args)
    assert tr.steps == 4 and tr.lr == 0.001


def test_override_values_parse_as_json_else_text():
    parsed = images.parse_overrides(["train.steps=5", "train.grad_clip=null", "experiment.unet=mnist_gpu",
                                     "experiment.unet_overrides={\"ch\": 64}"])
    assert parsed == {"train.steps": 5, "train.grad_clip": None, "experiment.unet": "mnist_gpu",
                      "experiment.unet_overrides": {"ch": 64}}


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("name", ["mnist", "mnist_pretrained", "cifar10", "celeba64", "shapes"])
def test_shipped_configs_resolve(name, quick):
    exp, tr = images.load_config(name, quick=quick)
    cfg = exp.unet_config()
    assert cfg.in_channels == exp.info.channels and cfg.resolution == exp.info.resolution
    assert (cfg.num_classes is not None) == exp.conditional


def test_cifar10_config_is_the_papers_recipe():
    exp, tr = images.load_config("cifar10", quick=False)
    assert (tr.lr, tr.warmup_steps, tr.grad_clip, tr.ema_decay, tr.batch_size, tr.steps) == \
        (2e-4, 5000, 1.0, 0.9999, 128, 800_000)
    assert (exp.timesteps, exp.beta_start, exp.beta_end, exp.schedule) == (1000, 1e-4, 0.02, "linear")
    assert (exp.mean_type, exp.var_type, exp.loss_type) == ("eps", "fixed_large", "mse")
    assert exp.info.hflip and exp.hflip is None
    _, model = images.build(exp)
    assert sum(p.numel() for p in model.parameters()) == 35_746_307


@pytest.mark.parametrize("overrides, message", [
    ({"training.steps": 3}, "unknown section 'training'"),
    ({"train.stepz": 3}, "unknown training option"),
    ({"experiment.unet": "big"}, "accepted: ddpm_cifar10"),
    ({"experiment.dataset": "celeba64", "experiment.conditional": True}, "no class labels"),
    ({"steps": 3}, "section.option"),
    ({"experiment.loader": "disk"}, "unknown loader 'disk'; accepted: memory, workers"),
    ({"experiment.num_workers": -1}, "num_workers must be an integer >= 0"),
])
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        images.load_config("shapes", overrides, quick=True)


def test_bad_config_files(tmp_path):
    with pytest.raises(ValueError, match="shipped: celeba64, cifar10, mnist"):
        images.load_config("imagenet")
    with pytest.raises(FileNotFoundError):
        images.load_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        images.load_config(tmp_path / "bad.json")
    write_config(tmp_path / "extra.json", model={})
    with pytest.raises(ValueError, match="unknown top-level key"):
        images.load_config(tmp_path / "extra.json")
    with pytest.raises(ValueError, match="must look like"):
        images.parse_overrides(["train.steps"])


def test_run_writes_grids_checkpoints_and_a_loadable_export(tmp_path):
    exp, tr = images.load_config(tiny_config_file(tmp_path, sample_every=2), quick=False)
    trainer = images.run(exp, tr, tmp_path / "run", device="cpu", progress=False, log=lambda *a: None)
    out = tmp_path / "run"
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    assert {"checkpoint.pt", "ema.pt", "history.json", "config.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "config.json").read_text())["train"]["steps"] == 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["images_per_s"] > 0 and summary["data_source"] == "generated"
    assert trainer.projected_time(8) == pytest.approx(8 * 4 / trainer.throughput)
    model, diffusion = pretrained.load_model(out / "ema.pt")
    assert diffusion.num_timesteps == 20 and model.config.num_classes == 4
    for name, value in trainer.ema.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value.float(), rtol=0, atol=0)
    raw, _ = pretrained.load_model(out / "checkpoint.pt", ema=False)
    torch.testing.assert_close(raw.conv_out.weight, trainer.model.conv_out.weight.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("loader", ["memory", "workers"])
def test_image_resume_is_exact(tmp_path, loader):
    """4 steps straight == 2 steps, checkpoint, a new trainer resumed from it, 2 more steps: every tensor equal
    (in-memory batches, and a DataLoader with 2 worker processes whose position is in the checkpoint)."""
    path = tiny_config_file(tmp_path, loader=loader, num_workers=2)
    exp, tr4 = images.load_config(path, quick=False)
    straight = images.run(exp, tr4, tmp_path / "a", device="cpu", progress=False, log=lambda *a: None)
    _, tr2 = images.load_config(path, {"train.steps": 2}, quick=False)
    images.run(exp, tr2, tmp_path / "b", device="cpu", progress=False, log=lambda *a: None)
    resumed = images.run(exp, tr4, tmp_path / "b", device="cpu", resume=True, progress=False, log=lambda *a: None)
    assert resumed.step == 4
    assert type(resumed.data).__name__ == {"memory": "ImageBatches", "workers": "LoaderBatches"}[loader]
    for a, b in zip(straight.state_dict()["model"].values(), resumed.state_dict()["model"].values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(straight.ema.model.state_dict().values(), resumed.ema.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_resume_with_another_experiment_is_refused(tmp_path):
    exp, tr = images.load_config(tiny_config_file(tmp_path), {"train.steps": 1}, quick=False)
    images.run(exp, tr, tmp_path / "a", device="cpu", progress=False, log=lambda *a: None)
    other, _ = images.load_config(tiny_config_file(tmp_path, timesteps=30), quick=False)
    with pytest.raises(ValueError, match=r"cannot resume: .*experiment.timesteps: 20 -> 30"):
        images.run(other, tr, tmp_path / "a", device="cpu", resume=True, progress=False, log=lambda *a: None)


def test_train_command(tmp_path, capsys):
    path = tiny_config_file(tmp_path)
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--steps", "2", "--device", "cpu", "--out-dir", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "for 2 steps" in printed and "ema.pt" in printed and (out / "grids" / "step_0000002.png").is_file()
    assert main(["train", "--config", str(path), "--steps", "3", "--device", "cpu", "--out-dir", str(out),
                 "--resume", "--no-progress"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3
    assert main(["train", "--config", str(path), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["experiment"]["dataset"] == "shapes"
    assert main(["train", "--config", "nope"]) == 2
    assert "unknown config 'nope'" in capsys.readouterr().err


def test_sample_command_on_a_tiny_model(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    exp, tr = images.load_config(tiny_config_file(tmp_path), {"train.steps": 1}, quick=False)
    images.run(exp, tr, tmp_path / "run", device="cpu", progress=False, log=lambda *a: None)
    ckpt = str(tmp_path / "run" / "ema.pt")
    common = ["sample", "--checkpoint", ckpt, "--n", "6", "--batch-size", "4", "--device", "cpu", "--no-progress"]
    assert main([*common, "--sampler", "ddim", "--steps", "5", "--out", str(tmp_path / "s.npz"),
                 "--animation", str(tmp_path / "a.webp")]) == 0
    saved = np.load(tmp_path / "s.npz")
    assert saved["arr_0"].shape == (6, 32, 32, 3) and saved["arr_0"].dtype == np.uint8
    assert saved["labels"].tolist() == [0, 1, 2, 3, 0, 1]  # classes in turn
    assert Image.open(tmp_path / "a.webp").n_frames > 1
    # Same seed, same images; batches do not change them... for the deterministic DDIM the batch split is irrelevant
    assert main([*common[:-3], "--batch-size", "6", "--device", "cpu", "--no-progress", "--sampler", "ddim",
                 "--steps", "5", "--out", str(tmp_path / "t.npz")]) == 0
    assert (np.load(tmp_path / "t.npz")["arr_0"] == saved["arr_0"]).all()
    assert main([*common, "--steps", "3", "--guidance-scale", "2", "--label", "3", "--out", str(tmp_path / "pngs")]) == 0
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 6
    capsys.readouterr()
    assert main([*common, "--label", "9", "--out", str(tmp_path / "x.npz")]) == 2
    assert "labels 0..3" in capsys.readouterr().err
    assert main([*common, "--steps", "2000", "--out", str(tmp_path / "x.npz")]) == 2
    assert main(["sample", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_sample_command_compiled_matches_eager(tmp_path):
    """`sample --compile` (torch.compile on the CPU here) draws the same images as the plain network."""
    import numpy as np

    exp, tr = images.load_config(tiny_config_file(tmp_path), {"train.steps": 1}, quick=False)
    images.run(exp, tr, tmp_path / "run", device="cpu", progress=False, log=lambda *a: None)
    common = ["sample", "--checkpoint", str(tmp_path / "run" / "ema.pt"), "--n", "4", "--device", "cpu",
              "--sampler", "ddim", "--steps", "3", "--threads", "1", "--no-progress"]
    threads = torch.get_num_threads()
    try:
        assert main([*common, "--out", str(tmp_path / "eager.npz")]) == 0
        assert torch.get_num_threads() == 1
        assert main([*common, "--compile", "--out", str(tmp_path / "compiled.npz")]) == 0
    finally:
        torch.set_num_threads(threads)
    eager, compiled = (np.load(tmp_path / f"{n}.npz")["arr_0"].astype(int) for n in ("eager", "compiled"))
    assert np.abs(eager - compiled).max() <= 1  # fused kernels may round a pixel differently


def test_compile_modes_are_checked():
    from ddpm_core.training import compile_mode

    assert compile_mode(True) is None and compile_mode("max-autotune-no-cudagraphs") == "max-autotune-no-cudagraphs"
    with pytest.raises(ValueError, match="unknown compile mode 'fast'; accepted: true, false, default"):
        images.ImageConfig(compile="fast")


def test_denoising_movie_records_x_t_and_x0_in_one_run():
    import numpy as np

    from ddpm_core import sampling, viz

    model, diffusion = pretrained.load_mnist()
    kw = dict(frames=3, labels=torch.arange(4), seed=5, sampler="ddim", steps=5)
    movie = images.denoising_movie(model, diffusion, 4, **kw)
    # 5 evenly spaced steps of 0..999 are round(k * 999 / 4) = 0, 250, 500, 749, 999; 3 frames: first, middle, last
    assert movie.timesteps == [999, 500, 0] and len(movie.x_t) == len(movie.x0) == 3
    assert np.array_equal(movie.x_t[-1], movie.x0[-1])  # after the last step the sample is the prediction
    # the last frame is the sample `sample` draws with the same seed and labels
    final = sampling.sample(diffusion, model, (4, 1, 32, 32), sampler="ddim", steps=5, y=torch.arange(4),
                            generator=torch.Generator().manual_seed(5), clip_denoised=True)
    assert np.array_equal(movie.x_t[-1], viz.image_grid_frames(final[None].clamp(-1, 1), nrow=2)[0])
    again = images.denoising_frames(model, diffusion, 4, predicted_x0=True, **kw)
    assert all(np.array_equal(a, b) for a, b in zip(again, movie.x0))
