"""The diffusers format: the paper's published checkpoints in ``ddpm_core``, and ``ddpm_core`` models in diffusers.

Ho et al.'s trained weights (CIFAR-10, CelebA-HQ 256, LSUN church/bedroom/cat 256) are on the Hugging Face Hub as
diffusers folders (``google/ddpm-cifar10-32``, ...): a ``UNet2DModel`` (``unet/config.json`` plus
``diffusion_pytorch_model.safetensors`` or ``.bin``, or the same at the folder's root) and a ``DDPMScheduler``
(``scheduler/scheduler_config.json``).

* :func:`from_diffusers` reads such a folder (or downloads a Hub id into ``<data>/diffusers/``) into a
  :class:`~ddpm_core.models.unet.UNet` and its :class:`~ddpm_core.diffusion.GaussianDiffusion`.  It checks the
  config against what the UNet can express and refuses anything else by the field's name; it maps the weights key
  by key (both the current ``to_q/to_k/to_v/to_out.0`` attention names and the older ``query/key/value/proj_attn``),
  uses every source tensor exactly once, and loads with ``strict=True``.  Safe loading only: safetensors, or
  ``torch.load(weights_only=True)``.
* :func:`to_diffusers` writes a folder that ``diffusers.DDPMPipeline.from_pretrained`` loads and runs.

diffusers itself is not needed for either direction (only ``safetensors``, and ``huggingface_hub`` to download);
the tests use it as the reference.  The name mapping:

=================================  =====================================================
``ddpm_core``                      diffusers
=================================  =====================================================
``UNetConfig.ch``, ``ch_mult``     ``block_out_channels = ch * ch_mult``
``num_res_blocks``                 ``layers_per_block``
``attn_resolutions``               ``AttnDownBlock2D`` / ``AttnUpBlock2D`` at those sizes
``downsample_padding`` same/symm.  ``downsample_padding`` 0 / 1
``num_classes`` (+ null label)     ``num_class_embeds = num_classes + 1``
``mean_type`` eps / x0 / v         ``prediction_type`` epsilon / sample / v_prediction
``var_type`` fixed_large / small   ``variance_type`` fixed_large / fixed_small (``_log`` too)
``var_type`` learned_range         ``variance_type`` learned_range
schedule linear / quad / cosine    ``beta_schedule`` linear / scaled_linear / squaredcos_cap_v2
 / sigmoid, any other betas          / sigmoid, else ``trained_betas``
``clip_denoised=True``             ``clip_sample=True``, ``clip_sample_range=1``
=================================  =====================================================
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from . import data as data_module
from . import io, schedules
from .diffusion import GaussianDiffusion, ModelMeanType, ModelVarType
from .models.unet import UNet, UNetConfig

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
HUB_MODELS = {  # the paper's published checkpoints and ddpm_core's matching named UNet configuration
    "google/ddpm-cifar10-32": "ddpm_cifar10",
    "google/ddpm-celebahq-256": "ddpm_256",
    "google/ddpm-church-256": "ddpm_256",
    "google/ddpm-bedroom-256": "ddpm_256",
    "google/ddpm-cat-256": "ddpm_256",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PREDICTION = {"epsilon": ModelMeanType.EPSILON, "sample": ModelMeanType.START_X, "v_prediction": ModelMeanType.VELOCITY}
_VARIANCE = {"fixed_small": ModelVarType.FIXED_SMALL, "fixed_small_log": ModelVarType.FIXED_SMALL,
             "fixed_large": ModelVarType.FIXED_LARGE, "fixed_large_log": ModelVarType.FIXED_LARGE,
             "learned": ModelVarType.LEARNED, "learned_range": ModelVarType.LEARNED_RANGE}
_SCHEDULES = {"linear": "linear", "scaled_linear": "quad", "squaredcos_cap_v2": "cosine", "sigmoid": "sigmoid"}

# UNet2DModel fields and the only values ddpm_core's UNet can express (None: the field may be absent or null).
_FIXED_UNET = {
    "act_fn": ("silu",), "time_embedding_type": ("positional",), "flip_sin_to_cos": (False,), "freq_shift": (1,),
    "center_input_sample": (False,), "norm_eps": (1e-6,), "mid_block_scale_factor": (1,),
    "resnet_time_scale_shift": ("default",), "add_attention": (True,), "class_embed_type": (None,),
    "downsample_type": ("conv",), "upsample_type": ("conv",), "mid_block_type": ("UNetMidBlock2D",),
    "time_embedding_dim": (None,),
}
_UNET_DEFAULTS = {"time_embedding_type": "positional", "center_input_sample": False, "mid_block_scale_factor": 1,
                  "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None,
                  "downsample_type": "conv", "upsample_type": "conv", "mid_block_type": "UNetMidBlock2D",
                  "attn_norm_num_groups": None, "time_embedding_dim": None, "act_fn": "silu", "norm_num_groups": 32,
                  "freq_shift": 0, "flip_sin_to_cos": True, "norm_eps": 1e-5}  # UNet2DModel's defaults
_KNOWN_UNET = set(_FIXED_UNET) | {
    "_class_name", "_diffusers_version", "_name_or_path", "_use_default_values", "sample_size", "in_channels",
    "out_channels", "down_block_types", "up_block_types", "block_out_channels", "layers_per_block",
    "downsample_padding", "dropout", "attention_head_dim", "num_class_embeds", "num_train_timesteps",
    "norm_num_groups", "attn_norm_num_groups",
}


# ============================================================================ configs
def _refuse(where: str, field: str, value: Any, accepted: str) -> ValueError:
    return ValueError(f"{where}: {field} = {value!r} is not something ddpm_core's UNet/diffusion can express "
                      f"(accepted: {accepted})")


def unet_config_from_diffusers(cfg: dict[str, Any], where: str = "config.json") -> UNetConfig:
    """The :class:`UNetConfig` of a ``UNet2DModel`` config dict, or a ``ValueError`` naming the field it cannot take."""
    if not isinstance(cfg, dict):
        raise TypeError(f"{where}: a UNet2DModel config is a dict, got {type(cfg).__name__}")
    if cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise _refuse(where, "_class_name", cfg["_class_name"], "UNet2DModel")
    unknown = sorted(set(cfg) - _KNOWN_UNET)
    if unknown:
        raise ValueError(f"{where}: unknown UNet2DModel field(s) {unknown}; ddpm_core can only convert the fields "
                         f"it knows ({', '.join(sorted(_KNOWN_UNET - {'_use_default_values'}))})")
    for field, accepted in _FIXED_UNET.items():
        value = cfg.get(field, _UNET_DEFAULTS.get(field))
        if value not in accepted:
            raise _refuse(where, field, value, " or ".join(repr(a) for a in accepted))
    for field in ("block_out_channels", "down_block_types", "up_block_types", "layers_per_block", "sample_size"):
        if field not in cfg:
            raise ValueError(f"{where}: the field {field} is missing")
    channels = list(cfg["block_out_channels"])
    down, up = list(cfg["down_block_types"]), list(cfg["up_block_types"])
    if not channels or len(down) != len(channels) or len(up) != len(channels):
        raise ValueError(f"{where}: block_out_channels, down_block_types and up_block_types must have one entry per "
                         f"level, got {len(channels)}, {len(down)} and {len(up)}")
    ch = int(channels[0])
    if any(c % ch for c in channels):
        raise _refuse(where, "block_out_channels", channels, "multiples of the first entry (ch * ch_mult)")
    resolution = cfg["sample_size"]
    if isinstance(resolution, (list, tuple)):
        if len(set(resolution)) != 1:
            raise _refuse(where, "sample_size", resolution, "a square size")
        resolution = resolution[0]
    attn_res = []
    for level, (d, u) in enumerate(zip(down, reversed(up))):
        if d not in ("DownBlock2D", "AttnDownBlock2D"):
            raise _refuse(where, f"down_block_types[{level}]", d, "'DownBlock2D' or 'AttnDownBlock2D'")
        if u not in ("UpBlock2D", "AttnUpBlock2D"):
            raise _refuse(where, f"up_block_types[{len(up) - 1 - level}]", u, "'UpBlock2D' or 'AttnUpBlock2D'")
        if (d == "AttnDownBlock2D") != (u == "AttnUpBlock2D"):
            raise ValueError(f"{where}: attention at level {level} in one path only (down: {d}, up: {u}); ddpm_core's "
                             "UNet has attention at the same resolutions on both paths")
        if d == "AttnDownBlock2D":
            attn_res.append(int(resolution) // 2**level)
    head_dim = cfg.get("attention_head_dim", 8)
    attn_channels = [channels[level] for level, d in enumerate(down) if d == "AttnDownBlock2D"] + [channels[-1]]
    if head_dim is not None and any(c != head_dim for c in attn_channels):
        raise _refuse(where, "attention_head_dim", head_dim,
                      f"null (one head over all channels, as the paper's; here {sorted(set(attn_channels))})")
    padding = cfg.get("downsample_padding", 1)
    if padding not in (0, 1):
        raise _refuse(where, "downsample_padding", padding, "0 (the paper's 'same') or 1 ('symmetric')")
    groups = cfg.get("norm_num_groups", _UNET_DEFAULTS["norm_num_groups"])
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or any(c % groups for c in channels):
        raise _refuse(where, "norm_num_groups", groups, f"a positive integer dividing block_out_channels {channels}")
    if cfg.get("attn_norm_num_groups") not in (None, groups):
        raise _refuse(where, "attn_norm_num_groups", cfg["attn_norm_num_groups"],
                      f"null or norm_num_groups ({groups}): ddpm_core's attention uses the UNet's GroupNorm")
    num_class_embeds = cfg.get("num_class_embeds")
    if num_class_embeds is not None and num_class_embeds < 2:
        raise _refuse(where, "num_class_embeds", num_class_embeds, "null or >= 2 (the classes and a null label)")
    try:
        return UNetConfig(in_channels=int(cfg.get("in_channels", 3)), out_channels=int(cfg.get("out_channels", 3)),
                          ch=ch, ch_mult=tuple(c // ch for c in channels), num_res_blocks=int(cfg["layers_per_block"]),
                          attn_resolutions=tuple(attn_res), dropout=float(cfg.get("dropout", 0.0)),
                          resolution=int(resolution), downsample_padding="same" if padding == 0 else "symmetric",
                          norm_groups=groups,
                          num_classes=None if num_class_embeds is None else int(num_class_embeds) - 1)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def unet_config_to_diffusers(config: UNetConfig) -> dict[str, Any]:
    """The ``UNet2DModel`` config dict of a :class:`UNetConfig` (the inverse of :func:`unet_config_from_diffusers`)."""
    if config.ch % config.norm_groups:
        raise ValueError(f"diffusers' GroupNorm needs norm_num_groups to divide every layer's channels, but ch = "
                         f"{config.ch} is narrower than norm_groups = {config.norm_groups} (ddpm_core then normalises "
                         f"each channel alone, which UNet2DModel cannot express): use a norm_groups that divides ch")
    levels = range(len(config.ch_mult))
    attn = [config.resolution // 2**level in config.attn_resolutions for level in levels]
    return {
        "_class_name": "UNet2DModel", "sample_size": config.resolution, "in_channels": config.in_channels,
        "out_channels": config.out_channels, "center_input_sample": False, "time_embedding_type": "positional",
        "freq_shift": 1, "flip_sin_to_cos": False,
        "down_block_types": ["AttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "up_block_types": ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        "block_out_channels": [config.ch * m for m in config.ch_mult], "layers_per_block": config.num_res_blocks,
        "mid_block_scale_factor": 1, "downsample_padding": 0 if config.downsample_padding == "same" else 1,
        "dropout": config.dropout, "act_fn": "silu", "attention_head_dim": None,
        "norm_num_groups": config.norm_groups,
        "norm_eps": 1e-6, "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None,
        "num_class_embeds": None if config.num_classes is None else config.num_classes + 1,
    }


_FIXED_SCHEDULER = {"thresholding": (False, None), "rescale_betas_zero_snr": (False, None),
                    "clip_sample": (True, None), "clip_sample_range": (1, 1.0, None)}


def diffusion_from_scheduler(cfg: dict[str, Any], where: str = "scheduler_config.json") -> GaussianDiffusion:
    """The :class:`GaussianDiffusion` of a ``DDPMScheduler`` config: betas, ``prediction_type``, ``variance_type``.

    ``clip_sample`` must be true with range 1: every ``ddpm_core`` sampler clips :math:`\\hat x_0` to [-1, 1] with
    ``clip_denoised=True`` (the lessons' and the commands' default); anything else is refused by name, as is
    ``thresholding``.  ``timestep_spacing`` and ``steps_offset`` only concern respaced sampling and are ignored:
    ``ddpm_core``'s own respacing (``respace``, ``--steps``) applies.
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"{where}: a scheduler config is a dict, got {type(cfg).__name__}")
    name = cfg.get("_class_name", "DDPMScheduler")
    if name not in ("DDPMScheduler", "DDIMScheduler"):
        raise _refuse(where, "_class_name", name, "'DDPMScheduler' or 'DDIMScheduler'")
    for field, accepted in _FIXED_SCHEDULER.items():
        if cfg.get(field) not in accepted:
            raise _refuse(where, field, cfg.get(field), " or ".join(repr(a) for a in accepted if a is not None))
    T = int(cfg.get("num_train_timesteps", 1000))
    if cfg.get("trained_betas") is not None:
        betas = torch.tensor(cfg["trained_betas"], dtype=torch.float64)
        if betas.shape != (T,):
            raise ValueError(f"{where}: trained_betas has {betas.numel()} entries, num_train_timesteps is {T}")
    else:
        schedule = cfg.get("beta_schedule", "linear")
        if schedule not in _SCHEDULES:
            raise _refuse(where, "beta_schedule", schedule, ", ".join(_SCHEDULES) + " (or trained_betas)")
        betas = schedules.get_beta_schedule(_SCHEDULES[schedule], T, float(cfg.get("beta_start", 1e-4)),
                                            float(cfg.get("beta_end", 0.02)))
    prediction = cfg.get("prediction_type", "epsilon")
    if prediction not in _PREDICTION:
        raise _refuse(where, "prediction_type", prediction, ", ".join(_PREDICTION))
    variance = cfg.get("variance_type", "fixed_small")
    if variance not in _VARIANCE:
        raise _refuse(where, "variance_type", variance, ", ".join(_VARIANCE))
    var_type = _VARIANCE[variance]
    learned = var_type in (ModelVarType.LEARNED, ModelVarType.LEARNED_RANGE)
    return GaussianDiffusion(betas, mean_type=_PREDICTION[prediction], var_type=var_type,
                             loss_type="hybrid" if learned else "mse")


def scheduler_config(diffusion: GaussianDiffusion) -> dict[str, Any]:
    """The ``DDPMScheduler`` config of a diffusion: a named ``beta_schedule`` where one reproduces the betas to
    1e-12 (float64), else ``trained_betas``."""
    mean = {v: k for k, v in _PREDICTION.items()}
    if diffusion.mean_type not in mean:
        raise ValueError(f"mean_type {diffusion.mean_type.value!r} has no diffusers prediction_type; accepted: "
                         f"{', '.join(m.value for m in mean)}")
    variance = {ModelVarType.FIXED_SMALL: "fixed_small", ModelVarType.FIXED_LARGE: "fixed_large",
                ModelVarType.LEARNED: "learned", ModelVarType.LEARNED_RANGE: "learned_range"}[diffusion.var_type]
    betas, T = diffusion.betas, diffusion.num_timesteps
    cfg: dict[str, Any] = {"_class_name": "DDPMScheduler", "num_train_timesteps": T,
                           "beta_start": float(betas[0]), "beta_end": float(betas[-1]), "beta_schedule": "linear",
                           "trained_betas": None}
    for theirs, ours in _SCHEDULES.items():
        try:
            candidate = schedules.get_beta_schedule(ours, T, float(betas[0]), float(betas[-1]))
        except ValueError:
            continue
        if torch.allclose(candidate, betas, rtol=1e-12, atol=0):
            cfg["beta_schedule"] = theirs
            break
    else:
        cfg["trained_betas"] = betas.tolist()
    cfg.update({"variance_type": variance, "clip_sample": True, "clip_sample_range": 1.0,
                "prediction_type": mean[diffusion.mean_type], "thresholding": False, "timestep_spacing": "leading",
                "steps_offset": 0})
    return cfg


# ============================================================================ weights
_RES = {"norm1": "norm1", "conv1": "conv1", "temb_proj": "time_emb_proj", "norm2": "norm2", "conv2": "conv2",
        "skip": "conv_shortcut"}
_ATTN_NEW = ("to_q", "to_k", "to_v", "to_out.0")
_ATTN_OLD = ("query", "key", "value", "proj_attn")


def _blocks(config: UNetConfig) -> list[tuple[str, str, str]]:
    """(our prefix, their prefix, kind) for every block, kind in res/attn/conv, walking both layouts in step."""
    pairs: list[tuple[str, str, str]] = []
    levels = len(config.ch_mult)
    i, res = 0, config.resolution
    for level in range(levels):
        for j in range(config.num_res_blocks):
            pairs.append((f"down.{i}.0", f"down_blocks.{level}.resnets.{j}", "res"))
            if res in config.attn_resolutions:
                pairs.append((f"down.{i}.1", f"down_blocks.{level}.attentions.{j}", "attn"))
            i += 1
        if level != levels - 1:
            pairs.append((f"down.{i}.0.conv", f"down_blocks.{level}.downsamplers.0.conv", "conv"))
            i, res = i + 1, res // 2
    pairs += [("mid.0", "mid_block.resnets.0", "res"), ("mid.1", "mid_block.attentions.0", "attn"),
              ("mid.2", "mid_block.resnets.1", "res")]
    i = 0
    for u, level in enumerate(reversed(range(levels))):
        for j in range(config.num_res_blocks + 1):
            pairs.append((f"up.{i}.0", f"up_blocks.{u}.resnets.{j}", "res"))
            if res in config.attn_resolutions:
                pairs.append((f"up.{i}.1", f"up_blocks.{u}.attentions.{j}", "attn"))
            i += 1
        if level != 0:
            pairs.append((f"up.{i}.0.conv", f"up_blocks.{u}.upsamplers.0.conv", "conv"))
            i, res = i + 1, res * 2
    pairs += [("time_embed.mlp.0", "time_embedding.linear_1", "conv"),
              ("time_embed.mlp.2", "time_embedding.linear_2", "conv"),
              ("conv_in", "conv_in", "conv"), ("norm_out", "conv_norm_out", "conv"), ("conv_out", "conv_out", "conv")]
    if config.num_classes is not None:
        pairs.append(("label_embed", "class_embedding", "embed"))
    return pairs


def state_dict_from_diffusers(state: dict[str, torch.Tensor], config: UNetConfig,
                              where: str = "the weights") -> dict[str, torch.Tensor]:
    """Our UNet's state dict from a ``UNet2DModel`` state dict; every source tensor must be used exactly once."""
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise ValueError(f"{where}: the tensor {key!r} is missing (the file does not fit its config.json)")
        if key in used:
            raise ValueError(f"{where}: the tensor {key!r} would be used twice")
        used.add(key)
        return state[key]

    out: dict[str, torch.Tensor] = {}
    for ours, theirs, kind in _blocks(config):
        if kind == "res":
            for a, b in _RES.items():
                if a == "skip" and f"{theirs}.conv_shortcut.weight" not in state:
                    continue
                for p in ("weight", "bias"):
                    out[f"{ours}.{a}.{p}"] = take(f"{theirs}.{b}.{p}")
        elif kind == "attn":
            names = _ATTN_NEW if f"{theirs}.to_q.weight" in state else _ATTN_OLD
            for p in ("weight", "bias"):
                out[f"{ours}.norm.{p}"] = take(f"{theirs}.group_norm.{p}")
            q, k, v, o = (f"{theirs}.{n}" for n in names)
            w = torch.cat([take(f"{q}.weight"), take(f"{k}.weight"), take(f"{v}.weight")])
            out[f"{ours}.qkv.weight"] = w.reshape(*w.shape, 1, 1)
            out[f"{ours}.qkv.bias"] = torch.cat([take(f"{q}.bias"), take(f"{k}.bias"), take(f"{v}.bias")])
            w = take(f"{o}.weight")
            out[f"{ours}.proj_out.weight"] = w.reshape(*w.shape, 1, 1)
            out[f"{ours}.proj_out.bias"] = take(f"{o}.bias")
        elif kind == "embed":
            out[f"{ours}.weight"] = take(f"{theirs}.weight")
        else:
            for p in ("weight", "bias"):
                out[f"{ours}.{p}"] = take(f"{theirs}.{p}")
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"{where}: {len(unused)} tensor(s) fit nowhere in the UNet its config describes, e.g. "
                         f"{unused[:3]}")
    return out


def state_dict_to_diffusers(state: dict[str, torch.Tensor], config: UNetConfig) -> dict[str, torch.Tensor]:
    """A ``UNet2DModel`` state dict (current attention names) from our UNet's state dict."""
    out: dict[str, torch.Tensor] = {}
    for ours, theirs, kind in _blocks(config):
        if kind == "res":
            for a, b in _RES.items():
                if f"{ours}.{a}.weight" in state:
                    for p in ("weight", "bias"):
                        out[f"{theirs}.{b}.{p}"] = state[f"{ours}.{a}.{p}"]
        elif kind == "attn":
            for p in ("weight", "bias"):
                out[f"{theirs}.group_norm.{p}"] = state[f"{ours}.norm.{p}"]
            w, b = state[f"{ours}.qkv.weight"].flatten(1), state[f"{ours}.qkv.bias"]
            for name, wi, bi in zip(_ATTN_NEW[:3], w.chunk(3), b.chunk(3)):
                out[f"{theirs}.{name}.weight"], out[f"{theirs}.{name}.bias"] = wi, bi
            out[f"{theirs}.to_out.0.weight"] = state[f"{ours}.proj_out.weight"].flatten(1)
            out[f"{theirs}.to_out.0.bias"] = state[f"{ours}.proj_out.bias"]
        elif kind == "embed":
            out[f"{theirs}.weight"] = state[f"{ours}.weight"]
        else:
            for p in ("weight", "bias"):
                out[f"{theirs}.{p}"] = state[f"{ours}.{p}"]
    return {k: v.contiguous() for k, v in out.items()}


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a pickle that is not plain tensors, or a damaged file
        raise ValueError(f"{path}: not a plain tensor file that loads with weights_only=True ({err})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a dict of tensors")
    return state


# ============================================================================ folders and the Hub
def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from None


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def diffusers_folder(source: str | os.PathLike, *, download: bool = True,
                     cache_dir: str | os.PathLike | None = None) -> Path:
    """A local diffusers folder: ``source`` itself, or the Hub repo ``source`` downloaded into
    ``<data>/diffusers/<owner>--<name>`` (once; later calls use the copy without a network)."""
    path = Path(source)
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"{source}: a diffusers model is a folder (with unet/ and scheduler/, or "
                                    "config.json and diffusion_pytorch_model.safetensors), not a file")
        return path
    text = str(source)
    if not _HUB_ID.match(text):
        raise FileNotFoundError(f"{source}: no such folder, and not a Hugging Face Hub id (owner/name, e.g. "
                                f"{next(iter(HUB_MODELS))})")
    root = Path(cache_dir) if cache_dir is not None else data_module.default_data_dir() / "diffusers"
    target = root / text.replace("/", "--")
    if (target / ".complete").is_file():
        return target
    hint = (f"{text} is not in {target} and could not be downloaded from the Hugging Face Hub (no network?). "
            f"Run the same command once where there is a network, or download the repo's folder yourself and pass "
            f"its path")
    if not download:
        raise FileNotFoundError(hint)
    try:
        from huggingface_hub import list_repo_files, snapshot_download

        with data_module._socket_timeout(30):
            files = list_repo_files(text)
            weights = [f for f in files if f.endswith(".safetensors")] or [f for f in files if f.endswith(".bin")]
            json_files = [f for f in files if f.endswith(".json")]
            snapshot_download(text, local_dir=str(target), allow_patterns=json_files + weights)
    except Exception as err:  # noqa: BLE001 - offline, unknown repo, a proxy: all mean "not available here"
        raise FileNotFoundError(f"{hint} ({type(err).__name__}: {err})") from None
    io.atomic_write_text(target / ".complete", "downloaded by ddpm_core\n")
    return target


def from_diffusers(source: str | os.PathLike, *, device: str | torch.device = "cpu", download: bool = True,
                   cache_dir: str | os.PathLike | None = None) -> tuple[UNet, GaussianDiffusion]:
    """The UNet (float32, eval mode, on ``device``) and the diffusion of a diffusers folder or Hub id.

    ``source``: a folder with ``unet/`` and ``scheduler/`` (a ``DDPMPipeline``), or with ``config.json``,
    ``diffusion_pytorch_model.safetensors`` (or ``.bin``) and ``scheduler_config.json`` at its root; or a Hub id
    such as ``google/ddpm-cifar10-32``, downloaded once into ``<data>/diffusers/`` (see :func:`diffusers_folder`).
    A class-conditional ``UNet2DModel`` (``num_class_embeds = K + 1``) becomes a UNet with K classes whose last
    embedding is the null label, as ``ddpm_core`` trains them (see :func:`to_diffusers`).
    """
    folder = diffusers_folder(source, download=download, cache_dir=cache_dir)
    unet_dir = folder / "unet" if (folder / "unet" / "config.json").is_file() else folder
    config_file = unet_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder}: no unet/config.json or config.json (the UNet2DModel's config)")
    weights_file = _first(unet_dir, WEIGHT_FILES)
    if weights_file is None:
        raise FileNotFoundError(f"{unet_dir}: no {' or '.join(WEIGHT_FILES)} (the UNet's weights)")
    scheduler_file = _first(folder / "scheduler", ("scheduler_config.json",)) or _first(folder, ("scheduler_config.json",))
    if scheduler_file is None:
        raise FileNotFoundError(f"{folder}: no scheduler/scheduler_config.json or scheduler_config.json (the "
                                "DDPMScheduler's config, which holds the betas)")
    config = unet_config_from_diffusers(_read_json(config_file), str(config_file))
    diffusion = diffusion_from_scheduler(_read_json(scheduler_file), str(scheduler_file))
    learned = diffusion.var_type in (ModelVarType.LEARNED, ModelVarType.LEARNED_RANGE)
    if config.out_channels != config.in_channels * (2 if learned else 1):
        raise ValueError(f"{config_file}: out_channels = {config.out_channels} does not fit the scheduler's "
                         f"variance_type {diffusion.var_type.value!r} (needs {config.in_channels * (2 if learned else 1)})")
    state = _read_weights(weights_file)
    io.check_finite(state, str(weights_file))
    model = UNet(config)
    ours = state_dict_from_diffusers(state, config, str(weights_file))
    mismatch = io.state_dict_mismatch(model.state_dict(), ours)
    if mismatch:
        raise ValueError(f"{weights_file}: the weights do not fit the UNet its config describes ({mismatch})")
    model.load_state_dict({k: v.float() for k, v in ours.items()}, strict=True)
    return model.to(device).eval(), diffusion


def to_diffusers(model: UNet, diffusion: GaussianDiffusion, folder: str | os.PathLike) -> Path:
    """Write ``model`` and ``diffusion`` as a diffusers ``DDPMPipeline`` folder (float32 safetensors weights).

    ``diffusers.DDPMPipeline.from_pretrained(folder)`` loads and runs it (ancestral sampling with the scheduler's
    variance).  A class-conditional model maps onto ``UNet2DModel(num_class_embeds=K + 1)``: labels 0..K-1 are the
    classes, K the null label.  ``DDPMPipeline`` passes no labels, so for class-conditional sampling or guidance call
    the UNet yourself: ``unet(x, t, class_labels=y).sample`` for the conditional prediction, ``class_labels=K`` for
    the unconditional one, and combine them as ``eps_null + s * (eps_y - eps_null)`` before ``scheduler.step``.
    Training-only settings (``class_dropout``) have no diffusers field and are not written.
    """
    from safetensors.torch import save as safetensors_bytes

    if not isinstance(model, UNet):
        raise TypeError(f"to_diffusers exports ddpm_core's UNet, got {type(model).__name__}")
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"{folder} exists and is not an empty folder; pass a new folder")
    scheduler = scheduler_config(diffusion)
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    io.check_finite(state, "the model's weights")
    (folder / "unet").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler").mkdir(exist_ok=True)
    io.atomic_write_bytes(folder / "unet" / WEIGHT_FILES[0], safetensors_bytes(state_dict_to_diffusers(state, model.config)))
    io.atomic_write_json(folder / "unet" / "config.json", unet_config_to_diffusers(model.config))
    io.atomic_write_json(folder / "scheduler" / "scheduler_config.json", scheduler)
    io.atomic_write_json(folder / "model_index.json", {"_class_name": "DDPMPipeline",
                                                       "scheduler": ["diffusers", "DDPMScheduler"],
                                                       "unet": ["diffusers", "UNet2DModel"]})
    return folder
