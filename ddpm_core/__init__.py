"""ddpm_core: a compact, tested implementation of DDPM (Ho et al. 2020), the package behind the course.

The modules follow the order the course meets them::

    io         atomic writes, checksummed checkpoints, safe loading, path checks: the lowest floor
    config     typed option dataclasses (values checked by name against their field types)
    budget     the two switches: quick/full budgets (DDPM_QUICK) and the device (DDPM_DEVICE)
    schedules  beta schedules and alpha-bar tables            (lesson 02)
    losses     Gaussian KL and the discretized decoder        (lesson 03)
    diffusion  forward process, posterior, reverse process,   (lessons 01, 03)
               training losses and bits/dim
    sampling   ancestral (Algorithm 2), DDIM, classifier-free guidance, trajectories, interpolation
    respace    sampling over a subset of timesteps (respacing as a new diffusion)
    data       images (MNIST, CIFAR-10, CelebA 64, generated shapes) with offline fallbacks, toy 2-D sets
    models     time embeddings, the toy MLP, the DDPM UNet and its named configs
    training   the trainer: EMA, warm-up, clipping, atomic checkpoints, exact resume, DDP
    toy        the toy 2-D experiment end to end                      (lessons 04-05)
    images     image experiments from config files                    (lessons 07-08)
    pretrained the shipped MNIST model, exported weights, and the paper's own (from diffusers)
    diffusers_format  the diffusers format both ways: google/ddpm-cifar10-32 in, DDPMPipeline out  (lesson 12)
    metrics    toy-distribution metrics, the MNIST classifier
    evaluation FID, KID, IS, precision/recall, density/coverage, memorisation, bits/dim  (lesson 11)
    viz        image grids, scatter plots, GIF/WebP animations
"""

from . import budget, config, data, diffusion, io, losses, respace, sampling, schedules, viz
from .diffusion import GaussianDiffusion, LossType, ModelMeanType, ModelVarType
from .schedules import SCHEDULES, get_beta_schedule

__version__ = "0.1.0"

__all__ = [
    "GaussianDiffusion",
    "LossType",
    "ModelMeanType",
    "ModelVarType",
    "SCHEDULES",
    "budget",
    "config",
    "data",
    "diffusion",
    "get_beta_schedule",
    "io",
    "losses",
    "respace",
    "sampling",
    "schedules",
    "viz",
]
