"""Lesson 08's exercise checks: each passes its solution (lessons/solutions/08_cifar10_gpu.py), rejects the plausible
wrong answers (the known slips among them), and says 'not attempted yet' to an unanswered exercise; the lesson's
exercise cells hold no solution."""

import math

import torch

from ddpm_core import exercises
from ddpm_core.training import Trainer
from exercise_helpers import solution, verdicts

LESSON = "08_cifar10_gpu"


def not_yet(*args):
    raise NotImplementedError


def test_lesson08_warmup_lr(capsys):
    check = exercises.lesson08_warmup_lr
    right = solution(LESSON).warmup_lr
    wrong = [lambda k, lr, w: lr * min((k - 1) / w, 1.0) if w else lr,    # counting updates from 0
             lambda k, lr, w: lr * k / w if w else lr,                    # no cap after the warm-up
             lambda k, lr, w: min(k / w, 1.0) if w else 1.0,              # the ramp without lr
             lambda k, lr, w: 2e-4 * min(k / w, 1.0) if w else 2e-4,      # the recipe's lr hard-coded
             lambda k, lr, w: lr * min(k / w, 1.0),                       # W = 0: division by zero
             lambda k, lr, w: lr * min(k / 5000, 1.0),                    # the recipe's W hard-coded
             lambda k, lr, w: lr]                                         # no warm-up at all
    assert verdicts(capsys, check, [right] + wrong + [not_yet]) == [True] + [False] * len(wrong) + [None]
    check(wrong[0])
    assert "update k - 1" in capsys.readouterr().out
    check(wrong[4])
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_lesson08_warmup_lr_agrees_with_the_trainer_schedule():
    """The check's truth is the trainer's schedule: the lambda LambdaLR applies before update step + 1."""
    from ddpm_core.training import _warmup_lambda
    for w in (0, 10, 5000):
        lam = _warmup_lambda(w)
        for k in (1, 2, 9, 10, 11, 4999, 5000, 5001):
            assert math.isclose(2e-4 * lam(k - 1), solution(LESSON).warmup_lr(k, 2e-4, w))


def test_lesson08_ema_update(capsys):
    check = exercises.lesson08_ema_update
    right = solution(LESSON).ema_update

    def with_rule(rule):
        return lambda ema, theta, k, d, warm: rule(k, d, warm) * ema + (1 - rule(k, d, warm)) * theta

    warm = lambda k, d, w: min(d, (1 + k) / (10 + k)) if w else d   # noqa: E731
    slips = {"swapped": (with_rule(lambda k, d, w: 1 - warm(k, d, w)), "swapped"),
             "warm-up ignored": (with_rule(lambda k, d, w: d), "min(d, (1 + k)/(10 + k))"),
             "warm-up always": (with_rule(lambda k, d, w: min(d, (1 + k) / (10 + k))), "only for warmup=True"),
             "k - 1": (with_rule(lambda k, d, w: min(d, k / (9 + k)) if w else d), "update count"),
             "max for min": (with_rule(lambda k, d, w: max(d, (1 + k) / (10 + k)) if w else d), "smaller of"),
             "theta returned": (lambda ema, theta, k, d, w: theta, "differs from the recurrence"),
             "a float": (lambda ema, theta, k, d, w: float(theta.sum()), "return the new EMA")}
    for label, (wrong, why) in slips.items():
        assert check(wrong) is False, label
        assert why in capsys.readouterr().out, label
    assert verdicts(capsys, check, [right, not_yet]) == [True, None]


def test_lesson08_ema_update_agrees_with_ddpm_core_ema():
    """The solution reproduces ddpm_core's EMA (the lerp in training.EMA.update) on a one-tensor model."""
    from ddpm_core.training import EMA
    model = torch.nn.Linear(3, 1, bias=False).double()
    ema = EMA(model, decay=0.9, warmup=True)
    mine = model.weight.detach().clone()
    g = torch.Generator().manual_seed(0)
    for k in range(1, 100):
        with torch.no_grad():
            model.weight.add_(torch.randn(1, 3, generator=g, dtype=torch.float64))
        ema.update(model, k)
        mine = solution(LESSON).ema_update(mine, model.weight.detach(), k, 0.9, True)
    torch.testing.assert_close(ema.model.weight, mine)


def test_lesson08_ema_memory(capsys):
    right = solution(LESSON).exercise_3()
    d = 0.9999
    assert verdicts(capsys, exercises.lesson08_ema_memory, [right, float(right)]) == [True, True]
    wrong = [math.floor(math.log(0.01) / math.log(d)),   # the floor: still above 1 %
             math.ceil(math.log(100) / (1 - d)),         # ln d ~ -(1 - d)
             round(1 / (1 - d)),                         # the window, 1/(1 - d)
             math.log(0.01) / math.log(d),               # not a whole number
             d ** 200, "46050", None]
    assert verdicts(capsys, exercises.lesson08_ema_memory, wrong) == [False] * 6 + [None]


def test_lesson08_rank_positions(capsys):
    check = exercises.lesson08_rank_positions
    right = solution(LESSON).rank_positions
    as_slice = lambda r, n, b: slice(r, b, n)                              # noqa: E731
    as_tensor = lambda r, n, b: torch.arange(b)[r::n]                      # noqa: E731
    assert verdicts(capsys, check, [right, as_slice, as_tensor]) == [True] * 3
    wrong = [lambda r, n, b: list(range(r * (b // n), (r + 1) * (b // n))),   # a contiguous block
             lambda r, n, b: list(range(r + 1, b, n)),                        # ranks counted from 1
             lambda r, n, b: list(range(r, b, b // n)),                       # the step is the local batch
             lambda r, n, b: b // n,                                          # the local batch size
             lambda r, n, b: list(range(r, b, n))[::-1],                      # reversed
             lambda r, n, b: slice(2, 128, 4)]                                # one case hard-coded
    assert verdicts(capsys, check, wrong + [not_yet]) == [False] * len(wrong) + [None]


def test_lesson08_rank_positions_are_the_trainers():
    class Fake:   # what Trainer._rank_slice reads
        def __init__(self, rank, world_size):
            self.rank, self.world_size = rank, world_size
    for rank, n, b in [(2, 4, 128), (0, 1, 16), (5, 8, 64)]:
        assert list(range(b))[Trainer._rank_slice.fget(Fake(rank, n))] == solution(LESSON).rank_positions(rank, n, b)
