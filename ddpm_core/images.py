"""Image experiments end to end: a config file -> data, UNet and diffusion -> trainer -> checkpoints, sample grids.

``python -m ddpm_core train`` and lessons 07-08 call these functions, so there is one implementation.

Configs live in ``ddpm_core/configs/<name>.json`` (``mnist``, ``cifar10``, ``celeba64``, ``shapes``) or any
JSON file with the same layout::

    {"description": "...",
     "experiment": {<ImageConfig fields>},
     "train": {<TrainConfig fields>},
     "quick": {"experiment": {...}, "train": {...}}}

**Precedence** (later wins), implemented once in :func:`load_config`:

1. the dataclass defaults (:class:`ImageConfig`, :class:`~ddpm_core.training.TrainConfig`);
2. the config file's ``experiment`` and ``train`` sections;
3. its ``quick`` section, only when quick budgets are in force (:func:`ddpm_core.budget.is_quick`);
4. overrides ``{"train.steps": 500, "experiment.unet": "mnist_gpu", ...}`` (the command line's ``--set`` and
   its named options such as ``--steps``).

A run writes into its output folder: ``checkpoint.pt`` (everything needed to resume exactly, written
atomically), ``ema.pt`` (the EMA weights with the network and diffusion description, loadable by
:func:`ddpm_core.pretrained.load_model`), ``config.json`` (the resolved config), ``history.json`` (``{"loss": [[step, loss], ...], "eval": [{"step", "fid", "kid", ...}, ...]}``)
``grids/step_NNNNNNN.png`` (EMA sample grids drawn from the same noise every time) and ``summary.json``
(steps, wall time, images/s, device).
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple

import torch
from PIL import Image

from . import budget, io, respace, sampling, viz
from . import config as config_module
from . import data as data_module
from .diffusion import GaussianDiffusion, LossType, ModelMeanType, ModelVarType
from .models.unet import CONFIGS as UNET_CONFIGS
from .models.unet import UNet, UNetConfig, unet_config
from .schedules import SCHEDULES
from .training import (CHECKPOINT_KEYS, Checkpoints, ImageBatches, LoaderBatches, Periodic, Trainer, TrainConfig,
                       PRECISIONS, compile_mode, precision_reason, precision_autocast)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SECTIONS = ("experiment", "train")
LOADERS = ("memory", "workers")
# Experiment settings a resumed run may change (how often it samples and saves, how it is run); the rest define it.
RESUMABLE_EXPERIMENT_FIELDS = ("sample_every", "checkpoint_every", "checkpoint_minutes", "grid_size", "grid_steps",
                               "compile", "num_workers", "eval_every", "eval_samples", "eval_features", "eval_steps",
                               "inception_weights", "precision")
EVAL_FEATURES = ("auto", "classifier", "inception")


@dataclass
class ImageConfig:
    """What defines an image experiment (everything except the optimisation settings in ``TrainConfig``).

    Diffusion defaults are the paper's: T = 1000, linear betas 1e-4 -> 0.02, eps prediction, fixed-large
    variance (sigma_t^2 = beta_t), L_simple.
    """

    dataset: str = "mnist"
    fallback: str | None = None          # dataset to use when ``dataset`` is absent offline (announced)
    data_limit: int | None = None        # keep only the first N training images
    hflip: bool | None = None            # None: the dataset's default (CIFAR-10 and faces flip, digits do not)
    unet: str = "mnist_cpu"              # a named UNet configuration (ddpm_core.models.unet.CONFIGS)
    unet_overrides: dict[str, Any] = field(default_factory=dict)
    conditional: bool = False            # class-conditional: labels as y, a null label, label dropout
    class_dropout: float = 0.1           # probability a label is replaced by the null label in training
    schedule: str = "linear"
    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    mean_type: str = "eps"
    var_type: str = "fixed_large"
    loss_type: str = "mse"
    sample_every: int = 0                # EMA sample grid every N steps (0: only at the end)
    checkpoint_every: int = 0            # checkpoint every N steps (0: only at the end)
    checkpoint_minutes: float = 0.0      # also checkpoint when this many minutes passed since the last one (0: off);
                                         # a disconnect (Colab) then loses at most that much work
    precision: str = "auto"              # auto | bf16 | fp16 | fp32 (ddpm_core.training.resolve_precision): auto is
                                         # bf16 on GPUs with native bf16, fp16 + GradScaler on other GPUs (T4), fp32
                                         # on the CPU; it may change on resume
    grid_size: int = 64                  # images per grid
    grid_steps: int | None = None        # reverse steps for grids: None = all T (Algorithm 2), else respaced DDPM
    compile: bool | str = False          # torch.compile the training forward/backward (true or a mode name)
    loader: str = "memory"               # "memory": batches drawn from the images held on the training device
                                         # "workers": a DataLoader with worker processes, pinned memory and a
                                         # DistributedSampler (data that do not fit on the GPU)
    num_workers: int = 4                 # DataLoader worker processes (loader "workers")
    eval_every: int = 0                  # FID and KID of the EMA model every N steps into history.json (0: never)
    eval_samples: int = 1000             # samples per evaluation (the papers use 50,000; FID is biased up at small N)
    eval_features: str = "auto"          # "classifier" (FID_clf, digits only), "inception", or "auto" (MNIST:
                                         # classifier, else inception); see ddpm_core.evaluation
    eval_steps: int | None = None        # reverse steps for evaluation samples: None = all T, else respaced DDPM
    inception_weights: str | None = None # a local Inception-v3 weights file (default <data>/inception/, downloaded)

    def __post_init__(self) -> None:
        config_module.check_fields(self, "experiment")
        info = data_module.image_dataset_info(self.dataset)
        if self.fallback is not None:
            fb = data_module.image_dataset_info(self.fallback)
            if (fb.channels, fb.resolution) != (info.channels, info.resolution):
                raise ValueError(f"fallback {self.fallback!r} has a different image shape than {self.dataset!r}")
        if self.unet not in UNET_CONFIGS:
            raise ValueError(f"unknown UNet configuration {self.unet!r}; accepted: {', '.join(UNET_CONFIGS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown beta schedule {self.schedule!r}; accepted: {', '.join(SCHEDULES)}")
        self.mean_type = ModelMeanType.parse(self.mean_type).value
        self.var_type = ModelVarType.parse(self.var_type).value
        self.loss_type = LossType.parse(self.loss_type).value
        if self.conditional and info.num_classes is None:
            raise ValueError(f"dataset {self.dataset!r} has no class labels; set conditional to false")
        for name in ("sample_every", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if (isinstance(self.checkpoint_minutes, bool) or not isinstance(self.checkpoint_minutes, (int, float))
                or not 0 <= self.checkpoint_minutes < float("inf")):
            raise ValueError(f"checkpoint_minutes must be a number >= 0 (0: off), got {self.checkpoint_minutes!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; accepted: {', '.join(PRECISIONS)}")
        if isinstance(self.grid_size, bool) or not isinstance(self.grid_size, int) or self.grid_size < 1:
            raise ValueError(f"grid_size must be a positive integer, got {self.grid_size!r}")
        if self.grid_steps is not None and not 1 <= self.grid_steps <= self.timesteps:
            raise ValueError(f"grid_steps must lie in [1, timesteps={self.timesteps}] or be null, got {self.grid_steps!r}")
        compile_mode(self.compile)  # a bool or a known mode name
        if self.loader not in LOADERS:
            raise ValueError(f"unknown loader {self.loader!r}; accepted: {', '.join(LOADERS)}")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {self.num_workers!r}")
        if isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ValueError(f"eval_every must be an integer >= 0, got {self.eval_every!r}")
        if isinstance(self.eval_samples, bool) or not isinstance(self.eval_samples, int) or self.eval_samples < 10:
            raise ValueError(f"eval_samples must be an integer >= 10, got {self.eval_samples!r}")
        if self.eval_features not in EVAL_FEATURES:
            raise ValueError(f"unknown eval_features {self.eval_features!r}; accepted: {', '.join(EVAL_FEATURES)}")
        if self.eval_feature_kind() == "classifier" and info.channels != 1:
            raise ValueError(f"eval_features 'classifier' (the MNIST classifier) needs grey digits, not {self.dataset!r}; "
                             "use 'inception'")
        if self.eval_steps is not None and not 1 <= self.eval_steps <= self.timesteps:
            raise ValueError(f"eval_steps must lie in [1, timesteps={self.timesteps}] or be null, got {self.eval_steps!r}")
        if self.data_limit is not None and self.data_limit < 1:
            raise ValueError(f"data_limit must be a positive integer or null, got {self.data_limit!r}")
        try:  # the network and the diffusion are checked now, before any data are loaded or steps are run
            self.unet_config()
        except (TypeError, ValueError) as err:
            raise type(err)(f"experiment.unet / unet_overrides: {err}") from None
        self.diffusion()

    def eval_feature_kind(self) -> str:
        """``eval_features`` with ``"auto"`` resolved: the MNIST classifier for digits, Inception-v3 otherwise."""
        if self.eval_features != "auto":
            return self.eval_features
        return "classifier" if self.dataset in ("mnist", "mnist28") else "inception"

    @property
    def info(self) -> data_module.ImageDatasetInfo:
        return data_module.image_dataset_info(self.dataset)

    def unet_config(self) -> UNetConfig:
        """The named UNet config, with the data's channels and resolution, the variance's output channels,
        the classes if conditional, then ``unet_overrides``."""
        info = self.info
        out = info.channels * (2 if self.var_type in ("learned", "learned_range") else 1)
        values: dict[str, Any] = dict(in_channels=info.channels, out_channels=out, resolution=info.resolution)
        if self.conditional:
            values.update(num_classes=info.num_classes, class_dropout=self.class_dropout)
        values.update(self.unet_overrides)
        return unet_config(self.unet, **values)

    def diffusion(self) -> GaussianDiffusion:
        """The experiment's :class:`GaussianDiffusion` (schedule, T, mean/variance/loss types), checked: a
        combination that cannot sample (``eps`` with a schedule ending at alpha-bar = 0) is refused here."""
        diffusion = GaussianDiffusion.from_schedule(self.schedule, self.timesteps, self.beta_start, self.beta_end,
                                                    mean_type=self.mean_type, var_type=self.var_type,
                                                    loss_type=self.loss_type)
        diffusion.check_can_sample()
        return diffusion

    def diffusion_dict(self) -> dict[str, Any]:
        """The plain description stored in checkpoints (read by :func:`ddpm_core.pretrained.diffusion_from_dict`)."""
        return dict(schedule=self.schedule, timesteps=self.timesteps, beta_start=self.beta_start,
                    beta_end=self.beta_end, mean_type=self.mean_type, var_type=self.var_type, loss_type=self.loss_type)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ImageConfig":
        return config_module.from_dict(cls, values, "experiment option")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- configs and precedence
def available_configs() -> list[str]:
    """Names of the configs shipped in ``ddpm_core/configs``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def read_config_file(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """The raw JSON of a shipped config (by name) or of a file (by path), checked for its layout."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise ValueError(f"unknown config {str(name_or_path)!r}; shipped: {', '.join(available_configs())} "
                             "(or give the path of a .json file)")
    elif not path.is_file():
        raise FileNotFoundError(f"no config file at {path}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    unknown = set(raw) - {"description", "quick", *SECTIONS}
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {sorted(unknown)}; accepted: description, "
                         f"{', '.join(SECTIONS)}, quick")
    return raw


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.steps=500", "experiment.unet=mnist_gpu"]`` -> a dict; values are JSON where they parse, else text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like section.option=value, e.g. train.steps=500")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def _apply(sections: dict[str, dict[str, Any]], layer: Any, where: str) -> None:
    if not isinstance(layer, Mapping):
        raise ValueError(f"{where}: expected a mapping of sections ({', '.join(SECTIONS)}), got {layer!r}")
    for section, values in layer.items():
        if section not in SECTIONS:
            raise ValueError(f"{where}: unknown section {section!r}; accepted: {', '.join(SECTIONS)}")
        if not isinstance(values, Mapping):
            raise ValueError(f"{where}: section {section!r} must be a mapping of option names to values, "
                             f"got {values!r}")
        sections[section].update(values)


def load_config(
    name_or_path: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
    *,
    quick: bool | None = None,
) -> tuple[ImageConfig, TrainConfig]:
    """Resolve a config by the precedence in the module docstring.

    ``overrides`` keys are ``section.option`` (sections: ``experiment``, ``train``); ``quick`` defaults to
    :func:`ddpm_core.budget.is_quick`.
    """
    raw = read_config_file(name_or_path)
    sections: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    _apply(sections, {s: raw.get(s, {}) for s in SECTIONS}, str(name_or_path))
    if budget.is_quick() if quick is None else quick:
        _apply(sections, raw.get("quick", {}), f"{name_or_path} (quick section)")
    nested: dict[str, dict[str, Any]] = {}
    for key, value in (overrides or {}).items():
        section, dot, option = key.partition(".")
        if not dot:
            raise ValueError(f"override key {key!r} must be section.option with section one of {', '.join(SECTIONS)}")
        nested.setdefault(section, {})[option] = value
    _apply(sections, nested, "overrides")
    return ImageConfig.from_dict(sections["experiment"]), TrainConfig.from_dict(sections["train"])


# --------------------------------------------------------------------------- build, train, sample
def build(config: ImageConfig) -> tuple[GaussianDiffusion, UNet]:
    """The diffusion and a freshly initialised UNet (the global torch seed decides the initialisation)."""
    return config.diffusion(), UNet(config.unet_config())


def load_data(config: ImageConfig, *, train: bool = True, verbose: bool = True) -> data_module.LabeledImages:
    """The experiment's images (with its fallback and limit)."""
    return data_module.load_image_dataset(config.dataset, train=train, fallback=config.fallback,
                                          limit=config.data_limit, verbose=verbose)


def make_trainer(
    config: ImageConfig,
    train_config: TrainConfig,
    *,
    dataset: data_module.LabeledImages | None = None,
    device: str | torch.device | None = None,
    callbacks: list | None = None,
    **trainer_kwargs: Any,
) -> Trainer:
    """A :class:`Trainer` for the experiment; the UNet's initialisation is seeded by ``train_config.seed``."""
    dataset = dataset if dataset is not None else load_data(config)
    torch.manual_seed(train_config.seed)
    diffusion, model = build(config)
    hflip = config.info.hflip if config.hflip is None else config.hflip
    if config.loader == "workers":
        batches: ImageBatches | LoaderBatches = LoaderBatches(
            dataset, labels=config.conditional, hflip=hflip, num_workers=config.num_workers, seed=train_config.seed)
    else:
        batches = ImageBatches(dataset.images, dataset.labels if config.conditional else None, hflip=hflip)
    extra = {"experiment": config.to_dict(), "unet_config": model.config.to_dict(),
             "diffusion": config.diffusion_dict(), "data_source": dataset.source}
    trainer_kwargs.setdefault("compile", config.compile)
    if "amp" not in trainer_kwargs:
        trainer_kwargs.setdefault("precision", config.precision)
    resumable = [f"experiment.{name}" for name in RESUMABLE_EXPERIMENT_FIELDS]
    return Trainer(model, diffusion, batches, train_config, callbacks=callbacks, device=device, extra_state=extra,
                   resumable_extra=resumable, conditional=config.conditional, **trainer_kwargs)


def grid_labels(config: ImageConfig, n: int) -> torch.Tensor | None:
    """Labels for a sample grid of a conditional model: class ``i % num_classes`` in turn (None if unconditional)."""
    if not config.conditional:
        return None
    return torch.arange(n) % config.info.num_classes  # type: ignore[operator]


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """``model.eval()`` for the duration (no dropout, no label dropout), then back to the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def sample_grid(
    model: torch.nn.Module,
    diffusion: GaussianDiffusion,
    config: ImageConfig,
    *,
    n: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """``n`` (default ``grid_size``) samples from the same seeded noise every call, on the CPU, in [-1, 1]."""
    n = n or config.grid_size
    device = torch.device(device) if device is not None else next(model.parameters()).device
    info = config.info
    shape = (n, info.channels, info.resolution, info.resolution)
    y = grid_labels(config, n)
    generator = torch.Generator(device=device).manual_seed(seed)
    with eval_mode(model), precision_autocast(device, config.precision):
        out = sampling.sample(diffusion, model, shape, steps=config.grid_steps, generator=generator, device=device,
                              clip_denoised=True, model_kwargs=None if y is None else {"y": y.to(device)})
    return out.float().cpu()


def export_ema(trainer: Trainer, path: str | os.PathLike, *, half: bool = False) -> Path:
    """Write the EMA weights with the network and diffusion description (optionally fp16), atomically and with a
    checksum (:func:`ddpm_core.io.save_checkpoint`; refused if a weight is NaN/inf)."""
    state = {k: (v.half() if half and v.is_floating_point() else v).cpu()
             for k, v in trainer.ema.model.state_dict().items()}
    extra = trainer.extra_state
    return io.save_checkpoint({"model": state, "unet_config": extra["unet_config"], "diffusion": extra["diffusion"],
                               "experiment": extra["experiment"], "step": trainer.step}, path)


def checkpoint_bytes(trainer: Trainer) -> int:
    """About how many bytes ``checkpoint.pt`` and ``ema.pt`` take together (weights, EMA, Adam's two moments, EMA)."""
    return 5 * io.tensor_bytes(trainer.model.state_dict()) + 2**20


def run(
    config: ImageConfig,
    train_config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    resume: bool | str | os.PathLike = False,
    progress: bool = True,
    dataset: data_module.LabeledImages | None = None,
    log: Any = print,
) -> Trainer:
    """Train with periodic EMA grids and checkpoints into ``out_dir`` (see the module docstring); returns the trainer.

    ``resume``: True continues from ``out_dir/checkpoint.pt``; a path continues from that checkpoint; ``"auto"``
    continues from ``out_dir/checkpoint.pt`` if it exists and starts afresh otherwise (re-running a lesson's cell
    after a disconnect picks up where the last checkpoint left off).  Settings
    that define the experiment must be the checkpoint's (a difference is refused by name); ``train.steps``, the
    learning rate, warm-up, clipping, EMA and the sample/checkpoint intervals may change, and the changes are
    applied and logged.  A run that has already reached ``train.steps`` says so and writes nothing
    (``trainer.last_run_steps == 0``).

    Before any work, ``out_dir`` is checked: a folder (not a file), writable, with room for the checkpoints.  Every
    file is written atomically; temporary files of an interrupted earlier run are removed.
    """
    out = io.check_output_dir(out_dir, "output folder")
    ckpt_path = out / "checkpoint.pt"
    resume_path = None
    if resume == "auto":
        resume = ckpt_path.is_file()
        log(f"resuming from {ckpt_path}" if resume else f"no checkpoint in {out} yet: starting a new run")
    if resume:
        resume_path = ckpt_path if resume is True else Path(resume)
        if not resume_path.is_file():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {resume_path}")

    def save_grid(tr: Trainer) -> None:
        if not tr.is_main:
            return
        images = sample_grid(tr.ema.model, tr.diffusion, config, device=tr.device)
        nrow = config.info.num_classes if config.conditional else int(len(images) ** 0.5)
        grid = viz.image_grid(images, nrow=nrow or 8)
        path = out / "grids" / f"step_{tr.step:07d}.png"
        viz.save_png(grid, path)
        log(f"step {tr.step}: loss {tr.last_loss:.4f}, {tr.throughput:.0f} images/s; EMA samples -> {path}")

    def save_checkpoint(tr: Trainer) -> None:
        tr.save(ckpt_path)
        if not tr.is_main:
            return
        export_ema(tr, out / "ema.pt")
        io.atomic_write_json(out / "history.json", {"loss": tr.history, "eval": tr.eval_history}, indent=None)

    callbacks = [Checkpoints(save_checkpoint, every=config.checkpoint_every or train_config.steps,
                             minutes=config.checkpoint_minutes),
                 Periodic(config.sample_every or train_config.steps, save_grid)]
    if config.eval_every:  # before the trainer is built: missing Inception weights fail before any step
        dataset = dataset if dataset is not None else load_data(config)
        tracker = make_tracker(config, dataset, device, log)

        def evaluate(tr: Trainer) -> None:
            if not tr.is_main:
                return
            scores = evaluate_model(tr.ema.model, tr.diffusion, config, tracker, device=tr.device)
            tr.eval_history.append({"step": tr.step, **scores})
            label = "FID_clf" if config.eval_feature_kind() == "classifier" else "FID"
            log(f"step {tr.step}: {label} {scores['fid']:.4g}, KID {scores['kid']:.3g} +- {scores['kid_std']:.2g} "
                f"({config.eval_samples} EMA samples)")

        # Evaluation runs before the checkpoint callback, so a checkpoint holds the scores of its own step.
        callbacks.insert(0, Periodic(config.eval_every, evaluate))
    trainer = make_trainer(config, train_config, dataset=dataset, device=device, callbacks=callbacks)
    log(f"precision: {precision_reason(config.precision, trainer.device)}")
    io.check_output_dir(out, "output folder", need_bytes=checkpoint_bytes(trainer))
    if trainer.is_main:
        for folder in (out, out / "grids"):
            io.remove_orphans(folder)
    if resume_path is not None:
        state = io.load_checkpoint(resume_path, required=CHECKPOINT_KEYS,
                                   what="training checkpoint (resume from checkpoint.pt, not ema.pt)")
        saved_unet = (state.get("extra") or {}).get("unet_config")
        if isinstance(saved_unet, dict) and "downsample_padding" not in saved_unet:
            # written before the option existed: trained with symmetric padding (UNetConfig's default)
            state["extra"]["unet_config"] = {**saved_unet, "downsample_padding": "symmetric"}
        changes = trainer.load_state_dict(state)
        log(f"resumed from {resume_path} at step {trainer.step}")
        for change in changes:
            log(f"  changed on resume: {change} (applied)")
        if trainer.step >= train_config.steps:
            log(f"nothing to do: the run is already at step {trainer.step} of train.steps = {train_config.steps}; "
                "raise --steps (train.steps) to train longer")
            trainer.last_run_steps = 0
            return trainer
    if trainer.is_main:
        (out / "grids").mkdir(exist_ok=True)
        io.atomic_write_json(out / "config.json", {"experiment": config.to_dict(), "train": train_config.to_dict()})
    start_step, tic = trainer.step, time.perf_counter()
    trainer.train(progress=progress)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)
    if trainer.is_main:
        summary = {"steps": trainer.step, "steps_this_run": trainer.step - start_step,
                   "wall_time_s": round(time.perf_counter() - tic, 1), "images_per_s": round(trainer.throughput, 1),
                   "final_loss": trainer.last_loss, "processes": trainer.world_size,
                   "data_source": trainer.extra_state.get("data_source"),
                   "eval": trainer.eval_history[-1] if trainer.eval_history else None,
                   "device": torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda"
                   else str(trainer.device), "torch": torch.__version__}
        io.atomic_write_json(out / "summary.json", summary)
    return trainer


def make_tracker(config: ImageConfig, dataset: data_module.LabeledImages, device: Any, log: Any = print):
    """The FID/KID tracker of training-time evaluation: the training images' features, computed once (cached in
    ``<data>/eval_cache``), against which every evaluation's EMA samples are scored."""
    from . import evaluation

    kind = config.eval_feature_kind()
    name = f"{config.dataset}-train-{dataset.source}-{len(dataset)}"
    log(f"evaluation every {config.eval_every} steps: {'FID_clf/KID on the MNIST classifier' if kind == 'classifier' else 'FID/KID on Inception-v3'}"
        f"'s features, {config.eval_samples} EMA samples against the {len(dataset):,} training images")
    return evaluation.FIDTracker(dataset.images, features=kind, inception_weights_path=config.inception_weights,
                                 device=device or "cpu", cache_dir=data_module.default_data_dir() / "eval_cache",
                                 reference_name=name)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, diffusion: GaussianDiffusion, config: ImageConfig, tracker: Any, *,
                   device: Any = None, seed: int = 0) -> dict[str, float]:
    """FID/KID of ``config.eval_samples`` samples of ``model`` (the same seeded noise every time, labels in turn
    for a conditional model), drawn with ``config.eval_steps`` reverse steps."""
    with eval_mode(model):
        x = generate(model, diffusion, config.eval_samples, labels=grid_labels(config, config.eval_samples), seed=seed,
                     device=device, progress=False, steps=config.eval_steps)
    return tracker.score(x)


# --------------------------------------------------------------------------- sampling many images
@torch.no_grad()
def generate(
    model: torch.nn.Module,
    diffusion: GaussianDiffusion,
    n: int,
    *,
    batch_size: int = 256,
    labels: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    precision: str = "auto",
    **sample_kwargs: Any,
) -> torch.Tensor:
    """``n`` images as uint8 ``(n, C, H, W)`` on the CPU, drawn in batches with :func:`ddpm_core.sampling.sample`.

    ``precision`` (:func:`ddpm_core.training.precision_autocast`): ``auto`` samples in bf16 on GPUs with native bf16,
    fp16 on other CUDA GPUs (a T4's tensor cores), fp32 on the CPU; or ``bf16``/``fp16``/``fp32``.

    ``labels``: ``(n,)`` class labels for a conditional model; ``sample_kwargs``: ``sampler``, ``steps``,
    ``skip``, ``eta``, ``guidance_scale``, ... (images are clipped to [-1, 1] at every step).  One seeded
    generator draws everything, so the same arguments give the same images.  Non-finite samples raise
    :class:`ddpm_core.io.NonFiniteError` instead of becoming black images.
    """
    from tqdm.auto import tqdm

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of images must be a positive integer, got {n!r}")
    if labels is not None and labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    cfg = model.config  # type: ignore[attr-defined]
    generator = torch.Generator(device=device).manual_seed(seed)
    out = []
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc="sampling", unit="batch"):
        size = min(batch_size, n - start)
        y = None if labels is None else labels[start:start + size].to(device)
        with precision_autocast(device, precision):
            x = sampling.sample(diffusion, model, (size, cfg.in_channels, cfg.resolution, cfg.resolution), y=y,
                                generator=generator, device=device, clip_denoised=True, **sample_kwargs)
        if not torch.isfinite(x).all():  # uint8 conversion would turn NaN into black pixels without a word
            raise io.NonFiniteError(f"sampling produced NaN or infinite values (images {start}..{start + size - 1}); "
                                    "the model's weights or the sampler settings are broken, nothing was saved")
        out.append(data_module.from_unit_range(x.float()).cpu())
    return torch.cat(out)


class DenoisingMovie(NamedTuple):
    """Frames of one sampling run, taken after the reverse step at the model's (original, 0-based) timestep
    ``timesteps[i]``: ``x_t[i]`` shows the new state, ``x0[i]`` the x_0 predicted at that step."""

    timesteps: list[int]
    x_t: list        # image grids (uint8 arrays) of the states
    x0: list         # image grids of the predicted x_0


@torch.no_grad()
def denoising_movie(
    model: torch.nn.Module,
    diffusion: GaussianDiffusion,
    n: int = 16,
    *,
    frames: int = 40,
    labels: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    scale: int = 2,
    **sample_kwargs: Any,
) -> DenoisingMovie:
    """A grid of ``n`` images being denoised, recorded once as both x_t and the predicted x_0, for
    :func:`ddpm_core.viz.save_animation`.  ``frames`` snapshots are spread evenly over the steps the sampler
    visits (``steps``/``skip`` respace it; ``sampler``, ``eta``, ``guidance_scale`` ... go to the sampler)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    cfg = model.config  # type: ignore[attr-defined]
    steps = sample_kwargs.pop("steps", None)
    skip = sample_kwargs.pop("skip", "linear")
    process = respace.respace(diffusion, steps, skip) if steps is not None else diffusion
    visited = sampling.original_timesteps(process)[::-1]  # the order the sampler visits them: T-1 ... 0
    picks = sorted({visited[round(i * (len(visited) - 1) / max(frames - 1, 1))] for i in range(frames)}, reverse=True)
    generator = torch.Generator(device=device).manual_seed(seed)
    traj = sampling.sample_trajectory(diffusion, model, (n, cfg.in_channels, cfg.resolution, cfg.resolution), picks,
                                      steps=steps, skip=skip, y=None if labels is None else labels.to(device),
                                      generator=generator, device=device, clip_denoised=True, **sample_kwargs)
    nrow = int(n**0.5) or 1
    x_t, x0 = (viz.image_grid_frames(snap.float().clamp(-1, 1), nrow=nrow, scale=scale)
               for snap in (traj.x_t, traj.pred_xstart))
    return DenoisingMovie(list(traj.steps), x_t, x0)


def denoising_frames(
    model: torch.nn.Module,
    diffusion: GaussianDiffusion,
    n: int = 16,
    *,
    predicted_x0: bool = False,
    **kwargs: Any,
) -> list:
    """The x_t frames (or, with ``predicted_x0``, the predicted x_0 frames) of :func:`denoising_movie`."""
    movie = denoising_movie(model, diffusion, n, **kwargs)
    return movie.x0 if predicted_x0 else movie.x_t
