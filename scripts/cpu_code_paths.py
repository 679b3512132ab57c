"""Show that CI's notebook runs really take other floating-point code paths than the committed outputs did.

    python scripts/cpu_code_paths.py            # prints JSON; exit status 1 if CI's runs would not differ

Runs one small computation (float32 randn, the shipped UNet's forward pass, a float32 sum) in fresh processes
under each setting and compares the bits.  The lessons are committed executed on the normal path (all cores: two
threads on the CI machine).  CI then runs them twice (see .ci/run):

* first, the README's test command: pytest-xdist runs one notebook per core, each kernel with one thread
  (``conftest.py`` sets ``OMP_NUM_THREADS``), so reductions add in another order than in the committed run;
* second, the same with ``ATEN_CPU_CAPABILITY=default``: torch's scalar kernels instead of AVX2/AVX-512 (this
  also changes torch.randn's last bits).

Measured too, not used by CI: ``ONEDNN_MAX_CPU_ISA=SSE41`` (oneDNN's convolutions without AVX: changes the UNet's
output too, but makes it 2.4x slower) and ``MKL_ENABLE_INSTRUCTIONS=SSE4_2`` (changed nothing on the CI machine:
convolutions go through oneDNN, not MKL).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = r"""
import hashlib, torch
from ddpm_core import pretrained
model, _ = pretrained.load_mnist()
g = torch.Generator().manual_seed(0)
x = torch.randn(4, 1, 32, 32, generator=g)
with torch.no_grad():
    out = model(x, torch.tensor([10, 500, 900, 999]), y=torch.tensor([1, 2, 3, 4]))
total = torch.randn(100_000, generator=g).sum()
digest = lambda t: hashlib.sha256(t.numpy().tobytes()).hexdigest()[:12]
print(digest(x), digest(out), digest(total.reshape(1)), torch.backends.cpu.get_cpu_capability())
"""

SETTINGS = {
    "normal": {},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "ONEDNN_MAX_CPU_ISA=SSE41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
    "MKL_ENABLE_INSTRUCTIONS=SSE4_2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "CI's first run": {"OMP_NUM_THREADS": "1"},
    "CI's second run": {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"},
}


def probe(env: dict[str, str]) -> dict[str, str]:
    full = {**os.environ, "OMP_NUM_THREADS": "2", **env}
    text = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, check=True).stdout
    randn, unet, reduction, capability = text.split()
    return {"randn": randn, "unet_forward": unet, "sum": reduction, "cpu_capability": capability}


def main() -> int:
    results = {name: probe(env) for name, env in SETTINGS.items()}
    normal = results["normal"]
    for name, result in results.items():
        result["differs_from_normal"] = [k for k in ("randn", "unet_forward", "sum") if result[k] != normal[k]]
    first, second = results["CI's first run"], results["CI's second run"]
    second["differs_from_first_run"] = [k for k in ("randn", "unet_forward", "sum") if second[k] != first[k]]
    print(json.dumps(results, indent=2))
    return 0 if first["differs_from_normal"] and second["differs_from_normal"] and second["differs_from_first_run"] \
        else 1


if __name__ == "__main__":
    sys.exit(main())
