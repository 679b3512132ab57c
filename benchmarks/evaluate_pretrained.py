"""Sample quality of the shipped MNIST model, measured the way the papers measure it; prints JSON.

For each sampler setting: N class-conditional samples (labels 0..9 in turn, seed 0), scored on the shipped MNIST
classifier's features (FID_clf, KID, precision/recall, density/coverage; not Inception numbers) against the
held-out digits, with the requested-class accuracy and the memorisation share; next to the real-vs-real floor
(class-balanced training digits against the same held-out digits) at the same N, with its spread over disjoint
sets.  Bits/dim on held-out digits comes first (it is the cheapest).

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
    p.add_argument("--floor-sets", type=int, default=8, help="disjoint sets of training digits for the floor's spread")
    p.add_argument("--resume", action="store_true",
                   help="keep the settings (same N) and bits/dim already in --out; measure only what is missing")
    p.add_argument("--note", default=None, help="a note stored with the results (where and how they were run)")
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
    previous = Path(args.out)
    if args.resume and previous.is_file():
        kept = json.loads(previous.read_text())
        if kept.get("reference") != held_out.name:
            raise ValueError(f"--resume: {args.out} was measured against {kept.get('reference')!r}, not "
                             f"{held_out.name!r}; pass another --out")
        result["settings"] = kept.get("settings", {})
        result.update({k: kept[k] for k in ("bpd", "bpd_timesteps_subset", "note") if k in kept})
    if args.note:
        result["note"] = args.note

    def write() -> None:
        io.atomic_write_json(args.out, result)

    def score(x: torch.Tensor, labels: torch.Tensor | None) -> dict:
        out = evaluation.evaluate(x, held_out, metrics=metric_names, extractor=extractor, train=train_u8,
                                  held_out=held_out.images, device=device, batch_size=args.batch_size)
        if labels is not None:
            out["accuracy"] = metrics.class_accuracy(classifier, data.to_unit_range(x[..., 2:30, 2:30]).to(device),
                                                     labels.to(device))["accuracy"]
        return {k: v for k, v in out.items() if k not in ("features", "reference", "alpha", "neighbours")}

    # The floor: training digits with the samples' labels (N/10 per class, as the samples are drawn), scored the same
    # way; its spread over disjoint such sets is the measurement's own noise at this N.
    per_class = args.n // 10
    by_class = [torch.nonzero(train.labels == c).flatten() for c in range(10)]
    n_sets = min(args.floor_sets, min(len(b) for b in by_class) // per_class)
    if n_sets < 1:
        raise ValueError(f"--n {args.n}: the training split has too few digits of some class for one floor set")
    sets = [torch.cat([b[k * per_class:(k + 1) * per_class] for b in by_class]) for k in range(n_sets)]
    floor = score(train_u8[sets[0]], None)
    for key in ("memorised", "median_nn_distance"):  # training digits against themselves: trivially copies
        floor.pop(key)
    f_ref = evaluation.extract_features(held_out.images, extractor, device=device)["features"]
    fids = torch.tensor([evaluation.fid(evaluation.extract_features(train_u8[idx], extractor, device=device)["features"],
                                        f_ref) for idx in sets], dtype=torch.float64)
    result["floor"] = {"n": len(sets[0]), "class_balanced": True, "sets": n_sets,
                       "fid_mean_over_sets": float(fids.mean()),
                       "fid_std_over_sets": float(fids.std()) if n_sets > 1 else None, **floor}
    print(json.dumps({"floor": result["floor"]}), flush=True)
    write()
    if args.bpd_n and not (args.resume and "bpd" in result):
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
        if args.resume and result["settings"].get(f"{sampler}-{steps}", {}).get("n") == args.n:
            print(f"{sampler}-{steps}: kept from {args.out} (--resume)", flush=True)
            continue
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
