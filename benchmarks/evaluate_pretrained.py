"""Sample quality of the shipped MNIST model, measured the way the papers measure it; prints JSON.

For each sampler setting: N class-conditional samples (labels 0..9 in turn, seed 0), scored on the shipped MNIST
classifier's features (FID_clf, KID, precision/recall, density/coverage; not Inception numbers) against the
held-out digits, with the requested-class accuracy and the memorisation share; next to the real-vs-real floor
(training digits against the same held-out digits) at the same N.  Bits/dim on held-out digits comes first (it is the cheapest).

    python benchmarks/evaluate_pretrained.py --n 1000 --samplers ddim-50,ddim-100,ddpm-1000 --bpd-n 500
    python benchmarks/evaluate_pretrained.py --quick        # a minute on a laptop CPU

Writes every result as soon as it exists to ``--out`` (default benchmarks/results/eval_pretrained_mnist.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ddpm_core import budget, data, evaluation, images, io, metrics, pretrained  # noqa: E402


def parse_setting(text: str) -> tuple[str, int]:
    sampler, _, steps = text.partition("-")
    if sampler not in ("ddpm", "ddim") or not steps.isdigit():
        raise ValueError(f"a sampler setting is ddpm-S or ddim-S (S steps), got {text!r}")
    return sampler, int(steps)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="samples per setting")
    p.add_argument("--samplers", default="ddim-50,ddim-100,ddpm-1000")
    p.add_argument("--bpd-n", type=int, default=500, help="held-out digits for bits/dim")
    p.add_argument("--bpd-subset", type=int, default=None, help="timesteps per image for bits/dim (default: all T)")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true", help="N = 200, ddim-20, 20 digits with 20 timesteps")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "eval_pretrained_mnist.json"))
    args = p.parse_args()
    if args.quick:
        args.n, args.samplers, args.bpd_n, args.bpd_subset = 200, "ddim-20", 20, 20
    settings = [parse_setting(s) for s in args.samplers.split(",") if s]
    device = budget.resolve_device(args.device)

    model, diffusion = pretrained.load_mnist(device=device)
    classifier = pretrained.load_mnist_classifier(device=device)
    train = data.load_mnist(train=True, download=False, verbose=False)
    test = data.load_mnist(train=False, download=False, verbose=False)
    held_out = evaluation.Reference(f"mnist-test-{test.source}-{len(test)}", data.from_unit_range(test.images),
                                    test.labels)
    extractor = evaluation.ClassifierFeatures(classifier)
    metric_names = ("fid", "kid", "pr", "dc", "memorisation")
    train_u8 = data.from_unit_range(train.images)
    result: dict = {"what": "shipped MNIST model (data/pretrained/mnist_cond_ema_fp16.pt), classifier features "
                            "(FID_clf, not Inception)",
                    "reference": held_out.name, "train_images": len(train), "device": str(device),
                    "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "floor": {}, "settings": {}}

    def write() -> None:
        io.atomic_write_json(args.out, result)

    def score(x: torch.Tensor, labels: torch.Tensor | None) -> dict:
        out = evaluation.evaluate(x, held_out, metrics=metric_names, extractor=extractor, train=train_u8,
                                  held_out=held_out.images, device=device, batch_size=args.batch_size)
        if labels is not None:
            out["accuracy"] = metrics.class_accuracy(classifier, data.to_unit_range(x[..., 2:30, 2:30]).to(device),
                                                     labels.to(device))["accuracy"]
        return {k: v for k, v in out.items() if k not in ("features", "reference", "alpha", "neighbours")}

    n_floor = min(args.n, len(train))
    floor = score(train_u8[:n_floor], None)
    for key in ("memorised", "median_nn_distance"):  # training digits against themselves: trivially copies
        floor.pop(key)
    result["floor"] = {"n": n_floor, **floor}
    print(json.dumps({"floor": result["floor"]}), flush=True)
    write()
    if args.bpd_n:
        n = min(args.bpd_n, len(test))
        tic = time.perf_counter()
        padded = torch.nn.functional.pad(test.images[:n], (2, 2, 2, 2), value=-1.0)
        bpd = evaluation.bits_per_dim(model, diffusion, padded, timesteps_subset=args.bpd_subset,
                                      batch_size=args.batch_size, model_kwargs={"y": test.labels[:n]}, device=device,
                                      progress=True)
        terms = bpd.pop("terms")
        bpd.pop("timesteps")
        T = len(terms)
        bpd["terms_by_quarter"] = [float(terms[i * T // 4:(i + 1) * T // 4].sum()) for i in range(4)]
        result["bpd"] = {"seconds": round(time.perf_counter() - tic, 1), "dims": "32x32 (digits padded with "
                         "background, as the model sees them)", **bpd}
        print(json.dumps({"bpd": result["bpd"]}), flush=True)
        write()
    labels = torch.arange(args.n) % 10
    for sampler, steps in settings:
        tic = time.perf_counter()
        x = images.generate(model, diffusion, args.n, batch_size=args.batch_size, labels=labels, seed=0,
                            device=device, progress=True, sampler=sampler, steps=steps)
        seconds = time.perf_counter() - tic
        key = f"{sampler}-{steps}"
        result["settings"][key] = {"n": args.n, "sampling_s": round(seconds, 1), **score(x, labels)}
        print(json.dumps({key: result["settings"][key]}), flush=True)
        write()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
