"""The trainer shared by every lesson and the command line: Algorithm 1 with the paper's engineering.

Adam/AdamW, linear learning-rate warm-up, gradient clipping by global norm, an EMA of the weights,
a ``tqdm.auto`` progress bar, periodic callbacks, atomic checkpoints and exact resume.

Exact resume: every random draw of training (batches, timesteps, noise) comes from the
trainer's own ``torch.Generator`` objects; their states, the global torch RNG state (dropout), the
optimizer, scheduler, EMA and step all go into the checkpoint.  So N steps straight and N/2 steps,
save, load in a fresh process, N/2 steps give identical parameters on the CPU.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping, Protocol

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm.auto import tqdm

from . import config as config_module
from . import io
from .data import to_unit_range
from .diffusion import GaussianDiffusion
from .io import load_checkpoint  # noqa: F401  (re-exported: the trainer's checkpoints load with it)

OPTIMIZERS = ("adam", "adamw")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(value: bool | str) -> str | None:
    """``torch.compile``'s mode for a ``compile`` option: True -> the default, a name -> itself (checked)."""
    if isinstance(value, bool):
        return None
    if value not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {value!r}; accepted: true, false, {', '.join(COMPILE_MODES)}")
    return value


def enable_fast_cuda() -> None:
    """What GPU training and sampling here run with: TF32 tensor cores for fp32 matmuls and convolutions
    (10 mantissa bits in the products, fp32 accumulation) and cuDNN's autotuner (fixed shapes)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


# Resuming may change these (they are applied to the restored optimizer and scheduler, and reported) ...
RESUMABLE_TRAIN_FIELDS = ("steps", "lr", "betas", "weight_decay", "warmup_steps", "grad_clip", "ema_decay",
                          "ema_warmup", "log_every")
# ... but not these: they define the run (its batches, its random draws, its optimizer state).
FIXED_TRAIN_FIELDS = ("batch_size", "optimizer", "seed")
# What a training checkpoint (Trainer.save) holds at least.
CHECKPOINT_KEYS = ("model", "ema", "optimizer", "scheduler", "step", "rng")


@dataclass
class TrainConfig:
    """Optimisation settings.  Defaults follow the paper (Adam 2e-4, clip 1.0, EMA 0.9999)."""

    steps: int = 10_000
    batch_size: int = 128
    lr: float = 2e-4
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.9999
    ema_warmup: bool = False  # decay = min(ema_decay, (1 + step) / (10 + step)), as in many DDPM codebases
    seed: int = 0
    log_every: int = 50

    def __post_init__(self) -> None:
        config_module.check_fields(self, "train")  # types first: "abc" for a float is named, not a traceback
        positive_ints = ("steps", "batch_size", "log_every")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"train.{name} must be a positive integer, got {value!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"train.warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"train.lr must be a positive number, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; accepted: {', '.join(OPTIMIZERS)}")
        if not (0.0 <= self.ema_decay < 1.0):
            raise ValueError(f"train.ema_decay must lie in [0, 1), got {self.ema_decay!r}")
        if self.grad_clip is not None and not (self.grad_clip > 0 and math.isfinite(self.grad_clip)):
            raise ValueError(f"train.grad_clip must be a positive number or null (no clipping), got {self.grad_clip!r}")
        if self.weight_decay < 0 or not math.isfinite(self.weight_decay):
            raise ValueError(f"train.weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"train.betas must be two numbers in [0, 1), got {list(self.betas)!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        return config_module.from_dict(cls, values, "training option")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


class DataSource(Protocol):
    """Anything that gives a training batch from the trainer's generator (so resume is exact)."""

    def next_batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor | tuple[torch.Tensor, ...]: ...


class SampledData:
    """A data source that draws fresh samples each batch: ``sample_fn(n, generator) -> (n, ...)``."""

    def __init__(self, sample_fn: Callable[[int, torch.Generator], torch.Tensor]) -> None:
        self.sample_fn = sample_fn

    def next_batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        return self.sample_fn(batch_size, generator)


class ImageBatches:
    """Random batches, drawn with replacement by the trainer's generator, from in-memory images.

    ``images``: ``(N, C, H, W)`` in [-1, 1]; ``labels``: optional ``(N,)`` integers (then batches are
    ``(x, y)`` tuples); ``hflip``: flip each image left-right with probability 1/2 (the paper does for CIFAR-10).
    The random draws are made on the CPU (so a seed gives the same batches on any device); :meth:`to` moves
    the images to an accelerator once, after which a batch costs one small pinned, non-blocking copy of
    indices and no host synchronisation.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, *, hflip: bool = False) -> None:
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        if labels is not None and labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images, self.labels, self.hflip = images, labels, hflip

    def to(self, device: str | torch.device) -> "ImageBatches":
        """Keep the images (and labels) on ``device``; returns self."""
        self.images = self.images.to(device)
        self.labels = self.labels.to(device) if self.labels is not None else None
        return self

    def _on_data_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.images.device.type == "cuda":
            return t.pin_memory().to(self.images.device, non_blocking=True)
        return t.to(self.images.device)

    def next_batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, self.images.shape[0], (batch_size,), generator=generator)
        flip = torch.rand(batch_size, generator=generator) < 0.5 if self.hflip else None
        idx = self._on_data_device(idx)
        x = self.images[idx]
        if flip is not None:
            x = torch.where(self._on_data_device(flip)[:, None, None, None], x.flip(-1), x)
        return x if self.labels is None else (x, self.labels[idx])


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 outside ``torch.distributed``)."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


class _EpochIndices(Sampler[int]):
    """This rank's indices of one epoch: ``DistributedSampler``'s shard, cut to whole global batches, from ``start``."""

    def __init__(self, shard: DistributedSampler, length: int) -> None:
        self.shard, self.length, self.start = shard, length, 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.shard), self.start, self.length)

    def __len__(self) -> int:
        return self.length - self.start


class LoaderBatches:
    """Batches from a ``torch.utils.data.Dataset`` through a ``DataLoader``: worker processes, pinned memory and a
    ``DistributedSampler`` (re-shuffled every epoch with ``set_epoch``).  Use it when the data do not fit on the
    GPU, or are decoded from files; :class:`ImageBatches` is faster for small in-memory sets such as CIFAR-10.

    ``dataset[i]`` is an image ``(C, H, W)`` (float in [-1, 1], or uint8, converted on the training device) or a
    tuple ``(image, label, ...)``; ``labels=True`` yields ``(x, y)`` batches.  Epochs are sampled without
    replacement: epoch ``e`` is the permutation ``DistributedSampler`` draws from ``seed + e``, cut into
    ``len(dataset) // batch_size`` global batches (the last incomplete one is dropped).

    Distributed (torchrun): each process loads only its share of every global batch, the global positions
    ``rank, rank + world_size, ...`` (the shard ``DistributedSampler`` gives it), and the trainer pairs them
    with the same positions of the global timesteps and noise: N processes train on exactly the global
    batches of one process.  The position in the data (batches drawn) is saved in checkpoints, so training
    resumes exactly, on any number of processes.  Random flips are drawn in the main process from the
    trainer's data generator (not in the workers), so they are exact on resume too.
    """

    per_rank = True  # next_batch returns this process's share of the global batch

    def __init__(
        self,
        dataset: Dataset,
        *,
        labels: bool = False,
        hflip: bool = False,
        num_workers: int = 4,
        pin_memory: bool | None = None,
        prefetch_factor: int = 4,
        seed: int = 0,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise ValueError("the dataset is empty")
        self.dataset, self.labels, self.hflip = dataset, labels, hflip
        self.num_workers, self.pin_memory, self.prefetch_factor, self.seed = num_workers, pin_memory, prefetch_factor, seed
        self.device = torch.device("cpu")
        self.batches = 0  # global batches drawn so far: the position in the data
        self._loader: DataLoader | None = None
        self._iterator: Iterator | None = None
        self._batch_size = 0

    def to(self, device: str | torch.device) -> "LoaderBatches":
        """Deliver batches on ``device`` (the dataset itself stays where it is); returns self."""
        self.device = torch.device(device)
        return self

    def steps_per_epoch(self, batch_size: int) -> int:
        """Global batches per epoch: ``len(dataset) // batch_size``."""
        return len(self.dataset) // batch_size  # type: ignore[arg-type]

    def _build(self, batch_size: int) -> None:
        rank, world = rank_and_world_size()
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} (the global batch) must be divisible by the {world} processes")
        if self.steps_per_epoch(batch_size) < 1:
            raise ValueError(f"the dataset has {len(self.dataset)} items, fewer than one batch of {batch_size}")  # type: ignore[arg-type]
        local = batch_size // world
        shard = DistributedSampler(self.dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed,
                                   drop_last=True)
        self._sampler = _EpochIndices(shard, self.steps_per_epoch(batch_size) * local)
        pin = self.device.type == "cuda" if self.pin_memory is None else self.pin_memory
        workers = dict(persistent_workers=True, prefetch_factor=self.prefetch_factor) if self.num_workers else {}
        # Its own generator: a DataLoader otherwise draws worker seeds from the global RNG at every iter(),
        # which would shift the dropout masks of a resumed run.
        self._loader = DataLoader(self.dataset, batch_size=local, sampler=self._sampler, num_workers=self.num_workers,
                                  pin_memory=pin, drop_last=True, generator=torch.Generator().manual_seed(self.seed),
                                  **workers)
        self._batch_size, self._local = batch_size, local

    def _next_local(self, batch_size: int) -> Any:
        if self._loader is None or batch_size != self._batch_size:
            self._build(batch_size)
            self._iterator = None
        if self._iterator is None:  # (re)start at the current position
            epoch, offset = divmod(self.batches, self.steps_per_epoch(batch_size))
            self._sampler.shard.set_epoch(epoch)
            self._sampler.start = offset * self._local
            self._iterator = iter(self._loader)  # type: ignore[arg-type]
        batch = next(self._iterator)
        self.batches += 1
        if self.batches % self.steps_per_epoch(batch_size) == 0:
            self._iterator = None  # the epoch is done: the next batch starts the next epoch
        return batch

    def next_batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        rank, world = rank_and_world_size()
        batch = self._next_local(batch_size)
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = to_unit_range(x)
        if self.hflip:  # coins for the whole global batch, so every process count flips the same images
            flip = (torch.rand(batch_size, generator=generator) < 0.5)[rank::world]
            x = torch.where(flip.to(self.device, non_blocking=True)[:, None, None, None], x.flip(-1), x)
        if not self.labels:
            return x
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("labels=True needs dataset items (image, label)")
        return x, batch[1].to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["seed"]) != self.seed:
            raise ValueError(f"the checkpoint's data were shuffled with seed {state['seed']}, this loader uses {self.seed}")
        self.batches = int(state["batches"])
        self._iterator = None


class EMA:
    r"""Exponential moving average of a model's parameters and buffers: :math:`\bar\theta \leftarrow d\,\bar\theta + (1-d)\,\theta`."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False) -> None:
        self.decay, self.warmup = decay, warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = self.current_decay(step)
        ema_params = [p for p in self.model.parameters()]
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)  # one call for all parameters
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)


class Periodic:
    """Call ``fn(trainer)`` every ``every`` steps (and at the last step if ``at_end``)."""

    def __init__(self, every: int, fn: Callable[["Trainer"], Any], at_end: bool = True) -> None:
        if every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.every, self.fn, self.at_end = every, fn, at_end

    def due(self, trainer: "Trainer") -> bool:
        return trainer.step % self.every == 0 or (self.at_end and trainer.step == trainer.config.steps)

    def __call__(self, trainer: "Trainer") -> None:
        if self.due(trainer):
            self.fn(trainer)


class Checkpoints(Periodic):
    """A :class:`Periodic` ``save(trainer)`` (every ``every`` steps and at the last step) that also saves whenever
    ``minutes`` of wall-clock time have passed since the last save (0: no wall-clock saves), so that an interrupted
    run (a Colab disconnect) loses at most that much work."""

    def __init__(self, save: Callable[["Trainer"], Any], *, every: int, minutes: float = 0.0) -> None:
        super().__init__(every, save)
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 <= minutes < float("inf"):
            raise ValueError(f"minutes must be a number >= 0 (0: no wall-clock saves), got {minutes!r}")
        self.minutes = float(minutes)
        self.last = time.monotonic()

    def __call__(self, trainer: "Trainer") -> None:
        if self.due(trainer) or (self.minutes and time.monotonic() - self.last >= 60 * self.minutes):
            self.fn(trainer)
            self.last = time.monotonic()


class NonFiniteLossError(io.NonFiniteError):
    """Training produced a NaN or infinite loss, or non-finite weights."""


def bf16_autocast_default(device: torch.device) -> bool:
    """bf16 autocast by default only on GPUs with native bf16 (Ampere and newer); a T4 would emulate it slowly."""
    if device.type != "cuda":
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch without the keyword
        return torch.cuda.is_bf16_supported()


PRECISIONS = ("auto", "bf16", "fp16", "fp32")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
MAX_SKIPPED_IN_A_ROW = 50  # fp16: this many overflowing steps in a row stop training (the scale cannot recover)


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``auto`` (or None): bf16 on GPUs with native bf16 (Ampere and newer), fp16 with a ``GradScaler`` on other
    CUDA GPUs (T4, V100, RTX 20xx: their tensor cores are fp16-only), fp32 on the CPU and MPS.  Else the name."""
    if precision is None or precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if bf16_autocast_default(device) else "fp16"
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; accepted: {', '.join(PRECISIONS)}")
    return precision


def precision_reason(precision: str | None, device: torch.device) -> str:
    """Why :func:`resolve_precision` chose what it chose, in words (printed when a run starts)."""
    chosen = resolve_precision(precision, device)
    if precision not in (None, "auto"):
        return f"{chosen} (asked for)"
    if device.type != "cuda":
        return f"fp32 (auto: {device.type})"
    name = torch.cuda.get_device_name(device)
    why = "native bf16" if chosen == "bf16" else "no native bf16: fp16 autocast with a GradScaler"
    return f"{chosen} (auto: {name}, {why})"


def precision_autocast(device: torch.device, precision: str | None = "auto"):
    """The autocast context of ``precision`` on ``device`` (:func:`resolve_precision`): bf16 or fp16, or none (fp32).
    Training and sampling both use it; sampling in fp16 needs no scaler, having no gradients."""
    chosen = resolve_precision(precision, device)
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES.get(chosen, torch.float32),
                          enabled=chosen in AUTOCAST_DTYPES)


def _warmup_lambda(warmup_steps: int) -> Callable[[int], float]:
    return lambda step: min((step + 1) / warmup_steps, 1.0) if warmup_steps > 0 else 1.0


class Trainer:
    """Train ``model`` on ``data`` under ``diffusion`` (Algorithm 1).

    Args:
        model: the denoiser, called as ``model(x_t, t, **model_kwargs)``.
        diffusion: the :class:`GaussianDiffusion` whose ``training_losses`` define the objective.
        data: a :class:`DataSource` (:class:`ImageBatches`, :class:`LoaderBatches`, :class:`SampledData`); its
            batches are tensors ``x_0`` (or ``(x_0, y, ...)`` tuples).  A source with ``state_dict`` /
            ``load_state_dict`` (its position in the data) is saved in checkpoints.
        config: a :class:`TrainConfig`.
        callbacks: called after every step with the trainer (use :class:`Periodic`).
        device: where to train; defaults to the model's device.
        extra_state: JSON-like metadata stored in checkpoints (e.g. the dataset and model config).  It defines
            the experiment: resuming a checkpoint whose ``extra`` differs is refused, naming each field, except
            for the dotted keys in ``resumable_extra`` (e.g. ``"experiment.sample_every"``).
        resumable_extra: keys of ``extra_state`` (dotted, as :func:`ddpm_core.config.flatten` names them) that
            may change when resuming.
        conditional: pass a batch's second element to the model as ``y`` (class labels).
        precision: ``"auto"`` (default), ``"bf16"``, ``"fp16"`` or ``"fp32"`` (:func:`resolve_precision`): bf16 or
            fp16 autocast for the forward pass; fp16 scales the loss with a ``torch.amp.GradScaler``, whose state
            goes into checkpoints.  A step whose gradients overflow is skipped (the weights do not change), counted
            in ``skipped_steps`` and shown in the progress bar; :data:`MAX_SKIPPED_IN_A_ROW` in a row stop training.
        amp: the older switch: True means ``precision="bf16"``, False ``"fp32"`` (``precision`` wins).
        channels_last: NHWC memory layout for 4-D data (default: on for CUDA).
        compile: run the training forward/backward through ``torch.compile``; True for its default mode, or a
            mode name (:data:`COMPILE_MODES`, e.g. ``"max-autotune-no-cudagraphs"``) (the EMA, checkpoints and
            sampling use the plain module, so checkpoints are the same either way).

    No host synchronisation in the step loop: losses are summed on the device and read (one sync) every
    ``config.log_every`` steps, where a NaN/inf stops training; :meth:`save` checks the pending losses first,
    and every floating-point tensor it would hold (weights, EMA, optimizer state) is checked, so a checkpoint is
    never written from non-finite weights.  ``throughput`` is images (samples) per second over the last log interval.

    Resuming (:meth:`resume`, :meth:`load_state_dict`) honours what changed: the settings in
    :data:`RESUMABLE_TRAIN_FIELDS` (lr, weight decay, warm-up, steps, ...) are applied to the restored optimizer and
    scheduler and reported; the ones that define the run (:data:`FIXED_TRAIN_FIELDS`, and ``extra_state``) are
    refused by name, with both values.
    """

    def __init__(
        self,
        model: nn.Module,
        diffusion: GaussianDiffusion,
        data: DataSource,
        config: TrainConfig,
        *,
        callbacks: list[Callable[["Trainer"], Any]] | None = None,
        device: str | torch.device | None = None,
        extra_state: dict[str, Any] | None = None,
        resumable_extra: Collection[str] = (),
        conditional: bool = False,
        amp: bool | None = None,
        precision: str | None = None,
        channels_last: bool | None = None,
        compile: bool | str = False,
    ) -> None:
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        on_cuda = self.device.type == "cuda"
        self.conditional = conditional
        if precision is None and amp is not None:
            precision = "bf16" if amp else "fp32"
        self.precision = resolve_precision(precision, self.device)
        self.amp = self.precision in AUTOCAST_DTYPES
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        self.skipped_steps = 0  # fp16 steps skipped because their gradients overflowed
        self._skipped_in_a_row = 0
        self.channels_last = on_cuda if channels_last is None else channels_last
        self.model = model.to(self.device, memory_format=torch.channels_last) if self.channels_last else model.to(self.device)
        # Distributed (torchrun): config.batch_size is the GLOBAL batch; every rank draws the same global
        # timesteps and noise from identically seeded generators and keeps its positions (rank::world_size) of
        # them and of the global batch (ImageBatches: every rank draws it and slices; LoaderBatches: each rank
        # loads its DistributedSampler shard, the same positions), so N processes train on exactly the batches
        # one process would, and a checkpoint resumes on any number of processes.
        self.rank, self.world_size = rank_and_world_size()
        if config.batch_size % self.world_size:
            raise ValueError(f"batch_size {config.batch_size} (the global batch) must be divisible by the "
                             f"{self.world_size} processes")
        forward: nn.Module = self.model
        if self.world_size > 1:
            forward = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            torch.manual_seed(torch.initial_seed() + 7919 * self.rank)  # dropout masks differ between ranks
        self.forward_model = torch.compile(forward, mode=compile_mode(compile)) if compile else forward
        if self.device.type == "cuda" and hasattr(data, "to"):
            data = data.to(self.device)  # ImageBatches: the images live on the GPU; LoaderBatches: batches go there
        self.diffusion, self.data, self.config = diffusion, data, config
        # Checked once here instead of with a device sync in every step: the data range for the 8-bit decoder,
        # and the labels against the network's classes.
        images, labels = getattr(data, "images", None), getattr(data, "labels", None)
        if isinstance(images, torch.Tensor) and diffusion.loss_type.value in ("kl", "hybrid"):
            diffusion.check_decoder_range(images)
        num_classes = getattr(getattr(model, "config", None), "num_classes", None)
        if conditional and isinstance(labels, torch.Tensor) and num_classes is not None and labels.numel():
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= num_classes:
                raise ValueError(f"the data's labels run from {lo} to {hi}, but the network has {num_classes} classes "
                                 f"(labels 0..{num_classes - 1})")
        self.callbacks = list(callbacks or [])
        self.extra_state = dict(extra_state or {})
        self.resumable_extra = frozenset(resumable_extra)
        opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        # The fused kernel updates every parameter in one call (CPU and CUDA): same maths, far less overhead.
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = opt_cls(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay,
                                 fused=fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _warmup_lambda(config.warmup_steps))
        self.ema = EMA(model, config.ema_decay, config.ema_warmup)
        # Data are drawn on the CPU, timesteps and noise on the training device: one generator each.
        self.data_generator = torch.Generator().manual_seed(config.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.step = 0
        self.history: list[tuple[int, float]] = []  # (step, mean loss over the last log interval)
        self.eval_history: list[dict[str, float]] = []  # {"step": ..., "fid": ..., ...} from evaluation callbacks
        self.last_loss = float("nan")
        self.throughput = float("nan")  # samples per second over the last log interval
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_count = 0
        self.last_run_steps = 0  # steps the last call of train() made

    # ----------------------------------------------------------------------- one step
    def train_step(self) -> torch.Tensor:
        """One optimisation step; returns the (detached) mean loss."""
        self.model.train()
        batch = self.data.next_batch(self.config.batch_size, self.data_generator)
        is_tuple = isinstance(batch, (tuple, list))
        if self.world_size > 1 and not getattr(self.data, "per_rank", False):
            batch = tuple(b[self._rank_slice] for b in batch) if is_tuple else batch[self._rank_slice]
        x0 = (batch[0] if is_tuple else batch).to(self.device, non_blocking=True)
        if self.channels_last and x0.ndim == 4:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        model_kwargs = None
        if self.conditional:
            if not is_tuple or len(batch) < 2:
                raise ValueError("conditional training needs (x, labels) batches from the data source")
            model_kwargs = {"y": batch[1].to(self.device, non_blocking=True)}
        n, shape = self.config.batch_size, (self.config.batch_size, *x0.shape[1:])
        t = self.diffusion.sample_timesteps(n, device=self.device, generator=self.generator)
        noise = torch.randn(shape, generator=self.generator, device=self.device, dtype=x0.dtype)
        if self.world_size > 1:
            t, noise = t[self._rank_slice], noise[self._rank_slice]
        if self.channels_last and noise.ndim == 4:
            noise = noise.contiguous(memory_format=torch.channels_last)
        with precision_autocast(self.device, self.precision):
            losses = self.diffusion.training_losses(self.forward_model, x0, t, noise=noise,
                                                    model_kwargs=model_kwargs)
        loss = losses["loss"].float().mean()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            if self.config.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip, foreach=True)
            self.optimizer.step()
            self.scheduler.step()
        else:
            self._scaled_step(loss)
        self.step += 1
        self.ema.update(self.model, self.step)
        loss = loss.detach()
        self._loss_sum += loss
        self._loss_count += 1
        return loss

    def _scaled_step(self, loss: torch.Tensor) -> None:
        """fp16: backward on the scaled loss, unscale, clip, then step unless the gradients overflowed (one sync,
        inside ``GradScaler.step``); a skipped step leaves the weights and the learning-rate schedule as they were."""
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip, foreach=True)
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scaler.get_scale() < scale:  # the scaler backs off exactly when it skipped the step
            self.skipped_steps += 1
            self._skipped_in_a_row += 1
            if self._skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
                raise NonFiniteLossError(
                    f"fp16: the gradients overflowed in {self._skipped_in_a_row} steps in a row (up to step "
                    f"{self.step + 1}; loss scale now {self.scaler.get_scale():g}), so no step was taken; training "
                    "stopped, the last saved checkpoint is untouched. Use precision bf16 or fp32, or a lower learning "
                    "rate")
        else:
            self._skipped_in_a_row = 0
            self.scheduler.step()

    @property
    def _rank_slice(self) -> slice:
        """This process's positions in the global batch: rank, rank + world_size, ... (DistributedSampler's shard)."""
        return slice(self.rank, None, self.world_size)

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0, or the only process)."""
        return self.rank == 0

    def pending_loss(self) -> float | None:
        """Mean loss of the steps since the last log (one host sync); raises on NaN/inf.  None if no steps."""
        if self._loss_count == 0:
            return None
        value = float(self._loss_sum) / self._loss_count
        if not math.isfinite(value):
            first = self.step - self._loss_count + 1
            where = f"at step {self.step}" if first == self.step else f"between steps {first} and {self.step}"
            raise NonFiniteLossError(
                f"loss became {value} {where}; training stopped, the last saved checkpoint is untouched "
                "(try a lower learning rate, gradient clipping or warm-up)"
            )
        return value

    def _log(self, elapsed: float, samples: int) -> None:
        value = self.pending_loss()
        if value is None:
            return
        self.last_loss = value
        self.history.append((self.step, value))
        self.throughput = samples / elapsed if elapsed > 0 else float("nan")
        self._loss_sum.zero_()
        self._loss_count = 0

    def train(self, steps: int | None = None, *, progress: bool = True) -> list[tuple[int, float]]:
        """Train until ``config.steps`` (or for ``steps`` more steps, at least 1); returns the loss history.

        A trainer already at ``config.steps`` does nothing (``last_run_steps`` is then 0).
        """
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(f"steps must be a positive integer (the number of steps to train), got {steps!r}")
        target = self.config.steps if steps is None else self.step + steps
        self.last_run_steps = 0
        if self.step >= target:
            return self.history
        bar = tqdm(total=target, initial=self.step, disable=not progress or not self.is_main, desc="training",
                   dynamic_ncols=True)
        tic, done = time.perf_counter(), 0
        try:
            while self.step < target:
                self.train_step()
                done += 1
                self.last_run_steps += 1
                if self.step % self.config.log_every == 0 or self.step == target:
                    self._log(time.perf_counter() - tic, done * self.config.batch_size)  # syncs once
                    tic, done = time.perf_counter(), 0
                    latest = {k: f"{v:.3g}" for k, v in (self.eval_history[-1] if self.eval_history else {}).items()
                              if k in ("fid", "kid")}
                    skipped = {"skipped": self.skipped_steps} if self.scaler is not None else {}
                    bar.set_postfix(loss=f"{self.last_loss:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}",
                                    img_s=f"{self.throughput:.0f}", **skipped, **latest)
                bar.update(1)
                for callback in self.callbacks:
                    callback(self)
        finally:
            bar.close()
        return self.history

    def projected_time(self, steps: int | None = None) -> float:
        """Seconds ``steps`` (default ``config.steps``) would take at the last measured throughput."""
        steps = self.config.steps if steps is None else steps
        return steps * self.config.batch_size / self.throughput

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly; tensors and plain Python values only (``weights_only`` loads it)."""
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "data_generator": self.data_generator.get_state(),
            "generator": self.generator.get_state(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "history": [list(h) for h in self.history],
            "eval_history": [dict(e) for e in self.eval_history],
            "rng": rng,
            "precision": self.precision,
            "skipped_steps": self.skipped_steps,
            **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
            "config": self.config.to_dict(),
            "extra": self.extra_state,
            **({"data": self.data.state_dict()} if hasattr(self.data, "state_dict") else {}),
        }

    def resume_changes(self, state: Mapping[str, Any]) -> list[str]:
        """Compare a checkpoint's settings with this trainer's, before anything is loaded.

        Returns the changed settings that resuming will apply (``"lr: 0.0002 -> 0.0001"``); raises ``ValueError``
        naming every setting that defines the run and differs (training settings in :data:`FIXED_TRAIN_FIELDS`,
        and ``extra_state`` outside ``resumable_extra``), with the checkpoint's value and this run's.
        """
        saved_train = dict(state.get("config") or {})
        current_train = self.config.to_dict()
        applied, refused = [], []
        for name in sorted(set(saved_train) & set(current_train)):
            old, new = _plain(saved_train[name]), _plain(current_train[name])
            if old != new:
                (refused if name in FIXED_TRAIN_FIELDS else applied).append(f"train.{name}: {old!r} -> {new!r}")
        saved_extra, current_extra = dict(state.get("extra") or {}), self.extra_state
        if set(saved_extra) != set(current_extra):
            raise ValueError(
                "cannot resume: the checkpoint is from another kind of experiment (it describes "
                f"{', '.join(sorted(saved_extra)) or 'nothing'}; this run describes "
                f"{', '.join(sorted(current_extra)) or 'nothing'}): a toy checkpoint resumes with train-toy, an image "
                "checkpoint (checkpoint.pt) with train")
        flat_saved = config_module.flatten({k: v for k, v in saved_extra.items() if k in current_extra})
        flat_current = config_module.flatten({k: v for k, v in current_extra.items() if k in saved_extra})
        for name in sorted(set(flat_saved) | set(flat_current)):
            old, new = _plain(flat_saved.get(name, _ABSENT)), _plain(flat_current.get(name, _ABSENT))
            if old != new:
                (applied if name in self.resumable_extra else refused).append(f"{name}: {old!r} -> {new!r}")
        saved_precision = state.get("precision")
        if saved_precision is not None and saved_precision != self.precision:
            applied.append(f"precision: {saved_precision!r} -> {self.precision!r}")  # fp16: a fresh loss scale
        if refused:
            may = sorted({f"train.{n}" for n in RESUMABLE_TRAIN_FIELDS} | set(self.resumable_extra))
            raise ValueError(
                "cannot resume: these settings define the run and differ from the checkpoint's (checkpoint -> this "
                "run): " + "; ".join(refused) + ". Use the checkpoint's values, or start a new run in another folder. "
                "Settings that may change on resume: " + ", ".join(may))
        return applied

    def load_state_dict(self, state: dict[str, Any]) -> list[str]:
        """Restore a checkpoint's state (after :meth:`resume_changes` has accepted it); returns the applied changes.

        Changed settings from :data:`RESUMABLE_TRAIN_FIELDS` are applied to the restored optimizer and scheduler
        (the checkpoint's optimizer state would otherwise bring back its old learning rate and weight decay).
        """
        changes = self.resume_changes(state)
        if hasattr(self.data, "load_state_dict") and "data" not in state:
            raise ValueError("the checkpoint has no data position (written with in-memory batches); resume it "
                             "with the same kind of data source")
        bad = io.non_finite_entries({k: state[k] for k in ("model", "ema", "optimizer") if k in state})
        if bad:
            raise io.NonFiniteError(f"the checkpoint holds NaN or infinite values (in {', '.join(bad)}); "
                                    "it cannot be resumed")
        mismatch = io.state_dict_mismatch(self.model.state_dict(), state["model"])
        if mismatch:
            raise ValueError(f"the checkpoint's network does not fit this run's ({mismatch}): it was trained with "
                             "another architecture")
        self.model.load_state_dict(state["model"])
        self.ema.model.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.history = [(int(s), float(l)) for s, l in state.get("history", [])]
        self.eval_history = [dict(e) for e in state.get("eval_history", [])]
        self.skipped_steps = int(state.get("skipped_steps", 0))
        if self.scaler is not None and "scaler" in state:  # the same fp16 run: its loss scale, exactly
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        self.data_generator.set_state(state["rng"]["data_generator"])
        self.generator.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        if hasattr(self.data, "load_state_dict"):
            self.data.load_state_dict(state["data"])
        if any(c.startswith("train.") for c in changes):
            self._apply_optimizer_settings()
        return changes

    def _apply_optimizer_settings(self) -> None:
        """Put this config's lr, betas, weight decay and warm-up into the restored optimizer and scheduler."""
        cfg, warmup = self.config, _warmup_lambda(self.config.warmup_steps)
        self.scheduler.base_lrs = [cfg.lr for _ in self.optimizer.param_groups]
        self.scheduler.lr_lambdas = [warmup for _ in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            group.update(initial_lr=cfg.lr, lr=cfg.lr * warmup(self.scheduler.last_epoch), betas=cfg.betas,
                         weight_decay=cfg.weight_decay)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]  # what get_last_lr() reads

    def save(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint atomically, with a checksum (:func:`ddpm_core.io.save_checkpoint`).

        Refused, with the last saved checkpoint left untouched, when the pending losses or any weight, EMA weight or
        optimizer-state value is NaN/inf (:class:`NonFiniteLossError`).
        """
        self.pending_loss()
        state = self.state_dict()
        bad = io.non_finite_entries(state)  # every rank checks, so every rank stops together
        if bad:
            raise NonFiniteLossError(
                f"training diverged by step {self.step}: the weights hold NaN or infinite values (in {', '.join(bad)}); "
                "the checkpoint was not written and the last saved one is untouched (try a lower learning rate, "
                "gradient clipping or warm-up)")
        if not self.is_main:  # one writer; the states are identical on every rank
            return Path(path)
        return io.save_checkpoint(state, path)

    def resume(self, path: str | os.PathLike, *, log: Callable[[str], Any] | None = print) -> list[str]:
        """Load a checkpoint written by :meth:`save` (checksum verified, ``weights_only=True``) and continue from its
        step; the changed settings it applies are logged (one line each) and returned."""
        changes = self.load_state_dict(io.load_checkpoint(path, required=CHECKPOINT_KEYS,
                                                          what="training checkpoint (e.g. checkpoint.pt, not ema.pt)"))
        if log is not None and self.is_main:
            for change in changes:
                log(f"resume: {change} (applied)")
        return changes


class _Absent:
    def __repr__(self) -> str:
        return "(not set)"


_ABSENT = _Absent()


def _plain(value: Any) -> Any:
    """Tuples as lists, so a config read back from JSON compares equal to the one it was written from."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def init_distributed() -> torch.device | None:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1); returns this rank's device.

    NCCL on CUDA (one GPU per process, ``cuda:LOCAL_RANK``), gloo on the CPU.  Returns None when not
    launched by torchrun (a single process), so callers can use it unconditionally.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")
