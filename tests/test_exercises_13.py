"""Lesson 13's exercise checks pass their solutions, reject the plausible wrong answers (the known slips: sigma for
sigma^2, a sign, a missing square root or variance, the weights left out, the nearest component only, the
continuous-time answer), and say 'not attempted yet' for an unanswered exercise; the notebook holds no solution."""

import math

import torch

from ddpm_core import exercises
from exercise_helpers import solution

LESSON = "13_score_based_view"


def _not_yet(*args):
    raise NotImplementedError


def _all_fail(check, wrongs, capsys):
    for wrong in wrongs:
        verdict = check(wrong)
        line = capsys.readouterr().out
        assert verdict is False, (wrong, line)
        assert line.count("\n") == 1 and "Not yet:" in line, line


def test_lesson13_tweedie_ve(capsys):
    assert exercises.lesson13_tweedie_ve(solution(LESSON).tweedie_ve) is True
    assert "Correct!" in capsys.readouterr().out
    wrongs = [lambda y, s, sig: y + sig * s,             # sigma, not sigma^2
              lambda y, s, sig: y - sig**2 * s,          # a sign
              lambda y, s, sig: y + s,                   # the score unscaled
              lambda y, s, sig: y,                       # no correction
              lambda y, s, sig: (y + (1 - 1 / (1 + sig**2)) * s) / (1 / (1 + sig**2)) ** 0.5,  # the VP formula
              lambda y, s, sig: (y + sig**2 * s)[:, 0],  # wrong shape
              lambda y, s, sig: 1 / 0]                   # raises
    _all_fail(exercises.lesson13_tweedie_ve, wrongs, capsys)
    assert exercises.lesson13_tweedie_ve(_not_yet) is None
    assert "not attempted yet" in capsys.readouterr().out


def test_lesson13_mixture_score(capsys):
    right = solution(LESSON).mixture_score
    assert exercises.lesson13_mixture_score(right) is True
    capsys.readouterr()

    def unweighted(x, means, variances, weights):
        return right(x, means, variances, torch.full_like(weights, 1 / len(weights)))

    def nearest_only(x, means, variances, weights):
        k = ((x[:, None] - means[None]) ** 2).sum(-1).argmin(1)
        return (means[k] - x) / variances[k][:, None]

    def no_variance(x, means, variances, weights):          # sum_k r_k (mu_k - x), not divided by v_k
        return (_resp(x, means, variances, weights)[:, :, None] * (means[None] - x[:, None])).sum(1)

    def shared_variance(x, means, variances, weights):
        return right(x, means, torch.full_like(variances, variances.mean().item()), weights)

    def sign(x, means, variances, weights):
        return -right(x, means, variances, weights)

    def std_for_var(x, means, variances, weights):
        return right(x, means, variances.sqrt(), weights)

    _all_fail(exercises.lesson13_mixture_score,
              [unweighted, nearest_only, no_variance, shared_variance, sign, std_for_var, lambda *a: a[0]], capsys)
    assert exercises.lesson13_mixture_score(_not_yet) is None
    capsys.readouterr()


def _resp(x, means, variances, weights):
    log_joint = weights.log() - ((x[:, None] - means[None]) ** 2).sum(-1) / (2 * variances) \
        - torch.log(2 * math.pi * variances)
    return torch.softmax(log_joint, dim=1)


def test_lesson13_langevin_variance(capsys):
    assert exercises.lesson13_langevin_variance(solution(LESSON).langevin_variance) is True
    assert exercises.lesson13_langevin_variance(lambda v, d: v / (1 - d / (4 * v))) is True   # the same, simplified
    capsys.readouterr()
    wrongs = [lambda v, d: v,                                     # continuous time: no bias
              lambda v, d: d / (1 - (1 - d / (2 * v))),           # rho, not rho^2
              lambda v, d: v * (1 + d / (4 * v)),                 # first order only
              lambda v, d: v / (1 - d / (2 * v)),                 # a factor 2
              lambda v, d: d / (1 - (1 - d / v) ** 2),            # delta instead of delta / 2 in the drift
              lambda v, d: torch.tensor([v, d]),                  # not one number
              lambda v, d: "1.2"]
    _all_fail(exercises.lesson13_langevin_variance, wrongs, capsys)
    assert exercises.lesson13_langevin_variance(_not_yet) is None
    capsys.readouterr()


def test_lesson13_guided_eps(capsys):
    assert exercises.lesson13_guided_eps(solution(LESSON).guided_eps) is True
    capsys.readouterr()
    wrongs = [lambda e, g, a, s: e + s * (1 - a) ** 0.5 * g,      # a sign
              lambda e, g, a, s: e - s * (1 - a) * g,             # the missing square root
              lambda e, g, a, s: e - s * g / (1 - a) ** 0.5,      # divided instead of multiplied
              lambda e, g, a, s: e - (1 - a) ** 0.5 * g,          # no scale
              lambda e, g, a, s: e - s * a ** 0.5 * g,            # sqrt(alpha_bar) for sqrt(1 - alpha_bar)
              lambda e, g, a, s: e - (s - 1) * (1 - a) ** 0.5 * g,  # the paper's w = s - 1 confused with s
              lambda e, g, a, s: e]                               # unguided
    _all_fail(exercises.lesson13_guided_eps, wrongs, capsys)
    assert exercises.lesson13_guided_eps(_not_yet) is None
    capsys.readouterr()
