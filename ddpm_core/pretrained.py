"""Loading trained image models: the shipped pretrained MNIST model, exported EMA weights, trainer checkpoints, and
diffusers folders or Hub ids such as the paper's own ``google/ddpm-cifar10-32`` (:func:`from_diffusers`; the way back
is :func:`to_diffusers`, both in :mod:`ddpm_core.diffusers_format`).

Two file layouts load here, both with ``torch.load(weights_only=True)`` and a verified checksum
(:func:`ddpm_core.io.load_checkpoint`):

* an *export* (what ``data/pretrained/`` ships and ``python -m ddpm_core train`` writes as ``ema.pt``):
  ``{"model": state_dict (fp16 or fp32), "unet_config": {...}, "diffusion": {...}}``;
* a *trainer checkpoint* (``Trainer.save``): ``{"model", "ema", ..., "extra": {"unet_config", "diffusion"}}``.

``diffusion`` is a plain dict: ``schedule, timesteps, beta_start, beta_end, mean_type, var_type`` (+ ``loss_type``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from . import config as config_module
from . import io
from .diffusers_format import from_diffusers, to_diffusers  # noqa: F401 - the published checkpoints load here
from .diffusion import GaussianDiffusion
from .models.unet import UNet, UNetConfig

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "data" / "pretrained"
MNIST_MODEL = "mnist_cond_ema_fp16.pt"
MNIST_CLASSIFIER = "mnist_classifier.pt"
DIFFUSION_KEYS = ("schedule", "timesteps", "beta_start", "beta_end", "mean_type", "var_type")


def diffusion_from_dict(spec: dict[str, Any]) -> GaussianDiffusion:
    """A :class:`GaussianDiffusion` from the plain dict stored in checkpoints (see the module docstring)."""
    missing = [k for k in DIFFUSION_KEYS if k not in spec]
    if missing:
        raise ValueError(f"diffusion description lacks {missing}; it needs {list(DIFFUSION_KEYS)}")
    return GaussianDiffusion.from_schedule(
        spec["schedule"], int(spec["timesteps"]), float(spec["beta_start"]), float(spec["beta_end"]),
        mean_type=spec["mean_type"], var_type=spec["var_type"], loss_type=spec.get("loss_type", "mse"),
    )


def load_model(
    path: str | os.PathLike, *, ema: bool = True, device: str | torch.device = "cpu"
) -> tuple[UNet, GaussianDiffusion]:
    """The UNet (in eval mode, float32, on ``device``) and its diffusion from an export or a trainer checkpoint.

    ``ema`` picks the EMA weights of a trainer checkpoint (exports hold only EMA weights).  Refused with a clear
    error: a damaged file (checksum mismatch), non-finite (NaN/inf) weights, and weights that do not fit the
    network the file describes.
    """
    ckpt = io.load_checkpoint(path)
    meta = ckpt.get("extra", ckpt)
    if "unet_config" not in meta or "diffusion" not in meta:
        raise ValueError(f"{path} does not describe its network and diffusion (no 'unet_config'/'diffusion' entries); "
                         "give an ema.pt or checkpoint.pt written by `train`, or an exported model")
    which = "ema" if ema and "ema" in ckpt else "model"
    state = ckpt[which]
    io.check_finite(state, f"{path} ({which} weights)")
    config = config_module.from_dict(UNetConfig, meta["unet_config"], "UNet option")
    model = UNet(config)
    mismatch = io.state_dict_mismatch(model.state_dict(), state)
    if mismatch:
        raise ValueError(f"{path}: its weights do not fit the network its unet_config describes ({mismatch}); "
                         f"the file is inconsistent (unet_config: {config.to_dict()})")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval(), diffusion_from_dict(meta["diffusion"])


def dataset_of(path: str | os.PathLike) -> str | None:
    """The dataset a checkpoint or export was trained on (its ``experiment`` record), or None if it has none."""
    ckpt = io.load_checkpoint(path)
    experiment = ckpt.get("extra", ckpt).get("experiment") or {}
    return experiment.get("dataset") if isinstance(experiment, dict) else None


def load_mnist(device: str | torch.device = "cpu") -> tuple[UNet, GaussianDiffusion]:
    """The shipped class-conditional MNIST model (32x32, labels 0-9, null label 10); see data/pretrained/README.md."""
    path = PRETRAINED_DIR / MNIST_MODEL
    if not path.is_file():
        raise FileNotFoundError(f"the pretrained MNIST model is missing: expected {path} (it ships with the repository)")
    return load_model(path, device=device)


def load_mnist_classifier(device: str | torch.device = "cpu") -> torch.nn.Module:
    """The small MNIST classifier used to measure generated digits (98% on held-out digits), in eval mode."""
    from .metrics import MNISTClassifier

    classifier = MNISTClassifier()
    classifier.load_state_dict(io.load_checkpoint(PRETRAINED_DIR / MNIST_CLASSIFIER)["model"])
    return classifier.to(device).eval()
