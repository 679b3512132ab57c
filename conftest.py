"""Test-run settings shared by `pytest tests` and `pytest --nbval lessons`.

The test run always uses quick (CPU-sized) budgets, so a GPU machine running the
tests never starts a full training.  Notebook kernels started by nbval inherit
this environment.
"""

import os

os.environ["DDPM_QUICK"] = "1"
