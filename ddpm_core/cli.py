"""The command line: ``python -m ddpm_core COMMAND``, a thin layer over the functions the lessons call.

Commands:
    train-toy   train a DDPM on a toy 2-D dataset; write checkpoint, sample plot, reverse-process GIF, metrics JSON
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import torch

from . import data as data_module
from .diffusion import LossType, ModelMeanType, ModelVarType
from .schedules import SCHEDULES
from . import toy
from .training import OPTIMIZERS, NonFiniteLossError, TrainConfig

_TOY, _TRAIN = toy.ToyConfig(), toy.default_train_config()


class _OneLineErrors(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (no usage dump), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def pick_device(name: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; otherwise the named device, which must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}; accepted: auto, cpu, cuda, cuda:N, mps") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu or auto")
    return device


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum``, with a one-line message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonneg_int = _int_at_least(0, "an integer >= 0")


def _choice_values(enum_cls) -> list[str]:
    return [m.value.replace("_", "-") for m in enum_cls]


def build_parser() -> argparse.ArgumentParser:
    """The parser; toy defaults come from ``toy.ToyConfig`` and ``toy.default_train_config`` (one source)."""
    parser = _OneLineErrors(prog="python -m ddpm_core", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineErrors)

    toy = commands.add_parser("train-toy", help="train a DDPM on a toy 2-D dataset",
                              description="Train a DDPM on a toy 2-D dataset and write checkpoint, plot, GIF and metrics.")
    g = toy.add_argument_group("data and diffusion")
    g.add_argument("--dataset", choices=data_module.TOY_DATASETS, default="gaussian8")
    g.add_argument("--timesteps", type=_positive_int, default=100, help="T (default 100)")
    g.add_argument("--beta-schedule", choices=SCHEDULES, default="linear")
    g.add_argument("--beta-start", type=float, default=1e-3)
    g.add_argument("--beta-end", type=float, default=0.2)
    g.add_argument("--model-mean-type", type=lambda s: s.replace("_", "-"), choices=_choice_values(ModelMeanType), default="eps")
    g.add_argument("--model-var-type", type=lambda s: s.replace("_", "-"), choices=_choice_values(ModelVarType), default="fixed-large")
    g.add_argument("--loss-type", choices=_choice_values(LossType), default="mse")
    g = toy.add_argument_group("model")
    g.add_argument("--hidden", "--mid-features", dest="hidden", type=_positive_int, default=_TOY.hidden, help="hidden width")
    g.add_argument("--depth", "--num-temporal-layers", dest="depth", type=_positive_int, default=_TOY.depth,
                   help="residual blocks")
    g.add_argument("--fourier-features", type=_nonneg_int, default=_TOY.fourier_features,
                   help="Fourier input frequencies (0: raw coordinates)")
    g = toy.add_argument_group("training")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, help="optimisation steps (default 10000)")
    length.add_argument("--epochs", type=_positive_int, help="epochs of --size fresh samples each")
    g.add_argument("--size", type=_positive_int, default=100_000, help="samples per epoch, with --epochs (default 100000)")
    g.add_argument("--batch-size", type=_positive_int, default=_TRAIN.batch_size)
    g.add_argument("--lr", type=float, default=_TRAIN.lr)
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    g.add_argument("--lr-warmup", type=_nonneg_int, default=0, help="linear warm-up steps")
    g.add_argument("--grad-clip", type=float, default=1.0, help="global-norm clip; 0 disables")
    g.add_argument("--ema-decay", type=float, default=_TRAIN.ema_decay)
    g.add_argument("--seed", type=int, default=_TRAIN.seed)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads (torch.set_num_threads); 1 is fastest for toy models on a busy machine")
    g = toy.add_argument_group("outputs")
    g.add_argument("--out-dir", default="runs/toy", help="plots, GIF and metrics (default runs/toy)")
    g.add_argument("--chkpt-dir", default=None, help="checkpoint folder (default: --out-dir)")
    g.add_argument("--eval-intv", type=_nonneg_int, default=0, help="evaluate and checkpoint every N steps (0: only at the end)")
    g.add_argument("--samples", type=_positive_int, default=30_000, help="samples for the final metrics and plot (default 30000)")
    g.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from a checkpoint (default path: the one this run writes)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def train_toy(args: argparse.Namespace) -> int:
    from pathlib import Path

    config = toy.ToyConfig(
        dataset=args.dataset, timesteps=args.timesteps, beta_schedule=args.beta_schedule,
        beta_start=args.beta_start, beta_end=args.beta_end, mean_type=args.model_mean_type,
        var_type=args.model_var_type, loss_type=args.loss_type, hidden=args.hidden, depth=args.depth,
        fourier_features=args.fourier_features,
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (args.epochs * max(1, args.size // args.batch_size) if args.epochs else _TRAIN.steps)
    train_config = TrainConfig(
        steps=steps, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        warmup_steps=args.lr_warmup, grad_clip=args.grad_clip or None, ema_decay=args.ema_decay, seed=args.seed,
        log_every=min(50, steps),
    )
    toy.build(config)  # fail fast on invalid combinations (e.g. learned variance with mse) before any work
    device = pick_device(args.device)
    ckpt = Path(args.chkpt_dir or args.out_dir) / f"{config.dataset}.pt"
    resume = None
    if args.resume:
        resume = ckpt if args.resume == "auto" else Path(args.resume)
        if not resume.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {resume}")
    print(f"training {config.dataset} for {steps} steps on {device} "
          f"({config.mean_type}, {config.var_type}, {config.loss_type}, T={config.timesteps}, {config.beta_schedule})")
    result = toy.run(config, train_config, args.out_dir, device=device, eval_every=args.eval_intv or None,
                     resume=resume, checkpoint=ckpt, progress=not args.no_progress,
                     final_samples=args.samples, eval_samples=min(5_000, args.samples))
    for kind, path in result["files"].items():
        print(f"{kind:>10}: {path}")
    summary = {k: result[k] for k in ("hist_kl", "high_quality", "modes_covered", "num_modes") if k in result}
    print("   results:", json.dumps(summary))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train-toy":
            return train_toy(args)
    except (ValueError, FileNotFoundError, NonFiniteLossError) as err:
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2
