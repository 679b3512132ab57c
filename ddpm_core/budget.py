"""The two switches every lesson and command reads: the budget (quick or full) and the device.

Both are environment variables, read only here, so there is exactly one place that decides.

**Budget** (:func:`is_quick`, :func:`select`):

* ``DDPM_QUICK=1`` (or ``true``/``yes``/``on``) forces quick (CPU-sized) budgets.  The test run sets it (see
  ``conftest.py``), so a GPU machine running the tests never starts a full training.
* ``DDPM_QUICK=0`` (or ``false``/``no``/``off``) forces full (paper-sized) budgets.
* Unset: quick unless the device (below) is a CUDA GPU.

**Device** (:func:`device`, :func:`select_device`, :func:`resolve_device`):

* ``DDPM_DEVICE=cpu``, ``cuda``, ``cuda:N`` or ``mps`` picks that device (it must be available).  The test run sets
  ``cpu`` (see ``conftest.py``), so ``pytest --nbval lessons`` on a GPU machine computes, and compares, the same
  CPU results as everywhere else.
* Unset or ``auto``: a CUDA GPU when there is one, else the CPU.  Apple's ``mps`` is used only when asked for: it
  has no float64, which several checks in the lessons use.

**Run folders** (:func:`runs_dir`): long lesson runs write their checkpoints to ``runs/<lesson>/`` in the
repository, or under ``DDPM_RUNS_DIR`` when it is set, e.g. a mounted Google Drive folder on Colab
(``os.environ["DDPM_RUNS_DIR"] = "/content/drive/MyDrive/ddpm-runs"``), so that they survive a disconnect and
re-running the cell resumes them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import torch

QUICK_ENV = "DDPM_QUICK"
DEVICE_ENV = "DDPM_DEVICE"
RUNS_ENV = "DDPM_RUNS_DIR"
REPO_RUNS = Path(__file__).resolve().parent.parent / "runs"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")

T = TypeVar("T")


# --------------------------------------------------------------------------- device
def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """A device from a name: ``auto`` (or None) -> :func:`device` (``DDPM_DEVICE``, else CUDA if present, else CPU);
    ``cpu``, ``cuda``, ``cuda:N``, ``mps`` -> that device, checked to be available."""
    if name is None or (isinstance(name, str) and name.strip().lower() in ("", "auto")):
        return device()
    return _checked_device(name, "device")


def _checked_device(name: str | torch.device, where: str) -> torch.device:
    try:
        chosen = torch.device(name.strip().lower() if isinstance(name, str) else name)
    except (RuntimeError, ValueError):
        raise ValueError(f"{where} {str(name)!r} is not understood; accepted: {', '.join(DEVICES)}") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{where} {str(name)!r}: no CUDA GPU is available here; use cpu or auto")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ValueError(f"{where} {str(name)!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                             f"numbered from 0")
    elif chosen.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"{where} {str(name)!r}: Apple's MPS backend is not available here; use cpu or auto")
    elif chosen.type != "cpu":
        raise ValueError(f"{where} {str(name)!r} is not supported; accepted: {', '.join(DEVICES)}")
    return chosen


def device() -> torch.device:
    """The device lessons and commands run on (see the module docstring): ``DDPM_DEVICE``, else CUDA, else CPU."""
    raw = os.environ.get(DEVICE_ENV, "").strip()
    if raw and raw.lower() != "auto":
        return _checked_device(raw, DEVICE_ENV)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def device_reason() -> str:
    """Say in words why :func:`device` chose what it chose."""
    raw = os.environ.get(DEVICE_ENV, "").strip()
    if raw and raw.lower() != "auto":
        return f"{DEVICE_ENV}={raw}"
    return "a CUDA GPU was found" if torch.cuda.is_available() else "no CUDA GPU was found"


def select_device(*, verbose: bool = True) -> torch.device:
    """:func:`device`, printing which one runs and why; lessons call this once near the top."""
    chosen = device()
    if verbose:
        print(f"Device: {chosen} because {device_reason()}")
    return chosen


# --------------------------------------------------------------------------- budget
def is_quick() -> bool:
    """Return True when quick budgets are in force (see the module docstring)."""
    raw = os.environ.get(QUICK_ENV)
    if raw is None or raw.strip() == "":
        return device().type != "cuda"
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
    return f"the device is {device()} ({device_reason()})"


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


# --------------------------------------------------------------------------- run folders
def runs_dir(name: str) -> Path:
    """The persistent folder of a long run: ``$DDPM_RUNS_DIR/<name>`` if set, else ``<repository>/runs/<name>``."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"a run folder name is one plain folder name (e.g. '07_mnist'), got {name!r}")
    raw = os.environ.get(RUNS_ENV, "").strip()
    return (Path(raw).expanduser() if raw else REPO_RUNS) / name
