"""The command line on a tiny run: files written, checkpoint loadable with weights_only, resume, one-line errors."""

import json

import pytest
import torch

from ddpm_core import toy
from ddpm_core.cli import main

TINY = ["train-toy", "--timesteps", "20", "--hidden", "16", "--depth", "1", "--batch-size", "64",
        "--samples", "300", "--no-progress", "--device", "cpu"]


def test_train_toy_with_gaussian_features(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--steps", "10", "--out-dir", str(out), "--fourier-kind", "gaussian", "--fourier-scale", "2",
                 "--fourier-seed", "3"]) == 0
    _, model, config = toy.load(out / "gaussian8.pt")
    assert model.config()["fourier_kind"] == "gaussian"
    assert (config.fourier_kind, config.fourier_scale, config.fourier_seed) == ("gaussian", 2.0, 3)
    capsys.readouterr()


def test_train_toy_writes_everything(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--steps", "30", "--eval-intv", "15", "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("gaussian8.pt", "gaussian8_samples.png", "gaussian8_reverse.gif", "gaussian8_metrics.json"):
        assert (out / name).is_file() and name in printed
    metrics = json.loads((out / "gaussian8_metrics.json").read_text())
    assert metrics["steps"] == 30 and metrics["num_modes"] == 8
    assert [e["step"] for e in metrics["evaluations"]] == [15, 30]
    assert {"hist_kl", "high_quality", "modes_covered"} <= set(metrics)
    ckpt = torch.load(out / "gaussian8.pt", weights_only=True)
    assert ckpt["step"] == 30 and ckpt["extra"]["toy"]["timesteps"] == 20
    diffusion, model, config = toy.load(out / "gaussian8.pt")
    assert config.hidden == 16 and diffusion.num_timesteps == 20
    assert toy.sample(model, diffusion, 10).shape == (10, 2)


def test_resume_continues_from_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--steps", "10", "--out-dir", str(out), "--dataset", "swissroll"]) == 0
    assert main([*TINY, "--steps", "25", "--out-dir", str(out), "--dataset", "swissroll", "--resume"]) == 0
    assert json.loads((out / "swissroll_metrics.json").read_text())["steps"] == 25
    assert "modes_covered" not in json.loads((out / "swissroll_metrics.json").read_text())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "circles"], "invalid choice: 'circles'"),
        (["--steps", "0"], "expected a positive integer, got '0'"),
        (["--model-var-type", "learned"], "gives the learned variance"),
        (["--beta-start", "2"], r"beta_start must lie in (0, 1)"),
        (["--resume", "/nonexistent/x.pt"], "no checkpoint at"),
        (["--device", "cuda:99" if not torch.cuda.is_available() else "tpu"], "device"),
        (["--lr", "-1"], "lr must be a positive number"),
        (["--fourier-kind", "radial"], "invalid choice: 'radial'"),
        (["--fourier-kind", "gaussian", "--fourier-scale", "-1"], "fourier_scale"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) if "invalid choice" in message or "expected" in message else _no_raise():
        code = main([*TINY, "--steps", "5", "--out-dir", str(tmp_path), *args])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_toy_config_errors():
    with pytest.raises(ValueError, match="unknown toy dataset"):
        toy.ToyConfig(dataset="moons2")
    with pytest.raises(ValueError, match="unknown model mean type"):
        toy.ToyConfig(mean_type="score")
    assert toy.ToyConfig(var_type="fixed-small").var_type == "fixed_small"
    with pytest.raises(ValueError, match="unknown toy option"):
        toy.ToyConfig.from_dict({"datasett": "gaussian8"})
    with pytest.raises(ValueError, match="unknown decoder '8bit'; accepted: discretized, continuous"):
        toy.ToyConfig(decoder="8bit")


def test_toy_bound_uses_the_continuous_decoder():
    """Toy points are real-valued: L_0 is -log N(x_0; mu, sigma^2) (torch.distributions, independently), not 8-bit bins."""
    import math

    config = toy.ToyConfig(var_type="learned_range", loss_type="kl")
    diffusion, model = toy.build(config)
    assert diffusion.decoder == "continuous" and toy.build(toy.ToyConfig(decoder="discretized"))[0].decoder == "discretized"
    x0 = torch.tensor([[1.414, -0.3], [2.0, 0.7]], dtype=torch.float64)
    out = torch.randn(2, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.zeros(2, dtype=torch.long)
    x1 = diffusion.q_sample(x0, t, noise=torch.randn(2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    term = diffusion.vb_terms_bpd(out, x0, x1, t)["output"]
    p = diffusion.p_mean_variance(out, x1, t)
    normal = torch.distributions.Normal(p["mean"], torch.exp(0.5 * p["log_variance"]))
    expected = -normal.log_prob(x0).mean(dim=1) / math.log(2.0)
    torch.testing.assert_close(term, expected)
    from ddpm_core.cli import build_parser

    assert build_parser().parse_args(["train-toy"]).decoder == "continuous"


def test_load_rejects_a_non_toy_checkpoint(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"model": {}, "ema": {}, "extra": {}}, path)
    with pytest.warns(UserWarning, match="no checksum"), pytest.raises(ValueError, match="not a toy-model checkpoint"):
        toy.load(path)


def test_cli_defaults_are_the_library_defaults():
    from ddpm_core.cli import build_parser

    args = build_parser().parse_args(["train-toy"])
    cfg, train = toy.ToyConfig(), toy.default_train_config()
    assert (args.hidden, args.depth, args.fourier_features) == (cfg.hidden, cfg.depth, cfg.fourier_features)
    assert (args.fourier_kind, args.fourier_scale, args.fourier_seed) == (cfg.fourier_kind, cfg.fourier_scale,
                                                                          cfg.fourier_seed)
    assert (args.timesteps, args.beta_start, args.beta_end) == (cfg.timesteps, cfg.beta_start, cfg.beta_end)
    assert (args.lr, args.batch_size, args.seed, args.ema_decay) == (train.lr, train.batch_size, train.seed, train.ema_decay)
