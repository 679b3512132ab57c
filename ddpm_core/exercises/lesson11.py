"""Lesson 11's exercise checks (evaluation).

Each check calls the learner's function on inputs of its own and works the truth out by another route: plain Python
floats in loops (the Inception score, density and coverage), closed forms where the answer is known by construction
(confident balanced predictions, commuting covariances), and for general covariances the eigenvalues of the
non-symmetric product :math:`\\Sigma_1\\Sigma_2` in float64.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._common import _say, _scalar, _run


# ----------------------------------------------------------------------------- exercise 1: the Inception score
def _is_brute_force(logits: torch.Tensor) -> float:
    """exp(mean_x KL(p(y|x) || p(y))) in plain Python floats, one sample at a time."""
    rows = logits.tolist()
    probs = []
    for row in rows:
        top = max(row)
        e = [math.exp(v - top) for v in row]
        s = sum(e)
        probs.append([v / s for v in e])
    n, k = len(probs), len(probs[0])
    marginal = [sum(p[c] for p in probs) / n for c in range(k)]
    kl = [sum(p[c] * (math.log(p[c]) - math.log(marginal[c])) for c in range(k) if p[c] > 0) for p in probs]
    return math.exp(sum(kl) / n)


def _is_cases() -> list[tuple[str, torch.Tensor, float]]:
    g = torch.Generator().manual_seed(111)
    eye = torch.eye(10, dtype=torch.float64)
    confident = 40.0 * eye[torch.arange(50) % 10]             # sure of its class, all 10 classes equally often: IS = 10
    four = 40.0 * eye[torch.arange(40) % 4]                   # sure, but only 4 of the 10 classes: IS = 4
    same = torch.randn(1, 10, generator=g, dtype=torch.float64).repeat(30, 1)   # one prediction for all: IS = 1
    rand = 2.5 * torch.randn(40, 7, generator=g, dtype=torch.float64)
    wide = torch.randn(60, 1008, generator=g, dtype=torch.float64)              # Inception's 1008 logits
    return [("confident, 10 balanced classes", confident, 10.0), ("confident, 4 of 10 classes", four, 4.0),
            ("the same prediction for every sample", same, 1.0),
            ("random logits (40 x 7)", rand, _is_brute_force(rand)),
            ("random logits (60 x 1008)", wide, _is_brute_force(wide))]


def lesson11_inception_score(function: Callable[..., Any]) -> bool | None:
    """Exercise 1: ``function(logits)`` -> the Inception score of one split, ``exp(E_x KL(p(y|x) || p(y)))``.

    The truth: closed forms (confident predictions spread evenly over m classes give m; one prediction shared by every
    sample gives 1) and a plain-Python brute force on random logits.
    """
    name = "Exercise 1"
    for label, logits, truth in _is_cases():
        done, out = _run(name, function, logits.clone())
        if done:
            return out
        value = _scalar(out)
        if value is None:
            return _say(name, False, f"return one number (a float), got {type(out).__name__}.")
        if math.isclose(value, truth, rel_tol=1e-6, abs_tol=1e-9):
            continue
        if math.isclose(value, math.log(truth), rel_tol=1e-6, abs_tol=1e-6):
            return _say(name, False, f"{label}: that is the mean KL; the score is its exponential.")
        return _say(name, False, f"{label}: got {value:.4g}, expected {truth:.4g}. IS = exp(mean over x of "
                                 "KL(p(y|x) || p(y))): p(y|x) = softmax(logits), p(y) = the mean of the probabilities "
                                 "p(y|x) over the samples (not the softmax of the mean logits), KL(p || q) = "
                                 "sum p (log p - log q).")
    return _say(name, True, "confident balanced predictions over m classes score m, a shared prediction scores 1, and "
                            "random logits match a brute force.")


# ----------------------------------------------------------------------------- exercise 2: density and coverage
def _dc_brute_force(fake: list[list[float]], real: list[list[float]], k: int) -> tuple[float, float]:
    radii = [sorted(math.dist(x, other) for j, other in enumerate(real) if j != i)[k - 1] for i, x in enumerate(real)]
    inside = [[math.dist(x, y) <= r for y in fake] for x, r in zip(real, radii)]
    density = sum(sum(row) for row in inside) / (k * len(fake))
    coverage = sum(any(row) for row in inside) / len(real)
    return density, coverage


def lesson11_density_coverage(function: Callable[..., Any]) -> bool | None:
    """Exercise 2: ``function(fake, real, k)`` -> ``{"density": ..., "coverage": ...}`` (Naeem et al. 2020).

    The balls are the real points' k-NN balls (radius: the distance to the k-th nearest *other* real point).  The
    truth is a plain-Python double loop over the points, on three seeded 2-D sets: a fresh sample, a sample crowded
    into one corner (density above 1, coverage low), and a shifted one; with k = 3 and k = 5.
    """
    name = "Exercise 2"
    g = torch.Generator().manual_seed(112)
    real = torch.randn(40, 2, generator=g, dtype=torch.float64)
    cases = [("a fresh sample", torch.randn(30, 2, generator=g, dtype=torch.float64), 5),
             ("a sample crowded near one point", 0.3 * torch.randn(30, 2, generator=g, dtype=torch.float64) + 0.5, 3),
             ("a shifted sample", torch.randn(25, 2, generator=g, dtype=torch.float64) + 1.5, 5)]
    for label, fake, k in cases:
        done, out = _run(name, function, fake.clone(), real.clone(), k)
        if done:
            return out
        if not isinstance(out, dict) or not {"density", "coverage"} <= set(out):
            return _say(name, False, 'return a dict {"density": ..., "coverage": ...}.')
        density, coverage = _scalar(out["density"]), _scalar(out["coverage"])
        if density is None or coverage is None:
            return _say(name, False, "density and coverage should be one number each.")
        d_true, c_true = _dc_brute_force(fake.tolist(), real.tolist(), k)
        d_ok, c_ok = abs(density - d_true) < 1e-9, abs(coverage - c_true) < 1e-9
        if d_ok and c_ok:
            continue
        if not d_ok and abs(density - k * d_true) < 1e-9:
            return _say(name, False, f"{label}, k = {k}: density divides the count of (real ball, sample) pairs by "
                                     "k M, not by M.")
        return _say(name, False, f"{label}, k = {k}: got density {density:.4f} and coverage {coverage:.4f}, expected "
                                 f"{d_true:.4f} and {c_true:.4f}. The balls are the REAL points' (radius: the k-th "
                                 "nearest OTHER real point, so the point itself, at distance 0, does not count); "
                                 "coverage is the share of real balls holding at least one sample.")
    return _say(name, True, "density and coverage agree with a brute-force double loop, with k = 3 and k = 5, on a "
                            "fresh, a crowded and a shifted sample.")


# ----------------------------------------------------------------------------- exercise 3: the Frechet distance
def _closed_form(mu1: torch.Tensor, a: torch.Tensor, mu2: torch.Tensor, b: torch.Tensor) -> float:
    """Commuting covariances with eigenvalues a_i, b_i in one basis: |mu1 - mu2|^2 + sum (sqrt a_i - sqrt b_i)^2."""
    return float(((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())


def _eigen_route(mu1: torch.Tensor, s1: torch.Tensor, mu2: torch.Tensor, s2: torch.Tensor) -> float:
    """tr (S1 S2)^1/2 as the sum of the square roots of the eigenvalues of the non-symmetric S1 S2 (float64)."""
    w = torch.linalg.eigvals(s1 @ s2)
    cross = w.real.clamp_min(0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * cross)


def _fid_cases() -> list[tuple[str, tuple[torch.Tensor, ...], float]]:
    g = torch.Generator().manual_seed(113)
    f64 = dict(generator=g, dtype=torch.float64)
    cases = [("1-D: N(0, 1) vs N(3, 2^2)",
              (torch.zeros(1, dtype=torch.float64), torch.eye(1, dtype=torch.float64),
               torch.full((1,), 3.0, dtype=torch.float64), 4 * torch.eye(1, dtype=torch.float64)), 10.0)]
    mu1, mu2 = torch.randn(5, **f64), torch.randn(5, **f64)
    a, b = torch.rand(5, **f64) + 0.2, 3 * torch.rand(5, **f64) + 0.1
    cases.append(("diagonal covariances (d = 5)", (mu1, torch.diag(a), mu2, torch.diag(b)), _closed_form(mu1, a, mu2, b)))
    q, _ = torch.linalg.qr(torch.randn(6, 6, **f64))                         # a random rotation
    mu1, mu2 = torch.randn(6, **f64), torch.randn(6, **f64)
    a, b = torch.rand(6, **f64) + 0.2, 2 * torch.rand(6, **f64) + 0.1
    s1, s2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    cases.append(("commuting, non-diagonal covariances (d = 6)", (mu1, s1, mu2, s2), _closed_form(mu1, a, mu2, b)))
    for d in (8, 64):
        mu1, mu2 = torch.randn(d, **f64), torch.randn(d, **f64)
        A, B = torch.randn(d, d, **f64), torch.randn(d, d, **f64)
        s1 = A @ A.T / d + 0.1 * torch.eye(d, dtype=torch.float64)
        s2 = B @ B.T / d + 0.1 * torch.eye(d, dtype=torch.float64)
        cases.append((f"general covariances (d = {d})", (mu1, s1, mu2, s2), _eigen_route(mu1, s1, mu2, s2)))
    mu, s = cases[-1][1][0], cases[-1][1][1]
    cases.append(("a Gaussian against itself", (mu, s, mu.clone(), s.clone()), 0.0))
    return cases


def lesson11_frechet_distance(function: Callable[..., Any]) -> bool | None:
    """Exercise 3: ``function(mu1, sigma1, mu2, sigma2)`` -> FID between the two Gaussians (float64 tensors in).

    The truth: 1-D, diagonal and commuting covariances in closed form (FID = |mu1 - mu2|^2 + sum (sqrt a_i -
    sqrt b_i)^2 with the eigenvalues in the shared basis), general ones by the eigenvalues of the non-symmetric
    product S1 S2, and 0 for a Gaussian against itself.
    """
    name = "Exercise 3"
    for label, args, truth in _fid_cases():
        done, out = _run(name, function, *(x.clone() for x in args))
        if done:
            return out
        value = _scalar(out)
        if value is None:
            return _say(name, False, f"return one number (a float), got {type(out).__name__}.")
        if math.isclose(value, truth, rel_tol=1e-7, abs_tol=1e-8):
            continue
        if math.isnan(value):
            return _say(name, False, f"{label}: got nan. An elementwise square root of S1 S2 meets negative entries; "
                                     "the trace term needs the matrix square root (its eigenvalues).")
        return _say(name, False, f"{label}: got {value:.6g}, expected {truth:.6g}. FID = |mu1 - mu2|^2 (squared) + "
                                 "tr S1 + tr S2 - 2 tr (S1^1/2 S2 S1^1/2)^1/2: both traces, the factor 2, and the "
                                 "trace of a matrix square root (not an elementwise one).")
    return _say(name, True, "1-D, diagonal and commuting covariances match the closed form, general ones the "
                            "eigenvalues of S1 S2, and a Gaussian is at distance 0 from itself.")
