"""Show that the CI's second notebook run really takes another floating-point code path on this machine.

    python scripts/cpu_code_paths.py            # prints JSON; exit status 1 if no setting changes the numbers

Runs one small computation (float32 randn, the shipped UNet's forward pass, a float32 sum) in fresh processes
under each setting and compares the bits.  The settings CI uses for its second run (see .ci/run):

* ``ATEN_CPU_CAPABILITY=default``: torch's scalar kernels instead of AVX2/AVX-512 (changes torch.randn's last bits);
* ``ONEDNN_MAX_CPU_ISA=SSE41``: oneDNN's convolutions without AVX;
* ``OMP_NUM_THREADS=1``: one thread, so reductions add in another order;
* ``MKL_ENABLE_INSTRUCTIONS=SSE4_2`` is measured too (it changed nothing on the CI machine: convolutions go
  through oneDNN, not MKL).
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
    "CI's second run (all but MKL)": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                                      "OMP_NUM_THREADS": "1"},
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
    print(json.dumps(results, indent=2))
    return 0 if results["CI's second run (all but MKL)"]["differs_from_normal"] else 1


if __name__ == "__main__":
    sys.exit(main())
