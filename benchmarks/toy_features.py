"""Toy 2-D benchmark of the network's input features: dyadic (axis-aligned) vs Gaussian random vs none.

For every dataset, seed and feature variant this trains the default toy configuration (``toy.ToyConfig`` with only
the feature options changed) to ``--steps`` at batch 1,000 and evaluates the EMA model twice: at the quick budget
of lesson 04 (gaussian8 and swissroll 2,000 steps, gaussian25 2,500; the learning rate is constant, so the model
at that step *is* a quick-budget model) and at ``--steps``.  Each evaluation draws ``--samples`` points and
measures, against the 30,000 reference points of ``toy.evaluate``:

* ``hist_kl``: ``toy.evaluate``'s histogram KL on the 54 x 54 grid.  Its direction is KL(data || samples)
  (``metrics.histogram_kl``: p = data, q = samples), so it punishes data bins the samples miss and is nearly blind
  to samples where there is no data: a share s of stray samples adds only about -log(1 - s) ~ s.
* ``reverse_kl``: the other direction, KL(samples || data) on the same grid and range (points outside it are
  dropped), which does punish stray mass: every sample in an empty data bin costs log(q_b / 1e-9).
* ``off_data_share``: the share of samples outside the grid or in a bin that holds no reference point; the most
  direct measure of the "+" and grid-line artefacts.
* for the mixtures, ``high_quality`` (share within 5 sigma of a mode) and ``modes_covered``.

The floors (``--samples`` fresh data points scored the same way) are printed with the results.  One JSON object
is printed (and written to ``--out`` if given).

    OMP_NUM_THREADS=1 python benchmarks/toy_features.py --out benchmarks/results/toy_features.json
    OMP_NUM_THREADS=1 python benchmarks/toy_features.py --steps 500 --datasets gaussian8 --seeds 0   # timing
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from ddpm_core import metrics, toy
from ddpm_core.data import TOY_DATASETS, toy_distribution

QUICK_STEPS = {"gaussian8": 2_000, "gaussian25": 2_500, "swissroll": 2_000}  # lesson 04's quick budget


def variants(scales: list[float]) -> dict[str, dict[str, Any]]:
    """Feature options per variant name (everything else is ``ToyConfig``'s default)."""
    out: dict[str, dict[str, Any]] = {"dyadic": {"fourier_kind": "dyadic", "fourier_features": 4},
                                      "none": {"fourier_kind": "dyadic", "fourier_features": 0}}
    for s in scales:
        out[f"gaussian_{s:g}"] = {"fourier_kind": "gaussian", "fourier_features": 4, "fourier_scale": s}
    # 64 random directions instead of 8 (fourier_features counts per input coordinate): is the kernel isotropic enough?
    out["gaussian_1_m64"] = {"fourier_kind": "gaussian", "fourier_features": 32, "fourier_scale": 1.0}
    return out


def score(samples: torch.Tensor, dataset: str) -> dict[str, Any]:
    """``toy.evaluate`` plus the reverse histogram KL and the off-data share (same reference, same grid)."""
    result = toy.evaluate(samples, dataset)
    if not torch.isfinite(samples).all():
        return result
    dist = toy_distribution(dataset)
    reference = dist.sample(max(len(samples), toy.EVAL_SAMPLES), torch.Generator().manual_seed(12345))  # as evaluate
    value_range = metrics.data_range(reference)
    result["reverse_kl"] = metrics.histogram_kl(reference, samples, value_range=value_range)  # KL(samples || data)
    bins = metrics.DEFAULT_BINS
    ref_counts = torch.histogramdd(reference.double(), bins=[bins, bins], range=list(value_range)).hist
    x = samples.double()
    lo = torch.tensor([value_range[0], value_range[2]], dtype=torch.float64)
    hi = torch.tensor([value_range[1], value_range[3]], dtype=torch.float64)
    inside = ((x >= lo) & (x <= hi)).all(1)
    idx = ((x[inside] - lo) / (hi - lo) * bins).floor().long().clamp(0, bins - 1)
    empty = ref_counts[idx[:, 0], idx[:, 1]] == 0
    result["off_data_share"] = float(((~inside).sum() + empty.sum()) / len(x))
    return result


def rounded(m: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--datasets", nargs="+", default=list(TOY_DATASETS), choices=TOY_DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--scales", nargs="+", type=float, default=[0.5, 1.0, 2.0],
                        help="standard deviations of the Gaussian frequencies")
    parser.add_argument("--variants", nargs="+", default=None, help="a subset of the variant names")
    parser.add_argument("--samples", type=int, default=toy.EVAL_SAMPLES, help="samples per evaluation at --steps")
    parser.add_argument("--quick-samples", type=int, default=10_000,
                        help="samples per evaluation at the quick budget (lesson 04's quick n_eval)")
    parser.add_argument("--quick-only", action="store_true", help="train and evaluate at the quick budget only")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--merge", nargs="+", type=Path, default=None,
                        help="instead of running: merge the JSON files of earlier runs into --out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.merge:  # JSON files of finished runs, or the logs (one JSON row a line) of runs stopped early
        rows = []
        for f in args.merge:
            text = f.read_text()
            rows += json.loads(text)["runs"] if f.suffix == ".json" else [
                json.loads(line) for line in text.splitlines() if line.startswith('{"dataset"')]
        unique = {(r["dataset"], r["variant"], r["seed"], r["steps"]): r for r in rows}
        runs = sorted(unique.values(), key=lambda r: (r["dataset"], r["steps"], r["variant"], r["seed"]))
        floors: dict[str, dict[str, Any]] = {}
        for name, n in sorted({(r["dataset"], r["samples"]) for r in runs}):
            data = toy_distribution(name).sample(n, torch.Generator().manual_seed(777))
            floors.setdefault(name, {})[str(n)] = rounded(score(data, name))
        result = {"benchmark": "toy_features", "device": platform.processor() or platform.machine(), "threads": 1,
                  "torch": torch.__version__, "merged_from": [f.name for f in args.merge],
                  "variants": variants(args.scales), "config": toy.ToyConfig().to_dict(),
                  "train_config": toy.default_train_config().to_dict() | {"steps": "see each run"},
                  "floors": floors, "mean_over_seeds": summarise(runs), "runs": runs}
        write(result, args.out)
        return

    chosen = variants(args.scales)
    if args.variants:
        chosen = {k: v for k, v in chosen.items() if k in args.variants}
    floors: dict[str, dict[str, Any]] = {}
    for name in args.datasets:
        for n in sorted({args.quick_samples} | (set() if args.quick_only else {args.samples})):
            data = toy_distribution(name).sample(n, torch.Generator().manual_seed(777))
            floors.setdefault(name, {})[str(n)] = rounded(score(data, name))
    runs: list[dict[str, Any]] = []
    start_all = time.perf_counter()
    for seed in args.seeds:
        for name in args.datasets:
            for variant, options in chosen.items():
                config = toy.ToyConfig(dataset=name, fourier_seed=seed, **options)
                last = QUICK_STEPS[name] if args.quick_only else args.steps
                trainer = toy.make_trainer(config, toy.default_train_config(steps=last, seed=seed))
                budgets = sorted({min(QUICK_STEPS[name], last), last})
                tic = time.perf_counter()
                for steps in budgets:
                    trainer.train(steps - trainer.step, progress=False)
                    train_s = time.perf_counter() - tic
                    quick = steps == QUICK_STEPS[name]
                    n = args.quick_samples if quick else args.samples
                    samples = toy.sample(trainer.ema.model, trainer.diffusion, n, seed=seed)
                    row = {"dataset": name, "variant": variant, "seed": seed, "steps": steps,
                           "budget": "quick" if quick else "long", "samples": n,
                           "train_seconds": round(train_s, 1), **rounded(score(samples, name))}
                    row.pop("num_modes", None)
                    runs.append(row)
                    print(json.dumps(row), flush=True)
    result = {
        "benchmark": "toy_features",
        "device": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "steps": args.steps,
        "samples": args.samples,
        "seeds": args.seeds,
        "quick_only": args.quick_only,
        "variants": chosen,
        "config": toy.ToyConfig().to_dict(),
        "train_config": toy.default_train_config(steps=args.steps).to_dict(),
        "seconds": round(time.perf_counter() - start_all, 1),
        "floors": floors,
        "mean_over_seeds": summarise(runs),
        "runs": runs,
    }
    write(result, args.out)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds, keyed ``dataset/steps/variant``."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in runs:
        groups.setdefault(f"{row['dataset']}/{row['steps']}/{row['variant']}", []).append(row)
    means = {}
    for key, rows in sorted(groups.items()):
        fields = [k for k in ("hist_kl", "reverse_kl", "off_data_share", "high_quality", "modes_covered") if k in rows[0]]
        means[key] = {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in fields} | {"seeds": len(rows)}
    return means


def write(result: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(result, indent=1)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
