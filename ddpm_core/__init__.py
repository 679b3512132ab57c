"""ddpm_core: a compact, tested implementation of DDPM (Ho et al. 2020), the package behind the course.

The modules follow the order the course meets them::

    budget     the one quick/full switch (DDPM_QUICK)
    schedules  beta schedules and alpha-bar tables            (lesson 02)
    losses     Gaussian KL and the discretized decoder        (lesson 03)
    diffusion  forward process, posterior, reverse process,   (lessons 01, 03)
               training losses and bits/dim
    sampling   ancestral sampling, Algorithm 2
    data       MNIST with an offline fallback, toy 2-D sets
    viz        image grids and scatter plots
"""

from . import budget, data, diffusion, losses, sampling, schedules, viz
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
    "data",
    "diffusion",
    "get_beta_schedule",
    "losses",
    "sampling",
    "schedules",
    "viz",
]
