"""Shared pieces of the exercise checks: how a verdict is said, how an answer is read, the schedules rebuilt in plain
Python floats (an independent route to ddpm_core's tables)."""

from __future__ import annotations

import numbers
from typing import Any

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


def _number(name: str, answer: Any, what: str = "one number (a float)") -> tuple[bool, Any]:
    """``(True, verdict)`` when the answer is missing or not one number (already said), else ``(False, value)``.
    ``what`` names the answer expected, for the message."""
    if answer is None:
        return True, _say(name, None, NOT_ATTEMPTED)
    value = _scalar(answer)
    if value is None:
        return True, _say(name, False, f"give {what}, got {type(answer).__name__}")
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


TOY_T, TOY_BETA_START, TOY_BETA_END = 100, 1e-3, 0.2  # the toy lessons' schedule


def _toy_tables() -> tuple[list[float], list[float]]:
    """betas[t] and abar[t] (code t) of the toy schedule, plain Python floats."""
    betas = _linear_betas(TOY_T, TOY_BETA_START, TOY_BETA_END)
    return betas, _running_abar(betas)[1:]


def _tensor_close(out: Any, expected: torch.Tensor, atol: float) -> bool:
    return (isinstance(out, torch.Tensor) and out.shape == expected.shape
            and torch.allclose(out.double(), expected, rtol=0, atol=atol))
