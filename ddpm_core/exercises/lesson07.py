"""Lesson 07's exercise checks (MNIST)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable

import torch

from ._common import NOT_ATTEMPTED, _say, _scalar, _number, _run, _linear_abar

__all__ = ["lesson07_ema_warmup_end", "lesson07_overrides", "lesson07_training_loss", "lesson07_class_accuracy"]


def lesson07_ema_warmup_end(answer: Any) -> bool | None:
    """Exercise 1: the first step k at which the EMA warm-up decay (1 + k) / (10 + k) reaches the cap d = 0.9995."""
    name = "Exercise 1"
    done, value = _number(name, answer, "the step as an int")
    if done:
        return value
    d = Fraction(9995, 10000)  # exact arithmetic: no floating-point edge at the boundary
    truth = next(k for k in range(1, 10**6) if Fraction(1 + k, 10 + k) >= d)
    if not float(value).is_integer():
        return _say(name, False, f"{value!r} is not a whole step: (10 d - 1) / (1 - d) is {truth} up to rounding "
                                 "error; round to the nearest integer before taking the ceiling.")
    k = int(value)
    if k == truth:
        return _say(name, True, f"(1 + k)/(10 + k) >= d <=> k >= (10 d - 1)/(1 - d) = {truth}: the pretrained run "
                                "(7,000 steps) never reached its cap.")
    if abs(k - truth) == 1:
        return _say(name, False, f"{k} is one step off: solve (1 + k) >= d (10 + k) exactly; in floating point "
                                 "(10 d - 1)/(1 - d) = 17990.000000002, whose ceiling is one too many.")
    if k == round(1 / (1 - float(d))):
        return _say(name, False, "1/(1 - d) = 2000 is the length of the averaging window, not the step where "
                                 "the warm-up ends.")
    return _say(name, False, "solve (1 + k)/(10 + k) >= d for the smallest integer k: 1 + k >= d (10 + k).")


_WANTED = {"experiment.unet": "mnist_gpu", "train.batch_size": 64, "experiment.sample_every": 50}


def lesson07_overrides(answer: Any) -> bool | None:
    """Exercise 2: the overrides dict that, on top of the quick section, trains the mnist_gpu UNet at batch 64 and
    draws a sample grid every 50 steps, and changes nothing else.  The check resolves it with ``load_config``."""
    from ..images import load_config  # the config machinery is what the exercise is about

    name = "Exercise 2"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    if not isinstance(answer, dict):
        return _say(name, False, f"give a dict {{'section.option': value}}, got {type(answer).__name__}")
    try:
        exp, train = load_config("mnist", answer, quick=True)
    except (ValueError, TypeError, KeyError) as err:
        return _say(name, False, f"load_config refused it ({err}); keys look like 'experiment.unet' or "
                                 "'train.batch_size'.")
    base = load_config("mnist", quick=True)
    got = {f"experiment.{k}": v for k, v in exp.to_dict().items()}
    got.update({f"train.{k}": v for k, v in train.to_dict().items()})
    was = {f"experiment.{k}": v for k, v in base[0].to_dict().items()}
    was.update({f"train.{k}": v for k, v in base[1].to_dict().items()})
    wrong = [f"{key} = {got[key]!r} (want {value!r})" for key, value in _WANTED.items() if got[key] != value]
    if wrong:
        return _say(name, False, "; ".join(wrong) + ": the batch size is a train option, the network and the "
                                 "sample grids are experiment options.")
    extra = sorted(key for key in got if key not in _WANTED and got[key] != was[key])
    if extra:
        return _say(name, False, f"you also changed {', '.join(extra)}; override only the three options asked for.")
    return _say(name, True, "three overrides on top of the quick section; everything else is as the file says.")


class _TinyEpsModel:
    """A fixed, seeded stand-in for the UNet: eps_theta(x, t) = A x + cos(t / 100) b, per example, float64."""

    def __init__(self, pixels: int):
        g = torch.Generator().manual_seed(70)
        self.A = torch.randn(pixels, pixels, generator=g, dtype=torch.float64) / (2 * math.sqrt(pixels))
        self.b = torch.randn(pixels, generator=g, dtype=torch.float64)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        flat = x.double().reshape(x.shape[0], -1)
        t = torch.as_tensor(t).double().reshape(-1, 1)
        return (flat @ self.A.T + torch.cos(t / 100) * self.b).reshape(x.shape).to(x.dtype)


def lesson07_training_loss(function: Callable[..., Any]) -> bool | None:
    """Exercise 3: ``function(model, x_0, t, eps, alphas_cumprod)`` -> L_simple, one number: Algorithm 1's loss for
    the batch, with :math:`x_t = \\sqrt{\\bar\\alpha_t}x_0 + \\sqrt{1-\\bar\\alpha_t}\\epsilon` and the mean of
    :math:`(\\epsilon - \\epsilon_\\theta(x_t, t))^2` over the batch and the pixels.

    The check uses a fixed linear model of its own, given code timesteps and noise, and works the truth out in float64
    from the linear schedule rebuilt in plain Python floats.
    """
    name = "Exercise 3"
    abar_list = _linear_abar()[1:]  # code t's alpha-bar is abar_list[t]
    table = torch.tensor(abar_list, dtype=torch.float64)
    model = _TinyEpsModel(1 * 4 * 4)
    g = torch.Generator().manual_seed(71)
    for t_codes in ([0, 1, 10, 250, 500, 998], [999, 3, 700, 42, 999, 0]):
        t = torch.tensor(t_codes)
        x_0 = torch.rand(6, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
        eps = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64)

        def loss(t_index=t_codes, signal=math.sqrt, noise=math.sqrt, target="eps", reduce="mean"):
            a = torch.tensor([abar_list[min(k, 999)] for k in t_index], dtype=torch.float64).view(-1, 1, 1, 1)
            s = torch.tensor([signal(v) for v in a.flatten().tolist()], dtype=torch.float64).view(-1, 1, 1, 1)
            n = torch.tensor([noise(1 - v) for v in a.flatten().tolist()], dtype=torch.float64).view(-1, 1, 1, 1)
            x_t = s * x_0 + n * eps
            goal = {"eps": eps, "x0": x_0, "xt": x_t}[target]
            sq = (goal - model(x_t, t)) ** 2
            return float(sq.sum() if reduce == "sum" else sq.mean())

        truth = loss()
        done, out = _run(name, function, model, x_0.clone(), t.clone(), eps.clone(), table.clone())
        if done:
            return out
        if isinstance(out, torch.Tensor) and out.numel() == len(t_codes) and len(t_codes) > 1:
            return _say(name, False, "that is one loss per example; average over the batch too (one number).")
        value = _scalar(out)
        if value is None:
            return _say(name, False, f"return one number (a float or a 0-d tensor), got {type(out).__name__}")
        if math.isclose(value, truth, rel_tol=1e-6):
            continue
        slips = [
            (loss(signal=lambda v: v), "x_t uses sqrt(alpha-bar_t) x_0, not alpha-bar_t x_0."),
            (loss(noise=lambda v: v), "the noise coefficient is sqrt(1 - alpha-bar_t), with the square root."),
            (loss(t_index=[k + 1 for k in t_codes]), "that looks up alpha-bar at t + 1, the paper's index; "
                                                     "code t = paper t - 1, so use alphas_cumprod[t]."),
            (loss(target="x0"), "the network predicts eps, so compare its output with eps, not with x_0."),
            (loss(target="xt"), "compare the network's output with eps, not with x_t."),
            (loss(reduce="sum"), "that is the sum of the squares; L_simple here is their mean (over the batch and "
                                 "the pixels)."),
        ]
        for wrong, why in slips:
            if math.isclose(value, wrong, rel_tol=1e-6):
                return _say(name, False, why)
        return _say(name, False, f"got {value:.6g} where the loss is {truth:.6g}: x_t = sqrt(abar_t) x_0 + "
                                 "sqrt(1 - abar_t) eps, then the mean of (eps - model(x_t, t))^2.")
    return _say(name, True, "Algorithm 1's loss matches a float64 computation on a fixed model at 12 timesteps, "
                            "including code t = 0 and t = 999.")


def lesson07_class_accuracy(function: Callable[..., Any]) -> bool | None:
    """Exercise 4: ``function(logits, requested)`` -> the 10 per-class accuracies: for class c, the share of the
    samples requested as c that the classifier assigns to c (argmax of its logits).

    The check builds logits whose verdicts it chose, so the answer is known by construction.
    """
    name = "Exercise 4"
    g = torch.Generator().manual_seed(72)
    per_class = [5, 6, 3, 8, 4, 7, 5, 2, 6, 4]  # samples requested as class c
    right = [5, 3, 3, 2, 0, 7, 1, 2, 4, 1]      # of those, how many the classifier calls c
    requested, predicted = [], []
    for c, (n, r) in enumerate(zip(per_class, right)):
        for i in range(n):
            requested.append(c)
            predicted.append(c if i < r else (c + 1 + (i % 9)) % 10)
    order = torch.randperm(len(requested), generator=g)
    requested_t = torch.tensor(requested)[order]
    predicted_t = torch.tensor(predicted)[order]
    logits = torch.randn(len(requested), 10, generator=g)
    logits[torch.arange(len(requested)), predicted_t] += 10.0  # the argmax is the chosen verdict
    truth = [r / n for n, r in zip(per_class, right)]
    done, out = _run(name, function, logits.clone(), requested_t.clone())
    if done:
        return out
    try:
        values = [float(v) for v in (out.tolist() if isinstance(out, torch.Tensor) else out)]
    except (TypeError, ValueError):
        return _say(name, False, f"return 10 numbers (a list or a tensor), got {type(out).__name__}")
    if len(values) != 10:
        return _say(name, False, f"return one accuracy per class, 10 numbers; got {len(values)}.")
    if all(abs(v - e) < 1e-6 for v, e in zip(values, truth)):
        return _say(name, True, "for each class, the share of its requested samples that the classifier calls "
                                "that class.")
    if all(abs(v - r) < 1e-6 for v, r in zip(values, right)):
        return _say(name, False, "those are counts; divide by the number of samples requested as each class.")
    called = [predicted.count(c) for c in range(10)]
    if all(abs(v - (r / k if k else 0.0)) < 1e-6 or (k == 0 and math.isnan(v))
           for v, r, k in zip(values, right, called)):
        return _say(name, False, "that divides by the samples the classifier calls c; divide by the samples "
                                 "requested as c.")
    overall = sum(right) / len(requested)
    if all(abs(v - overall) < 1e-6 for v in values):
        return _say(name, False, "that is the overall accuracy for every class; group the samples by requested class.")
    return _say(name, False, "take pred = logits.argmax(dim=1); for class c, average (pred == c) over the samples "
                             "with requested == c.")
