"""Train the CPU budget (``mnist_cpu_short``) on this machine and measure what it makes; prints JSON.

For each thread count: train the named config on the CPU for at most ``--minutes`` of training time (or its
``train.steps``, whichever comes first), and every ``--eval-minutes`` draw ``--eval-samples`` class-conditional
samples from the EMA model (DDIM, ``--eval-steps`` steps; labels 0..9 in turn) and score them: the requested-class
accuracy with the shipped classifier, and FID_clf/KID_clf against the held-out digits (lesson 11).  Each point is
scored twice: plain conditional samples (``requested_class_accuracy``, ``fid_clf``), and with classifier-free
guidance at ``--guidance-scale`` (the same fields with ``_guided``; lesson 10).  Evaluation time is not training time.
The curve, the final figures and the machine go to ``--out`` after every evaluation.

    python benchmarks/mnist_cpu_short.py                         # 2 then 1 thread, 20 minutes (the committed result)
    python benchmarks/mnist_cpu_short.py --threads 2 && python benchmarks/mnist_cpu_short.py --threads 1 --append
    python benchmarks/mnist_cpu_short.py --set train.lr=0.002 --out /tmp/lr2e-3.json           # a variant
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


def score(trainer, classifier, held_out, extractor, n: int, steps: int, guidance_scale: float) -> dict:
    labels = torch.arange(n) % 10
    tic = time.perf_counter()
    point: dict = {}
    for suffix, scale in (("", None), ("_guided", guidance_scale)):
        x = images.generate(trainer.ema.model, trainer.diffusion, n, batch_size=250, labels=labels, seed=0,
                            device="cpu", progress=False, sampler="ddim", steps=steps, guidance_scale=scale)
        accuracy = metrics.class_accuracy(classifier, data.to_unit_range(x), labels)["accuracy"]
        # KID's subsets are half the samples: subsets as large as both sets would all be the same, and their std 0
        quality = evaluation.evaluate(x, held_out, metrics="fid,kid", extractor=extractor, kid_subset_size=max(2, n // 2))
        point.update({f"requested_class_accuracy{suffix}": accuracy, f"fid_clf{suffix}": quality["fid"],
                      f"kid_clf{suffix}": quality["kid"], f"kid_clf_std{suffix}": quality["kid_std"]})
    return {**point, "eval_samples": n, "eval_seconds": round(time.perf_counter() - tic, 1)}


FINAL = ("train_seconds", "steps", "images_per_s", "requested_class_accuracy", "fid_clf", "kid_clf", "kid_clf_std",
         "requested_class_accuracy_guided", "fid_clf_guided")


def run_once(args, threads: int, classifier, held_out, extractor, runs: list, record) -> dict:
    torch.set_num_threads(threads)
    overrides = images.parse_overrides(args.overrides)
    exp, tcfg = images.load_config(args.config, overrides, quick=False)
    trainer = images.make_trainer(exp, tcfg, device="cpu")
    result = {"threads": threads, "config": args.config, "unet": exp.unet, "batch_size": tcfg.batch_size,
              "lr": tcfg.lr, "overrides": overrides, "guidance_scale": args.guidance_scale, "eval_steps": args.eval_steps, "curve": []}
    runs.append(result)  # written with every evaluation, so an interrupted benchmark keeps its curve
    budget, next_eval, trained = 60 * args.minutes, 60 * args.eval_minutes, 0.0
    while trainer.step < tcfg.steps and trained < budget:
        tic = time.perf_counter()
        trainer.train(min(tcfg.log_every, tcfg.steps - trainer.step), progress=False)
        trained += time.perf_counter() - tic
        if trained >= next_eval or trained >= budget or trainer.step >= tcfg.steps:
            next_eval += 60 * args.eval_minutes
            point = {"train_seconds": round(trained, 1), "steps": trainer.step, "loss": trainer.last_loss,
                     "images_per_s": round(trainer.step * tcfg.batch_size / trained, 1),
                     **score(trainer, classifier, held_out, extractor, args.eval_samples, args.eval_steps,
                             args.guidance_scale)}
            result["curve"].append(point)
            print(json.dumps({"threads": threads, **point}), flush=True)
            result.update({k: point[k] for k in FINAL})
            record()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="mnist_cpu_short")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.OPTION=VALUE",
                   help="override one config option, as in `train --set` (the search table's variants)")
    p.add_argument("--threads", default="2,1", help="comma-separated thread counts, one run each")
    p.add_argument("--minutes", type=float, default=20.0, help="training-time budget per run")
    p.add_argument("--eval-minutes", type=float, default=5.0, help="evaluate every this many training minutes")
    p.add_argument("--eval-samples", type=int, default=500)
    p.add_argument("--eval-steps", type=int, default=20, help="DDIM steps of the evaluation samples")
    p.add_argument("--guidance-scale", type=float, default=3.0, help="classifier-free guidance of the guided scores")
    p.add_argument("--note", default="", help="a sentence kept in the result (what was special about this run)")
    p.add_argument("--append", action="store_true", help="add these runs to the result already in --out")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mnist_cpu_short.json"))
    args = p.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t]
    classifier = pretrained.load_mnist_classifier()
    test = data.load_mnist(train=False, download=False, verbose=False)
    held_out = evaluation.Reference(f"mnist-test-{test.source}-{len(test)}", data.from_unit_range(test.images))
    extractor = evaluation.ClassifierFeatures(classifier)
    result: dict = {"what": f"{args.config} trained on the CPU, sampled with DDIM-{args.eval_steps} (plain and with "
                            f"guidance scale {args.guidance_scale:g}), scored with the shipped classifier (FID_clf "
                            "against the held-out digits, not Inception)",
                    "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "minutes_budget": args.minutes, "runs": []}

    if args.append:  # add runs to an earlier result (one thread count at a time, each run as measured)
        if not Path(args.out).is_file():
            raise FileNotFoundError(f"--append: no earlier result at {args.out}")
        earlier = json.loads(Path(args.out).read_text())
        if earlier.get("cpu_count") != result["cpu_count"] or earlier.get("torch") != result["torch"]:
            raise ValueError(f"--append: {args.out} was measured on another machine or torch; start a new file")
        result["runs"] = [r for r in earlier.get("runs", []) if r.get("curve")]
        result["note"] = earlier.get("note", "")
    if args.note:
        result["note"] = (result.get("note", "") + " " + args.note).strip()

    def record() -> None:
        io.atomic_write_json(args.out, result)

    for n in threads:
        run_once(args, n, classifier, held_out, extractor, result["runs"], record)
        # the top-level figures are the first (most threads) run's; the others show how time scales with threads
        result.update({k: result["runs"][0][k] for k in ("threads",) + FINAL})
        if len(result["runs"]) > 1:
            result["images_per_s_by_threads"] = {str(r["threads"]): r["images_per_s"] for r in result["runs"]}
        record()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
