"""Time the paper's CIFAR-10 setup: training images/s and sampling images/s; print JSON with the device name.

    python benchmarks/gpu_benchmark.py --out benchmarks/results/cifar10_<gpu>.json        # on a GPU
    python benchmarks/gpu_benchmark.py --tiny                                             # a smoke run on a CPU

Training: the `ddpm_cifar10` UNet (35.7M parameters) under the trainer the course uses (fused Adam, warm-up,
clip 1.0, EMA 0.9999, no host syncs in the loop), batch 128, in fp32 (TF32 matmuls and convs)
and bf16 autocast, each with and without torch.compile; NCHW unless --channels-last.  ``--variants`` is a
comma-separated list of variants, each ``+``-joined tokens: ``fp32`` or ``bf16``; ``compile`` or
``compile=MODE`` (a torch.compile mode); ``cl`` (channels_last) or ``nchw``; ``workers`` (a DataLoader with 8
worker processes and pinned memory instead of images held on the GPU); ``b=N`` (batch size).  Sampling: DDIM with 100 steps and ancestral with 1000 steps,
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
from torch.utils.data import TensorDataset

from ddpm_core.training import (ImageBatches, LoaderBatches, Trainer, TrainConfig, compile_mode,
                                enable_fast_cuda)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CHANNELS_LAST = {"value": False}


def parse_variant(text: str, *, channels_last: bool, batch: int) -> dict:
    """``"bf16+cl+compile=max-autotune-no-cudagraphs+b=256"`` -> the keyword arguments of :func:`time_training`."""
    v = dict(amp=False, compile=False, channels_last=channels_last, loader="memory", batch=batch, name=text)
    for token in text.split("+"):
        key, _, value = token.partition("=")
        if token in ("fp32", "bf16"):
            v["amp"] = token == "bf16"
        elif key == "compile":
            v["compile"] = compile_mode(value) if value else True
        elif token in ("cl", "nchw"):
            v["channels_last"] = token == "cl"
        elif token == "workers":
            v["loader"] = "workers"
        elif key == "b" and value.isdigit():
            v["batch"] = int(value)
        else:
            raise SystemExit(f"unknown variant token {token!r} in {text!r}")
    return v


def make_trainer(cfg: dict, device: torch.device, *, amp: bool, compile: bool | str, batch: int,
                 channels_last: bool | None = None, loader: str = "memory") -> Trainer:
    torch.manual_seed(0)
    model = UNet(unet_config("ddpm_cifar10", **cfg))
    diffusion = GaussianDiffusion.from_schedule("linear", 1000)
    shapes = data.make_shapes(4096, size=32)
    config = TrainConfig(steps=10**9, batch_size=batch, lr=2e-4, warmup_steps=5000, grad_clip=1.0, ema_decay=0.9999,
                         log_every=10**9)
    if loader == "workers":  # uint8 images through worker processes and pinned memory, as from files
        uint8 = data.from_unit_range(shapes.images)
        source = LoaderBatches(TensorDataset(uint8, shapes.labels), hflip=True, num_workers=8)
    else:
        source = ImageBatches(shapes.images, hflip=True)
    return Trainer(model, diffusion, source, config, device=device, amp=amp,
                   channels_last=CHANNELS_LAST["value"] if channels_last is None else channels_last, compile=compile)


def time_training(cfg: dict, device: torch.device, *, amp: bool, compile: bool | str, batch: int, warmup: int,
                  steps: int, channels_last: bool | None = None, loader: str = "memory", name: str = "") -> dict:
    tr = make_trainer(cfg, device, amp=amp, compile=compile, batch=batch, channels_last=channels_last, loader=loader)
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
    result = {"variant": name, "amp_bf16": amp, "compile": compile, "channels_last": tr.channels_last,
              "data": loader, "batch": batch, "steps_timed": steps,
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
    p.add_argument("--skip-sampling", action="store_true")
    p.add_argument("--skip-profile", action="store_true")
    p.add_argument("--channels-last", action="store_true", help="NHWC layout (GroupNorm has no NHWC kernels)")
    p.add_argument("--variants", default="fp32,bf16,fp32+compile,bf16+compile")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        enable_fast_cuda()  # fp32 rows use TF32 tensor cores, as the train and sample commands do
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
    variants = [parse_variant(v, channels_last=args.channels_last, batch=128 if not args.tiny else 4)
                for v in args.variants.split(",")]
    if args.no_compile:
        variants = [v for v in variants if not v["compile"]]
    for variant in variants:
        if variant["amp"] and device.type != "cuda":
            continue
        r = time_training(cfg, device, warmup=warmup, steps=steps, **variant)
        print(json.dumps(r), flush=True)
        result["training"].append(r)
        if args.out:  # partial results survive a time limit
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    runs = [("ddim", 100 if not args.tiny else 3)] + ([] if args.skip_ancestral else [("ddpm", 1000 if not args.tiny else 5)])
    runs = [] if args.skip_sampling else runs
    for sampler, n in runs:
        r = time_sampling(cfg, device, sampler=sampler, steps=n, batch=sample_batch)
        print(json.dumps(r), flush=True)
        result["sampling"].append(r)
    if not args.skip_profile:
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
