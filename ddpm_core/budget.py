"""The one switch between quick (CPU-sized) and full (paper-sized) budgets.

Every lesson and every command that trains or samples asks :func:`is_quick`
instead of reading the environment itself, so there is exactly one place that
decides.  The rule:

* ``DDPM_QUICK=1`` (or ``true``/``yes``/``on``) forces quick budgets.  The test
  run sets it (see ``conftest.py``), so a GPU machine running the tests never
  starts a full training.
* ``DDPM_QUICK=0`` (or ``false``/``no``/``off``) forces full budgets.
* Unset: quick on a CPU, full when a CUDA GPU is available.
"""

from __future__ import annotations

import os
from typing import TypeVar

import torch

QUICK_ENV = "DDPM_QUICK"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

T = TypeVar("T")


def is_quick() -> bool:
    """Return True when quick budgets are in force (see the module docstring)."""
    raw = os.environ.get(QUICK_ENV)
    if raw is None or raw.strip() == "":
        return not torch.cuda.is_available()
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"{QUICK_ENV}={raw!r} is not understood; use one of "
        f"{sorted(_TRUE)} for quick budgets or {sorted(_FALSE)} for full ones"
    )


def reason() -> str:
    """Say in words why the current budget was chosen."""
    raw = os.environ.get(QUICK_ENV)
    if raw is not None and raw.strip() != "":
        return f"{QUICK_ENV}={raw.strip()}"
    return "CUDA GPU found" if torch.cuda.is_available() else "no CUDA GPU found"


def select(quick: T, full: T, *, verbose: bool = True) -> T:
    """Return ``quick`` or ``full`` by :func:`is_quick`, printing which one runs.

    Lessons call this once near the top, e.g.
    ``steps = budget.select(quick=500, full=800_000)``.
    """
    chosen_quick = is_quick()
    if verbose:
        size = "QUICK (CPU-sized)" if chosen_quick else "FULL (paper-sized)"
        print(f"Budget: {size} because {reason()}")
    return quick if chosen_quick else full
