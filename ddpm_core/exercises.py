r"""The lessons' exercise checks.

Each check takes the learner's answer, prints one line and returns ``True`` (correct), ``False`` (wrong: the line
says why, and names the known slips: the paper's index for the code's, a standard deviation for a variance, a
missing square root, a hard-coded number) or ``None`` (not attempted yet: the exercise cell still holds ``None``, or
its function still raises ``NotImplementedError``).  So a lesson runs top to bottom before any exercise is done.

A check works the truth out itself, from the question's own inputs and by an independent route (plain Python floats,
float64 brute force, a closed form), never from the learner's intermediate results.  Where the answer is a
function, the check calls it on inputs of its own.  ``tests/test_exercises.py`` feeds every check its solution (kept
apart in ``lessons/solutions/``, out of the learner's sight) and the plausible wrong answers, which must fail.

Names: ``lessonNN_what``.  The index convention is the course's: code ``t`` = paper :math:`t - 1`.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Callable

import torch

NOT_ATTEMPTED = ("not attempted yet: replace the None (or the NotImplementedError) in the exercise cell with your "
                 "answer, then run this cell again")


def _say(name: str, verdict: bool | None, message: str) -> bool | None:
    prefix = {True: "Correct!", False: "Not yet:", None: ""}[verdict]
    print(f"{name}: {prefix + ' ' if prefix else ''}{message}")
    return verdict


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _scalar(value: Any) -> float | None:
    """A plain float from a number or a one-element tensor; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor):
        return float(value.item()) if value.numel() == 1 else None
    return float(value) if isinstance(value, numbers.Real) else None


def _number(name: str, answer: Any) -> tuple[bool, Any]:
    """``(True, verdict)`` when the answer is missing or not one number (already said), else ``(False, value)``."""
    if answer is None:
        return True, _say(name, None, NOT_ATTEMPTED)
    value = _scalar(answer)
    if value is None:
        return True, _say(name, False, f"give one number (a float), got {type(answer).__name__}")
    return False, value


def _run(name: str, function: Any, *args: Any) -> tuple[bool, Any]:
    """Call the learner's function: ``(False, result)``, or ``(True, verdict)`` after saying what happened (None:
    it still raises NotImplementedError; False: it is not a function, or it raised)."""
    if not callable(function):
        return True, _say(name, False, f"expected a function, got {type(function).__name__}")
    try:
        return False, function(*args)
    except NotImplementedError:
        return True, _say(name, None, NOT_ATTEMPTED)
    except Exception as err:  # the learner's code: say what it raised, do not end the lesson
        return True, _say(name, False, f"your function raised {type(err).__name__}: {err}")


def _linear_betas(T: int = 1000, start: float = 1e-4, end: float = 0.02) -> list[float]:
    """The paper's linear schedule in plain Python floats (an independent route to the tables)."""
    return [start + (end - start) * i / (T - 1) for i in range(T)]


def _running_abar(betas: list[float]) -> list[float]:
    """abar[k] = the product of the first k factors (1 - beta), plain floats: abar[0] = 1, code t's is abar[t + 1]."""
    abar = [1.0]
    for beta in betas:
        abar.append(abar[-1] * (1.0 - beta))
    return abar


def _linear_abar() -> list[float]:
    return _running_abar(_linear_betas())


def _linear_half_signal() -> int:
    """The first code t with alpha-bar_t < 1/2 for the linear schedule."""
    return next(k - 1 for k, a in enumerate(_linear_abar()) if a < 0.5)


# ============================================================================ lesson 00
def lesson00_budget_switch(answer: Any) -> bool | None:
    """Exercise 1: the value of ``DDPM_QUICK`` (a string) that forces the full budget."""
    name = "Exercise 1"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    if not isinstance(answer, str):
        return _say(name, False, f"environment variables hold text: give a string such as '...', not "
                                 f"{type(answer).__name__}")
    from . import budget

    saved = os.environ.get(budget.QUICK_ENV)
    try:
        os.environ[budget.QUICK_ENV] = answer
        full = budget.is_quick() is False
    except ValueError:
        return _say(name, False, f"{answer!r} is not a value ddpm_core understands: see the table in section 2")
    finally:
        if saved is None:
            os.environ.pop(budget.QUICK_ENV, None)
        else:
            os.environ[budget.QUICK_ENV] = saved
    if not full:
        return _say(name, False, f"{answer!r} asks for the quick budget; which values mean 'full'?")
    return _say(name, True, f"with DDPM_QUICK={answer}, budget.select returns its `full` argument.")


def lesson00_count_sevens(answer: Any, labels: torch.Tensor) -> bool | None:
    """Exercise 2: the number of 7s among the 128 labels picked by ``randperm(len(labels), seed 7)[:128]``.

    ``labels``: the whole training set's labels; the check draws the batch itself.
    """
    name = "Exercise 2"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    value = _scalar(answer)
    if value is None or value != int(value):
        return _say(name, False, f"give a whole number (a count), got {answer!r}")
    batch = torch.randperm(len(labels), generator=torch.Generator().manual_seed(7))[:128]
    truth = sum(1 for i in batch.tolist() if int(labels[i]) == 7)  # plain Python counting
    if int(value) == truth:
        return _say(name, True, "(labels == 7).sum() counts with a boolean mask, no loop needed.")
    if int(value) == sum(1 for y in labels.tolist() if y == 7):
        return _say(name, False, "that counts the 7s in the whole training set; count them in the batch of 128.")
    return _say(name, False, "draw the batch with the seeded permutation (seed 7, first 128), then count its 7s.")


def lesson00_unit_variance(mean: Any, var: Any) -> bool | None:
    """Exercise 3: per-axis mean and variance, shape ``(2,)`` each, of 20,000 ``gaussian25`` points (seed 3)."""
    name = "Exercise 3"
    if mean is None or var is None:
        return _say(name, None, NOT_ATTEMPTED)
    from .data import make_toy_2d

    mean, var = torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(var, dtype=torch.float64)
    if mean.shape != (2,) or var.shape != (2,):
        return _say(name, False, "compute one mean and one variance per axis: points.mean(dim=0) has shape (2,).")
    points = make_toy_2d("gaussian25", 20_000, generator=torch.Generator().manual_seed(3)).double()
    m = points.sum(0) / len(points)
    ss = ((points - m) ** 2).sum(0)
    variances = (ss / (len(points) - 1), ss / len(points))  # unbiased (torch's default) or biased: both accepted
    if not torch.allclose(mean, m, rtol=0, atol=1e-5):
        return _say(name, False, "the means are off: average the 20,000 points over dim=0 (seed 3).")
    if any(torch.allclose(var, v, rtol=1e-5, atol=0) for v in variances):
        return _say(name, True, "mean ~0 and variance ~1 per axis: the data has the scale of N(0, I), though it "
                                "sits in 25 blobs.")
    if torch.allclose(var, variances[0].sqrt(), rtol=1e-5, atol=0):
        return _say(name, False, "that is the standard deviation; the variance is its square (points.var).")
    return _say(name, False, "the variances are off: points.var(dim=0) on the same 20,000 points.")


# ============================================================================ lesson 01
def lesson01_half_signal(answer: Any) -> bool | None:
    """Exercise 1: the first code ``t`` with :math:`\\bar\\alpha_t < 0.5` (linear, T = 1000)."""
    name = "Exercise 1"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    if not _is_int(answer) and not (isinstance(answer, torch.Tensor) and answer.numel() == 1
                                    and not answer.is_floating_point()):
        return _say(name, False, f"give an integer index (int(...)), got {answer!r}")
    answer, truth = int(answer), _linear_half_signal()
    if answer == truth:
        return _say(name, True, f"alpha-bar first drops below 0.5 at code t = {truth} (paper t = {truth + 1}); "
                                "there the SNR crosses 1.")
    if answer == truth + 1:
        return _say(name, False, "that is the paper's index; give the code index (code t = paper t - 1).")
    return _say(name, False, "find the first index where alphas_bar < 0.5 (torch.nonzero on a boolean mask).")


def lesson01_noise_std(answer: Any, t: int = 500) -> bool | None:
    """Exercise 2: the standard deviation of :math:`x_t` at code ``t`` when :math:`x_0 = 0`."""
    name = "Exercise 2"
    done, value = _number(name, answer)
    if done:
        return value
    abar = _linear_abar()
    abar_t = abar[t + 1]
    truth = math.sqrt(1.0 - abar_t)
    if abs(value - truth) < 1e-6:
        return _say(name, True, "with x_0 = 0 only the noise term is left: std = sqrt(1 - alpha-bar_t).")
    if abs(value - truth**2) < 1e-6:
        return _say(name, False, "that is the variance, 1 - alpha-bar_t; take its square root.")
    if abs(value - math.sqrt(abar_t)) < 1e-6:
        return _say(name, False, "sqrt(alpha-bar_t) scales the signal; with x_0 = 0 the noise term is what is left.")
    if abs(value - math.sqrt(1.0 - abar[t])) < 1e-6 or abs(value - math.sqrt(1.0 - abar[t + 2])) < 1e-6:
        return _say(name, False, f"that is the value one step off; use alphas_bar[{t}] (code t = {t}).")
    return _say(name, False, "x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps; what is its std at x_0 = 0?")


def lesson01_moment_kl(function: Callable[[torch.Tensor], Any]) -> bool | None:
    """Exercise 3: ``function(x)`` = KL(N(m, v) || N(0, 1)) per dimension, m and v the mean and variance of all of x.

    The check calls it on tensors of its own with known moments (a shift, a scale, unit Gaussian noise) and compares
    with the closed form in float64.
    """
    name = "Exercise 3"
    g = torch.Generator().manual_seed(11)
    probes = [2.0 + 3.0 * torch.randn(4000, generator=g, dtype=torch.float64),
              0.5 * torch.randn(50, 40, generator=g, dtype=torch.float64) - 1.0,
              torch.randn(3, 1, 32, 32, generator=g, dtype=torch.float64)]
    for x in probes:
        done, value = _run(name, function, x.clone())
        if done:
            return value
        value = _scalar(value)
        if value is None:
            return _say(name, False, "return one number (a float or a 0-d tensor) for the whole tensor.")
        n = x.numel()
        m = sum(x.flatten().tolist()) / n
        v = sum((e - m) ** 2 for e in x.flatten().tolist()) / (n - 1)
        truth = 0.5 * (v + m * m - 1.0 - math.log(v))
        if abs(value - truth) > 1e-6 * max(1.0, abs(truth)):
            s = math.sqrt(v)
            if abs(value - 0.5 * (s + m * m - 1.0 - math.log(s))) < 1e-6 * max(1.0, abs(truth)):
                return _say(name, False, "that uses the standard deviation; the formula needs the variance v.")
            if abs(value - 2 * truth) < 1e-6 * max(1.0, abs(truth)):
                return _say(name, False, "twice the KL: the formula has a factor 1/2.")
            if abs(value - 0.5 * (v - 1.0 - math.log(v))) < 1e-6 * max(1.0, abs(truth)):
                return _say(name, False, "the mean's term is missing: a shifted Gaussian is further from N(0, 1).")
            return _say(name, False, "KL(N(m, v) || N(0, 1)) = (v + m^2 - 1 - log v) / 2, with m and v over all "
                                     "entries.")
    return _say(name, True, "your moment-matched KL agrees with the closed form on three test tensors.")


# ============================================================================ lesson 02
def _cosine_abar(t_paper: int, T: int, s: float = 0.008) -> float:
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(t_paper) / f(0)


def lesson02_cosine_half(answer: Any) -> bool | None:
    """Exercise 1: the first code ``t`` at which the cosine schedule's SNR drops below 1 (T = 1000)."""
    name = "Exercise 1"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    if not _is_int(answer):
        return _say(name, False, f"give a plain Python int (int(tensor_index)), got {answer!r}")
    T = 1000
    # SNR < 1 exactly when alpha-bar < 1/2; the closed form f(t)/f(0) at paper t = code t + 1 (beta clipping at
    # 0.999 only touches the last steps)
    truth = next(t for t in range(T) if _cosine_abar(t + 1, T) < 0.5)
    linear = _linear_half_signal()
    if answer == truth:
        return _say(name, True, f"the cosine schedule's SNR first drops below 1 at code t = {truth} (paper t = "
                                f"{truth + 1}), about twice as late as linear's {linear}: it keeps signal longer.")
    if answer == truth + 1:
        return _say(name, False, "that is the paper's t; give the code index (code t = paper t - 1).")
    if answer == linear:
        return _say(name, False, "that is the linear schedule's crossing (lesson 01); use the cosine betas.")
    return _say(name, False, "compute SNR = abar / (1 - abar) for the cosine betas and find the first index below 1.")


def lesson02_beta_end(betas: Any, target: float = 1e-3, T: int = 1000, beta_start: float = 1e-4) -> bool | None:
    """Exercise 2: a linear schedule from ``beta_start`` whose :math:`\\bar\\alpha_T` is ``target``."""
    name = "Exercise 2"
    if betas is None:
        return _say(name, None, NOT_ATTEMPTED)
    betas = torch.as_tensor(betas, dtype=torch.float64)
    if betas.shape != (T,):
        return _say(name, False, f"return all {T} betas as one 1-D tensor, got shape {tuple(betas.shape)}.")
    values = betas.tolist()
    steps = [b - a for a, b in zip(values, values[1:])]
    if abs(values[0] - beta_start) > 1e-12 or max(steps) - min(steps) > 1e-12:
        return _say(name, False, f"keep the linear shape: start at {beta_start:g} and space the betas evenly.")
    log_abar_T = sum(math.log1p(-b) for b in values)  # plain Python, no cumprod
    if abs(log_abar_T - math.log(target)) < 1e-6:
        return _say(name, True, f"beta_end = {values[-1]:.5f} gives alpha-bar_T = {target:.0e} "
                                "(the paper's 0.02 leaves about 4e-05).")
    return _say(name, False, f"your alpha-bar_T is {math.exp(log_abar_T):.3e}, the target {target:.0e}: "
                             "bisect on beta_end.")


def lesson02_largest_prior(answer: Any) -> bool | None:
    """Exercise 3: the schedule (of the eight, paper defaults) with the largest prior term :math:`L_T`."""
    name = "Exercise 3"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    from .schedules import SCHEDULES, get_beta_schedule

    if answer not in SCHEDULES:
        return _say(name, False, f"answer with one of {', '.join(SCHEDULES)}, got {answer!r}")
    # L_T per dimension for pixel value x: (abar (x^2 - 1) - log(1 - abar)) / 2; check the ranking at black, grey and
    # white pixels, with alpha-bar_T a running product of plain floats (jsd's last beta is 1: alpha-bar_T = 0)
    abar_T = {n: math.prod(1.0 - b for b in get_beta_schedule(n).tolist()) for n in SCHEDULES}
    winners = set()
    for x in (-1.0, 0.0, 1.0):
        prior = {n: 0.5 * (a * (x * x - 1.0) - math.log1p(-a)) for n, a in abar_T.items()}
        winners.add(max(prior, key=prior.get))
    (truth,) = winners
    if answer == truth:
        return _say(name, True, f"'{truth}' ends with the most signal left (alpha-bar_T = {abar_T[truth]:.1e}), "
                                "so its L_T is the largest for every image.")
    return _say(name, False, f"'{answer}' leaves alpha-bar_T = {abar_T[answer]:.1e}; L_T grows with alpha-bar_T, "
                             "so compare alpha-bar_T across the schedules.")


# ============================================================================ lesson 03
def lesson03_posterior_variance(answer: Any) -> bool | None:
    """Exercise 1: :math:`\\tilde\\beta_t` at paper t = 10 (code 9) as a float, from the betas alone."""
    name = "Exercise 1"
    done, value = _number(name, answer)
    if done:
        return value
    betas, abar = _linear_betas(), _linear_abar()

    def tilde_beta(code_t: int) -> float:  # (1 - abar_{t-1}) / (1 - abar_t) beta_t, paper t = code_t + 1
        return (1.0 - abar[code_t]) / (1.0 - abar[code_t + 1]) * betas[code_t]

    close = lambda a, b: abs(a - b) <= 1e-9 * abs(b)  # noqa: E731
    if close(value, tilde_beta(9)):
        return _say(name, True, "tilde_beta_10 is a little below beta_10: the posterior is narrower than one step.")
    if close(value, tilde_beta(10)) or close(value, tilde_beta(8)):
        return _say(name, False, "that is one step off: paper t = 10 is code index 9.")
    if close(value, betas[9]):
        return _say(name, False, "that is beta_10 itself; the posterior variance multiplies it by "
                                 "(1 - abar_{t-1}) / (1 - abar_t).")
    if close(value, (1.0 - abar[10]) / (1.0 - abar[9]) * betas[9]):
        return _say(name, False, "the ratio is upside down: (1 - abar_{t-1}) / (1 - abar_t), smaller than 1.")
    return _say(name, False, "tilde_beta_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t, with abar the running "
                             "product of (1 - beta).")


def lesson03_eps_from_v(function: Callable[..., Any]) -> bool | None:
    """Exercise 2: ``function(x_t, abar_t, v)`` -> the :math:`\\epsilon` that the v-prediction ``v`` stands for.

    The check builds ``x_t`` and ``v`` from known ``x_0`` and ``eps`` by their definitions
    (:math:`x_t = \\sqrt{\\bar\\alpha}x_0 + \\sqrt{1-\\bar\\alpha}\\epsilon`, :math:`v = \\sqrt{\\bar\\alpha}\\epsilon -
    \\sqrt{1-\\bar\\alpha}x_0`) and asks for ``eps`` back.
    """
    name = "Exercise 2"
    g = torch.Generator().manual_seed(12)
    x0 = torch.rand(5, 1, 6, 6, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(5, 1, 6, 6, generator=g, dtype=torch.float64)
    abar = torch.tensor([0.9999, 0.9, 0.5, 0.1, 4e-5], dtype=torch.float64).view(5, 1, 1, 1)
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    v = abar.sqrt() * eps - (1 - abar).sqrt() * x0
    done, out = _run(name, function, x_t.clone(), abar.clone(), v.clone())
    if done:
        return out
    if not isinstance(out, torch.Tensor) or out.shape != eps.shape:
        return _say(name, False, f"return a tensor shaped like x_t {tuple(eps.shape)}.")
    if torch.allclose(out.double(), eps, rtol=0, atol=1e-6):
        return _say(name, True, "eps = sqrt(1 - abar) x_t + sqrt(abar) v recovers the noise at every noise level.")
    if torch.allclose(out.double(), x0, rtol=0, atol=1e-6):
        return _say(name, False, "that is x_0 (sqrt(abar) x_t - sqrt(1 - abar) v); the question asks for eps.")
    if torch.allclose(out.double(), (abar * x_t + (1 - abar) * v), rtol=0, atol=1e-6) or \
            torch.allclose(out.double(), ((1 - abar) * x_t + abar * v), rtol=0, atol=1e-6):
        return _say(name, False, "a square root is missing: the coefficients are sqrt(abar) and sqrt(1 - abar).")
    return _say(name, False, "invert the rotation: (x_t, v) is (x_0, eps) turned by the angle with cos = sqrt(abar).")


def lesson03_uniform_bpd(function: Callable[..., Any]) -> bool | None:
    """Exercise 3: ``function(x, levels)`` -> bits/dim of the model that gives each of ``levels`` values the same
    probability, independently per entry, on the images ``x`` (a float).

    The check varies ``levels`` and the image shapes, so a remembered "8" does not pass.
    """
    name = "Exercise 3"
    g = torch.Generator().manual_seed(13)
    cases = [(torch.rand(4, 1, 28, 28, generator=g) * 2 - 1, 256), (torch.rand(3, 3, 8, 8, generator=g) * 2 - 1, 16),
             (torch.rand(2, 1, 5, 7, generator=g) * 2 - 1, 3)]
    for x, levels in cases:
        done, out = _run(name, function, x.clone(), levels)
        if done:
            return out
        value = _scalar(out)
        if value is None:
            return _say(name, False, "return one number: the bits per dimension averaged over the images.")
        truth = math.log2(levels)  # every entry costs log2(levels) bits, whatever its value
        if abs(value - truth) < 1e-6:
            continue
        if abs(value - math.log(levels)) < 1e-6:
            return _say(name, False, "that is nats per dimension; divide by ln 2 for bits.")
        if abs(value - truth * x[0].numel()) < 1e-3 * truth * x[0].numel():
            return _say(name, False, "that is bits per image; divide by the number of dimensions C x H x W.")
        return _say(name, False, f"with {levels} equally likely values, what does each entry cost in bits? "
                                 f"(got {value:.4g} for levels = {levels})")
    return _say(name, True, "-log(1/K) nats per entry, / ln 2 for bits: log2(K) bits/dim, 8 for 8-bit images.")


def lesson03_weight_ratio(answer: Any) -> bool | None:
    """Exercise 4: :math:`\\lambda_2 / \\lambda_{500}` (paper t) of eq. 12 with :math:`\\sigma_t^2 = \\beta_t`."""
    name = "Exercise 4"
    done, value = _number(name, answer)
    if done:
        return value
    betas, abar = _linear_betas(), _linear_abar()

    def lam(paper_t: int, with_alpha: bool = True) -> float:  # beta^2 / (2 sigma^2 alpha (1 - abar)), sigma^2 = beta
        b = betas[paper_t - 1]
        return b / (2 * ((1 - b) if with_alpha else 1.0) * (1 - abar[paper_t]))

    truth = lam(2) / lam(500)
    close = lambda a, b: abs(a - b) <= 1e-6 * abs(b)  # noqa: E731
    if close(value, truth):
        return _say(name, True, f"the true bound weights paper t = 2 about {truth:.0f} times more than t = 500; "
                                "L_simple drops that weight.")
    if close(value, 1 / truth):
        return _say(name, False, "the ratio is upside down: lambda_2 / lambda_500 is far above 1.")
    if close(value, lam(3) / lam(501)) or close(value, lam(1) / lam(499)):
        return _say(name, False, "the indices are one step off: paper t = 2 and 500 are code 1 and 499.")
    if close(value, 1.0):
        return _say(name, False, "1 is L_simple's ratio; the question asks for the true bound's lambda_t.")
    if close(value, lam(2, False) / lam(500, False)):
        return _say(name, False, "alpha_t is missing from the denominator of lambda_t.")
    return _say(name, False, "lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)) with sigma_t^2 = beta_t.")


# ============================================================================ lesson 04
TOY_T, TOY_BETA_START, TOY_BETA_END = 100, 1e-3, 0.2  # the toy lessons' schedule


def _toy_tables() -> tuple[list[float], list[float]]:
    """betas[t] and abar[t] (code t) of the toy schedule, plain Python floats."""
    betas = _linear_betas(TOY_T, TOY_BETA_START, TOY_BETA_END)
    return betas, _running_abar(betas)[1:]


def _tensor_close(out: Any, expected: torch.Tensor, atol: float) -> bool:
    return (isinstance(out, torch.Tensor) and out.shape == expected.shape
            and torch.allclose(out.double(), expected, rtol=0, atol=atol))


def lesson04_fixed_small_sigma(answer: Any) -> bool | None:
    """Exercise 1: :math:`\\sigma_t = \\sqrt{\\tilde\\beta_t}` for every code t of the toy schedule, shape (T,)."""
    name = "Exercise 1"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    answer = torch.as_tensor(answer, dtype=torch.float64)
    if answer.shape != (TOY_T,):
        return _say(name, False, f"give one sigma per code index, a tensor of shape ({TOY_T},); got "
                                 f"{tuple(answer.shape)}.")
    betas, abar = _toy_tables()
    prev = [1.0] + abar[:-1]
    tilde = torch.tensor([(1 - p) / (1 - a) * b for b, a, p in zip(betas, abar, prev)], dtype=torch.float64)
    if torch.allclose(answer, tilde.sqrt(), rtol=1e-9, atol=1e-12):
        return _say(name, True, "sigma_t^2 = tilde_beta_t, and sigma = 0 at the last step (code t = 0).")
    if torch.allclose(answer, torch.tensor(betas, dtype=torch.float64).sqrt(), rtol=1e-9):
        return _say(name, False, "that is fixed-large (sigma_t^2 = beta_t); fixed-small uses tilde_beta_t.")
    if torch.allclose(answer, tilde, rtol=1e-9, atol=1e-12):
        return _say(name, False, "that is the variance tilde_beta_t; take its square root.")
    return _say(name, False, "tilde_beta_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t, with abar_{t-1} = 1 at code t = 0.")


def lesson04_share_within(function: Callable[..., Any]) -> bool | None:
    """Exercise 2: ``function(samples, modes, std)`` -> the share of samples within 5 std of their nearest mode.

    The check places points at known distances from known modes, so the truth is known by construction.
    """
    name = "Exercise 2"
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    std = 0.4  # 5 std = 2.0
    # distances 0.5, 1.9, 2.1 (Euclidean, along a diagonal: 1.9 fails a per-axis test the wrong way) and 3 from modes
    r = torch.tensor([0.5, 1.9, 2.1, 3.0, 1.0, 2.5])
    angle = torch.tensor([0.3, 0.785, 0.785, 2.0, 4.0, 1.0])
    centre = torch.tensor([0, 1, 2, 0, 1, 2])
    samples = modes[centre] + torch.stack([r * angle.cos(), r * angle.sin()], dim=1)
    truth = 3 / 6  # 0.5, 1.9 and 1.0 are within 2.0 of their mode
    done, out = _run(name, function, samples.clone(), modes.clone(), std)
    if done:
        return out
    value = _scalar(out)
    if value is None:
        return _say(name, False, "return one number: the share (between 0 and 1).")
    if abs(value - truth) < 1e-9:
        return _say(name, True, "the distance to the nearest mode, compared with 5 std, on points at known "
                                "distances.")
    if abs(value - 3.0) < 1e-9:
        return _say(name, False, "that is a count; divide by the number of samples for the share.")
    return _say(name, False, f"got {value:.3f} on points whose answer is known: use the Euclidean distance to the "
                             "nearest mode, at most 5 std.")


def lesson04_short_chain(answer: Any) -> bool | None:
    """Exercise 3: :math:`\\bar\\alpha_T` for T = 10 with the toy's linear schedule 1e-3 -> 0.2 (a float)."""
    name = "Exercise 3"
    done, value = _number(name, answer)
    if done:
        return value
    truth = math.prod(1.0 - b for b in _linear_betas(10, TOY_BETA_START, TOY_BETA_END))
    if abs(value - truth) < 1e-9:
        return _say(name, True, f"alpha-bar_T = {truth:.3f}: x_T still holds {math.sqrt(truth):.2f} x_0, yet the "
                                "sampler starts from N(0, I).")
    if abs(value - math.sqrt(truth)) < 1e-9:
        return _say(name, False, "that is sqrt(alpha-bar_T); give alpha-bar_T itself.")
    if abs(value - math.prod(1.0 - b for b in _linear_betas(9, TOY_BETA_START, TOY_BETA_END))) < 1e-9 or \
            abs(value - math.prod(1.0 - b for b in _linear_betas(10, TOY_BETA_START, TOY_BETA_END)[:-1])) < 1e-9:
        return _say(name, False, "one factor is missing: the product runs over all T = 10 steps.")
    if abs(value - _toy_tables()[1][-1]) < 1e-9:
        return _say(name, False, "that is the T = 100 chain's alpha-bar_T; use 10 betas from 1e-3 to 0.2.")
    return _say(name, False, "alpha-bar_T is the product of (1 - beta_t) over torch.linspace(1e-3, 0.2, 10).")


def lesson04_ancestral_step(function: Callable[..., Any]) -> bool | None:
    """Exercise 4: ``function(x_t, eps, t, z)`` -> x_{t-1}: one step of Algorithm 2 with the fixed-small variance.

    The toy schedule; ``t`` a code index, ``eps`` the network's prediction, ``z`` the step's noise (unused at
    code t = 0).  The truth comes by the Bayes route: the posterior mean :math:`\\tilde\\mu_t(x_t, \\hat x_0)` of
    eq. 7 at :math:`\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon)/\\sqrt{\\bar\\alpha_t}`, plus
    :math:`\\sqrt{\\tilde\\beta_t}\\,z`, not eq. 11's formula.
    """
    name = "Exercise 4"
    betas, abar = _toy_tables()
    g = torch.Generator().manual_seed(14)
    x_t = torch.randn(64, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(64, 2, generator=g, dtype=torch.float64)
    z = torch.randn(64, 2, generator=g, dtype=torch.float64)
    for t in (TOY_T - 1, 50, 1, 0):
        a, prev, b = abar[t], (abar[t - 1] if t > 0 else 1.0), betas[t]
        x0_hat = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
        mean = (math.sqrt(prev) * b / (1 - a)) * x0_hat + (math.sqrt(1 - b) * (1 - prev) / (1 - a)) * x_t
        sigma = math.sqrt((1 - prev) / (1 - a) * b)
        expected = mean + sigma * z if t > 0 else mean
        done, out = _run(name, function, x_t.clone(), eps.clone(), t, z.clone())
        if done:
            return out
        if _tensor_close(out, expected, 1e-6):
            continue
        if _tensor_close(out, mean + math.sqrt(b) * z, 1e-6):
            return _say(name, False, f"at code t = {t} that uses sigma_t^2 = beta_t (fixed-large); this step uses "
                                     "tilde_beta_t.")
        return _say(name, False, f"at code t = {t}: x_(t-1) = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) "
                                 "+ sigma_t z, with sigma_t^2 = tilde_beta_t.")
    return _say(name, True, "your step agrees with the posterior mean at x0_hat plus sqrt(tilde_beta_t) z, at four "
                            "timesteps (at code t = 0 tilde_beta is 0: no noise).")
