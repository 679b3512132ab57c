"""Lesson 11's exercise checks pass their solutions (lessons/solutions/11_evaluation.py), reject the plausible wrong
answers (the known slips of the Inception score, density/coverage and FID) and say 'not attempted yet' for an
unanswered exercise; the lesson's exercise cells hold no solution."""

import math

import numpy as np
import torch

from ddpm_core import evaluation, exercises
from exercise_helpers import solution, verdicts

LESSON = "11_evaluation"


def not_yet(*args):
    raise NotImplementedError


# ----------------------------------------------------------------------------- exercise 1: the Inception score
def test_lesson11_inception_score(capsys):
    s = solution(LESSON)
    check = exercises.lesson11_inception_score

    def reversed_kl(logits):                 # KL(p(y) || p(y|x))
        logp = torch.log_softmax(logits.double(), 1)
        logm = torch.logsumexp(logp, 0) - math.log(len(logp))
        return float((logm.exp() * (logm - logp)).sum(1).mean().exp())

    def no_exp(logits):                      # the mean KL itself
        return math.log(s.inception_score(logits))

    def mean_of_exp(logits):                 # exp inside the mean
        logp = torch.log_softmax(logits.double(), 1)
        logm = torch.logsumexp(logp, 0) - math.log(len(logp))
        return float((logp.exp() * (logp - logm)).sum(1).exp().mean())

    def marginal_of_mean_logits(logits):     # p(y) = softmax(mean logits), not the mean of the probabilities
        logp = torch.log_softmax(logits.double(), 1)
        logm = torch.log_softmax(logits.double().mean(0), 0)
        return float((logp.exp() * (logp - logm)).sum(1).mean().exp())

    def logits_as_log_probs(logits):         # no softmax: the logits taken for log p(y|x)
        logp = logits.double()
        logm = torch.logsumexp(logp, 0) - math.log(len(logp))
        return float((logp.exp() * (logp - logm)).sum(1).mean().exp())

    def hard_coded(logits):                  # the maximum, the number of classes
        return float(logits.shape[1])

    wrong = [reversed_kl, no_exp, mean_of_exp, marginal_of_mean_logits, logits_as_log_probs, hard_coded,
             lambda logits: torch.ones(3), lambda logits: logits[10_000]]
    right = [s.inception_score, lambda logits: evaluation.inception_score(logits, splits=1)["is"],
             lambda logits: torch.tensor(s.inception_score(logits.float()))]          # float32 is accurate enough
    assert verdicts(capsys, check, right) == [True] * len(right)
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]
    assert "mean KL" in (check(no_exp), capsys.readouterr().out)[1]


# ----------------------------------------------------------------------------- exercise 2: density and coverage
def test_lesson11_density_coverage(capsys):
    s = solution(LESSON)
    check = exercises.lesson11_density_coverage

    def dc(fake, real, k, radii=None, balls_of="real", divide_by_k=True, coverage_of="real"):
        fake, real = fake.double(), real.double()
        centres, points = (real, fake) if balls_of == "real" else (fake, real)
        if radii is None:
            radii = torch.cdist(centres, centres).kthvalue(k + 1, dim=1).values
        inside = torch.cdist(centres, points) <= radii[:, None]
        density = float(inside.sum()) / ((k if divide_by_k else 1) * len(fake))
        coverage = float((inside.any(dim=1) if coverage_of == "real" else inside.any(dim=0)).double().mean())
        return {"density": density, "coverage": coverage}

    def self_counted(fake, real, k):         # kthvalue(k): the point itself is one of its k neighbours
        return dc(fake, real, k, radii=torch.cdist(real.double(), real.double()).kthvalue(k, dim=1).values)

    def fake_balls(fake, real, k):           # the samples' balls, as recall uses
        return dc(fake, real, k, balls_of="fake")

    def no_k(fake, real, k):                 # density divided by M only
        return dc(fake, real, k, divide_by_k=False)

    def coverage_is_precision(fake, real, k):  # the share of samples in some real ball
        return dc(fake, real, k, coverage_of="fake")

    def fixed_k(fake, real, k):              # k = 5 hard-coded, whatever k the caller asks for
        return s.density_coverage(fake, real, 5)

    def swapped_keys(fake, real, k):
        out = s.density_coverage(fake, real, k)
        return {"density": out["coverage"], "coverage": out["density"]}

    wrong = [self_counted, fake_balls, no_k, coverage_is_precision, fixed_k, swapped_keys,
             lambda f, r, k: (1.0, 1.0), lambda f, r, k: {"density": torch.ones(2), "coverage": 1.0}]
    right = [s.density_coverage, lambda f, r, k: evaluation.density_coverage(f, r, k=k)]
    assert verdicts(capsys, check, right) == [True] * len(right)
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]
    check(no_k)
    assert "k M" in capsys.readouterr().out


# ----------------------------------------------------------------------------- exercise 3: the Frechet distance
def _sqrtm(S):
    w, V = torch.linalg.eigh(S)
    return V @ torch.diag(w.clamp_min(0).sqrt()) @ V.T


def test_lesson11_frechet_distance(capsys):
    s = solution(LESSON)
    check = exercises.lesson11_frechet_distance
    mean_term = lambda m1, m2: ((m1 - m2) ** 2).sum()  # noqa: E731
    cross = lambda S1, S2: torch.linalg.eigvalsh(_sqrtm(S1) @ S2 @ _sqrtm(S1)).clamp_min(0).sqrt().sum()  # noqa: E731

    def no_factor_two(m1, S1, m2, S2):
        return float(mean_term(m1, m2) + S1.trace() + S2.trace() - cross(S1, S2))

    def elementwise_sqrt(m1, S1, m2, S2):    # sqrt of the product's entries, not the matrix square root
        return float(mean_term(m1, m2) + S1.trace() + S2.trace() - 2 * (S1 @ S2).sqrt().trace())

    def mean_not_squared(m1, S1, m2, S2):    # |mu1 - mu2|, not its square
        return float((m1 - m2).norm() + S1.trace() + S2.trace() - 2 * cross(S1, S2))

    def missing_trace(m1, S1, m2, S2):       # tr S2 forgotten
        return float(mean_term(m1, m2) + S1.trace() - 2 * cross(S1, S2))

    def sqrt_of_trace(m1, S1, m2, S2):       # sqrt(tr(S1 S2)) instead of tr (S1 S2)^1/2
        return float(mean_term(m1, m2) + S1.trace() + S2.trace() - 2 * (S1 @ S2).trace().sqrt())

    def product_of_roots(m1, S1, m2, S2):    # tr(S1^1/2 S2^1/2): right only when the covariances commute
        return float(mean_term(m1, m2) + S1.trace() + S2.trace() - 2 * (_sqrtm(S1) @ _sqrtm(S2)).trace())

    def variances_compared(m1, S1, m2, S2):  # the diagonal shortcut (a_i - b_i)^2 without the square roots
        return float(mean_term(m1, m2) + ((S1.diagonal() - S2.diagonal()) ** 2).sum())

    def diagonal_only(m1, S1, m2, S2):       # the diagonal closed form applied to any covariance
        return float(mean_term(m1, m2) + ((S1.diagonal().sqrt() - S2.diagonal().sqrt()) ** 2).sum())

    wrong = [no_factor_two, elementwise_sqrt, mean_not_squared, missing_trace, sqrt_of_trace, product_of_roots,
             variances_compared, diagonal_only, lambda m1, S1, m2, S2: torch.zeros(2), lambda *a: 1 / 0]
    right = [s.frechet_distance,
             lambda m1, S1, m2, S2: evaluation.frechet_distance(m1.numpy(), S1.numpy(), m2.numpy(), S2.numpy()),
             lambda m1, S1, m2, S2: torch.tensor(s.frechet_distance(m1, S1, m2, S2))]
    assert verdicts(capsys, check, right) == [True] * len(right)
    assert verdicts(capsys, check, wrong) == [False] * len(wrong)
    assert verdicts(capsys, check, [not_yet]) == [None]
    check(elementwise_sqrt)
    assert "elementwise" in capsys.readouterr().out


def test_lesson11_frechet_truth_agrees_with_torch_fidelity():
    """The check's own truths (closed forms, the eigenvalues of S1 S2) are torch-fidelity's numbers."""
    from ddpm_core.exercises.lesson11 import _fid_cases

    for label, (m1, S1, m2, S2), truth in _fid_cases():
        ref = evaluation.frechet_distance(m1.numpy(), S1.numpy(), m2.numpy(), S2.numpy())
        assert np.isclose(ref, truth, rtol=1e-7, atol=1e-8), label


# ----------------------------------------------------------------------------- the notebook
