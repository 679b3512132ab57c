"""Lesson 00's exercise checks (setup)."""

from __future__ import annotations

import os
from typing import Any

import torch

from ._common import NOT_ATTEMPTED, _say, _scalar


def lesson00_budget_switch(answer: Any) -> bool | None:
    """Exercise 1: the value of ``DDPM_QUICK`` (a string) that forces the full budget."""
    name = "Exercise 1"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    if not isinstance(answer, str):
        return _say(name, False, f"environment variables hold text: give a string such as '...', not "
                                 f"{type(answer).__name__}")
    from .. import budget

    saved = os.environ.get(budget.QUICK_ENV)
    try:
        os.environ[budget.QUICK_ENV] = answer
        full = budget.is_quick() is False
    except ValueError:
        return _say(name, False, f"{answer!r} is not a value ddpm_core understands: see the table in section 2")
    finally:
        if saved is None:
            os.environ.pop(budget.QUICK_ENV, None)
        else:
            os.environ[budget.QUICK_ENV] = saved
    if not full:
        return _say(name, False, f"{answer!r} asks for the quick budget; which values mean 'full'?")
    return _say(name, True, f"with DDPM_QUICK={answer}, budget.select returns its `full` argument.")


def lesson00_count_sevens(answer: Any, labels: torch.Tensor) -> bool | None:
    """Exercise 2: the number of 7s among the 128 labels picked by ``randperm(len(labels), seed 7)[:128]``.

    ``labels``: the whole training set's labels; the check draws the batch itself.
    """
    name = "Exercise 2"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    value = _scalar(answer)
    if value is None or value != int(value):
        return _say(name, False, f"give a whole number (a count), got {answer!r}")
    batch = torch.randperm(len(labels), generator=torch.Generator().manual_seed(7))[:128]
    truth = sum(1 for i in batch.tolist() if int(labels[i]) == 7)  # plain Python counting
    if int(value) == truth:
        return _say(name, True, "(labels == 7).sum() counts with a boolean mask, no loop needed.")
    if int(value) == sum(1 for y in labels.tolist() if y == 7):
        return _say(name, False, "that counts the 7s in the whole training set; count them in the batch of 128.")
    return _say(name, False, "draw the batch with the seeded permutation (seed 7, first 128), then count its 7s.")


def lesson00_unit_variance(mean: Any, var: Any) -> bool | None:
    """Exercise 3: per-axis mean and variance, shape ``(2,)`` each, of 20,000 ``gaussian25`` points (seed 3)."""
    name = "Exercise 3"
    if mean is None or var is None:
        return _say(name, None, NOT_ATTEMPTED)
    from ..data import make_toy_2d

    mean, var = torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(var, dtype=torch.float64)
    if mean.shape != (2,) or var.shape != (2,):
        return _say(name, False, "compute one mean and one variance per axis: points.mean(dim=0) has shape (2,).")
    points = make_toy_2d("gaussian25", 20_000, generator=torch.Generator().manual_seed(3)).double()
    m = points.sum(0) / len(points)
    ss = ((points - m) ** 2).sum(0)
    variances = (ss / (len(points) - 1), ss / len(points))  # unbiased (torch's default) or biased: both accepted
    if not torch.allclose(mean, m, rtol=0, atol=1e-5):
        return _say(name, False, "the means are off: average the 20,000 points over dim=0 (seed 3).")
    if any(torch.allclose(var, v, rtol=1e-5, atol=0) for v in variances):
        return _say(name, True, "mean ~0 and variance ~1 per axis: the data has the scale of N(0, I), though it "
                                "sits in 25 blobs.")
    if torch.allclose(var, variances[0].sqrt(), rtol=1e-5, atol=0):
        return _say(name, False, "that is the standard deviation; the variance is its square (points.var).")
    return _say(name, False, "the variances are off: points.var(dim=0) on the same 20,000 points.")
