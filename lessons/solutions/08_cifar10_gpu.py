"""Lesson 08's solutions. Try each exercise yourself first."""

import math


def warmup_lr(k, lr, warmup_steps):
    """The learning rate of update k = 1, 2, ...: lr * min(k / W, 1), and lr when there is no warm-up (W = 0)."""
    return lr * min(k / warmup_steps, 1.0) if warmup_steps > 0 else lr


def ema_update(ema, theta, k, decay, warmup):
    """The EMA after update k: d_k * ema + (1 - d_k) * theta, d_k = min(d, (1 + k) / (10 + k)) with warm-up."""
    d = min(decay, (1 + k) / (10 + k)) if warmup else decay
    return d * ema + (1 - d) * theta


def exercise_3(d=0.9999):
    """The smallest n with d**n <= 0.01: n >= ln(0.01) / ln(d)."""
    return math.ceil(math.log(0.01) / math.log(d))


def rank_positions(rank, world_size, batch_size):
    """The positions of the global batch that process `rank` keeps: rank, rank + N, rank + 2N, ..."""
    return list(range(rank, batch_size, world_size))
