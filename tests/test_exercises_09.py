"""Lesson 09's exercise checks pass the solutions (lessons/solutions/09_sampling_and_gifs.py), reject the plausible
wrong answers (the original betas for a skipped step, the paper's index, a standard deviation for a variance, sigma
without eta, a missing square root, the fixed-large variance, ...), and say 'not attempted' for an unanswered
exercise; the notebook's exercise cells hold no solution."""

import math

import pytest
import torch

from ddpm_core import exercises
from ddpm_core.schedules import alphas_cumprod, get_beta_schedule
from exercise_helpers import solution, verdicts

LESSON = "09_sampling_and_gifs"
KEPT = [0, 250, 500, 750, 999]


@pytest.fixture(scope="module")
def tables():
    betas = get_beta_schedule("linear")
    return betas, alphas_cumprod(betas)


def test_lesson09_respaced_betas(capsys, tables):
    betas, abar = tables
    right = solution(LESSON).exercise_1(abar)
    assert verdicts(capsys, exercises.lesson09_respaced_betas, [right, right.tolist()]) == [True, True]
    kept = abar[KEPT]
    paper = torch.cat([torch.ones(1, dtype=torch.float64), abar])[KEPT]            # one factor short
    wrong = [betas[KEPT],                                                           # the original betas
             1 - paper / torch.cat([torch.ones(1, dtype=torch.float64), paper[:-1]]),   # the paper's index
             1 - kept,                                                              # from x_0, not the previous step
             1 - right,                                                             # the new alphas
             right.sqrt(),                                                          # a square root too many
             right[:4], [0.0001, 0.4785, 0.8508, 0.9576, 0.9878],                   # too few; rounded, hard-coded
             "betas", None]
    assert verdicts(capsys, exercises.lesson09_respaced_betas, wrong) == [False] * 8 + [None]


def test_lesson09_mix_noise(capsys, tables):
    _, abar = tables
    var_mix, t_match = solution(LESSON).exercise_2(abar)
    check = exercises.lesson09_mix_noise
    assert check(var_mix, t_match) is True
    assert check(var_mix, torch.tensor(t_match)) is True
    wrong = [(math.sqrt(var_mix), t_match),                  # the standard deviation
             (2 * var_mix, t_match),                         # the noise of x_t alone, 1 - abar_500
             (var_mix / 2, t_match),                         # one term of the two
             ((1 - abar[499].item()) / 2, t_match),          # the paper's t = 500
             (var_mix, t_match + 1),                         # t_match as the paper's index
             (var_mix, 500), (var_mix, float(t_match) + 0.5), ("0.46", t_match)]
    for answer in wrong:
        assert check(*answer) is False, answer
    assert check(None, None) is None and check(var_mix, None) is None
    capsys.readouterr()


def _ddim(x_t, eps, a, p, eta, z, *, sigma=None, keep_var=True, x0_clip=False):
    x0 = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
    if x0_clip:
        x0 = x0.clamp(-1, 1)
    if sigma is None:
        sigma = eta * math.sqrt((1 - p) / (1 - a)) * math.sqrt(1 - a / p)
    c = math.sqrt(1 - p - sigma**2) if keep_var else math.sqrt(1 - p)
    return math.sqrt(p) * x0 + c * eps + sigma * z


def test_lesson09_ddim_update(capsys):
    check = exercises.lesson09_ddim_update
    assert verdicts(capsys, check, [solution(LESSON).ddim_update]) == [True]

    def no_eta(x_t, eps, a, p, eta, z):             # sigma without the eta factor
        return _ddim(x_t, eps, a, p, eta, z, sigma=math.sqrt((1 - p) / (1 - a)) * math.sqrt(1 - a / p))

    def no_minus_sigma2(x_t, eps, a, p, eta, z):    # sqrt(1 - abar_prev), sigma^2 not subtracted
        return _ddim(x_t, eps, a, p, eta, z, keep_var=False)

    def swapped(x_t, eps, a, p, eta, z):            # abar_t and abar_prev swapped in the ratio
        return _ddim(x_t, eps, a, p, eta, z, sigma=eta * math.sqrt((1 - p) / (1 - a)) * math.sqrt(1 - p / a))

    def no_sqrt(x_t, eps, a, p, eta, z):            # sigma^2 used as sigma
        return _ddim(x_t, eps, a, p, eta, z, sigma=eta * (1 - p) / (1 - a) * (1 - a / p))

    def ddpm_step(x_t, eps, a, p, eta, z):          # the DDPM step (eq. 11, fixed-large) for a skipped step
        alpha = a / p
        mean = (x_t - (1 - alpha) / math.sqrt(1 - a) * eps) / math.sqrt(alpha)
        return mean + math.sqrt(1 - alpha) * z

    def ancestral_always(x_t, eps, a, p, eta, z):   # eta ignored: always the tilde-beta posterior
        return _ddim(x_t, eps, a, p, 1.0, z)

    def eta_squared(x_t, eps, a, p, eta, z):
        return _ddim(x_t, eps, a, p, eta**2, z)

    def clipped(x_t, eps, a, p, eta, z):            # x0_hat clipped (the task says: no clipping)
        return _ddim(x_t, eps, a, p, eta, z, x0_clip=True)

    def tuple_out(x_t, eps, a, p, eta, z):          # the lesson's ddim_step returns (x_prev, x0_hat)
        return _ddim(x_t, eps, a, p, eta, z), x_t

    def torch_sqrt(x_t, eps, a, p, eta, z):         # torch.sqrt on a float raises TypeError
        return torch.sqrt(p) * x_t

    def not_yet(x_t, eps, a, p, eta, z):
        raise NotImplementedError

    wrong = (no_eta, no_minus_sigma2, swapped, no_sqrt, ddpm_step, ancestral_always, eta_squared, clipped, tuple_out,
             torch_sqrt, lambda x_t, eps, a, p, eta, z: x_t)
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]


def test_lesson09_ddim_inversion(capsys, tables):
    _, abar = tables
    check = exercises.lesson09_ddim_inversion
    right = solution(LESSON).ddim_invert
    assert verdicts(capsys, check, [right]) == [True]

    def step_up(model, x, t_i, t_eps, a_i, a_next, y):
        e = model(x, torch.full((len(x),), t_eps), y=y)
        a, n = float(abar[a_i]), float(abar[a_next])
        return math.sqrt(n) * (x - math.sqrt(1 - a) * e) / math.sqrt(a) + math.sqrt(1 - n) * e

    def eps_of_next(model, x_0, y, ts):              # eps at the next kept step
        x = x_0
        for i in range(len(ts) - 1):
            x = step_up(model, x, ts[i], ts[i + 1], ts[i], ts[i + 1], y)
        return x

    def paper_index(model, x_0, y, ts):              # abar one step off (the paper's t for the code's)
        x = x_0
        for i in range(len(ts) - 1):
            x = step_up(model, x, ts[i], ts[i], ts[i] - 1 if ts[i] else 0, ts[i + 1] - 1, y)
        return x

    def swapped(model, x_0, y, ts):                  # abar of the current and the next step swapped
        x = x_0
        for i in range(len(ts) - 1):
            x = step_up(model, x, ts[i], ts[i], ts[i + 1], ts[i], y)
        return x

    def q_sample_encoding(model, x_0, y, ts):        # fresh noise: an encoding, not an inversion
        a = float(abar[ts[-1]])
        return math.sqrt(a) * x_0 + math.sqrt(1 - a) * torch.randn(x_0.shape, dtype=x_0.dtype)

    def stops_early(model, x_0, y, ts):              # one kept step short of t = 999
        return right(model, x_0, y, ts[:-1])

    def unconditional(model, x_0, y, ts):            # the label left out
        return right(model, x_0, None, ts)

    def not_yet(model, x_0, y, ts):
        raise NotImplementedError

    wrong = (eps_of_next, paper_index, swapped, q_sample_encoding, stops_early, unconditional,
             lambda model, x_0, y, ts: x_0)
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]
