"""Lesson 07's exercise checks: each passes its solution (lessons/solutions/07_mnist.py), rejects the plausible wrong
answers (the known slips among them), and says 'not attempted yet' to an unanswered exercise; the lesson's exercise
cells hold no solution."""

import math

import torch

from ddpm_core import exercises
from exercise_helpers import solution, verdicts

LESSON = "07_mnist"


def not_yet(*args):
    raise NotImplementedError


def test_lesson07_ema_warmup_end(capsys):
    right = solution(LESSON).exercise_1()
    assert verdicts(capsys, exercises.lesson07_ema_warmup_end, [right, float(right), torch.tensor(right)]) == [True] * 3
    d = 0.9995
    wrong = [math.ceil((10 * d - 1) / (1 - d)),    # the floating-point ceiling: one step too many
             (10 * d - 1) / (1 - d),               # not rounded to a whole step
             right - 1,                            # one step short
             round(1 / (1 - d)),                   # the averaging window, not the end of the warm-up
             7000, "17990", None]
    assert verdicts(capsys, exercises.lesson07_ema_warmup_end, wrong) == [False] * 6 + [None]


def test_lesson07_overrides(capsys):
    right = solution(LESSON).exercise_2()
    assert verdicts(capsys, exercises.lesson07_overrides, [right]) == [True]
    wrong = [{"unet": "mnist_gpu", "batch_size": 64, "sample_every": 50},                     # no sections
             {"experiment.unet": "mnist_gpu", "experiment.batch_size": 64, "experiment.sample_every": 50},
             {"experiment.unet": "mnist_gpu", "train.batch_size": 64},                        # one missing
             {**right, "train.steps": 500},                                                   # one too many
             {"experiment.unet": "mnist_cpu", "train.batch_size": 64, "experiment.sample_every": 50},
             "--batch-size 64", None]
    assert verdicts(capsys, exercises.lesson07_overrides, wrong) == [False] * 6 + [None]


def _loss(signal=torch.sqrt, noise=torch.sqrt, shift=0, target="eps", reduce="mean", per_example=False):
    def training_loss(model, x_0, t, eps, alphas_cumprod):
        abar = alphas_cumprod[(t + shift).clamp(max=len(alphas_cumprod) - 1)].view(-1, 1, 1, 1)
        x_t = signal(abar) * x_0 + noise(1 - abar) * eps
        goal = {"eps": eps, "x0": x_0, "xt": x_t}[target]
        sq = (goal - model(x_t, t)) ** 2
        if per_example:
            return sq.mean(dim=(1, 2, 3))
        return sq.sum() if reduce == "sum" else sq.mean()
    return training_loss


def test_lesson07_training_loss(capsys):
    check = exercises.lesson07_training_loss
    assert check(solution(LESSON).training_loss) is True
    assert "Correct!" in capsys.readouterr().out
    slips = {"abar for sqrt(abar)": (_loss(signal=lambda a: a), "not alpha-bar_t x_0"),
             "1 - abar without the root": (_loss(noise=lambda a: a), "with the square root"),
             "the paper's index t + 1": (_loss(shift=1), "paper's index"),
             "x_0 as the target": (_loss(target="x0"), "not with x_0"),
             "x_t as the target": (_loss(target="xt"), "not with x_t"),
             "sum instead of mean": (_loss(reduce="sum"), "sum of the squares"),
             "one loss per example": (_loss(per_example=True), "one loss per example"),
             "a constant": (lambda m, x, t, e, a: 1.0, "where the loss is"),
             "a crash": (lambda m, x, t, e, a: x[99], "raised IndexError")}
    for label, (wrong, why) in slips.items():
        assert check(wrong) is False, label
        assert why in capsys.readouterr().out, label
    assert check(not_yet) is None
    assert "not attempted yet" in capsys.readouterr().out
    assert verdicts(capsys, check, [solution(LESSON).training_loss, _loss(shift=1), not_yet]) == [True, False, None]


def test_lesson07_training_loss_accepts_float32_work():
    def in_float32(model, x_0, t, eps, alphas_cumprod):
        abar = alphas_cumprod.float()[t].view(-1, 1, 1, 1)
        x_t = abar.sqrt() * x_0.float() + (1 - abar).sqrt() * eps.float()
        return ((eps.float() - model(x_t, t)) ** 2).mean().item()
    assert exercises.lesson07_training_loss(in_float32) is True


def test_lesson07_class_accuracy(capsys):
    check = exercises.lesson07_class_accuracy
    right = solution(LESSON).class_accuracy
    assert verdicts(capsys, check, [right, lambda lg, rq: torch.tensor(right(lg, rq))]) == [True, True]

    def counts(logits, requested):
        pred = logits.argmax(1)
        return [int((pred[requested == c] == c).sum()) for c in range(10)]

    def precision(logits, requested):   # divides by the samples called c
        pred = logits.argmax(1)
        return [float((requested[pred == c] == c).double().mean()) for c in range(10)]

    def overall(logits, requested):
        return [float((logits.argmax(1) == requested).double().mean())] * 10

    def soft(logits, requested):        # the mean probability of the requested class
        p = logits.softmax(1)
        return [float(p[requested == c, c].mean()) for c in range(10)]

    def wrong_axis(logits, requested):
        pred = logits.argmax(0)
        return [float((pred == c).double().mean()) for c in range(10)]

    wrong = [counts, precision, overall, soft, wrong_axis, lambda lg, rq: right(lg, rq)[:9], lambda lg, rq: 0.5]
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]
