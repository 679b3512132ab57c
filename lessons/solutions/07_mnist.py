"""Lesson 07's solutions. Try each exercise yourself first."""

import math


def exercise_1(d=0.9995):
    """The first step k with (1 + k) / (10 + k) >= d: k >= (10 d - 1) / (1 - d), rounded before the ceiling (in
    floating point (10 d - 1) / (1 - d) = 17990.000000002, not 17990)."""
    return math.ceil(round((10 * d - 1) / (1 - d), 6))


def exercise_2():
    """The overrides: the network and the sample grids are experiment options, the batch size a train option."""
    return {"experiment.unet": "mnist_gpu", "train.batch_size": 64, "experiment.sample_every": 50}


def training_loss(model, x_0, t, eps, alphas_cumprod):
    """Algorithm 1's loss (L_simple) for a batch at code timesteps t with noise eps: one number."""
    abar = alphas_cumprod.to(x_0.device)[t].to(x_0.dtype).view(-1, *([1] * (x_0.ndim - 1)))
    x_t = abar.sqrt() * x_0 + (1 - abar).sqrt() * eps      # q(x_t | x_0), eq. 4
    return ((eps - model(x_t, t)) ** 2).mean()


def class_accuracy(logits, requested):
    """For each class c, the share of the samples requested as c that the classifier assigns to c."""
    predicted = logits.argmax(dim=1)
    return [float((predicted[requested == c] == c).double().mean()) for c in range(10)]
