"""Probe bad inputs through the command line and the API, and classify each outcome.

    python scripts/probe_bad_inputs.py

Each case is a wrong option, a wrong config value, a damaged or mismatched file, or a bad argument.  "clear" means a
one-line error naming the problem (command line: exit status != 0, one `error:` line, no traceback; API: a
ValueError, TypeError or FileNotFoundError); "UNCLEAR" means a traceback or another exception; "ACCEPTED" means no
error at all (for a bad input, a silent wrong result).  The last line counts them.  Works in a temporary folder.
"""
import contextlib, io as _io, json, os, sys, traceback, tempfile
os.environ["HF_HUB_OFFLINE"] = "1"  # a Hub id fails at once, as on a machine without network
from pathlib import Path
import torch
from ddpm_core.cli import main
from ddpm_core import images, io, toy, sampling, pretrained, GaussianDiffusion
from ddpm_core.models.unet import UNet, UNetConfig
from ddpm_core.schedules import get_beta_schedule
from ddpm_core.training import TrainConfig

tmp = Path(tempfile.mkdtemp())
(a_file := tmp / "file").write_text("x")
(corrupt := tmp / "corrupt.pt").write_bytes(b"\x00garbage")
(badjson := tmp / "bad.json").write_text("{nope")
(trainabc := tmp / "trainabc.json").write_text(json.dumps({"experiment": {"dataset": "shapes"}, "train": "abc"}))
(dataset5 := tmp / "ds5.json").write_text(json.dumps({"experiment": {"dataset": 5}}))
(quick3 := tmp / "quick3.json").write_text(json.dumps({"experiment": {"dataset": "shapes"}, "quick": 3}))
tiny = tmp / "tiny.json"
tiny.write_text(json.dumps({"experiment": {"dataset": "shapes", "data_limit": 16, "unet": "ddpm_cifar10",
    "unet_overrides": {"ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [16]}, "timesteps": 10,
    "grid_size": 4, "grid_steps": 2}, "train": {"steps": 1, "batch_size": 4, "log_every": 1}}))
# one toy and one image run to have real checkpoints
with contextlib.redirect_stdout(_io.StringIO()), contextlib.redirect_stderr(_io.StringIO()):
    main(["train-toy", "--steps", "2", "--timesteps", "10", "--hidden", "8", "--depth", "1", "--samples", "100",
          "--no-progress", "--device", "cpu", "--out-dir", str(tmp / "toyrun")])
    main(["train", "--config", str(tiny), "--device", "cpu", "--out-dir", str(tmp / "imgrun"), "--no-progress"])
toyck, imgck, ema = tmp / "toyrun" / "gaussian8.pt", tmp / "imgrun" / "checkpoint.pt", tmp / "imgrun" / "ema.pt"
raw = torch.load(pretrained.PRETRAINED_DIR / pretrained.MNIST_MODEL, weights_only=True)
raw["model"]["conv_out.weight"] = raw["model"]["conv_out.weight"].clone().fill_(float("nan"))
raw.pop("checksum"); raw.pop("format"); torch.save(raw, nanck := tmp / "nan.pt")
import numpy as np
np.savez(rgb_npz := tmp / "rgb.npz", arr_0=np.zeros((20, 32, 32, 3), np.uint8))
np.savez(float_npz := tmp / "float.npz", arr_0=np.zeros((20, 32, 32, 1), np.float32))
np.savez(few_npz := tmp / "few.npz", arr_0=np.zeros((3, 28, 28, 1), np.uint8))
os.environ["DDPM_DATA_DIR"] = str(tmp / "data")  # no Inception weights and no CIFAR-10 there
pretrained.to_diffusers(*pretrained.load_mnist(), diffusers_dir := tmp / "mnist_diffusers")
(badunet := tmp / "badunet").mkdir()
(badunet / "config.json").write_text(json.dumps({**json.loads((diffusers_dir / "unet" / "config.json").read_text()),
                                                 "flip_sin_to_cos": True}))
(badunet / "scheduler_config.json").write_text((diffusers_dir / "scheduler" / "scheduler_config.json").read_text())
(badunet / "diffusion_pytorch_model.safetensors").write_bytes(
    (diffusers_dir / "unet" / "diffusion_pytorch_model.safetensors").read_bytes())
(noweights := tmp / "noweights").mkdir()
(noweights / "config.json").write_text((diffusers_dir / "unet" / "config.json").read_text())
flip = bytearray(ema.read_bytes()); flip[len(flip) // 2] ^= 0xFF; (flipped := tmp / "flipped.pt").write_bytes(bytes(flip))

TOY = ["train-toy", "--timesteps", "10", "--hidden", "8", "--depth", "1", "--samples", "100", "--no-progress",
       "--device", "cpu", "--steps", "2", "--out-dir", str(tmp / "t")]
TR = ["train", "--config", str(tiny), "--device", "cpu", "--no-progress", "--out-dir", str(tmp / "i")]
SA = ["sample", "--pretrained", "mnist", "--n", "2", "--steps", "2", "--device", "cpu", "--no-progress",
      "--out", str(tmp / "s.npz")]
cli_cases = {
  "toy --steps -1": TOY + ["--steps", "-1"], "toy --steps abc": TOY + ["--steps", "abc"],
  "toy --batch-size 0": TOY + ["--batch-size", "0"], "toy --lr -1e-3": TOY + ["--lr", "-1e-3"],
  "toy --lr abc": TOY + ["--lr", "abc"], "toy --lr nan": TOY + ["--lr", "nan"], "toy --lr inf": TOY + ["--lr", "inf"],
  "toy --beta-start 0": TOY + ["--beta-start", "0"], "toy --beta-start 2": TOY + ["--beta-start", "2"],
  "toy --beta-end 1": TOY + ["--beta-end", "1"], "toy beta_start>beta_end": TOY + ["--beta-start", "0.3", "--beta-end", "0.1"],
  "toy --timesteps 1": TOY + ["--timesteps", "1"], "toy --timesteps 0": TOY + ["--timesteps", "0"],
  "toy jsd+eps": TOY + ["--beta-schedule", "jsd"], "toy --beta-schedule foo": TOY + ["--beta-schedule", "foo"],
  "toy mean score": TOY + ["--model-mean-type", "score"], "toy learned+mse": TOY + ["--model-var-type", "learned"],
  "toy --loss-type bad": TOY + ["--loss-type", "bad"], "toy --decoder x": TOY + ["--decoder", "x"],
  "toy --hidden 0": TOY + ["--hidden", "0"], "toy --depth 0": TOY + ["--depth", "0"],
  "toy --fourier-features -1": TOY + ["--fourier-features", "-1"], "toy --grad-clip -1": TOY + ["--grad-clip", "-1"],
  "toy --ema-decay 1": TOY + ["--ema-decay", "1"], "toy --ema-decay -0.1": TOY + ["--ema-decay", "-0.1"],
  "toy --device tpu": TOY + ["--device", "tpu"], "toy --device cuda": TOY + ["--device", "cuda"],
  "toy --device cuda:5": TOY + ["--device", "cuda:5"], "toy --out-dir file": TOY + ["--out-dir", str(a_file)],
  "toy --chkpt-dir file": TOY + ["--chkpt-dir", str(a_file)], "toy --resume missing": TOY + ["--resume", str(tmp / "no.pt")],
  "toy --resume dir": TOY + ["--resume", str(tmp)], "toy --resume corrupt": TOY + ["--resume", str(corrupt)],
  "toy --resume image ckpt": TOY + ["--resume", str(imgck)], "toy --resume flipped": TOY + ["--resume", str(flipped)],
  "toy --eval-intv -1": TOY + ["--eval-intv", "-1"], "toy --samples 0": TOY + ["--samples", "0"],
  "toy --threads 0": TOY + ["--threads", "0"], "toy --epochs 0": TOY[:-4] + ["--epochs", "0", "--out-dir", str(tmp / "t")],
  "toy --steps+--epochs": TOY + ["--epochs", "2"], "toy --size 0": TOY + ["--size", "0"],
  "toy resume changed T": ["train-toy", "--timesteps", "20", "--hidden", "8", "--depth", "1", "--samples", "100",
                           "--no-progress", "--device", "cpu", "--steps", "4", "--out-dir", str(tmp / "toyrun"), "--resume"],
  "train --config nope": ["train", "--config", "nope"], "train --config missing.json": ["train", "--config", str(tmp / "m.json")],
  "train bad JSON": ["train", "--config", str(badjson)], "train --set x": TR + ["--set", "x"],
  "train train.lr=abc": TR + ["--set", "train.lr=abc"], "train train.steps=-1": TR + ["--set", "train.steps=-1"],
  "train unet=big": TR + ["--set", "experiment.unet=big"], "train conditional=maybe": TR + ["--set", "experiment.conditional=maybe"],
  "train ema_warmup=no": TR + ["--set", "train.ema_warmup=no"],
  "train num_res_blocks 0": TR + ["--set", 'experiment.unet_overrides={"num_res_blocks": 0}'],
  "train ch_mult []": TR + ["--set", 'experiment.unet_overrides={"ch_mult": []}'],
  "train unknown unet option": TR + ["--set", 'experiment.unet_overrides={"chh": 3}'],
  "train schedule jsd": TR + ["--set", "experiment.schedule=jsd"], "train beta_start=0.5": TR + ["--set", "experiment.beta_start=0.5"],
  "train grid_steps=0": TR + ["--set", "experiment.grid_steps=0"], "train loader=disk": TR + ["--set", "experiment.loader=disk"],
  "train optimizer=sgd": TR + ["--set", "train.optimizer=sgd"], "train betas=[0.9]": TR + ["--set", "train.betas=[0.9]"],
  "train dataset=imagenet": TR + ["--set", "experiment.dataset=imagenet"],
  "train --out-dir file": TR + ["--out-dir", str(a_file)], "train --resume none": TR + ["--resume", "--out-dir", str(tmp / "empty")],
  "train --resume corrupt": TR + ["--resume", str(corrupt)], "train --resume toy ckpt": TR + ["--resume", str(toyck)],
  "train --resume ema.pt": TR + ["--resume", str(ema)], "train --resume flipped": TR + ["--resume", str(flipped)],
  "train --steps 0": TR + ["--steps", "0"], "train --lr -1e-3": TR + ["--lr", "-1e-3"], "train --device tpu": TR + ["--device", "tpu"],
  "train train:abc file": ["train", "--config", str(trainabc)], "train dataset 5": ["train", "--config", str(dataset5)],
  "train quick 3": ["train", "--config", str(quick3)],
  "train resume changed T": ["train", "--config", str(tiny), "--device", "cpu", "--no-progress", "--out-dir",
                             str(tmp / "imgrun"), "--resume", "--set", "experiment.timesteps=20", "--steps", "3"],
  "sample --checkpoint missing": ["sample", "--checkpoint", str(tmp / "no.pt")],
  "sample --checkpoint corrupt": ["sample", "--checkpoint", str(corrupt), "--out", str(tmp / "s.npz")],
  "sample --checkpoint toy": ["sample", "--checkpoint", str(toyck), "--out", str(tmp / "s.npz")],
  "sample --checkpoint dir": ["sample", "--checkpoint", str(tmp), "--out", str(tmp / "s.npz")],
  "sample --checkpoint flipped": ["sample", "--checkpoint", str(flipped), "--out", str(tmp / "s.npz")],
  "sample --checkpoint NaN weights": ["sample", "--checkpoint", str(nanck), "--out", str(tmp / "s.npz")],
  "sample --n 0": SA + ["--n", "0"], "sample --n -1": SA + ["--n", "-1"], "sample --batch-size 0": SA + ["--batch-size", "0"],
  "sample --steps 0": SA + ["--steps", "0"], "sample --steps 5000": SA + ["--steps", "5000"], "sample --eta 2": SA + ["--eta", "2"],
  "sample --eta -1": SA + ["--eta", "-1"], "sample --eta nan": SA + ["--eta", "nan"],
  "sample --guidance-scale nan": SA + ["--guidance-scale", "nan"], "sample --label 10": SA + ["--label", "10"],
  "sample --label -1": SA + ["--label", "-1"], "sample --sampler foo": SA + ["--sampler", "foo"],
  "sample --skip foo": SA + ["--skip", "foo"], "sample --out file/x.npz": SA + ["--out", str(a_file / "x.npz")],
  "sample --out x.gif": SA + ["--out", str(tmp / "x.gif")], "sample --out file": SA + ["--out", str(a_file)],
  "sample --animation x.mp4": SA + ["--animation", str(tmp / "x.mp4")], "sample --animation dir": SA + ["--animation", str(tmp)],
  "sample --threads 0": SA + ["--threads", "0"], "sample --device tpu": SA + ["--device", "tpu"],
  "sample ddpm eta 0.5": SA + ["--sampler", "ddpm", "--eta", "0.5"],
  "sample guidance on uncond": ["sample", "--checkpoint", str(ema), "--n", "2", "--steps", "2", "--device", "cpu",
                                "--guidance-scale", "2", "--label", "1", "--out", str(tmp / "u.npz")],
  # evaluation (issue 11)
  "evaluate no --samples": ["evaluate", "--no-progress"],
  "evaluate --samples missing": ["evaluate", "--samples", str(tmp / "no.npz")],
  "evaluate --samples a .txt": ["evaluate", "--samples", str(a_file)],
  "evaluate rgb vs mnist": ["evaluate", "--samples", str(rgb_npz), "--no-progress", "--device", "cpu"],
  "evaluate float npz": ["evaluate", "--samples", str(float_npz), "--no-progress", "--device", "cpu"],
  "evaluate 3 samples pr": ["evaluate", "--samples", str(few_npz), "--metrics", "pr", "--no-progress", "--device", "cpu"],
  "evaluate kid subset > n": ["evaluate", "--samples", str(few_npz), "--metrics", "kid", "--kid-subset-size", "10",
                              "--no-progress", "--device", "cpu"],
  "evaluate --metrics psnr": ["evaluate", "--samples", str(few_npz), "--metrics", "psnr"],
  "evaluate --features vgg": ["evaluate", "--samples", str(few_npz), "--features", "vgg"],
  "evaluate --reference nope": ["evaluate", "--samples", str(few_npz), "--reference", "nope", "--device", "cpu"],
  "evaluate cifar10-test absent": ["evaluate", "--samples", str(rgb_npz), "--reference", "cifar10-test",
                                   "--no-progress", "--device", "cpu"],
  "evaluate inception offline": ["evaluate", "--samples", str(few_npz), "--features", "inception", "--metrics", "fid",
                                 "--no-progress", "--device", "cpu"],
  "evaluate --inception-weights missing": ["evaluate", "--samples", str(few_npz), "--features", "inception",
                                           "--inception-weights", str(tmp / "no.pth"), "--no-progress"],
  "evaluate --out folder": ["evaluate", "--samples", str(few_npz), "--out", str(tmp), "--no-progress"],
  "bpd --timesteps-subset 1000": ["bpd", "--pretrained", "mnist", "--timesteps-subset", "1000", "--device", "cpu"],
  "bpd --n 0": ["bpd", "--pretrained", "mnist", "--n", "0"],
  "bpd --checkpoint corrupt": ["bpd", "--checkpoint", str(corrupt), "--device", "cpu"],
  "bpd --checkpoint toy": ["bpd", "--checkpoint", str(toyck), "--device", "cpu"],
  "sample --from-diffusers missing": SA[:1] + ["--from-diffusers", str(tmp / "nothing")] + SA[3:],
  "sample --from-diffusers a file": SA[:1] + ["--from-diffusers", str(a_file)] + SA[3:],
  "sample --from-diffusers hub offline": SA[:1] + ["--from-diffusers", "google/ddpm-cifar10-32"] + SA[3:],
  "sample --from-diffusers bad config": SA[:1] + ["--from-diffusers", str(badunet)] + SA[3:],
  "sample --from-diffusers no weights": SA[:1] + ["--from-diffusers", str(noweights)] + SA[3:],
  "sample --from-diffusers + --pretrained": SA + ["--from-diffusers", str(diffusers_dir)],
  "sample --out grid.jpg": SA[:-1] + [str(tmp / "grid.jpg")],
  "export no --to-diffusers": ["export", "--pretrained", "mnist"],
  "export no source": ["export", "--to-diffusers", str(tmp / "e1")],
  "export non-empty folder": ["export", "--pretrained", "mnist", "--to-diffusers", str(diffusers_dir)],
  "export --to-diffusers a file": ["export", "--pretrained", "mnist", "--to-diffusers", str(a_file)],
  "export --checkpoint toy": ["export", "--checkpoint", str(toyck), "--to-diffusers", str(tmp / "e2")],
}

def run_cli(argv):
    out, err = _io.StringIO(), _io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as e:
        code = e.code
    except BaseException as e:  # escaped: unclear
        return "UNCLEAR (escaped)", f"{type(e).__name__}: {e}"[:300]
    text = err.getvalue().strip()
    if code == 0:
        return "ACCEPTED", " ".join(out.getvalue().strip().splitlines()[-1:])
    lines = [l for l in text.splitlines() if l.strip()]
    ok = lines and "error:" in lines[-1] and "Traceback" not in text and len(lines) <= 2
    return ("clear" if ok else "UNCLEAR"), lines[-1][:300] if lines else "(no message)"

api_cases = {
  "linear beta_start>beta_end": lambda: get_beta_schedule("linear", 100, 0.02, 1e-4),
  "bpd on 0-255": lambda: GaussianDiffusion.from_schedule("linear", 10).calc_bpd_loop(lambda x, t: torch.zeros_like(x), torch.full((1, 1, 4, 4), 255.)),
  "UNetConfig(num_res_blocks=-1)": lambda: UNetConfig(num_res_blocks=-1),
  "UNetConfig(ch_mult=())": lambda: UNetConfig(ch_mult=()),
  "UNetConfig(resolution=30)": lambda: UNetConfig(resolution=30),
  "UNetConfig(ch=48)": lambda: UNetConfig(ch=48),
  "Trainer.train(steps=-5)": lambda: toy.make_trainer(toy.ToyConfig(), toy.default_train_config(steps=2)).train(-5),
  "UNet labels 11": lambda: pretrained.load_mnist()[0](torch.zeros(1, 1, 32, 32), torch.zeros(1, dtype=torch.long), y=torch.tensor([11])),
  "UNet wrong channels": lambda: pretrained.load_mnist()[0](torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long)),
  "sample y=12": lambda: sampling.sample(pretrained.load_mnist()[1], pretrained.load_mnist()[0], (1, 1, 32, 32), steps=2, y=12),
  "generate n=0": lambda: images.generate(*pretrained.load_mnist(), 0),
  "ToyConfig jsd eps": lambda: toy.ToyConfig(beta_schedule="jsd"),
  "TrainConfig(lr='abc')": lambda: TrainConfig(lr="abc"),
  "TrainConfig(ema_warmup='no')": lambda: TrainConfig(ema_warmup="no"),
  "load_config train abc": lambda: images.load_config(trainabc),
  "q_sample t=T": lambda: GaussianDiffusion.from_schedule("linear", 10).q_sample(torch.zeros(2, 3), torch.tensor([10, 0])),
  "q_sample float t": lambda: GaussianDiffusion.from_schedule("linear", 10).q_sample(torch.zeros(2, 3), torch.tensor([1.0, 0.0])),
  "load_checkpoint flipped": lambda: io.load_checkpoint(flipped),
  "toy.load image ckpt": lambda: toy.load(imgck),
  "pretrained.load_model toy ckpt": lambda: pretrained.load_model(toyck),
  "UNetConfig(downsample_padding='valid')": lambda: UNetConfig(downsample_padding="valid"),
  "from_diffusers(bad config)": lambda: pretrained.from_diffusers(badunet),
  "from_diffusers(hub id, offline)": lambda: pretrained.from_diffusers("google/ddpm-church-256"),
  "from_diffusers(no weights)": lambda: pretrained.from_diffusers(noweights),
  "to_diffusers(Linear)": lambda: pretrained.to_diffusers(torch.nn.Linear(2, 2), pretrained.load_mnist()[1], tmp / "e3"),
  "to_diffusers(non-empty)": lambda: pretrained.to_diffusers(*pretrained.load_mnist(), diffusers_dir),
}

def run_api(fn):
    try:
        fn()
    except (ValueError, TypeError, FileNotFoundError) as e:
        return "clear", f"{type(e).__name__}: {e}"[:300]
    except BaseException as e:
        return "UNCLEAR", f"{type(e).__name__}: {e}"[:300]
    return "ACCEPTED", ""

results = {}
for name, argv in cli_cases.items():
    results["cli: " + name] = run_cli(argv)
for name, fn in api_cases.items():
    results["api: " + name] = run_api(fn)
counts = {}
for name, (kind, msg) in results.items():
    counts[kind] = counts.get(kind, 0) + 1
    print(f"{kind:18s} {name:34s} {msg}")
print(json.dumps(counts))
