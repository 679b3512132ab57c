"""Toy 2-D benchmark: training speed and sample quality of the default toy configuration.

Trains the default configuration (eps, fixed_large, mse, T = 100, linear betas 1e-3 -> 0.2, the default
ToyMLP) on each dataset for a fixed number of steps at batch 1,000 on the CPU, then samples 30,000 points
with the EMA model and prints one JSON line: steps/s, histogram KL, and for the Gaussian mixtures the share
of samples within 5 true standard deviations of their nearest mode and the number of modes covered.

    python benchmarks/toy_benchmark.py                       # 10,000 steps per dataset (the issue's budget)
    python benchmarks/toy_benchmark.py --steps 2000 --datasets gaussian8
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from ddpm_core import toy
from ddpm_core.data import TOY_DATASETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--datasets", nargs="+", default=list(TOY_DATASETS), choices=TOY_DATASETS)
    parser.add_argument("--samples", type=int, default=toy.EVAL_SAMPLES)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--hidden", type=int, default=None, help="override the default width")
    parser.add_argument("--depth", type=int, default=None, help="override the default depth")
    parser.add_argument("--lr", type=float, default=None, help="override the default learning rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    results = {}
    for name in args.datasets:
        overrides = {k: v for k, v in (("hidden", args.hidden), ("depth", args.depth)) if v is not None}
        config = toy.ToyConfig(dataset=name, **overrides)
        train_config = toy.default_train_config(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                                                **({"lr": args.lr} if args.lr else {}))
        trainer = toy.make_trainer(config, train_config)
        warm = min(50, args.steps)
        trainer.train(warm, progress=False)  # warm-up: allocator, first-call overheads
        start = time.perf_counter()
        trainer.train(progress=False)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        samples = toy.sample(trainer.ema.model, trainer.diffusion, args.samples, seed=args.seed)
        sample_seconds = time.perf_counter() - start
        metrics = toy.evaluate(samples, name)
        results[name] = {
            "train_steps_per_s": round((args.steps - warm) / seconds, 1),
            "sample_points_per_s": round(args.samples / sample_seconds, 1),
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()},
        }
    print(json.dumps({
        "benchmark": "toy_2d",
        "device": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "config": toy.ToyConfig().to_dict() | {k: v for k, v in (("hidden", args.hidden), ("depth", args.depth)) if v},
        "train_config": toy.default_train_config(steps=args.steps, batch_size=args.batch_size).to_dict(),
        "results": results,
    }))


if __name__ == "__main__":
    main()
