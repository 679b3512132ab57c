"""Lesson 11's solutions. Try each exercise yourself first."""

import math

import torch


def inception_score(logits):
    """Exercise 1: exp(mean over x of KL(p(y|x) || p(y))) for one split, with p(y) = mean over x of p(y|x)."""
    logp = torch.log_softmax(logits.double(), dim=1)                       # log p(y|x)
    log_marginal = torch.logsumexp(logp, dim=0) - math.log(len(logp))      # log p(y) = log mean_x p(y|x)
    kl = (logp.exp() * (logp - log_marginal)).sum(dim=1)                   # KL(p(y|x) || p(y)) per sample
    return float(kl.mean().exp())


def density_coverage(fake, real, k=5):
    """Exercise 2: density and coverage with the real points' k-NN balls (the k-th nearest OTHER real point)."""
    fake, real = fake.double(), real.double()
    radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values          # index k + 1: the point itself is first
    inside = torch.cdist(real, fake) <= radii[:, None]                     # (real ball i, fake point j)
    return {"density": float(inside.sum()) / (k * len(fake)), "coverage": float(inside.any(dim=1).double().mean())}


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Exercise 3: |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr (S1^1/2 S2 S1^1/2)^1/2, by symmetric eigendecompositions."""
    mu1, sigma1, mu2, sigma2 = (torch.as_tensor(a, dtype=torch.float64) for a in (mu1, sigma1, mu2, sigma2))
    w, V = torch.linalg.eigh(sigma1)
    root1 = V @ torch.diag(w.clamp_min(0).sqrt()) @ V.T                    # S1^1/2
    M = root1 @ sigma2 @ root1
    cross = torch.linalg.eigvalsh((M + M.T) / 2).clamp_min(0).sqrt().sum()  # tr M^1/2
    return float(((mu1 - mu2) ** 2).sum() + sigma1.trace() + sigma2.trace() - 2 * cross)
