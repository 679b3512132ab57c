"""Where a CIFAR-10 training step's time goes: the bare UNet forward+backward vs the whole trainer step, eager vs
torch.compile, and the sampling forward pass; prints JSON.

    python benchmarks/unet_step_breakdown.py --out benchmarks/results/unet_breakdown_<gpu>.json      # on a GPU
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ddpm_core.models.unet import UNet, unet_config


def timed(fn, device: torch.device, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    tic = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - tic) / iters


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    p.add_argument("--tiny", action="store_true", help="a small UNet on the CPU (smoke test)")
    p.add_argument("--iters", type=int, default=30)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    cfg = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1) if args.tiny else {}
    batch, sample_batch = (4, 8) if args.tiny else (128, 1000)
    iters, warmup = (2, 1) if args.tiny else (args.iters, 10)
    amp = device.type == "cuda"
    results = {"device": torch.cuda.get_device_name(device) if amp else "cpu", "torch": torch.__version__}
    for compiled in (False, True):
        torch.manual_seed(0)
        model = UNet(unet_config("ddpm_cifar10", **cfg)).to(device)
        run = torch.compile(model) if compiled else model
        x = torch.randn(batch, 3, 32, 32, device=device)
        t = torch.randint(0, 1000, (batch,), device=device)

        def fwd_bwd() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = run(x, t).float().pow(2).mean()
            loss.backward()

        tag = "compiled" if compiled else "eager"
        step = timed(fwd_bwd, device, warmup, iters)
        results[f"fwd_bwd_{tag}_ms"] = round(step * 1e3, 2)
        results[f"fwd_bwd_{tag}_images_per_s"] = round(batch / step, 1)
        model.eval()
        xs = torch.randn(sample_batch, 3, 32, 32, device=device)
        ts = torch.full((sample_batch,), 500, device=device)

        @torch.no_grad()
        def forward() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                run(xs, ts)

        fwd = timed(forward, device, warmup, iters)
        results[f"sample_forward_{tag}_ms_at_{sample_batch}"] = round(fwd * 1e3, 2)
        results[f"ddim100_50k_{tag}_projected_s"] = round(50_000 / sample_batch * 100 * fwd, 1)
        print(json.dumps(results), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
