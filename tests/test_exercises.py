"""Every exercise check passes its solution (lessons/solutions/) and rejects the plausible wrong answers, including the
known slips (the paper's index for the code's, a standard deviation for a variance, a missing square root, a
hard-coded number); an unanswered exercise is 'not attempted yet'; the lessons' exercise cells hold no solution."""

import json
import math
import os
from pathlib import Path

import pytest
import torch

from ddpm_core import exercises
from exercise_helpers import solution, verdicts
from ddpm_core.data import load_mnist, make_toy_2d
from ddpm_core.schedules import alphas_cumprod, get_beta_schedule

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "lessons"
LESSON_STEMS = sorted(p.stem for p in LESSONS.glob("[0-9][0-9]_*.ipynb"))  # every lesson's exercises are open


@pytest.fixture(scope="module")
def labels():
    return load_mnist(train=True, download=False, verbose=False).labels


@pytest.fixture(scope="module")
def alphas_bar():
    return alphas_cumprod(get_beta_schedule("linear"))


# ----------------------------------------------------------------------------- lesson 00
def test_lesson00_budget_switch(capsys, monkeypatch):
    monkeypatch.setenv("DDPM_QUICK", "1")
    s = solution("00_setup")
    assert verdicts(capsys, exercises.lesson00_budget_switch, [s.exercise_1(), "off", "no"]) == [True] * 3
    assert verdicts(capsys, exercises.lesson00_budget_switch, ["1", "yes", "full", 0, None]) == \
        [False, False, False, False, None]
    assert os.environ["DDPM_QUICK"] == "1"  # the check leaves the switch as it was


def test_lesson00_count_sevens(capsys, labels):
    s = solution("00_setup")
    right = s.exercise_2(labels)
    everywhere = int((labels == 7).sum())
    other_batch = int((labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:128]] == 7)
                      .sum())
    wrong = [everywhere, right + 1, 12.5, "13"] + ([other_batch] if other_batch != right else [])
    assert verdicts(capsys, exercises.lesson00_count_sevens, [right, float(right), torch.tensor(right)], labels) == \
        [True] * 3
    assert verdicts(capsys, exercises.lesson00_count_sevens, wrong, labels) == [False] * len(wrong)
    assert verdicts(capsys, exercises.lesson00_count_sevens, [None], labels) == [None]


def test_lesson00_unit_variance_rejects_the_standard_deviation(capsys):
    s = solution("00_setup")
    mean, var = s.exercise_3()
    points = make_toy_2d("gaussian25", 20_000, generator=torch.Generator().manual_seed(3))
    assert exercises.lesson00_unit_variance(mean, var) is True
    assert exercises.lesson00_unit_variance(mean, points.var(dim=0, unbiased=False)) is True
    capsys.readouterr()
    assert exercises.lesson00_unit_variance(mean, points.std(dim=0)) is False
    assert "standard deviation" in capsys.readouterr().out
    wrong = [(mean, torch.ones(2)), (points.mean(), points.var()), (points.mean(dim=1)[:2], var),
             (mean, points.var(dim=1)[:2]), (torch.zeros(2), var)]
    assert [exercises.lesson00_unit_variance(m, v) for m, v in wrong] == [False] * len(wrong)
    assert exercises.lesson00_unit_variance(None, None) is None


# ----------------------------------------------------------------------------- lesson 01
def test_lesson01_half_signal(capsys, alphas_bar):
    right = solution("01_forward_process").exercise_1(alphas_bar)
    assert right == 259
    assert verdicts(capsys, exercises.lesson01_half_signal, [right, torch.tensor(right)]) == [True, True]
    wrong = [right + 1, right - 1, 259.0, True, "259"]  # paper index, one early, a float, a bool, text
    assert verdicts(capsys, exercises.lesson01_half_signal, wrong) == [False] * len(wrong)
    assert verdicts(capsys, exercises.lesson01_half_signal, [None]) == [None]


def test_lesson01_noise_std(capsys, alphas_bar):
    right = solution("01_forward_process").exercise_2(alphas_bar)
    assert verdicts(capsys, exercises.lesson01_noise_std, [right, torch.tensor(right)]) == [True, True]
    wrong = [1 - alphas_bar[500].item(),                  # the variance: the missing square root
             math.sqrt(alphas_bar[500].item()),           # the signal's scale
             math.sqrt(1 - alphas_bar[501].item()),       # paper t = 500, one step late
             math.sqrt(1 - alphas_bar[499].item()), 1.0, torch.ones(2)]
    assert verdicts(capsys, exercises.lesson01_noise_std, wrong) == [False] * len(wrong)
    assert verdicts(capsys, exercises.lesson01_noise_std, [None]) == [None]


def test_lesson01_moment_kl(capsys):
    s = solution("01_forward_process")
    assert exercises.lesson01_moment_kl(s.moment_kl) is True

    def not_yet(x):
        raise NotImplementedError

    def with_std(x):
        m, sd = x.double().mean(), x.double().std()
        return float(0.5 * (sd + m**2 - 1 - torch.log(sd)))

    def no_half(x):
        return 2 * s.moment_kl(x)

    def no_mean(x):
        v = x.double().var()
        return float(0.5 * (v - 1 - torch.log(v)))

    def hard_coded(x):
        return 0.0001  # what x_T's KL should be near: a number, not a computation

    def per_entry(x):
        return 0.5 * (x**2 - 1 - torch.log(x**2))

    def crashes(x):
        return x.mean(dim=5)

    assert exercises.lesson01_moment_kl(not_yet) is None
    capsys.readouterr()
    for wrong in (with_std, no_half, no_mean, hard_coded, per_entry, crashes, 3.0):
        assert exercises.lesson01_moment_kl(wrong) is False, wrong
        assert "Not yet:" in capsys.readouterr().out


# ----------------------------------------------------------------------------- lesson 02
def test_lesson02_cosine_half(capsys):
    right = solution("02_noise_schedules").exercise_1(get_beta_schedule("cosine"))
    assert verdicts(capsys, exercises.lesson02_cosine_half, [right]) == [True]
    wrong = [right + 1, 259, right - 1, float(right), None]
    assert verdicts(capsys, exercises.lesson02_cosine_half, wrong) == [False, False, False, False, None]


def test_lesson02_beta_end(capsys):
    right = solution("02_noise_schedules").exercise_2()
    assert verdicts(capsys, exercises.lesson02_beta_end, [right]) == [True]
    end = right[-1].item()
    wrong = [get_beta_schedule("linear"),                                         # the paper's 0.02
             torch.linspace(1e-4, end * 1.001, 1000, dtype=torch.float64),        # bisection stopped early
             torch.linspace(1e-3, end, 1000, dtype=torch.float64),                # another beta_start
             torch.linspace(1e-4 ** 0.5, end ** 0.5, 1000, dtype=torch.float64) ** 2,   # not linear
             right[:-1], None]
    assert verdicts(capsys, exercises.lesson02_beta_end, wrong) == [False] * 5 + [None]


def test_lesson02_largest_prior(capsys):
    right = solution("02_noise_schedules").exercise_3()
    assert verdicts(capsys, exercises.lesson02_largest_prior, [right]) == [True]
    wrong = ["linear", "jsd", "cosine", "const", "Quad", None]   # the default, the smallest, a typo
    assert verdicts(capsys, exercises.lesson02_largest_prior, wrong) == [False] * 5 + [None]


# ----------------------------------------------------------------------------- the notebooks
@pytest.mark.parametrize("lesson", LESSON_STEMS)
def test_exercise_cells_hold_no_solution_and_the_checks_say_not_attempted(lesson):
    cells = json.loads((LESSONS / f"{lesson}.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    answer_cells = [s for s in code if s.lstrip().startswith("# YOUR CODE HERE")]
    assert len(answer_cells) >= 3
    for source in answer_cells:
        body = [line for line in source.splitlines()[1:] if line.strip() and not line.strip().startswith("#")]
        assert all(line.rstrip().endswith("= None") or "NotImplementedError" in line or line.startswith("def ")
                   or '"""' in line for line in body), source
    outputs = ["".join(o.get("text", "")) for c in cells if c["cell_type"] == "code"
               and "exercises.lesson" in "".join(c["source"]) for o in c.get("outputs", [])]
    assert sum("not attempted yet" in o for o in outputs) == len(answer_cells), outputs
    assert not any("Correct!" in o for o in outputs)
    assert (LESSONS / "solutions" / f"{lesson}.py").is_file()


# ----------------------------------------------------------------------------- lesson 03
def test_lesson03_posterior_variance(capsys):
    betas = get_beta_schedule("linear")
    right = solution("03_posterior_and_elbo").exercise_1(betas)
    assert verdicts(capsys, exercises.lesson03_posterior_variance, [right]) == [True]
    abar = torch.cumprod(1 - betas, 0)
    tilde = lambda tc: ((1 - abar[tc - 1]) / (1 - abar[tc]) * betas[tc]).item()  # noqa: E731
    wrong = [tilde(10), tilde(8), betas[9].item(), ((1 - abar[9]) / (1 - abar[8]) * betas[9]).item(),
             float(torch.tensor(right, dtype=torch.float32)) * 1.001, "0.0002", None]
    assert verdicts(capsys, exercises.lesson03_posterior_variance, wrong) == [False] * 6 + [None]


def test_lesson03_eps_from_v(capsys):
    s = solution("03_posterior_and_elbo")
    assert exercises.lesson03_eps_from_v(s.eps_from_v) is True

    def not_yet(x_t, abar, v):
        raise NotImplementedError

    wrong = [lambda x_t, a, v: a.sqrt() * x_t - (1 - a).sqrt() * v,      # x_0, not eps
             lambda x_t, a, v: (1 - a) * x_t + a * v,                     # the missing square roots
             lambda x_t, a, v: a.sqrt() * x_t + (1 - a).sqrt() * v,       # swapped coefficients
             lambda x_t, a, v: (1 - a).sqrt() * x_t - a.sqrt() * v,       # a sign
             lambda x_t, a, v: v, lambda x_t, a, v: x_t[0], lambda x_t, a, v: 1 / 0]
    assert exercises.lesson03_eps_from_v(not_yet) is None
    assert [exercises.lesson03_eps_from_v(f) for f in wrong] == [False] * len(wrong)
    capsys.readouterr()


def test_lesson03_uniform_bpd_rejects_a_hard_coded_eight(capsys):
    s = solution("03_posterior_and_elbo")
    assert exercises.lesson03_uniform_bpd(s.uniform_bpd) is True
    wrong = [lambda x, k: 8.0,                                   # the number the text gives away
             lambda x, k: math.log(k),                           # nats, not bits
             lambda x, k: x[0].numel() * math.log2(k),           # bits per image
             lambda x, k: math.log2(256),                        # the 8-bit answer for any K
             lambda x, k: torch.full_like(x, math.log2(k))]      # not one number
    assert [exercises.lesson03_uniform_bpd(f) for f in wrong] == [False] * len(wrong)
    out = capsys.readouterr().out
    assert "nats per dimension" in out and "bits per image" in out


def test_lesson03_weight_ratio(capsys):
    betas = get_beta_schedule("linear")
    right = solution("03_posterior_and_elbo").exercise_4(betas)
    assert verdicts(capsys, exercises.lesson03_weight_ratio, [right]) == [True]
    alphas, abar = 1 - betas, torch.cumprod(1 - betas, 0)
    lam = lambda tc: (betas[tc] / (2 * alphas[tc] * (1 - abar[tc]))).item()  # noqa: E731
    lam_no_alpha = lambda tc: (betas[tc] / (2 * (1 - abar[tc]))).item()  # noqa: E731
    wrong = [1 / right, lam(2) / lam(500), lam(0) / lam(498), 1.0, lam_no_alpha(1) / lam_no_alpha(499), 5, None]
    assert verdicts(capsys, exercises.lesson03_weight_ratio, wrong) == [False] * 6 + [None]


# ----------------------------------------------------------------------------- lesson 04
@pytest.fixture(scope="module")
def toy_tables():
    betas = torch.linspace(1e-3, 0.2, 100, dtype=torch.float64)
    return betas, torch.cumprod(1 - betas, 0)


def test_lesson04_fixed_small_sigma(capsys, toy_tables):
    betas, abar = toy_tables
    right = solution("04_toy_2d_diffusion").exercise_1(betas, abar)
    assert verdicts(capsys, exercises.lesson04_fixed_small_sigma, [right]) == [True]
    prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    wrong = [betas.sqrt(), right**2, ((1 - abar) / (1 - prev).clamp_min(1e-12) * betas).sqrt(),
             torch.cat([right[1:], right[:1]]), right[:-1], None]     # fixed-large, the variance, inverted, shifted
    assert verdicts(capsys, exercises.lesson04_fixed_small_sigma, wrong) == [False] * 5 + [None]


def test_lesson04_share_within(capsys):
    assert exercises.lesson04_share_within(solution("04_toy_2d_diffusion").share_within) is True

    def per_axis(samples, modes, std):      # a box instead of a disc
        d = (samples[:, None] - modes[None]).abs().amax(-1).min(1).values
        return (d <= 5 * std).double().mean().item()

    def nearest_first_mode(samples, modes, std):
        return ((samples - modes[0]).norm(dim=1) <= 5 * std).double().mean().item()

    def count(samples, modes, std):
        return float(((samples[:, None] - modes[None]).norm(dim=-1).min(1).values <= 5 * std).sum())

    def squared(samples, modes, std):       # squared distance against 5 std
        return float(((samples[:, None] - modes[None]).pow(2).sum(-1).min(1).values <= 5 * std).double().mean())

    def not_yet(samples, modes, std):
        raise NotImplementedError

    for wrong in (per_axis, nearest_first_mode, count, squared, lambda s, m, d: 1.0):
        assert exercises.lesson04_share_within(wrong) is False, wrong
    assert exercises.lesson04_share_within(not_yet) is None
    capsys.readouterr()


def test_lesson04_short_chain(capsys, toy_tables):
    right = solution("04_toy_2d_diffusion").exercise_3()
    assert verdicts(capsys, exercises.lesson04_short_chain, [right]) == [True]
    ab10 = torch.cumprod(1 - torch.linspace(1e-3, 0.2, 10, dtype=torch.float64), 0)
    wrong = [math.sqrt(right), ab10[-2].item(), toy_tables[1][-1].item(),
             torch.cumprod(1 - torch.linspace(1e-4, 0.02, 10, dtype=torch.float64), 0)[-1].item(), 0.0, None]
    assert verdicts(capsys, exercises.lesson04_short_chain, wrong) == [False] * 5 + [None]


def test_lesson04_ancestral_step(capsys, toy_tables):
    betas, abar = toy_tables
    step = solution("04_toy_2d_diffusion").make_ancestral_step(betas, abar)
    assert exercises.lesson04_ancestral_step(step) is True
    alphas = 1 - betas

    def fixed_large(x_t, eps, t, z):
        return (x_t - betas[t] / (1 - abar[t]).sqrt() * eps) / alphas[t].sqrt() + betas[t].sqrt() * z

    def no_sqrt(x_t, eps, t, z):
        return (x_t - betas[t] / (1 - abar[t]) * eps) / alphas[t].sqrt()

    def off_by_one(x_t, eps, t, z):
        return step(x_t, eps, min(t + 1, 99), z)

    def no_noise(x_t, eps, t, z):
        return step(x_t, eps, t, 0 * z)

    def not_yet(x_t, eps, t, z):
        raise NotImplementedError

    for wrong in (fixed_large, no_sqrt, off_by_one, no_noise, lambda x, e, t, z: x):
        assert exercises.lesson04_ancestral_step(wrong) is False, wrong
    assert exercises.lesson04_ancestral_step(not_yet) is None
    capsys.readouterr()
