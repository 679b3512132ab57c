"""Lesson 10's exercise checks pass the solutions (lessons/solutions/10_guidance.py), reject the plausible wrong
answers (the s-form with w, the difference reversed, the weight on eps_cond only, 1 + s for s, plain guidance with one
label where several are composed, ...), and say 'not attempted' for an unanswered exercise; the notebook's exercise
cells hold no solution."""

import math

import torch

from ddpm_core import exercises
from exercise_helpers import solution, verdicts

LESSON = "10_guidance"


def test_lesson10_label_dropout(capsys):
    check = exercises.lesson10_label_dropout
    mean, prob = solution(LESSON).exercise_1()
    assert check(mean, prob) is True
    assert check(torch.tensor(mean), torch.tensor(prob, dtype=torch.float64)) is True
    wrong = [(0.9 * 256, prob),                  # the labels kept
             (26, prob), (25, prob),             # rounded
             (math.sqrt(256 * 0.1 * 0.9), prob),  # the standard deviation
             (mean, 1 - prob),                   # at least one null label
             (mean, 0.1**256),                   # every label dropped
             (mean, math.exp(-25.6)),            # the Poisson approximation
             (mean, 0.9**255),                   # one label short
             (mean, "2e-12")]
    for answer in wrong:
        assert check(*answer) is False, answer
    assert check(None, None) is None and check(mean, None) is None
    capsys.readouterr()


def test_lesson10_paper_guidance(capsys):
    check = exercises.lesson10_paper_guidance
    assert verdicts(capsys, check, [solution(LESSON).guided_eps_paper]) == [True]

    def not_yet(eps_cond, eps_uncond, w):
        raise NotImplementedError

    wrong = [lambda c, u, w: u + w * (c - u),            # the lesson's s-form with w: off by one in the convention
             lambda c, u, w: (1 + w) * u - w * c,        # the difference reversed
             lambda c, u, w: (1 + w) * c,                # the weight on eps_cond only
             lambda c, u, w: w * (c - u),                # the difference without the base
             lambda c, u, w: (1 + w) * c + w * u,        # a sign
             lambda c, u, w: u + (2 + w) * (c - u),      # 1 + s for s
             lambda c, u, w: c,                          # no guidance
             lambda c, u, w: ((1 + w) * c - w * u)[0]]   # the wrong shape
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]


def test_lesson10_guided_x0(capsys):
    check = exercises.lesson10_guided_x0
    assert verdicts(capsys, check, [solution(LESSON).guided_x0]) == [True]

    def not_yet(x0_cond, x0_uncond, s):
        raise NotImplementedError

    wrong = [lambda c, u, s: c + s * (c - u),                        # (1 + s) x0_c - s x0_u
             lambda c, u, s: c + s * (u - c),                        # reversed
             lambda c, u, s: (u + s * (c - u)).clamp(-1, 1),         # clipped
             lambda c, u, s: s * c,                                  # the weight on x0_cond only
             lambda c, u, s: u + s * (c - u) / 2 ** 0.5,             # a stray factor
             lambda c, u, s: c]                                      # no guidance
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]


def test_lesson10_composed_eps(capsys):
    check = exercises.lesson10_composed_eps
    assert verdicts(capsys, check, [solution(LESSON).composed_eps]) == [True]

    def labels_of(n, y):
        return torch.full((n,), y)

    def one_label(model, x, t, labels, scales):          # plain guidance with the last label ('8s at s = 2')
        e0 = model(x, t, labels_of(len(x), model.null_label))
        return e0 + scales[-1] * (model(x, t, labels_of(len(x), labels[-1])) - e0)

    def first_label(model, x, t, labels, scales):
        e0 = model(x, t, labels_of(len(x), model.null_label))
        return e0 + scales[0] * (model(x, t, labels_of(len(x), labels[0])) - e0)

    def averaged(model, x, t, labels, scales):
        e0 = model(x, t, labels_of(len(x), model.null_label))
        return sum(e0 + s * (model(x, t, labels_of(len(x), y)) - e0) for y, s in zip(labels, scales)) / len(labels)

    def base_per_label(model, x, t, labels, scales):     # eps(x, null) counted once per label
        e0 = model(x, t, labels_of(len(x), model.null_label))
        return sum(e0 + s * (model(x, t, labels_of(len(x), y)) - e0) for y, s in zip(labels, scales))

    def one_plus_s(model, x, t, labels, scales):
        e0 = model(x, t, labels_of(len(x), model.null_label))
        return e0 + sum((1 + s) * (model(x, t, labels_of(len(x), y)) - e0) for y, s in zip(labels, scales))

    def reversed_difference(model, x, t, labels, scales):
        e0 = model(x, t, labels_of(len(x), model.null_label))
        return e0 + sum(s * (e0 - model(x, t, labels_of(len(x), y))) for y, s in zip(labels, scales))

    def scalar_label(model, x, t, labels, scales):       # a Python int where the network wants a tensor of labels
        e0 = model(x, t)
        return e0 + sum(s * (model(x, t, y) - e0) for y, s in zip(labels, scales))

    def fixed_time(model, x, t, labels, scales):         # one timestep for the whole batch
        return solution(LESSON).composed_eps(model, x, torch.full_like(t, int(t[0])), labels, scales)

    def not_yet(model, x, t, labels, scales):
        raise NotImplementedError

    wrong = (one_label, first_label, averaged, base_per_label, one_plus_s, reversed_difference, scalar_label,
             fixed_time)
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]
