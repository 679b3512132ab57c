"""Train the shipped class-conditional MNIST model (data/pretrained/) with ddpm_core's own trainer.

    python scripts/train_mnist_pretrained.py --out data/pretrained --steps 20000          # on a GPU
    python scripts/train_mnist_pretrained.py --data mnist.pt ...                          # images from a tensor file

Writes the EMA weights in fp16 (a plain state_dict plus configs, loadable with weights_only=True), a sample
grid, the MNIST classifier used to measure it, and a model card (JSON) with the measured quality.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ddpm_core import GaussianDiffusion, data, metrics, sampling
from ddpm_core.models.unet import UNet, unet_config
from ddpm_core.training import ImageBatches, Periodic, Trainer, TrainConfig, atomic_save


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/pretrained")
    p.add_argument("--data", default=None, help="a .pt file with uint8 'images' (N,1,28,28) and 'labels'; default: load_mnist")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--config", default="mnist_cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples-per-class", type=int, default=100)
    p.add_argument("--classifier-steps", type=int, default=3000)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.data:
        blob = torch.load(args.data, weights_only=True)
        train_x, train_y = data.to_unit_range(blob["train_images"]), blob["train_labels"].long()
        test_x, test_y = data.to_unit_range(blob["test_images"]), blob["test_labels"].long()
        source = blob.get("source", "tensor file")
    else:
        train, test = data.load_mnist(train=True), data.load_mnist(train=False)
        train_x, train_y, test_x, test_y, source = train.images, train.labels, test.images, test.labels, train.source
    train_x32 = F.pad(train_x, (2, 2, 2, 2), value=-1.0)

    diffusion = GaussianDiffusion.from_schedule("linear", 1000, 1e-4, 0.02, mean_type="eps", var_type="fixed_large")
    unet_cfg = unet_config(args.config, num_classes=10, class_dropout=0.1)
    torch.manual_seed(args.seed)
    model = UNet(unet_cfg)
    train_cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=500,
                            grad_clip=1.0, ema_decay=0.9995, ema_warmup=True, seed=args.seed, log_every=500)
    def save_ema(tr: Trainer) -> None:
        ema_state = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in tr.ema.model.state_dict().items()}
        atomic_save({"model": ema_state, "unet_config": unet_cfg.to_dict(), "step": tr.step}, out / "ema_partial.pt")
        print(f"step {tr.step}: loss {tr.last_loss:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)

    report = Periodic(2000, save_ema)
    trainer = Trainer(model, diffusion, ImageBatches(train_x32, train_y), train_cfg, device=device, conditional=True,
                      callbacks=[report])
    start = time.perf_counter()
    trainer.train(progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start

    ema = trainer.ema.model.eval()
    n = args.samples_per_class
    y = torch.arange(10).repeat_interleave(n).to(device)
    g = torch.Generator(device=device).manual_seed(1)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        samples = sampling.p_sample_loop(diffusion, ema, (10 * n, 1, 32, 32), generator=g, device=device,
                                         clip_denoised=True, model_kwargs={"y": y}).float()

    classifier = metrics.train_mnist_classifier(train_x, train_y, steps=args.classifier_steps, device=device)
    test_acc = metrics.class_accuracy(classifier, test_x.to(device), test_y)
    sample_acc = metrics.class_accuracy(classifier, samples, y)

    # CPU tensors, so the file loads anywhere without map_location
    state = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in ema.state_dict().items()}
    atomic_save({"model": state, "unet_config": unet_cfg.to_dict(),
                 "diffusion": {"schedule": "linear", "timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
                               "mean_type": "eps", "var_type": "fixed_large"}}, out / "mnist_cond_ema_fp16.pt")
    atomic_save({"model": {k: v.cpu() for k, v in classifier.state_dict().items()}}, out / "mnist_classifier.pt")
    from ddpm_core.viz import image_grid
    from PIL import Image

    per_row = min(n, 10)
    grid = image_grid(samples.reshape(10, n, 1, 32, 32)[:, :per_row].reshape(10 * per_row, 1, 32, 32).cpu(), nrow=per_row)
    Image.fromarray(grid[..., 0]).save(out / "mnist_cond_samples.png")
    card = {
        "model": f"UNet '{args.config}', class-conditional (10 classes + null label, label dropout 0.1)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "diffusion": "T = 1000, linear betas 1e-4 -> 0.02, eps prediction, fixed-large variance, L_simple",
        "command": "python scripts/train_mnist_pretrained.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out"),
        "data": f"MNIST from {source}: {len(train_x)} training digits (padded to 32x32), {len(test_x)} held out",
        "training": train_cfg.to_dict(),
        "seed": args.seed,
        "hardware": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "wall_time_s": round(wall, 1),
        "final_loss": trainer.last_loss,
        "quality": {
            "classifier": "ddpm_core.metrics.MNISTClassifier trained on the same training digits",
            "classifier_test_accuracy": round(test_acc["accuracy"], 4),
            "samples_per_class": n,
            "sampler": "ancestral (Algorithm 2), 1000 steps, EMA weights, clip_denoised",
            "requested_class_accuracy": round(sample_acc["accuracy"], 4),
            "requested_class_accuracy_per_class": [round(a, 3) for a in sample_acc["per_class"]],
        },
    }
    (out / "mnist_cond_card.json").write_text(json.dumps(card, indent=2))
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
