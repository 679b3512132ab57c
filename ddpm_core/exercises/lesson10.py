"""Lesson 10's exercise checks (class conditioning and classifier-free guidance)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._common import NOT_ATTEMPTED, _number, _run, _say, _tensor_close

BATCH, DROPOUT = 256, 0.1   # the pretrained model's training batch and label dropout


def lesson10_label_dropout(expected_null: Any, prob_no_null: Any) -> bool | None:
    """Exercise 1: with batch 256 and label dropout p = 0.1, the mean number of null labels in a batch, and the
    probability that a batch has none.  The truth: the Binomial(256, p) mean 256 p and, multiplied out in plain
    floats, the probability that all 256 labels are kept."""
    name = "Exercise 1"
    if expected_null is None or prob_no_null is None:
        return _say(name, None, NOT_ATTEMPTED)
    done, mean = _number(name, expected_null)
    if done:
        return mean
    truth_mean = sum(DROPOUT for _ in range(BATCH))
    if not math.isclose(mean, truth_mean, rel_tol=1e-6):
        if abs(mean - BATCH * (1 - DROPOUT)) < 1e-9:
            return _say(name, False, "that is the number of labels *kept*; the null labels are the dropped ones.")
        if abs(mean - round(truth_mean)) < 1e-9:
            return _say(name, False, "a mean need not be a whole number: do not round.")
        if abs(mean - math.sqrt(BATCH * DROPOUT * (1 - DROPOUT))) < 1e-9:
            return _say(name, False, "that is the standard deviation of the count; give its mean.")
        return _say(name, False, "each of the 256 labels is dropped independently with probability p: the count is "
                                 "Binomial(256, p).")
    done, prob = _number(name, prob_no_null)
    if done:
        return prob
    truth = 1.0
    for _ in range(BATCH):
        truth *= 1 - DROPOUT
    if math.isclose(prob, truth, rel_tol=1e-6):
        return _say(name, True, f"{truth_mean:.1f} null labels per batch on average, and a batch without any has "
                                f"probability {truth:.1e}: every batch trains the unconditional model.")
    if math.isclose(prob, 1 - truth, rel_tol=1e-9):
        return _say(name, False, "that is the probability of at least one null label; give that of none.")
    if math.isclose(prob, DROPOUT**BATCH, rel_tol=1e-6):
        return _say(name, False, "that is the probability that *every* label is dropped; 'none dropped' means all "
                                 "256 kept.")
    if math.isclose(prob, math.exp(-truth_mean), rel_tol=1e-6):
        return _say(name, False, "that is the Poisson approximation exp(-256 p); give the exact (1 - p)^256.")
    return _say(name, False, "'no null label' means all 256 labels kept, each with probability 1 - p, independently.")


def _eps_pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(16, 1, 4, 4, generator=g, dtype=torch.float64),
            torch.randn(16, 1, 4, 4, generator=g, dtype=torch.float64))


def lesson10_paper_guidance(function: Callable[..., Any]) -> bool | None:
    """Exercise 2: ``function(eps_cond, eps_uncond, w)`` -> the guided eps in Ho & Salimans' convention.

    The truth comes from the lesson's eq. (3) with s = 1 + w, on float64 eps pairs of the check's own, plus the two
    anchors: w = 0 is the conditional model, w = -1 the unconditional one.
    """
    name = "Exercise 2"
    eps_c, eps_u = _eps_pair(10)
    for w in (0.0, -1.0, 1.0, 2.0, 0.3, 6.5):
        done, out = _run(name, function, eps_c.clone(), eps_u.clone(), w)
        if done:
            return out
        s = 1 + w
        truth = eps_u + s * (eps_c - eps_u)
        if _tensor_close(out, truth, 1e-9):
            continue
        if not (isinstance(out, torch.Tensor) and out.shape == eps_c.shape):
            return _say(name, False, f"return a tensor of the shape of eps_cond, {tuple(eps_c.shape)}.")
        if _tensor_close(out, eps_u + w * (eps_c - eps_u), 1e-9):
            return _say(name, False, "that is the lesson's s-form with w in place of s: the paper's w = 0 must give "
                                     "the conditional model, so s = 1 + w.")
        if _tensor_close(out, eps_c + s * (eps_u - eps_c), 1e-9) or _tensor_close(out, (1 + w) * eps_u - w * eps_c,
                                                                                  1e-9):
            return _say(name, False, "the difference is reversed: guidance moves *away* from eps_uncond, towards and "
                                     "beyond eps_cond.")
        if _tensor_close(out, (1 + w) * eps_c, 1e-9) or _tensor_close(out, w * eps_c, 1e-9):
            return _say(name, False, "the weight is applied to eps_cond only; subtract w eps_uncond.")
        if _tensor_close(out, (1 + w) * eps_c + w * eps_u, 1e-9):
            return _say(name, False, "a sign: the unconditional prediction enters with -w.")
        return _say(name, False, f"at w = {w:g}: (1 + w) eps_cond - w eps_uncond; w = 0 is the plain conditional "
                                 "model.")
    return _say(name, True, "(1 + w) eps_cond - w eps_uncond is eq. (3) with s = 1 + w: the paper's w = 1, 2 are our "
                            "s = 2, 3, and w = 0 (s = 1) is no guidance.")


def lesson10_guided_x0(function: Callable[..., Any]) -> bool | None:
    """Exercise 3: ``function(x0_cond, x0_uncond, s)`` -> the x0_hat that guiding eps with scale s gives.

    The check picks x_t, alpha-bar and two eps predictions of its own (float64), maps each eps to x0_hat by the
    formula, and compares with the x0_hat of the guided eps (eq. 3): the truth is computed in eps space.
    """
    name = "Exercise 3"
    eps_c, eps_u = _eps_pair(11)
    x_t = torch.randn(eps_c.shape, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    for abar, s in ((0.078, 0.0), (0.078, 1.0), (0.5, 3.0), (0.02, 7.5), (0.9, -1.0)):
        def x0_of(eps: torch.Tensor) -> torch.Tensor:
            return (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)

        x0_c, x0_u = x0_of(eps_c), x0_of(eps_u)
        truth = x0_of(eps_u + s * (eps_c - eps_u))
        done, out = _run(name, function, x0_c.clone(), x0_u.clone(), s)
        if done:
            return out
        if _tensor_close(out, truth, 1e-8):
            continue
        if not (isinstance(out, torch.Tensor) and out.shape == x0_c.shape):
            return _say(name, False, f"return a tensor of the shape of x0_cond, {tuple(x0_c.shape)}.")
        if _tensor_close(out, truth.clamp(-1, 1), 1e-8):
            return _say(name, False, "do not clip: the check compares the unclipped x0_hat (clipping comes after, in "
                                     "the sampler).")
        if _tensor_close(out, x0_c + s * (x0_c - x0_u), 1e-8):
            return _say(name, False, "that is (1 + s) x0_cond - s x0_uncond: with the lesson's s, s = 1 must give "
                                     "x0_cond itself.")
        if _tensor_close(out, x0_c + s * (x0_u - x0_c), 1e-8):
            return _say(name, False, "the difference is reversed: guidance moves away from x0_uncond.")
        return _say(name, False, f"at s = {s:g} your x0_hat is not the one of the guided eps; x0_hat is affine in eps "
                                 "with weights (1 - s) and s that add up to one.")
    return _say(name, True, "the same line through the two predictions: x0_hat is affine in eps, and the weights "
                            "(1 - s) + s = 1 keep the offset x_t / sqrt(abar).")


class _KnownDenoiser:
    """A stand-in for the class-conditional network: eps(x, t, y) in closed form (nonlinear in x, different for every
    label and timestep), float64, with the network's calling convention (labels a tensor, one per image)."""

    null_label = 10

    def __init__(self) -> None:
        self.calls = 0

    def eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1)
        y, t = y.double().view(shape), t.double().view(shape)
        return torch.tanh(x * (1 + 0.3 * y)) + 0.05 * (y - 4.5) * torch.cos(x + t / 100) + t / 2000

    def __call__(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        self.calls += 1
        if y is None:
            y = torch.full((len(x),), self.null_label)
        if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x):
            raise TypeError("the network wants its labels as a tensor with one label per image, e.g. "
                            "torch.full((len(x),), label)")
        t = torch.as_tensor(t)
        if t.dim() != 1 or len(t) != len(x):
            raise TypeError("the network wants one timestep per image")
        return self.eps(x.double(), t, y).to(x.dtype)


def lesson10_composed_eps(function: Callable[..., Any]) -> bool | None:
    """Exercise 4: ``function(model, x_t, t, labels, scales)`` -> eps(x, null) + sum_i s_i (eps(x, y_i) - eps(x, null)).

    The check passes a stand-in network whose eps is known in closed form (:class:`_KnownDenoiser`), per-image
    timesteps, and one, two and three labels; the truth is that closed form, combined by the formula.
    """
    name = "Exercise 4"
    model = _KnownDenoiser()
    g = torch.Generator().manual_seed(13)
    x_t = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([999, 700, 500, 300, 100, 0])
    for labels, scales in (([4], [3.0]), ([3, 8], [2.0, 2.0]), ([1, 6, 9], [2.0, 1.5, -0.5])):
        done, out = _run(name, function, model, x_t.clone(), t.clone(), list(labels), list(scales))
        if done:
            return out

        def e(y: int) -> torch.Tensor:
            return model.eps(x_t, t, torch.full((len(x_t),), y))

        e0 = e(model.null_label)
        truth = e0 + sum(s * (e(y) - e0) for y, s in zip(labels, scales))
        if _tensor_close(out, truth, 1e-9):
            continue
        if not (isinstance(out, torch.Tensor) and out.shape == x_t.shape):
            return _say(name, False, f"return one eps per image, a tensor of the shape of x_t, {tuple(x_t.shape)}.")
        what = f"labels {labels}, scales {scales}"
        singles = [e0 + s * (e(y) - e0) for y, s in zip(labels, scales)]
        if len(labels) > 1 and any(_tensor_close(out, one, 1e-9) for one in singles):
            return _say(name, False, f"with {what} you return plain guidance for one label only (like sampling "
                                     "'8s at s = 2'): add the direction of every label.")
        if len(labels) > 1 and _tensor_close(out, sum(singles) / len(labels), 1e-9):
            return _say(name, False, f"with {what} you average the guided predictions; the directions add up.")
        if len(labels) > 1 and _tensor_close(out, sum(singles), 1e-9):
            return _say(name, False, f"with {what} eps(x, null) is counted once per label; it is the base, once.")
        if _tensor_close(out, e0 + sum((1 + s) * (e(y) - e0) for y, s in zip(labels, scales)), 1e-9):
            return _say(name, False, "that uses 1 + s_i; with the lesson's convention the weight is s_i.")
        return _say(name, False, f"with {what}: start from eps(x_t, null) and add s_i (eps(x_t, y_i) - eps(x_t, null)) "
                                 "for every pair, each label as torch.full((len(x_t),), y_i), with the given t.")
    return _say(name, True, "eps(x, null) plus every label's scaled direction, on a network whose eps is known in "
                            "closed form, for one (plain guidance), two and three labels.")
