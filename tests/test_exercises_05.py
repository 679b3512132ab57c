"""Lesson 05's exercise checks pass their solutions (lessons/solutions/05_objectives_and_variances.py) and reject the
plausible wrong answers (the paper's index for the code's, missing square roots, swapped coefficients, alpha-bar_t for
alpha-bar_{t-1}, the wrap-around at code t = 0, a standard deviation for a variance, the prior for the posterior);
unanswered exercises are 'not attempted yet'; the notebook's exercise cells hold no solution."""


import pytest
import torch

from ddpm_core import exercises
from exercise_helpers import solution, verdicts

LESSON = "05_objectives_and_variances"


@pytest.fixture(scope="module")
def chain():
    """beta, alpha, abar, abar_prev of the toy chain (T = 100, linear 1e-3 -> 0.2), as the notebook builds them."""
    beta = torch.linspace(1e-3, 0.2, 100, dtype=torch.float64)
    alpha = 1 - beta
    abar = torch.cumprod(alpha, 0)
    return beta, alpha, abar, torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])


def test_the_checks_build_the_notebooks_chain(chain):
    from ddpm_core import GaussianDiffusion

    beta, _, abar, _ = chain
    d = GaussianDiffusion.from_schedule("linear", 100, 1e-3, 0.2)
    torch.testing.assert_close(d.betas, beta)
    torch.testing.assert_close(d.alphas_cumprod, abar)


def test_lesson05_posterior_mean(capsys, chain):
    beta, alpha, abar, prev = chain
    right = solution(LESSON).make_posterior_mean(beta)
    assert exercises.lesson05_posterior_mean(right) is True
    from ddpm_core import GaussianDiffusion

    d = GaussianDiffusion(beta)
    assert exercises.lesson05_posterior_mean(lambda x0, xt, t: d.q_posterior_mean_variance(x0, xt, t)[0]) is True
    capsys.readouterr()

    def eq7(x0, xt, t, a_prev=prev, root=True, shift=0):
        t = (t + shift).clamp(max=99)
        sq = torch.sqrt if root else (lambda v: v)
        c1 = (sq(a_prev[t]) * beta[t] / (1 - abar[t])).reshape(-1, 1)
        c2 = (sq(alpha[t]) * (1 - a_prev[t]) / (1 - abar[t])).reshape(-1, 1)
        return c1 * x0 + c2 * xt

    def not_yet(x0, xt, t):
        raise NotImplementedError

    wrong = {
        "paper index": lambda x0, xt, t: eq7(x0, xt, t, shift=1),
        "missing square roots": lambda x0, xt, t: eq7(x0, xt, t, root=False),
        "swapped coefficients": lambda x0, xt, t: eq7(xt, x0, t),
        "abar_t for abar_{t-1}": lambda x0, xt, t: eq7(x0, xt, t, a_prev=abar),
        "abar[t - 1] wraps at t = 0": lambda x0, xt, t: eq7(x0, xt, t, a_prev=abar[(torch.arange(100) - 1)]),
        "only sqrt(abar_{t-1}) missing": lambda x0, xt, t: eq7(x0, xt, t) + (
            (prev[t] - prev[t].sqrt()) * beta[t] / (1 - abar[t])).reshape(-1, 1) * x0,
        "x_t alone": lambda x0, xt, t: xt,
        "wrong shape": lambda x0, xt, t: eq7(x0, xt, t)[:, 0],
        "crashes": lambda x0, xt, t: x0 @ xt,
    }
    assert verdicts(capsys, exercises.lesson05_posterior_mean, list(wrong.values())) == [False] * len(wrong)
    assert verdicts(capsys, exercises.lesson05_posterior_mean, [not_yet]) == [None]
    # the messages name the slips
    for key, phrase in [("paper index", "one step late"), ("missing square roots", "square roots"),
                        ("swapped coefficients", "swapped"), ("abar_t for abar_{t-1}", "alpha-bar_{t-1}"),
                        ("abar[t - 1] wraps at t = 0", "abar[-1]")]:
        exercises.lesson05_posterior_mean(wrong[key])
        assert phrase in capsys.readouterr().out, key


def test_lesson05_eps_from_x0(capsys, chain):
    beta, _, abar, _ = chain
    right = solution(LESSON).make_eps_from_x0(beta)
    assert exercises.lesson05_eps_from_x0(right) is True
    from ddpm_core import GaussianDiffusion

    d = GaussianDiffusion(beta)
    assert exercises.lesson05_eps_from_x0(lambda xt, x0, t: d.predict_eps_from_xstart(xt, t, x0)) is True
    capsys.readouterr()

    def g(t, shift=0):
        return abar[(t + shift).clamp(max=99)].reshape(-1, 1)

    def not_yet(x_t, x0_pred, t):
        raise NotImplementedError

    wrong = {
        "missing square roots": lambda xt, x0, t: (xt - g(t) * x0) / (1 - g(t)),
        "paper index": lambda xt, x0, t: (xt - g(t, 1).sqrt() * x0) / (1 - g(t, 1)).sqrt(),
        "swapped roots": lambda xt, x0, t: (xt - (1 - g(t)).sqrt() * x0) / g(t).sqrt(),
        "sign": lambda xt, x0, t: (xt + g(t).sqrt() * x0) / (1 - g(t)).sqrt(),
        "abar_{t-1}": lambda xt, x0, t: (xt - g(t - 1).sqrt() * x0) / (1 - g(t - 1)).sqrt(),
        "x0 returned": lambda xt, x0, t: x0,
        "a scalar abar": lambda xt, x0, t: (xt - abar[50].sqrt() * x0) / (1 - abar[50]).sqrt(),
    }
    assert verdicts(capsys, exercises.lesson05_eps_from_x0, list(wrong.values())) == [False] * len(wrong)
    assert verdicts(capsys, exercises.lesson05_eps_from_x0, [not_yet]) == [None]
    for key, phrase in [("missing square roots", "square roots"), ("paper index", "one step late"),
                        ("swapped roots", "swapped"), ("sign", "a sign")]:
        exercises.lesson05_eps_from_x0(wrong[key])
        assert phrase in capsys.readouterr().out, key


def test_lesson05_true_reverse_variance(capsys, chain):
    beta, alpha, abar, prev = chain
    right = solution(LESSON).make_true_reverse_variance(beta)
    assert verdicts(capsys, exercises.lesson05_true_reverse_variance, [right]) == [True]

    def by_conditioning(t, s):   # the check's own route, in torch float64: the joint Gaussian of (x_{t-1}, x_t)
        v_prev = prev[t] * s**2 + 1 - prev[t]
        v_t = abar[t] * s**2 + 1 - abar[t]
        return v_prev - alpha[t] * v_prev**2 / v_t

    assert verdicts(capsys, exercises.lesson05_true_reverse_variance, [by_conditioning]) == [True]
    tilde = (1 - prev) / (1 - abar) * beta
    c1 = prev.sqrt() * beta / (1 - abar)

    def post(t, s):
        return s**2 * (1 - abar[t]) / (abar[t] * s**2 + 1 - abar[t])

    def not_yet(t, s):
        raise NotImplementedError

    wrong = {
        "tilde beta alone": lambda t, s: tilde[t],
        "beta alone": lambda t, s: beta[t],
        "c1 not squared": lambda t, s: tilde[t] + c1[t] * post(t, s),
        "prior variance": lambda t, s: tilde[t] + c1[t] ** 2 * s**2,
        "paper index": lambda t, s: right((t + 1).clamp(max=99), s),
        "std": lambda t, s: right(t, s).sqrt(),
        "c2 for c1": lambda t, s: tilde[t] + (alpha[t].sqrt() * (1 - prev[t]) / (1 - abar[t])) ** 2 * post(t, s),
        "abar_t for abar_{t-1}": lambda t, s: (1 - abar[t]) / (1 - abar[t]) * beta[t] + c1[t] ** 2 * post(t, s),
        "one number": lambda t, s: right(t, s).mean(),
    }
    assert verdicts(capsys, exercises.lesson05_true_reverse_variance, list(wrong.values())) == [False] * len(wrong)
    assert verdicts(capsys, exercises.lesson05_true_reverse_variance, [not_yet]) == [None]
    for key, phrase in [("tilde beta alone", "tilde_beta_t alone"), ("c1 not squared", "squared"),
                        ("prior variance", "prior variance"), ("paper index", "one step late"),
                        ("std", "standard deviation"), ("beta alone", "fixed_large")]:
        exercises.lesson05_true_reverse_variance(wrong[key])
        assert phrase in capsys.readouterr().out, key
