"""The shipped pretrained MNIST model: size, safe loading, and that it denoises digits into their own class."""

from pathlib import Path

import torch

from ddpm_core import GaussianDiffusion, data, metrics
from ddpm_core.models.unet import UNet, UNetConfig

PRETRAINED = Path(__file__).resolve().parent.parent / "data" / "pretrained"


def load_model():
    ckpt = torch.load(PRETRAINED / "mnist_cond_ema_fp16.pt", weights_only=True)
    model = UNet(UNetConfig(**ckpt["unet_config"]))
    model.load_state_dict({k: v.float() for k, v in ckpt["model"].items()})
    d = ckpt["diffusion"]
    diffusion = GaussianDiffusion.from_schedule(d["schedule"], d["timesteps"], d["beta_start"], d["beta_end"],
                                                mean_type=d["mean_type"], var_type=d["var_type"])
    return model.eval(), diffusion


def test_files_are_small_and_load_with_weights_only():
    for name in ("mnist_cond_ema_fp16.pt", "mnist_classifier.pt"):
        path = PRETRAINED / name
        assert path.stat().st_size < 10 * 2**20
        assert "model" in torch.load(path, weights_only=True)
    model, _ = load_model()
    assert model.config.num_classes == 10 and model.null_label == 10


@torch.no_grad()
def test_the_model_denoises_held_out_digits_into_their_class():
    model, diffusion = load_model()
    classifier = metrics.MNISTClassifier()
    classifier.load_state_dict(torch.load(PRETRAINED / "mnist_classifier.pt", weights_only=True)["model"])
    classifier.eval()
    test = data.load_mnist(train=False, verbose=False)
    x0 = torch.nn.functional.pad(test.images[:60], (2, 2, 2, 2), value=-1.0)
    y = test.labels[:60]
    t = torch.full((60,), 400)
    xt = diffusion.q_sample(x0, t, generator=torch.Generator().manual_seed(0))
    # Conditioned on the true label, the predicted x0 keeps the class; conditioned on another label it moves.
    right = diffusion.p_mean_variance(model(xt, t, y), xt, t, clip_denoised=True)["pred_xstart"]
    assert metrics.class_accuracy(classifier, right, y)["accuracy"] >= 0.9
    other = (y + 5) % 10
    steered = diffusion.p_mean_variance(model(xt, t, other), xt, t, clip_denoised=True)["pred_xstart"]
    assert metrics.class_accuracy(classifier, steered, y)["accuracy"] < metrics.class_accuracy(classifier, right, y)["accuracy"]
