"""Time the paper's CIFAR-10 setup: training images/s and sampling images/s; print JSON with the device name.

    python benchmarks/gpu_benchmark.py --out benchmarks/results/cifar10_<gpu>.json        # on a GPU
    python benchmarks/gpu_benchmark.py --tiny                                             # a smoke run on a CPU

Training: the `ddpm_cifar10` UNet (35.7M parameters) under the trainer the course uses (fused Adam, warm-up,
clip 1.0, EMA 0.9999, data on the GPU, no host syncs in the loop), batch 128, in fp32 (TF32 matmuls and convs)
and bf16 autocast, each with and without torch.compile; NCHW unless --channels-last.  Sampling: DDIM with 100 steps and ancestral with 1000 steps,
at a large batch, in bf16, and the projected time for 50,000 DDIM-100 samples.  Also a profiler table of a few
training steps (where the time goes).  The network is freshly initialised: speed does not depend on the weights.
Images come from the generated `shapes` set (same 3x32x32 tensors as CIFAR-10; nothing to download).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from ddpm_core import data, sampling
from ddpm_core.diffusion import GaussianDiffusion
from ddpm_core.models.unet import UNet, unet_config
from ddpm_core.training import ImageBatches, Trainer, TrainConfig


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CHANNELS_LAST = {"value": False}


def make_trainer(cfg: dict, device: torch.device, *, amp: bool, compile: bool, batch: int) -> Trainer:
    torch.manual_seed(0)
    model = UNet(unet_config("ddpm_cifar10", **cfg))
    diffusion = GaussianDiffusion.from_schedule("linear", 1000)
    shapes = data.make_shapes(4096, size=32)
    config = TrainConfig(steps=10**9, batch_size=batch, lr=2e-4, warmup_steps=5000, grad_clip=1.0, ema_decay=0.9999,
                         log_every=10**9)
    return Trainer(model, diffusion, ImageBatches(shapes.images, hflip=True), config, device=device, amp=amp,
                   channels_last=CHANNELS_LAST["value"], compile=compile)


def time_training(cfg: dict, device: torch.device, *, amp: bool, compile: bool, batch: int, warmup: int,
                  steps: int) -> dict:
    tr = make_trainer(cfg, device, amp=amp, compile=compile, batch=batch)
    tic = time.perf_counter()
    for _ in range(warmup):  # includes compilation
        tr.train_step()
    sync(device)
    warm_s = time.perf_counter() - tic
    tic = time.perf_counter()
    for _ in range(steps):
        tr.train_step()
    sync(device)
    elapsed = time.perf_counter() - tic
    assert tr.pending_loss() is not None  # finite (raises otherwise)
    result = {"amp_bf16": amp, "compile": compile, "batch": batch, "steps_timed": steps,
              "steps_per_s": round(steps / elapsed, 2), "images_per_s": round(steps * batch / elapsed, 1),
              "warmup_s": round(warm_s, 1), "projected_800k_steps_h": round(800_000 / (steps / elapsed) / 3600, 1)}
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        torch.cuda.reset_peak_memory_stats(device)
    del tr
    return result


def profile_training(cfg: dict, device: torch.device, batch: int, steps: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    tr = make_trainer(cfg, device, amp=device.type == "cuda", compile=False, batch=batch)
    for _ in range(3):
        tr.train_step()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            tr.train_step()
        sync(device)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=60)


@torch.no_grad()
def time_sampling(cfg: dict, device: torch.device, *, sampler: str, steps: int, batch: int) -> dict:
    torch.manual_seed(0)
    model = UNet(unet_config("ddpm_cifar10", **cfg)).to(device).eval()
    if CHANNELS_LAST["value"]:
        model = model.to(memory_format=torch.channels_last)
    diffusion = GaussianDiffusion.from_schedule("linear", 1000)
    g = torch.Generator(device=device).manual_seed(0)
    shape = (batch, 3, 32, 32)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        sampling.sample(diffusion, model, (min(batch, 8), 3, 32, 32), sampler=sampler, steps=2, generator=g,
                        device=device)  # warm-up (kernels, tables on the device)
        sync(device)
        tic = time.perf_counter()
        out = sampling.sample(diffusion, model, shape, sampler=sampler, steps=steps, generator=g, device=device,
                              clip_denoised=True)
        sync(device)
    elapsed = time.perf_counter() - tic
    assert torch.isfinite(out).all()
    per_s = batch / elapsed
    return {"sampler": sampler, "steps": steps, "batch": batch, "seconds": round(elapsed, 2),
            "images_per_s": round(per_s, 1), "projected_50k_s": round(50_000 / per_s, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="write the JSON here too")
    p.add_argument("--profile-out", default=None, help="write the profiler table here")
    p.add_argument("--tiny", action="store_true", help="a small UNet and few steps: a smoke test on a CPU")
    p.add_argument("--steps", type=int, default=50, help="timed training steps per variant")
    p.add_argument("--sample-batch", type=int, default=1000)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--skip-ancestral", action="store_true")
    p.add_argument("--channels-last", action="store_true", help="NHWC layout (GroupNorm has no NHWC kernels)")
    p.add_argument("--variants", default="fp32,bf16,fp32+compile,bf16+compile")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 rows use TF32 tensor cores, as PyTorch users would
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    cfg = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1) if args.tiny else {}
    steps, warmup = (3, 1) if args.tiny else (args.steps, 15)
    sample_batch = 4 if args.tiny else args.sample_batch

    n_params = sum(p.numel() for p in UNet(unet_config("ddpm_cifar10", **cfg)).parameters())
    result: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "model": "ddpm_cifar10" + (" (tiny)" if args.tiny else ""),
        "parameters": n_params, "channels_last": args.channels_last, "training": [], "sampling": [],
    }
    CHANNELS_LAST["value"] = args.channels_last
    variants = [("bf16" in v, "compile" in v) for v in args.variants.split(",")]
    if args.no_compile:
        variants = [v for v in variants if not v[1]]
    for amp, comp in variants:
        if amp and device.type != "cuda":
            continue
        r = time_training(cfg, device, amp=amp, compile=comp, batch=128 if not args.tiny else 4, warmup=warmup,
                          steps=steps)
        print(json.dumps(r), flush=True)
        result["training"].append(r)
    runs = [("ddim", 100 if not args.tiny else 3)] + ([] if args.skip_ancestral else [("ddpm", 1000 if not args.tiny else 5)])
    for sampler, n in runs:
        r = time_sampling(cfg, device, sampler=sampler, steps=n, batch=sample_batch)
        print(json.dumps(r), flush=True)
        result["sampling"].append(r)
    table = profile_training(cfg, device, 128 if not args.tiny else 4, 5 if not args.tiny else 2)
    if args.profile_out:
        Path(args.profile_out).write_text(table)
    else:
        print(table)
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
