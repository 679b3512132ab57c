"""The toy 2-D experiment, end to end: build, train, sample, measure, save.

The command line (``python -m ddpm_core train-toy``) and lessons 04-05 both call these functions,
so there is one implementation of the experiment.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from . import config as config_module
from . import data as data_module
from . import io, metrics, sampling, viz
from .diffusion import DECODERS, GaussianDiffusion, LossType, ModelMeanType, ModelVarType
from .models import ToyMLP
from .models.mlp import check_fourier_kind
from .schedules import SCHEDULES
from .training import CHECKPOINT_KEYS, Periodic, SampledData, Trainer, TrainConfig

EVAL_SAMPLES = 30_000  # the reference evaluator's sample count (54 x 54 histogram bins)


@dataclass
class ToyConfig:
    """What defines a toy model: data, diffusion and network.

    Diffusion defaults are the reference toy setup (eps, fixed-large, mse, T = 100, linear 1e-3 -> 0.2).
    The bound's decoder term L_0 is the continuous Gaussian likelihood (toy points are real-valued, not 8-bit
    pixels in [-1, 1]; lesson 05 shows what the paper's discretized decoder does to them); it matters only for
    the ``kl`` and ``hybrid`` losses and for bits/dim.
    The network defaults (width 64, 3 residual blocks, 4 Fourier input frequencies) were chosen by
    ``benchmarks/toy_benchmark.py``: fast on a 2-core CPU and sharp enough for gaussian25's 25 modes.

    Input features: ``fourier_kind="dyadic"`` (the default) maps each coordinate to ``sin/cos(2^k pi x)``, k < 4;
    ``"gaussian"`` uses ``2 * fourier_features`` random frequency vectors ``B ~ N(0, fourier_scale^2)`` drawn from
    ``fourier_seed`` (Tancik et al. 2020), with no preferred axis.  ``benchmarks/toy_features.py``
    (``benchmarks/results/toy_features.json``, one seed) found them better at 10,000 steps, and with 64 directions
    (``fourier_features=32``) better on gaussian8 at lesson 04's quick budget too, but worse on gaussian25 at that
    budget, so the default stayed.  Checkpoints of dyadic models store no ``fourier_*`` keys but ``fourier_features``, as
    before the option existed (see :func:`checkpoint_config`).
    """

    dataset: str = "gaussian8"
    timesteps: int = 100
    beta_schedule: str = "linear"
    beta_start: float = 1e-3
    beta_end: float = 0.2
    mean_type: str = "eps"
    var_type: str = "fixed_large"
    loss_type: str = "mse"
    decoder: str = "continuous"
    hidden: int = 64
    depth: int = 3
    fourier_features: int = 4
    fourier_kind: str = "dyadic"
    fourier_scale: float = 1.0
    fourier_seed: int = 0

    def __post_init__(self) -> None:
        config_module.check_fields(self, "toy")
        if self.dataset not in data_module.TOY_DATASETS:
            raise ValueError(f"unknown toy dataset {self.dataset!r}; accepted: {', '.join(data_module.TOY_DATASETS)}")
        if self.beta_schedule not in SCHEDULES:
            raise ValueError(f"unknown beta schedule {self.beta_schedule!r}; accepted: {', '.join(SCHEDULES)}")
        # normalise spellings ("fixed-large" -> "fixed_large"), raising on unknown names
        self.mean_type = ModelMeanType.parse(self.mean_type).value
        self.var_type = ModelVarType.parse(self.var_type).value
        self.loss_type = LossType.parse(self.loss_type).value
        if self.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {self.decoder!r}; accepted: {', '.join(DECODERS)}")
        for name in ("timesteps", "hidden", "depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"toy.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.fourier_features < 0:
            raise ValueError(f"toy.fourier_features must be an integer >= 0, got {self.fourier_features!r}")
        check_fourier_kind(self.fourier_kind, self.fourier_scale, "toy.")
        if self.fourier_seed < 0:
            raise ValueError(f"toy.fourier_seed must be an integer >= 0, got {self.fourier_seed!r}")
        self.diffusion().check_can_sample()  # schedule, T and the mean/variance/loss combination, before any work

    def diffusion(self) -> GaussianDiffusion:
        """The :class:`GaussianDiffusion` this config describes."""
        return GaussianDiffusion.from_schedule(
            self.beta_schedule, self.timesteps, self.beta_start, self.beta_end,
            mean_type=self.mean_type, var_type=self.var_type, loss_type=self.loss_type, decoder=self.decoder,
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ToyConfig":
        return config_module.from_dict(cls, values, "toy option")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_train_config(**overrides: Any) -> TrainConfig:
    """The toy default: Adam 1e-3, batch 1,000, 10,000 steps, clip 1.0, EMA 0.995 (the reference's scale of run)."""
    values: dict[str, Any] = dict(steps=10_000, batch_size=1000, lr=1e-3, grad_clip=1.0, ema_decay=0.995,
                                  log_every=100)
    values.update(overrides)
    return TrainConfig(**values)


def build(config: ToyConfig) -> tuple[GaussianDiffusion, ToyMLP]:
    """The diffusion and a freshly initialised model for ``config`` (the global torch seed decides the init)."""
    diffusion = config.diffusion()
    model = ToyMLP(data_dim=2, out_dim=diffusion.model_output_channels(2), hidden=config.hidden, depth=config.depth,
                   fourier_features=config.fourier_features, fourier_kind=config.fourier_kind,
                   fourier_scale=config.fourier_scale, fourier_seed=config.fourier_seed)
    return diffusion, model


def make_trainer(config: ToyConfig, train_config: TrainConfig, *, device: str | torch.device = "cpu",
                 callbacks: list | None = None) -> Trainer:
    """A :class:`Trainer` for the toy experiment; the model's initialisation is seeded by ``train_config.seed``."""
    torch.manual_seed(train_config.seed)
    diffusion, model = build(config)
    dist = data_module.toy_distribution(config.dataset)
    return Trainer(model, diffusion, SampledData(dist.sample), train_config, callbacks=callbacks, device=device,
                   extra_state={"toy": checkpoint_config(config)})


LEGACY_FEATURE_FIELDS = ("fourier_kind", "fourier_scale", "fourier_seed")


def checkpoint_config(config: ToyConfig) -> dict[str, Any]:
    """``config`` as a checkpoint stores it.

    A dyadic network is stored without ``fourier_kind``, ``fourier_scale`` and ``fourier_seed`` (the last two do
    not affect it), exactly as every checkpoint written before the Gaussian features existed: those load (and
    resume) as dyadic, and a new dyadic checkpoint is indistinguishable from an old one.
    """
    values = config.to_dict()
    if config.fourier_kind == "dyadic":
        for name in LEGACY_FEATURE_FIELDS:
            values.pop(name)
    return values


@torch.no_grad()
def sample(model: torch.nn.Module, diffusion: GaussianDiffusion, n: int, *, seed: int = 0,
           device: str | torch.device = "cpu", batch_size: int = 10_000, progress: bool = False) -> torch.Tensor:
    """``n`` samples (Algorithm 2) from ``model``, in batches, reproducible for a seed; returned on the CPU."""
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    out = [
        sampling.p_sample_loop(diffusion, model, (min(batch_size, n - i), 2), generator=generator, device=device,
                               progress=progress).cpu()
        for i in range(0, n, batch_size)
    ]
    return torch.cat(out)


def evaluate(samples: torch.Tensor, dataset: str, *, seed: int = 12345) -> dict[str, Any]:
    """Metrics of ``samples`` against fresh data: histogram KL, and for mixtures mode quality and coverage."""
    if not torch.isfinite(samples).all():
        return {"hist_kl": float("inf"), "non_finite_samples": int((~torch.isfinite(samples)).any(1).sum())}
    dist = data_module.toy_distribution(dataset)
    reference = dist.sample(max(len(samples), EVAL_SAMPLES), torch.Generator().manual_seed(seed))
    result: dict[str, Any] = {"hist_kl": metrics.histogram_kl(samples, reference)}
    if dist.modes is not None:
        stats = metrics.mode_stats(samples, dist)
        result.update(high_quality=stats["high_quality"], modes_covered=stats["modes_covered"],
                      num_modes=stats["num_modes"])
    return result


def load(path: str | Path, *, ema: bool = True, device: str | torch.device = "cpu") -> tuple[GaussianDiffusion, ToyMLP, ToyConfig]:
    """Load a toy checkpoint (``weights_only=True``): the diffusion, the model (EMA weights by default), the config."""
    ckpt = io.load_checkpoint(path, required=("model", "ema"), what="toy-model checkpoint")
    if "toy" not in ckpt.get("extra", {}):
        raise ValueError(f"{path} is not a toy-model checkpoint (no 'toy' config inside)")
    # checkpoints saved before the Gaussian features existed have no fourier_kind: they are dyadic
    config = ToyConfig.from_dict({"fourier_kind": "dyadic", **ckpt["extra"]["toy"]})
    diffusion, model = build(config)
    weights = ckpt["ema" if ema else "model"]
    io.check_finite(weights, f"{path}")
    model.load_state_dict(weights)
    return diffusion, model.to(device).eval(), config


def run(
    config: ToyConfig,
    train_config: TrainConfig,
    out_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    eval_every: int | None = None,
    eval_samples: int = 5_000,
    final_samples: int = EVAL_SAMPLES,
    resume: str | Path | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    gif_frames: int = 40,
) -> dict[str, Any]:
    """Train a toy model and write its artefacts; returns the metrics (also written as JSON).

    Writes into ``out_dir``: ``<dataset>.pt`` (checkpoint, or ``checkpoint`` if given),
    ``<dataset>_samples.png`` (scatter of EMA samples over the data), ``<dataset>_reverse.gif``
    (the reverse process) and ``<dataset>_metrics.json``, each atomically.  Every ``eval_every`` steps the EMA
    model is evaluated on ``eval_samples`` samples and a checkpoint is saved.

    ``resume``: a checkpoint to continue from.  The toy config (data, diffusion, network) and the seed, batch size
    and optimizer must be the checkpoint's (a difference is refused by name); the learning rate, warm-up, clipping,
    EMA and ``steps`` may change, and the changes are applied and printed.  A run already at ``train_config.steps``
    says so and writes nothing (the result then has ``"already_finished": True`` and no files).
    """
    import matplotlib.pyplot as plt

    out_dir = io.check_output_dir(out_dir, "output folder")
    ckpt_path = Path(checkpoint) if checkpoint else out_dir / f"{config.dataset}.pt"
    io.check_output_dir(ckpt_path.parent, "checkpoint folder")
    if resume and not Path(resume).is_file():
        raise FileNotFoundError(f"cannot resume: no checkpoint at {resume}")
    evals: list[dict[str, Any]] = []

    def periodic_eval(tr: Trainer) -> None:
        m = evaluate(sample(tr.ema.model, tr.diffusion, eval_samples, device=device), config.dataset)
        evals.append({"step": tr.step, "loss": tr.last_loss, **m})
        tr.save(ckpt_path)

    callbacks = [Periodic(eval_every, periodic_eval)] if eval_every else []
    trainer = make_trainer(config, train_config, device=device, callbacks=callbacks)
    for folder in {out_dir, ckpt_path.parent}:
        io.remove_orphans(folder)
    if resume:
        trainer.resume(resume)
        if trainer.step >= train_config.steps:
            print(f"nothing to do: {resume} is already at step {trainer.step} of {train_config.steps}; "
                  "raise --steps to train longer")
            return {"dataset": config.dataset, "steps": trainer.step, "already_finished": True, "files": {}}
    start = time.perf_counter()
    trainer.train(progress=progress)
    train_seconds = time.perf_counter() - start
    trainer.save(ckpt_path)

    model, diffusion = trainer.ema.model, trainer.diffusion
    final = sample(model, diffusion, final_samples, device=device)
    result = {"dataset": config.dataset, "steps": trainer.step, "train_seconds": round(train_seconds, 2),
              **evaluate(final, config.dataset), "evaluations": evals,
              "config": config.to_dict(), "train_config": train_config.to_dict()}

    truth = data_module.toy_distribution(config.dataset).sample(final_samples, torch.Generator().manual_seed(1))
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    viz.scatter_2d(truth, ax=axes[0], title=f"{config.dataset}: data", lim=3.5)
    viz.scatter_2d(final, ax=axes[1], title=f"EMA samples, step {trainer.step}", lim=3.5)
    fig.tight_layout()
    io.atomic_write_bytes(out_dir / f"{config.dataset}_samples.png",
                          io.save_to_buffer(lambda f: fig.savefig(f, format="png", dpi=80)))
    plt.close(fig)

    T = diffusion.num_timesteps
    record = sorted({int(round(s)) for s in torch.linspace(T - 1, 0, gif_frames).tolist()}, reverse=True)
    traj = sampling.sample_trajectory(diffusion, model, (2_000, 2), record, generator=torch.Generator().manual_seed(0))
    frames = viz.scatter_frames(traj.x_t, [f"t = {s}" for s in traj.steps], lim=3.5, reference=truth[:2000])
    viz.save_gif(frames, out_dir / f"{config.dataset}_reverse.gif", fps=10)

    io.atomic_write_json(out_dir / f"{config.dataset}_metrics.json", result)
    result["files"] = {
        "checkpoint": str(ckpt_path),
        "samples": str(out_dir / f"{config.dataset}_samples.png"),
        "gif": str(out_dir / f"{config.dataset}_reverse.gif"),
        "metrics": str(out_dir / f"{config.dataset}_metrics.json"),
    }
    return result
