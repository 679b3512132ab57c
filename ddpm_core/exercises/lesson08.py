"""Lesson 08's exercise checks (CIFAR-10 on a GPU)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._common import _say, _scalar, _number, _run, _is_int

__all__ = ["lesson08_warmup_lr", "lesson08_ema_update", "lesson08_ema_memory", "lesson08_rank_positions"]


def lesson08_warmup_lr(function: Callable[..., Any]) -> bool | None:
    """Exercise 1: ``function(k, lr, warmup_steps)`` -> the learning rate of update k = 1, 2, ...:
    :math:`\\eta \\min(k / W, 1)`, and :math:`\\eta` itself when ``warmup_steps`` is 0 (no warm-up)."""
    name = "Exercise 1"
    cases = [(k, 2e-4, 5000) for k in (1, 2, 999, 1000, 2500, 4999, 5000, 5001, 800_000)]
    cases += [(k, 1e-3, 10) for k in range(1, 16)] + [(1, 5e-4, 0), (7, 5e-4, 0)]
    for k, lr, w in cases:
        truth = lr * min(k / w, 1.0) if w > 0 else lr
        done, out = _run(name, function, k, lr, w)
        if done:
            return out
        value = _scalar(out)
        if value is None:
            return _say(name, False, f"return one number, the learning rate; got {type(out).__name__}")
        if math.isclose(value, truth, rel_tol=1e-9, abs_tol=1e-15):
            continue
        where = f"at update k = {k} with lr = {lr:g}, W = {w}"
        if w > 0 and math.isclose(value, lr * min((k - 1) / w, 1.0), rel_tol=1e-9, abs_tol=1e-15):
            return _say(name, False, f"{where}: that is the rate of update k - 1; updates count from k = 1, and "
                                     "update 1 uses lr / W.")
        if w > 0 and math.isclose(value, lr * k / w, rel_tol=1e-9):
            return _say(name, False, f"{where}: after the warm-up the rate stays at lr; take min(k / W, 1).")
        if w > 0 and math.isclose(value, min(k / w, 1.0), rel_tol=1e-9):
            return _say(name, False, f"{where}: multiply the ramp min(k / W, 1) by lr.")
        if not math.isclose(lr, 2e-4) and math.isclose(value, 2e-4 * (min(k / w, 1.0) if w > 0 else 1.0)):
            return _say(name, False, f"{where}: use the lr you are given, not the recipe's 2e-4.")
        return _say(name, False, f"{where} the rate is {truth:.3g}, you gave {value:.3g}: lr * min(k / W, 1), "
                                 "and lr when W = 0.")
    return _say(name, True, "lr * min(k / W, 1): update 1 uses lr / W, update W and later the full lr, and W = 0 means "
                            "no warm-up.")


def lesson08_ema_update(function: Callable[..., Any]) -> bool | None:
    """Exercise 2: ``function(ema, theta, k, decay, warmup)`` -> the EMA after update k = 1, 2, ...:
    :math:`d_k \\bar\\theta + (1 - d_k)\\theta` with :math:`d_k = \\min(d, (1 + k)/(10 + k))` when ``warmup``,
    else :math:`d_k = d`.

    The check runs 120 updates of a random weight sequence and follows the recurrence in float64 itself.
    """
    name = "Exercise 2"
    g = torch.Generator().manual_seed(80)
    thetas = torch.randn(121, 5, generator=g, dtype=torch.float64).cumsum(0)   # a drifting "weight" sequence

    def run(rule):
        ema = thetas[0].tolist()
        for k in range(1, 121):
            d = rule(k)
            ema = [d * e + (1 - d) * p for e, p in zip(ema, thetas[k].tolist())]
        return torch.tensor(ema, dtype=torch.float64)

    decay = 0.9
    rules = {True: lambda k: min(decay, (1 + k) / (10 + k)), False: lambda k: decay}
    for warmup in (True, False):
        truth = run(rules[warmup])
        ema = thetas[0].clone()
        for k in range(1, 121):
            done, out = _run(name, function, ema.clone(), thetas[k].clone(), k, decay, warmup)
            if done:
                return out
            if not isinstance(out, torch.Tensor) or out.shape != ema.shape:
                return _say(name, False, f"return the new EMA, a tensor shaped like theta {tuple(ema.shape)}; got "
                                         f"{type(out).__name__}" + (f" {tuple(out.shape)}"
                                                                    if isinstance(out, torch.Tensor) else ""))
            ema = out.detach().double()
        if torch.allclose(ema, truth, rtol=1e-9, atol=1e-9):
            continue
        mode = "with warm-up" if warmup else "without warm-up"
        alternatives = [
            (lambda k: 1 - rules[warmup](k), "decay and 1 - decay are swapped: the old EMA keeps the weight d_k, "
                                             "the new weights get 1 - d_k."),
            (rules[not warmup], "with warm-up, d_k = min(d, (1 + k)/(10 + k)); without it, d_k = d."
             if warmup else "warmup=False means a constant d_k = d; the warm-up formula is only for warmup=True."),
            (lambda k: min(decay, k / (9 + k)), "that is (1 + (k - 1))/(10 + (k - 1)): the formula uses the update "
                                                "count k = 1, 2, ... itself."),
            (lambda k: max(decay, (1 + k) / (10 + k)), "the warm-up decay is the smaller of d and (1 + k)/(10 + k)."),
        ]
        for rule, why in alternatives:
            if torch.allclose(ema, run(rule), rtol=1e-9, atol=1e-9):
                return _say(name, False, f"{mode}: {why}")
        return _say(name, False, f"{mode} the EMA after 120 updates differs from the recurrence d_k * ema + "
                                 "(1 - d_k) * theta.")
    return _say(name, True, "your update follows the float64 recurrence for 120 updates, with warm-up (the cap "
                            "d = 0.9 takes over at k = 80) and without.")


def lesson08_ema_memory(answer: Any) -> bool | None:
    """Exercise 3: the first number of updates n after which the random initialisation weighs at most 1% in an EMA
    of decay 0.9999 (its weight after n updates is :math:`d^n`), an int."""
    name = "Exercise 3"
    done, value = _number(name, answer, "the number of updates as an int")
    if done:
        return value
    d = 0.9999
    n = 1
    while d ** n > 0.01:   # brute force in plain floats: an independent route to the logarithms
        n += 1
    if not float(value).is_integer():
        return _say(name, False, f"{value!r} is not a whole number of updates: take the smallest integer n with "
                                 "d^n <= 0.01.")
    k = int(value)
    if k == n:
        return _say(name, True, f"d^n <= 0.01 first at n = {n:,} = ceil(ln 0.01 / ln d): about 4.6 times the "
                                f"1/(1 - d) = {round(1 / (1 - d)):,} steps of the EMA's window.")
    if k == n - 1:
        return _say(name, False, f"after {k:,} updates the weight is still {d ** k:.6f} > 0.01: take the ceiling.")
    if k == math.ceil(math.log(100) / (1 - d)) or k == round(math.log(100) / (1 - d)):
        return _say(name, False, "ln(100)/(1 - d) uses ln d ~ -(1 - d); that approximation is two steps off here: "
                                 "use ln d itself.")
    if k == round(1 / (1 - d)):
        return _say(name, False, "1/(1 - d) is the EMA's window; after it the initialisation still weighs 1/e = 37%.")
    return _say(name, False, "the initialisation weighs d^n after n updates: solve d^n <= 0.01 for the smallest n.")


def lesson08_rank_positions(function: Callable[..., Any]) -> bool | None:
    """Exercise 4: ``function(rank, world_size, batch_size)`` -> the positions of the global batch that process
    ``rank`` of ``world_size`` keeps (a list, range, tensor or slice): rank, rank + N, rank + 2N, ..."""
    name = "Exercise 4"
    cases = [(2, 4, 128), (0, 4, 128), (3, 4, 128), (1, 2, 8), (0, 1, 16), (5, 8, 64)]
    for rank, n, b in cases:
        truth = [i for i in range(b) if i % n == rank]
        done, out = _run(name, function, rank, n, b)
        if done:
            return out
        if isinstance(out, slice):
            out = list(range(b))[out]
        try:
            got = [int(v) for v in (out.tolist() if isinstance(out, torch.Tensor) else out)]
        except (TypeError, ValueError):
            return _say(name, False, f"return the positions (a list of ints, a range or a slice), got "
                                     f"{type(out).__name__}")
        if not all(_is_int(v) for v in got):
            return _say(name, False, "return whole-number positions.")
        if got == truth:
            continue
        where = f"for rank {rank} of {n} at batch {b}"
        if got == list(range(rank * (b // n), (rank + 1) * (b // n))):
            return _say(name, False, f"{where}: that is a contiguous block; DistributedSampler (and the trainer) give "
                                     "rank r every N-th position, starting at r.")
        if got == [i for i in range(b) if i % n == (rank + 1) % n]:
            return _say(name, False, f"{where}: ranks count from 0, and rank r starts at position r.")
        if sorted(got) == truth:
            return _say(name, False, f"{where}: the right positions in the wrong order; keep them increasing.")
        return _say(name, False, f"{where} the positions are {truth[:3]} ... {truth[-1]} ({len(truth)} of them): "
                                 "rank, rank + N, rank + 2N, ...")
    return _say(name, True, "rank r keeps positions r, r + N, r + 2N, ...: the N shards together are the whole "
                            "batch, each once.")
