"""Measure a trained class-conditional MNIST run and export it as the shipped pretrained model (data/pretrained/).

    python -m ddpm_core train --config mnist_pretrained --out-dir runs/mnist_pretrained      # train (a GPU helps)
    python scripts/export_pretrained.py runs/mnist_pretrained --out data/pretrained          # measure and export

Writes the EMA weights in fp16 (a plain state_dict plus the network and diffusion description, loadable with
weights_only=True by ddpm_core.pretrained.load_model), a sample grid (ten per class), and a model card (JSON) with
the measured quality: the share of samples that the shipped MNIST classifier assigns to the requested class.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import torch

from ddpm_core import io, metrics, pretrained, sampling
from ddpm_core.viz import image_grid, save_png


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="the run folder written by `python -m ddpm_core train`")
    p.add_argument("--out", default="data/pretrained")
    p.add_argument("--name", default="mnist_cond")
    p.add_argument("--samples-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--command", default=None, help="the training command, for the card")
    args = p.parse_args()
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    model, diffusion = pretrained.load_model(run / "ema.pt", device=device)
    export = io.load_checkpoint(run / "ema.pt")
    n = args.samples_per_class
    y = torch.arange(10).repeat_interleave(n).to(device)
    g = torch.Generator(device=device).manual_seed(args.seed)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        samples = sampling.sample(diffusion, model, (10 * n, 1, 32, 32), y=y, generator=g, device=device,
                                  clip_denoised=True).float()
    classifier = pretrained.load_mnist_classifier(device)
    acc = metrics.class_accuracy(classifier, samples, y)

    half = {k: v.half() if v.is_floating_point() else v for k, v in export["model"].items()}
    io.save_checkpoint({"model": half, "unet_config": export["unet_config"], "diffusion": export["diffusion"]},
                       out / f"{args.name}_ema_fp16.pt")
    per_row = min(n, 10)
    grid = samples.reshape(10, n, 1, 32, 32)[:, :per_row].reshape(10 * per_row, 1, 32, 32).cpu()
    save_png(image_grid(grid, nrow=per_row), out / f"{args.name}_samples.png")

    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    card = {
        "model": f"UNet '{export['experiment']['unet']}', class-conditional (10 classes + null label 10, "
                 f"label dropout {export['experiment']['class_dropout']})",
        "parameters": sum(p.numel() for p in model.parameters()),
        "diffusion": export["diffusion"],
        "command": args.command,
        "config": config,
        "data": f"MNIST padded to 32x32, source: {summary['data_source']}",
        "seed": config["train"]["seed"],
        "hardware": summary["device"],
        "torch": summary["torch"],
        "steps": summary["steps"],
        "wall_time_s": summary["wall_time_s"],
        "images_per_s": summary["images_per_s"],
        "final_loss": round(summary["final_loss"], 5),
        "quality": {
            "classifier": "data/pretrained/mnist_classifier.pt (ddpm_core.metrics.MNISTClassifier)",
            "samples_per_class": n,
            "sampler": "ancestral (Algorithm 2), all 1000 steps, EMA weights, clip_denoised, seed "
                       f"{args.seed}",
            "requested_class_accuracy": round(acc["accuracy"], 4),
            "requested_class_accuracy_per_class": [round(a, 3) for a in acc["per_class"]],
        },
        "export": f"python scripts/export_pretrained.py {shlex.quote(str(run))} --out {shlex.quote(str(out))}",
    }
    io.atomic_write_json(out / f"{args.name}_card.json", card)
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
