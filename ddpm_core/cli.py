"""The command line: ``python -m ddpm_core COMMAND``, a thin layer over the functions the lessons call.

Commands:
    train-toy   train a DDPM on a toy 2-D dataset; write checkpoint, sample plot, reverse-process GIF, metrics JSON
    train       train a DDPM on images from a config (mnist, cifar10, celeba64, shapes or a .json file);
                write checkpoints, EMA weights and sample grids (config precedence: see ddpm_core.images)
    sample      draw N images from a trained model (ancestral, DDIM, respaced, guided) into an .npz or PNG folder,
                optionally with a GIF/WebP of a grid being denoised (--checkpoint, --pretrained mnist or
                --from-diffusers google/ddpm-cifar10-32, the paper's own weights)
    evaluate    FID, KID, Inception score, precision/recall, density/coverage and memorisation of samples
                against a reference split, on the MNIST classifier's or Inception-v3's features (one JSON line)
    bpd         bits/dim of a model on held-out images (the negative ELBO) with its terms
    export      write a model as a diffusers folder that DDPMPipeline.from_pretrained loads
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Sequence

import torch

from . import budget, images, io, toy
from .models.mlp import FOURIER_KINDS
from . import data as data_module
from .diffusion import DECODERS, LossType, ModelMeanType, ModelVarType
from .schedules import SCHEDULES
from .training import OPTIMIZERS, TrainConfig, enable_fast_cuda, init_distributed

_TOY, _TRAIN = toy.ToyConfig(), toy.default_train_config()


class _OneLineErrors(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (no usage dump), exit status 2; and a value such as
    ``-1e-3`` is read as a (negative) number, not as an unknown option."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$")

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _setup_device(device: torch.device, threads: int | None) -> None:
    """``--threads`` for the CPU; TF32 and cuDNN autotuning on CUDA (:func:`ddpm_core.training.enable_fast_cuda`)."""
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        enable_fast_cuda()


def pick_device(name: str) -> torch.device:
    """``--device``: ``auto`` -> the one device switch (:func:`ddpm_core.budget.device`: ``DDPM_DEVICE``, else a
    CUDA GPU, else the CPU); otherwise the named device, which must be available."""
    return budget.resolve_device(name)


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
    g.add_argument("--decoder", choices=DECODERS, default=_TOY.decoder,
                   help="L_0 of the bound (kl, hybrid): continuous (real-valued points, default) or discretized (8-bit)")
    g = toy.add_argument_group("model")
    g.add_argument("--hidden", "--mid-features", dest="hidden", type=_positive_int, default=_TOY.hidden, help="hidden width")
    g.add_argument("--depth", "--num-temporal-layers", dest="depth", type=_positive_int, default=_TOY.depth,
                   help="residual blocks")
    g.add_argument("--fourier-features", type=_nonneg_int, default=_TOY.fourier_features,
                   help="Fourier input frequencies per coordinate (0: raw coordinates)")
    g.add_argument("--fourier-kind", choices=FOURIER_KINDS, default=_TOY.fourier_kind,
                   help="dyadic: sin/cos(2^k pi x) of each coordinate (default); gaussian: random directions "
                        "B ~ N(0, scale^2), no preferred axis (lesson 04, 5.1)")
    g.add_argument("--fourier-scale", type=float, default=_TOY.fourier_scale,
                   help="standard deviation of the gaussian features' frequencies")
    g.add_argument("--fourier-seed", type=_nonneg_int, default=_TOY.fourier_seed,
                   help="seed of the gaussian features' random frequencies")
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
    _add_train_parser(commands)
    _add_sample_parser(commands)
    _add_evaluate_parsers(commands)
    e = commands.add_parser("export", help="write a model as a diffusers folder (DDPMPipeline)",
                            description="Write a model as a diffusers folder that DDPMPipeline.from_pretrained loads: "
                                        "unet/ (UNet2DModel config + safetensors) and scheduler/ (DDPMScheduler).")
    _add_model_source(e)
    e.add_argument("--to-diffusers", required=True, metavar="FOLDER", help="a new (or empty) folder")
    return parser


def export_model(args: argparse.Namespace) -> int:
    from . import pretrained

    target = Path(args.to_diffusers)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"--to-diffusers {target}: give a new or empty folder")
    model, diffusion = _load_model_source(args, torch.device("cpu"))
    folder = pretrained.to_diffusers(model, diffusion, target)
    n = sum(p.numel() for p in model.parameters())
    print(f"UNet ({n:,} parameters) and DDPMScheduler (T = {diffusion.num_timesteps}) -> {folder}")
    print(f"load it with: diffusers.DDPMPipeline.from_pretrained({str(folder)!r})")
    return 0


def _add_model_source(p: argparse.ArgumentParser) -> None:
    """``--checkpoint PATH``, ``--pretrained mnist`` or ``--from-diffusers ID|FOLDER``: the model a command loads."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="ema.pt or checkpoint.pt written by `train`, or an exported model")
    src.add_argument("--pretrained", choices=["mnist"], help="the shipped pretrained model")
    src.add_argument("--from-diffusers", metavar="ID_OR_FOLDER",
                     help="a diffusers folder, or a Hugging Face Hub id such as google/ddpm-cifar10-32 (the paper's "
                          "weights; downloaded once into data/diffusers/)")


def _load_model_source(args: argparse.Namespace, device: torch.device):
    from . import pretrained

    if args.checkpoint:
        return pretrained.load_model(args.checkpoint, device=device)
    if args.from_diffusers:
        return pretrained.from_diffusers(args.from_diffusers, device=device)
    return pretrained.load_mnist(device=device)


def _add_evaluate_parsers(commands) -> None:
    from .evaluation import FEATURES, METRICS, REFERENCES

    p = commands.add_parser(
        "evaluate", help="FID, KID, IS, precision/recall, density/coverage, memorisation of samples",
        description="Measure samples against a reference split. Prints one JSON line (and writes it to --out). "
                    "With --features classifier the scores are FID_clf/KID_clf on the shipped MNIST classifier's "
                    "features, not comparable with the papers' Inception FID.")
    p.add_argument("--samples", help="an .npz (uint8 'arr_0', as `sample` writes) or a folder of PNG files")
    p.add_argument("--reference", default="mnist-test", help=f"{' | '.join(REFERENCES)} | an .npz file or PNG folder")
    p.add_argument("--features", choices=FEATURES, default="classifier")
    p.add_argument("--metrics", default="fid,kid,pr,dc", help=f"comma-separated, from {','.join(METRICS)}")
    p.add_argument("--train-reference", default=None,
                   help="the model's training images, for --metrics memorisation (default: the reference's train "
                        "split, e.g. mnist-train for mnist-test)")
    p.add_argument("--n", type=_positive_int, default=None, help="use only the first N samples")
    p.add_argument("--kid-subset-size", type=_int_at_least(2, "an integer >= 2"), default=None,
                   help="KID subset size (default 1000, or the smaller set's size)")
    p.add_argument("--inception-weights", default=None, help="a local Inception-v3 weights file (torch-fidelity's "
                                                               "weights-inception-2015-12-05-6726825d.pth)")
    p.add_argument("--download-inception", action="store_true",
                   help="only download the Inception-v3 weights into <data>/inception/ and exit")
    p.add_argument("--download", action="store_true", help="download a missing reference split (CIFAR-10)")
    p.add_argument("--batch-size", type=_positive_int, default=250)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.add_argument("--no-progress", action="store_true")

    b = commands.add_parser("bpd", help="bits/dim on held-out images, with its terms",
                            description="The negative ELBO in bits/dim of a model on held-out images (the paper's "
                                        "NLL), with the prior, decoder and diffusion terms.")
    _add_model_source(b)
    b.add_argument("--dataset", choices=data_module.IMAGE_DATASETS, default=None,
                   help="the images (default: the dataset the model was trained on)")
    b.add_argument("--split", choices=["test", "train"], default="test")
    b.add_argument("--n", type=_positive_int, default=100, help="number of images (default 100)")
    b.add_argument("--timesteps-subset", type=_positive_int, default=None,
                   help="estimate the sum over t from K timesteps (unbiased) instead of all T network calls")
    b.add_argument("--batch-size", type=_positive_int, default=100)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--device", default="auto")
    b.add_argument("--out", default=None, help="also write the JSON to this file")
    b.add_argument("--no-progress", action="store_true")


def _train_split_of(reference: str) -> str:
    if reference.endswith("-test"):
        return reference[: -len("-test")] + "-train"
    if reference.endswith("-train"):
        return reference
    raise ValueError("--metrics memorisation needs --train-reference (the model's training images) for a file "
                     "reference")


def evaluate_samples(args: argparse.Namespace) -> int:
    from . import evaluation

    if args.download_inception:
        print(f"Inception-v3 weights: {evaluation.inception_weights(args.inception_weights, download=True)}")
        return 0
    if not args.samples:
        raise ValueError("--samples is required (an .npz file or a folder of PNG files)")
    metrics = evaluation.parse_metrics(args.metrics)
    if args.out:
        io.check_output_file(args.out, "--out", suffixes=(".json",))
    samples = evaluation.load_images(args.samples)
    if args.n is not None:
        if args.n > len(samples):
            raise ValueError(f"--n {args.n}: {args.samples} holds only {len(samples)} images")
        samples = samples[: args.n]
    reference = evaluation.load_reference(args.reference, download=args.download, verbose=False)
    train = None
    if "memorisation" in metrics:
        train = evaluation.load_reference(args.train_reference or _train_split_of(args.reference),
                                          download=args.download, verbose=False).images
    device = pick_device(args.device)
    result = evaluation.evaluate(
        samples, reference, features=args.features, metrics=metrics, train=train,
        kid_subset_size=args.kid_subset_size, device=device, batch_size=args.batch_size,
        progress=not args.no_progress, cache_dir=data_module.default_data_dir() / "eval_cache",
        inception_weights_path=args.inception_weights)
    line = json.dumps(result)
    print(line)
    if args.out:
        io.atomic_write_text(args.out, line + "\n")
    return 0


def bits_per_dim(args: argparse.Namespace) -> int:
    from . import evaluation, pretrained

    if args.out:
        io.check_output_file(args.out, "--out", suffixes=(".json",))
    device = pick_device(args.device)
    model, diffusion = _load_model_source(args, device)
    cfg = model.config
    if args.timesteps_subset is not None and args.timesteps_subset > diffusion.num_timesteps - 1:
        raise ValueError(f"--timesteps-subset {args.timesteps_subset}: this model has T = {diffusion.num_timesteps}; "
                         f"give at most {diffusion.num_timesteps - 1}")
    dataset = args.dataset or (pretrained.dataset_of(args.checkpoint) if args.checkpoint else "mnist")
    if dataset is None:
        raise ValueError(f"{args.checkpoint} does not record the dataset it was trained on: pass --dataset")
    ds = data_module.load_image_dataset(dataset, train=args.split == "train", download=False, verbose=False)
    if ds.images.shape[1:] != (cfg.in_channels, cfg.resolution, cfg.resolution):
        raise ValueError(f"the {dataset} {args.split} images are {tuple(ds.images.shape[1:])}, the model takes "
                         f"{(cfg.in_channels, cfg.resolution, cfg.resolution)}")
    n = min(args.n, len(ds))
    kwargs = {}
    if cfg.num_classes is not None:
        kwargs["y"] = ds.labels[:n]
    result = evaluation.bits_per_dim(model, diffusion, ds.images[:n], timesteps_subset=args.timesteps_subset,
                                     batch_size=args.batch_size, model_kwargs=kwargs, seed=args.seed, device=device,
                                     progress=not args.no_progress)
    result = {"dataset": dataset, "split": args.split,
              **{k: v for k, v in result.items() if k not in ("terms", "timesteps")}}
    line = json.dumps(result)
    print(line)
    if args.out:
        io.atomic_write_text(args.out, line + "\n")
    return 0


def _add_sample_parser(commands) -> None:
    from .respace import SPACINGS
    from .sampling import SAMPLERS
    from .viz import ANIMATION_FORMATS

    p = commands.add_parser("sample", help="draw images from a trained model",
                            description="Draw N images from a trained model into an .npz (uint8 NHWC under "
                                        "'arr_0', labels under 'labels'), one grid .png, or a folder of PNG files.")
    _add_model_source(p)
    p.add_argument("--n", type=_positive_int, default=64, help="number of images (default 64)")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--sampler", choices=SAMPLERS, default="ddpm", help="ancestral (ddpm) or ddim")
    p.add_argument("--steps", type=_positive_int, default=None, help="reverse steps (default: all T; fewer respaces)")
    p.add_argument("--skip", choices=SPACINGS, default="linear", help="how --steps are spread over 0..T-1")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM noise: 0 deterministic, 1 = ancestral (fixed-small)")
    p.add_argument("--guidance-scale", type=float, default=None, help="classifier-free guidance scale s (1: plain)")
    p.add_argument("--label", type=int, default=None, help="class of every image (default: classes in turn)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="samples.npz", help="an .npz file, a grid .png, or a folder for PNG files")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network first (on an H100: 2.2x faster sampling forward at batch 1000)")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--animation", default=None,
                   help=f"also write a grid of 16 images being denoised ({', '.join(ANIMATION_FORMATS)})")
    p.add_argument("--no-progress", action="store_true")


def _check_sample_outputs(args: argparse.Namespace, need_bytes: int | None = None) -> Path:
    """``--out`` (an .npz file or a folder) and ``--animation``: writable, the right kind, with room."""
    from .viz import ANIMATION_FORMATS

    out = Path(args.out)
    if out.suffix.lower() in (".npz", ".png"):
        io.check_output_file(out, "--out", need_bytes=need_bytes)
    elif out.suffix and not out.is_dir():
        raise ValueError(f"--out {out}: give an .npz file, a .png file (one grid of all images) or a folder for PNG "
                         f"files (not a {out.suffix} file)")
    else:
        io.check_output_dir(out, "--out", need_bytes=need_bytes)
    if args.animation:
        io.check_output_file(args.animation, "--animation", suffixes=tuple(ANIMATION_FORMATS))
    return out


def sample_images(args: argparse.Namespace) -> int:
    import numpy as np

    from .viz import image_grid, save_animation, save_png

    for name in ("eta", "guidance_scale"):
        value = getattr(args, name)
        if value is not None and not np.isfinite(value):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    if not 0.0 <= args.eta <= 1.0:
        raise ValueError(f"--eta must lie in [0, 1] (0: deterministic DDIM, 1: ancestral), got {args.eta}")
    _check_sample_outputs(args)  # before any work: a bad path fails now, not after sampling
    device = pick_device(args.device)
    _setup_device(device, args.threads)
    model, diffusion = _load_model_source(args, device)
    cfg = model.config
    classes = cfg.num_classes
    if args.label is not None and (classes is None or not 0 <= args.label < classes):
        raise ValueError(f"--label {args.label}: this model takes labels 0..{classes - 1}" if classes
                         else "--label given, but this model is unconditional")
    if args.guidance_scale is not None and classes is None:
        raise ValueError("--guidance-scale needs a class-conditional model")
    if args.steps is not None and args.steps > diffusion.num_timesteps:
        raise ValueError(f"--steps {args.steps}: this model has T = {diffusion.num_timesteps} timesteps; "
                         f"give at most {diffusion.num_timesteps}")
    _check_sample_outputs(args, need_bytes=args.n * cfg.in_channels * cfg.resolution**2)
    if args.compile:
        model = torch.compile(model)  # attribute access (config, parameters) passes through to the module

    def class_labels(n: int) -> torch.Tensor | None:
        if classes is None:
            return None
        return torch.full((n,), args.label) if args.label is not None else torch.arange(n) % classes

    labels = class_labels(args.n)
    kwargs = dict(sampler=args.sampler, steps=args.steps, skip=args.skip, eta=args.eta,
                  guidance_scale=args.guidance_scale)
    print(f"sampling {args.n} images with {args.sampler}"
          f"{f' ({args.steps} steps, {args.skip})' if args.steps else f' ({diffusion.num_timesteps} steps)'}"
          f"{f', guidance {args.guidance_scale}' if args.guidance_scale is not None else ''} on {device}")
    x = images.generate(model, diffusion, args.n, batch_size=args.batch_size, labels=labels, seed=args.seed,
                        device=device, progress=not args.no_progress, **kwargs)
    out = Path(args.out)
    nhwc = x.permute(0, 2, 3, 1).numpy()
    if out.suffix.lower() == ".npz":
        extra = {} if labels is None else {"labels": labels.numpy()}
        io.atomic_write_bytes(out, io.save_to_buffer(lambda f: np.savez(f, arr_0=nhwc, **extra)))
    elif out.suffix.lower() == ".png":
        save_png(image_grid(x.float() / 127.5 - 1, nrow=math.ceil(math.sqrt(args.n))), out)
    else:
        for i, img in enumerate(nhwc):
            save_png(img, out / f"{i:06d}.png")
    print(f"{args.n} images -> {out}")
    if args.animation:
        frames = images.denoising_movie(model, diffusion, 16, labels=class_labels(16), seed=args.seed, device=device,
                                        **kwargs).x_t
        print(f"animation ({len(frames)} frames) -> {save_animation(frames, args.animation)}")
    return 0


# Named options of `train`: each is a shorthand for one --set key, and wins over --set.
_TRAIN_SHORTHANDS = {"steps": "train.steps", "batch_size": "train.batch_size", "lr": "train.lr", "seed": "train.seed"}


def _add_train_parser(commands) -> None:
    p = commands.add_parser(
        "train", help="train a DDPM on images from a config",
        description="Train a DDPM on images. Precedence (later wins): built-in defaults < the config file < its "
                    "'quick' section (when DDPM_QUICK=1, or on a machine without CUDA) < --set < named options.")
    p.add_argument("--config", default="mnist",
                   help=f"a shipped config ({', '.join(images.available_configs())}) or a .json file (default mnist)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.OPTION=VALUE",
                   help="override one option, e.g. --set train.ema_decay=0.999 --set experiment.unet=mnist_cpu")
    p.add_argument("--steps", type=_positive_int, help="= --set train.steps=N")
    p.add_argument("--batch-size", type=_positive_int, help="= --set train.batch_size=N")
    p.add_argument("--lr", type=float, help="= --set train.lr=X")
    p.add_argument("--seed", type=int, help="= --set train.seed=N")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--out-dir", default=None, help="run folder (default runs/<config name>)")
    p.add_argument("--resume", nargs="?", const=True, default=False,
                   help="continue from <out-dir>/checkpoint.pt, or from the checkpoint given; 'auto': continue if "
                        "<out-dir>/checkpoint.pt exists, else start (a command you can simply re-run)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads (torch.set_num_threads); 1 is often fastest for small models on a busy CPU")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_train_config(args: argparse.Namespace) -> tuple["images.ImageConfig", TrainConfig]:
    """The config after the documented precedence: file < quick section < --set < named options."""
    overrides = images.parse_overrides(args.overrides)
    for option, key in _TRAIN_SHORTHANDS.items():
        value = getattr(args, option)
        if value is not None:
            overrides[key] = value
    return images.load_config(args.config, overrides)


def train_images(args: argparse.Namespace) -> int:
    config, train_config = resolve_train_config(args)
    if args.print_config:
        print(json.dumps({"experiment": config.to_dict(), "train": train_config.to_dict()}, indent=2))
        return 0
    device = init_distributed() or pick_device(args.device)  # torchrun: one process per GPU
    _setup_device(device, args.threads)
    out_dir = Path(args.out_dir or Path("runs") / Path(args.config).stem)
    main_process = int(os.environ.get("RANK", "0")) == 0
    say = print if main_process else (lambda *a, **k: None)  # under torchrun, rank 0 speaks
    say(f"Budget: {'QUICK' if budget.is_quick() else 'FULL'} because {budget.reason()}")
    say(f"training {config.dataset} ({config.unet}{', conditional' if config.conditional else ''}) for "
        f"{train_config.steps} steps at batch {train_config.batch_size} on {device}; writing to {out_dir}")
    trainer = images.run(config, train_config, out_dir, device=device, resume=args.resume,
                         progress=not args.no_progress, log=say)
    if trainer.last_run_steps == 0:  # a finished run, resumed: run() said so, and nothing was written
        return 0
    say(f"done at step {trainer.step}: loss {trainer.last_loss:.4f}; {trainer.throughput:.0f} images/s, "
        f"so {train_config.steps} steps would take {trainer.projected_time() / 3600:.1f} h "
        f"({trainer.world_size} process{'es' if trainer.world_size > 1 else ''})")
    for name in ("checkpoint.pt", "ema.pt", "history.json", "config.json"):
        say(f"{name:>14}: {out_dir / name}")
    say(f"{'grids':>14}: {out_dir / 'grids'}")
    return 0


def train_toy(args: argparse.Namespace) -> int:
    config = toy.ToyConfig(
        dataset=args.dataset, timesteps=args.timesteps, beta_schedule=args.beta_schedule,
        beta_start=args.beta_start, beta_end=args.beta_end, mean_type=args.model_mean_type,
        var_type=args.model_var_type, loss_type=args.loss_type, decoder=args.decoder, hidden=args.hidden, depth=args.depth,
        fourier_features=args.fourier_features, fourier_kind=args.fourier_kind, fourier_scale=args.fourier_scale,
        fourier_seed=args.fourier_seed,
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (args.epochs * max(1, args.size // args.batch_size) if args.epochs else _TRAIN.steps)
    train_config = TrainConfig(
        steps=steps, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        warmup_steps=args.lr_warmup, grad_clip=args.grad_clip or None, ema_decay=args.ema_decay, seed=args.seed,
        log_every=min(50, steps),
    )
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
    if result.get("already_finished"):
        return 0
    for kind, path in result["files"].items():
        print(f"{kind:>10}: {path}")
    summary = {k: result[k] for k in ("hist_kl", "high_quality", "modes_covered", "num_modes") if k in result}
    print("   results:", json.dumps(summary))
    return 0


def _one_line_notices(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of the package (e.g. a checkpoint without a checksum) as one line on stderr: ``note: ...``."""
    print(f"note: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():  # restores the warning filters and showwarning afterwards
        warnings.simplefilter("always", io.ChecksumMissingWarning)
        warnings.showwarning = _one_line_notices
        return _run(parser, args)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        if args.command == "train-toy":
            return train_toy(args)
        if args.command == "train":
            return train_images(args)
        if args.command == "sample":
            return sample_images(args)
        if args.command == "evaluate":
            return evaluate_samples(args)
        if args.command == "bpd":
            return bits_per_dim(args)
        if args.command == "export":
            return export_model(args)
    except (ValueError, TypeError, FileNotFoundError) as err:  # bad input: found before any work
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (io.NonFiniteError, OSError) as err:  # a failure during the work (divergence, a full disk, ...)
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command!r}")
    return 2
