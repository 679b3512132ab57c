"""Lesson 10's solutions. Try each exercise yourself first."""

import torch


def exercise_1(p=0.1, batch=256):
    """(expected_null, prob_no_null): the mean of Binomial(256, p), and the probability that all 256 labels are kept."""
    return p * batch, (1 - p) ** batch


def guided_eps_paper(eps_cond, eps_uncond, w):
    """Exercise 2: guidance in Ho & Salimans' convention, (1 + w) eps_cond - w eps_uncond (our s = 1 + w)."""
    return (1 + w) * eps_cond - w * eps_uncond


def guided_x0(x0_cond, x0_uncond, s):
    """Exercise 3: x0_hat is affine in eps and (1 - s) + s = 1, so the same line through the two predictions."""
    return x0_uncond + s * (x0_cond - x0_uncond)


def composed_eps(model, x_t, t, labels, scales):
    """Exercise 4: eps(x_t, null) + sum_i s_i (eps(x_t, y_i) - eps(x_t, null)), in one call on a (k + 1)-fold batch."""
    n, k = len(x_t), len(labels)
    ys = torch.tensor([model.null_label] + list(labels)).repeat_interleave(n)      # null x n, y_1 x n, ..., y_k x n
    eps = model(x_t.repeat(k + 1, *([1] * (x_t.dim() - 1))), t.repeat(k + 1), ys).chunk(k + 1)
    out = eps[0]
    for eps_y, s in zip(eps[1:], scales):
        out = out + s * (eps_y - eps[0])
    return out
