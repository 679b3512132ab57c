"""Test-run settings shared by `pytest tests` and `pytest --nbval lessons`.

The test run always uses quick (CPU-sized) budgets on the CPU, so a GPU machine running the tests never starts a
full training, and the notebooks' compared outputs are the CPU results committed with them.  Notebook kernels
started by nbval inherit this environment.  Both switches are read in one place, ``ddpm_core.budget``.
"""

import os

os.environ["DDPM_QUICK"] = "1"
os.environ["DDPM_DEVICE"] = "cpu"

# Under pytest-xdist (the README's `-n auto`), each worker runs one notebook or test file at a time: give each the
# worker's share of the cores, so that N workers do not run N x all-cores threads.  The notebook kernels inherit it.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # the tests in this worker process, too
