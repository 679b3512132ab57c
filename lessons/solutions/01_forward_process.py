"""Lesson 01's solutions. Try each exercise yourself first."""

import math

import torch


def exercise_1(alphas_bar):
    """The first code index t with alpha-bar_t < 0.5."""
    return int(torch.nonzero(alphas_bar < 0.5)[0])


def exercise_2(alphas_bar, t=500):
    """The standard deviation of x_t when x_0 = 0: only the noise term is left."""
    return math.sqrt(1 - alphas_bar[t].item())


def moment_kl(x):
    """Exercise 3: KL(N(m, v) || N(0, 1)) per dimension, m and v over all entries of x."""
    x = x.double()
    m, v = x.mean(), x.var()
    return (0.5 * (v + m**2 - 1 - torch.log(v))).item()
