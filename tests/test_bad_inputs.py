"""A table of bad inputs, each mapped to the clear error it must produce (and to the right behaviour where the
input is valid but was once misread): the cases of the bad-input probe, kept small and fast."""

import json
import re

import pytest
import torch

from ddpm_core import GaussianDiffusion, images, io, pretrained, sampling, toy
from ddpm_core.cli import main
from ddpm_core.config import coerce, parse_bool
from ddpm_core.models.unet import UNet, UNetConfig
from ddpm_core.schedules import get_beta_schedule
from ddpm_core.training import TrainConfig

from test_images import tiny_config_file

SMALL_UNET = dict(in_channels=1, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), resolution=8,
                  num_classes=4, dropout=0.0)


def shipped_model():
    return pretrained.load_mnist()


CASES = {
    # schedules and the diffusion
    "beta_start > beta_end": (lambda: get_beta_schedule("linear", 100, 0.02, 1e-4), ValueError,
                              r"beta_start must be below beta_end; got beta_start=0.02, beta_end=0.0001"),
    "beta_start == beta_end (quad)": (lambda: get_beta_schedule("quad", 100, 0.01, 0.01), ValueError,
                                      "for a constant beta use 'const'"),
    "beta_end as text": (lambda: get_beta_schedule("linear", 100, 1e-4, "0.02"), TypeError,
                         "beta_end must be a number, got '0.02'"),
    "x_0 on a 0-255 scale, bits/dim": (
        lambda: GaussianDiffusion.from_schedule("linear", 10).calc_bpd_loop(
            lambda x, t: torch.zeros_like(x), torch.full((2, 1, 4, 4), 255.0)),
        ValueError, r"needs x_0 scaled to \[-1, 1\], got values in \[255, 255\]"),
    "x_0 on a 0-255 scale, one bound term": (
        lambda: GaussianDiffusion.from_schedule("linear", 10).vb_terms_bpd(
            torch.zeros(2, 3), torch.full((2, 3), 128.0), torch.zeros(2, 3), 0),
        ValueError, "to_unit_range"),
    # networks
    "num_res_blocks = -1": (lambda: UNetConfig(num_res_blocks=-1), ValueError, "num_res_blocks must be at least 1"),
    "num_res_blocks = 0": (lambda: UNetConfig(num_res_blocks=0), ValueError, "num_res_blocks must be at least 1"),
    "ch_mult = ()": (lambda: UNetConfig(ch_mult=()), ValueError, "ch_mult must be a non-empty list"),
    "ch_mult with a 0": (lambda: UNetConfig(ch_mult=(1, 0)), ValueError, "ch_mult must be a non-empty list of positive"),
    "ch = 0": (lambda: UNetConfig(ch=0), ValueError, "ch .* must be a positive integer, got 0"),
    "ch as text": (lambda: UNetConfig(ch="64"), TypeError, "unet.ch: expected an integer, got '64'"),
    "labels out of range (UNet)": (
        lambda: UNet(UNetConfig(**SMALL_UNET))(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long),
                                               y=torch.tensor([1, 7])),
        ValueError, r"labels must lie in 0..3 \(or 4, the null label\), got values from 1 to 7"),
    "negative labels (UNet)": (
        lambda: UNet(UNetConfig(**SMALL_UNET))(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long),
                                               y=torch.tensor([-1, 0])),
        ValueError, "got values from -1 to 0"),
    "bool labels (UNet)": (
        lambda: UNet(UNetConfig(**SMALL_UNET))(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long),
                                               y=torch.tensor([True, False])),
        ValueError, "labels must be integers"),
    # sampling
    "labels out of range (sampling)": (
        lambda: sampling.sample(*reversed(shipped_model()), (2, 1, 32, 32), steps=2, y=11),
        ValueError, r"labels must lie in 0..9 \(or 10, the null label\), got values from 11 to 11"),
    "float labels (sampling)": (
        lambda: sampling.sample(*reversed(shipped_model()), (2, 1, 32, 32), steps=2, y=torch.tensor([1.0, 2.0])),
        TypeError, "labels must be an int or an integer tensor"),
    "n = 0 images": (lambda: images.generate(*shipped_model(), 0), ValueError,
                     "number of images must be a positive integer, got 0"),
    # training
    "ToyConfig with jsd and eps": (lambda: toy.ToyConfig(beta_schedule="jsd"), ValueError,
                                   "ends with alphas_cumprod = 0"),
    "ImageConfig with jsd and eps": (lambda: images.ImageConfig(dataset="shapes", schedule="jsd"), ValueError,
                                     "ends with alphas_cumprod = 0"),
    "lr as text": (lambda: TrainConfig(lr="abc"), TypeError, "train.lr: expected a float, got 'abc'"),
    "steps as text": (lambda: TrainConfig.from_dict({"steps": "100"}), TypeError,
                      "train.steps: expected an integer, got '100'"),
    "steps as a bool": (lambda: TrainConfig(steps=True), TypeError, "train.steps: expected an integer, got True"),
    "ema_warmup = no": (lambda: TrainConfig(ema_warmup="no"), TypeError,
                        "train.ema_warmup: expected true or false, got 'no'"),
    "ema_warmup = 1": (lambda: TrainConfig(ema_warmup=1), TypeError, "train.ema_warmup: expected true or false, got 1"),
    "betas of three": (lambda: TrainConfig(betas=[0.9, 0.99, 0.999]), TypeError,
                       r"train.betas: expected a list of 2 numbers, got \[0.9, 0.99, 0.999\]"),
    "grad_clip as text": (lambda: TrainConfig(grad_clip="none"), TypeError,
                          "train.grad_clip: expected a float or null, got 'none'"),
    "unet_overrides as a list": (lambda: images.ImageConfig(dataset="shapes", unet_overrides=[1]), TypeError,
                                 "experiment.unet_overrides: expected a mapping of options, got \\[1\\]"),
    "unet_overrides with num_res_blocks 0": (
        lambda: images.ImageConfig(dataset="shapes", unet_overrides={"num_res_blocks": 0}), ValueError,
        "experiment.unet / unet_overrides: num_res_blocks must be at least 1"),
    "a config section that is not a mapping": (lambda: images.load_config("shapes", {"train": "abc"}), ValueError,
                                               "section.option"),
    "data_limit 0": (lambda: images.ImageConfig(dataset="shapes", data_limit=0), ValueError,
                     "data_limit must be a positive integer or null"),
    "a toy T of 0": (lambda: toy.ToyConfig(timesteps=0), ValueError, "toy.timesteps must be a positive integer"),
    "a toy width as a float": (lambda: toy.ToyConfig(hidden=16.5), TypeError, "toy.hidden: expected an integer, got 16.5"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_a_clear_error(name):
    call, error, message = CASES[name]
    with pytest.raises(error, match=message):
        call()


def test_a_section_that_is_not_a_mapping_is_named(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"experiment": {"dataset": "shapes"}, "train": "abc"}))
    with pytest.raises(ValueError, match="section 'train' must be a mapping of option names to values, got 'abc'"):
        images.load_config(path)
    path.write_text(json.dumps({"experiment": {"dataset": "shapes"}, "quick": ["x"]}))
    with pytest.raises(ValueError, match=r"quick section\): expected a mapping of sections"):
        images.load_config(path, quick=True)


# --------------------------------------------------------------------------- values once misread, now right
@pytest.mark.parametrize("text, value", [("false", False), ("true", True), ('"false"', False), ('"FALSE"', False),
                                         ("True", True)])
def test_string_booleans_from_set_mean_what_they_say(text, value):
    exp, tr = images.load_config("mnist", images.parse_overrides([f"experiment.conditional={text}",
                                                                  f"train.ema_warmup={text}"]), quick=True)
    assert exp.conditional is value and tr.ema_warmup is value


def test_string_booleans_in_a_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"experiment": {"dataset": "mnist", "conditional": "false"},
                                "train": {"ema_warmup": "no"}}))
    with pytest.raises(TypeError, match="train.ema_warmup: expected true or false, got 'no'"):
        images.load_config(path)
    assert parse_bool("False", "x") is False
    with pytest.raises(TypeError, match="x: expected true or false, got 'yes'"):
        parse_bool("yes", "x")


def test_numbers_are_converted_where_unambiguous():
    assert TrainConfig(steps=1e4).steps == 10_000 and isinstance(TrainConfig(lr=1).lr, float)
    assert coerce([1, 2], tuple[int, ...], "x") == (1, 2)
    assert images.ImageConfig(dataset="shapes", compile="false").compile is False
    assert images.ImageConfig(dataset="shapes", compile="max-autotune").compile == "max-autotune"
    with pytest.raises(TypeError, match="train.steps: expected an integer, got 2.5"):
        TrainConfig(steps=2.5)


def test_set_type_errors_through_the_command_line(capsys):
    assert main(["train", "--config", "shapes", "--set", "train.lr=abc", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "train.lr: expected a float, got 'abc'" in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["train", "--config", "shapes", "--set", "experiment.conditional=maybe", "--print-config"]) == 2
    assert "experiment.conditional: expected true or false, got 'maybe'" in capsys.readouterr().err


@pytest.mark.parametrize("argv_tail, message", [
    (["--lr", "-1e-3"], "lr must be a positive number, got -0.001"),
    (["--lr", "-1"], "lr must be a positive number, got -1.0"),
    (["--beta-start", "0.3", "--beta-end", "0.1"], "beta_start must be below beta_end"),
    (["--beta-schedule", "jsd"], "ends with alphas_cumprod = 0"),
    (["--grad-clip", "-2"], "train.grad_clip must be a positive number or null (no clipping), got -2.0"),
    (["--ema-decay", "1.5"], "ema_decay must lie in [0, 1)"),
])
def test_train_toy_values_are_one_line_errors(tmp_path, capsys, argv_tail, message):
    assert main(["train-toy", "--steps", "2", "--device", "cpu", "--no-progress", "--out-dir", str(tmp_path / "o"),
                 *argv_tail]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "expected one argument" not in err
    assert not (tmp_path / "o").exists(), "refused before any work"


# --------------------------------------------------------------------------- paths, checked before any work
def test_output_paths_are_checked_before_training(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    calls = []
    monkeypatch.setattr(images, "make_trainer", lambda *a, **k: calls.append(1))
    assert main(["train", "--config", str(tiny_config_file(tmp_path)), "--device", "cpu", "--out-dir", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and not calls
    assert main(["train-toy", "--steps", "2", "--device", "cpu", "--out-dir", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["train-toy", "--steps", "2", "--device", "cpu", "--out-dir", str(tmp_path / "o"),
                 "--chkpt-dir", str(a_file / "sub")]) == 2
    assert "checkpoint folder" in capsys.readouterr().err


def test_too_little_disk_space_is_refused_before_training(tmp_path, capsys, monkeypatch):
    class Usage:
        free = 2**20

    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: Usage)
    out = tmp_path / "run"
    assert main(["train", "--config", str(tiny_config_file(tmp_path)), "--device", "cpu", "--out-dir", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "only 1 MiB free on its disk; a checkpoint needs about" in err
    assert not (out / "checkpoint.pt").exists() and not (out / "config.json").exists()


@pytest.mark.parametrize("extra, message", [
    (lambda p: ["--out", str(p / "file" / "s.npz")], "its folder .* is a file, not a folder"),
    (lambda p: ["--out", str(p / "samples.gif")], "give an .npz file, a .png file \\(one grid of all images\\) or a folder"),
    (lambda p: ["--out", str(p / "file")], "is a file, not a folder"),
    (lambda p: ["--out", str(p / "s.npz"), "--animation", str(p / "a.mp4")], "unsupported file type '.mp4'"),
    (lambda p: ["--out", str(p / "s.npz"), "--eta", "2"], r"--eta must lie in \[0, 1\]"),
    (lambda p: ["--out", str(p / "s.npz"), "--guidance-scale", "nan"], "--guidance-scale must be a finite number"),
    (lambda p: ["--out", str(p / "s.npz"), "--steps", "5000"], "this model has T = 1000 timesteps; give at most 1000"),
    (lambda p: ["--out", str(p / "s.npz"), "--label", "10"], "this model takes labels 0..9"),
])
def test_sample_refuses_bad_outputs_and_options_before_sampling(tmp_path, capsys, monkeypatch, extra, message):
    (tmp_path / "file").write_text("x")
    calls = []
    monkeypatch.setattr(images, "generate", lambda *a, **k: calls.append(1))
    assert main(["sample", "--pretrained", "mnist", "--n", "2", "--device", "cpu", *extra(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not calls, "refused before sampling"


# --------------------------------------------------------------------------- weights that cannot be right
def test_sample_refuses_non_finite_weights(tmp_path, capsys):
    model, _ = shipped_model()
    raw = torch.load(pretrained.PRETRAINED_DIR / pretrained.MNIST_MODEL, weights_only=True)
    raw["model"]["conv_out.weight"] = raw["model"]["conv_out.weight"].clone()
    raw["model"]["conv_out.weight"][0, 0, 0, 0] = float("nan")
    raw.pop("checksum"), raw.pop("format")
    torch.save(raw, tmp_path / "nan.pt")  # by hand: ddpm_core never writes such a file
    assert main(["sample", "--checkpoint", str(tmp_path / "nan.pt"), "--n", "2", "--device", "cpu",
                 "--out", str(tmp_path / "s.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("note: nan.pt has no checksum (written by an older version of ddpm_core)")
    assert "holds NaN or infinite values (in conv_out.weight)" in err and not (tmp_path / "s.npz").exists()


def test_non_finite_samples_are_an_error_not_black_images():
    model, diffusion = shipped_model()
    broken = lambda x, t, y=None: torch.full_like(x, float("nan"))  # noqa: E731
    broken.config = model.config
    with pytest.raises(io.NonFiniteError, match=r"sampling produced NaN or infinite values \(images 0..1\)"):
        images.generate(broken, diffusion, 2, steps=2, progress=False, device="cpu")


def test_a_damaged_export_is_reported_as_damaged(tmp_path, capsys):
    data = bytearray((pretrained.PRETRAINED_DIR / pretrained.MNIST_MODEL).read_bytes())
    data[len(data) // 2] ^= 0xFF  # somewhere in the weights
    (tmp_path / "bad.pt").write_bytes(bytes(data))
    assert main(["sample", "--checkpoint", str(tmp_path / "bad.pt"), "--n", "2", "--device", "cpu",
                 "--out", str(tmp_path / "s.npz")]) == 2
    err = capsys.readouterr().err
    assert "the file is damaged" in err and "loss became nan" not in err


def test_weights_that_do_not_fit_their_config_are_one_message(tmp_path):
    raw = torch.load(pretrained.PRETRAINED_DIR / pretrained.MNIST_MODEL, weights_only=True)
    raw["unet_config"] = {**raw["unet_config"], "ch": 64}
    io.save_checkpoint({k: v for k, v in raw.items() if k not in ("checksum", "format")}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match=r"its weights do not fit the network its unet_config describes "
                                         r"\(166 of another shape, e.g. time_embed.mlp.0.weight is \(128, 32\), "
                                         r"expected \(256, 64\)\)") as info:
        pretrained.load_model(tmp_path / "x.pt")
    assert "size mismatch" not in str(info.value)


def test_conditional_training_labels_are_checked_against_the_network():
    from ddpm_core.training import ImageBatches, Trainer

    model = UNet(UNetConfig(**SMALL_UNET))
    d = GaussianDiffusion.from_schedule("linear", 10)
    data = ImageBatches(torch.zeros(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4, 5]))
    with pytest.raises(ValueError, match=r"labels run from 0 to 5, but the network has 4 classes \(labels 0..3\)"):
        Trainer(model, d, data, TrainConfig(steps=1, batch_size=2), conditional=True)
