"""Test-run settings shared by `pytest tests` and `pytest --nbval lessons`.

The test run always uses quick (CPU-sized) budgets on the CPU, so a GPU machine running the tests never starts a
full training, and the notebooks' compared outputs are the CPU results committed with them.  Notebook kernels
started by nbval inherit this environment.  Both switches are read in one place, ``ddpm_core.budget``.
"""

import os

os.environ["DDPM_QUICK"] = "1"
os.environ["DDPM_DEVICE"] = "cpu"
