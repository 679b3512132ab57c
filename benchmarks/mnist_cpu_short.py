"""Train the CPU budget (``mnist_cpu_short``) on this machine and measure what it makes; prints JSON.

For each thread count: train the named config on the CPU for at most ``--minutes`` of training time (or its
``train.steps``, whichever comes first), and every ``--eval-minutes`` draw ``--eval-samples`` class-conditional
samples from the EMA model (DDIM, ``--eval-steps`` steps; labels 0..9 in turn) and score them: the requested-class
accuracy with the shipped classifier, and FID_clf/KID_clf against the held-out digits (lesson 11).  Evaluation
time is not training time.  The curve, the final figures and the machine go to ``--out`` after every evaluation.

    python benchmarks/mnist_cpu_short.py                         # 2 threads, 20 minutes (the committed result)
    python benchmarks/mnist_cpu_short.py --threads 1,2 --minutes 20
    python benchmarks/mnist_cpu_short.py --minutes 0.3 --eval-samples 20 --out /tmp/x.json     # a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ddpm_core import data, evaluation, images, io, metrics, pretrained  # noqa: E402


def score(trainer, exp, classifier, held_out, extractor, n: int, steps: int) -> dict:
    labels = torch.arange(n) % 10
    tic = time.perf_counter()
    x = images.generate(trainer.ema.model, trainer.diffusion, n, batch_size=250, labels=labels, seed=0,
                        device="cpu", progress=False, sampler="ddim", steps=steps)
    accuracy = metrics.class_accuracy(classifier, data.to_unit_range(x), labels)["accuracy"]
    quality = evaluation.evaluate(x, held_out, metrics="fid,kid", extractor=extractor)
    return {"requested_class_accuracy": accuracy, "fid_clf": quality["fid"], "kid_clf": quality["kid"],
            "kid_clf_std": quality["kid_std"], "eval_samples": n, "eval_seconds": round(time.perf_counter() - tic, 1)}


def run_once(args, threads: int, classifier, held_out, extractor, runs: list, record) -> dict:
    torch.set_num_threads(threads)
    exp, tcfg = images.load_config(args.config, quick=False)
    trainer = images.make_trainer(exp, tcfg, device="cpu")
    result = {"threads": threads, "config": args.config, "batch_size": tcfg.batch_size, "curve": []}
    runs.append(result)  # written with every evaluation, so an interrupted benchmark keeps its curve
    budget, next_eval, trained = 60 * args.minutes, 60 * args.eval_minutes, 0.0
    while trainer.step < tcfg.steps and trained < budget:
        tic = time.perf_counter()
        trainer.train(min(tcfg.log_every, tcfg.steps - trainer.step), progress=False)
        trained += time.perf_counter() - tic
        if trained >= next_eval or trained >= budget or trainer.step >= tcfg.steps:
            next_eval += 60 * args.eval_minutes
            point = {"train_seconds": round(trained, 1), "steps": trainer.step, "loss": trainer.last_loss,
                     **score(trainer, exp, classifier, held_out, extractor, args.eval_samples, args.eval_steps)}
            result["curve"].append(point)
            print(json.dumps({"threads": threads, **point}), flush=True)
            result.update({k: point[k] for k in ("train_seconds", "steps", "requested_class_accuracy", "fid_clf",
                                                 "kid_clf", "kid_clf_std")})
            result["images_per_s"] = round(trainer.step * tcfg.batch_size / trained, 1)
            record()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="mnist_cpu_short")
    p.add_argument("--threads", default="2", help="comma-separated thread counts, one run each")
    p.add_argument("--minutes", type=float, default=20.0, help="training-time budget per run")
    p.add_argument("--eval-minutes", type=float, default=5.0, help="evaluate every this many training minutes")
    p.add_argument("--eval-samples", type=int, default=500)
    p.add_argument("--eval-steps", type=int, default=50, help="DDIM steps of the evaluation samples")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mnist_cpu_short.json"))
    args = p.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t]
    classifier = pretrained.load_mnist_classifier()
    test = data.load_mnist(train=False, download=False, verbose=False)
    held_out = evaluation.Reference(f"mnist-test-{test.source}-{len(test)}", data.from_unit_range(test.images))
    extractor = evaluation.ClassifierFeatures(classifier)
    result: dict = {"what": f"{args.config} trained on the CPU, sampled with DDIM-{args.eval_steps}, scored with "
                            "the shipped classifier (FID_clf against the held-out digits, not Inception)",
                    "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "minutes_budget": args.minutes, "runs": []}

    def record() -> None:
        io.atomic_write_json(args.out, result)

    for n in threads:
        best = run_once(args, n, classifier, held_out, extractor, result["runs"], record)
        result.update({k: best[k] for k in ("threads", "train_seconds", "requested_class_accuracy", "fid_clf")})
        record()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
