"""The diffusers format, checked against diffusers itself: the paper's padding, the converted UNet's outputs, export
and round trip, the scheduler mapping, the refusals, and the shipped MNIST model's unchanged samples."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ddpm_core import GaussianDiffusion, diffusers_format, pretrained, respace, sampling
from ddpm_core.models.unet import CONFIGS, Downsample, UNet, UNetConfig, unet_config

diffusers = pytest.importorskip("diffusers")  # a test dependency (requirements.txt); the checks need the reference
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAPER = dict(downsample_padding=0, attention_head_dim=None, norm_eps=1e-6, flip_sin_to_cos=False, freq_shift=1)
CIFAR10 = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
               layers_per_block=2, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
               up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), **PAPER)
SIX_LEVELS = dict(sample_size=64, in_channels=3, out_channels=3, block_out_channels=(32, 32, 64, 64, 96, 96),
                  layers_per_block=1, down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4, **PAPER)
# the CPU budget's layout (mnist_cpu_short's UNet): ch 16 with 8 GroupNorm groups, three levels, attention at 7x7
NARROW = dict(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(16, 32, 64), layers_per_block=1,
              norm_num_groups=8, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
              up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), **{**PAPER, "downsample_padding": 1})
TINY = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"), **PAPER)


def random_diffusers_unet(seed=0, **config):
    torch.manual_seed(seed)
    ref = UNet2DModel(**config).double().eval()
    with torch.no_grad():
        for p in ref.parameters():  # diffusers zero-initialises nothing, but make every weight matter
            p.normal_(0, 0.05)
    return ref


def random_unet(config, seed=0):
    torch.manual_seed(seed)
    model = UNet(config).eval()
    with torch.no_grad():
        for p in model.parameters():  # our UNet zero-initialises its last convs; random weights test every path
            p.normal_(0, 0.05)
    return model


def converted(ref):
    config = diffusers_format.unet_config_from_diffusers(dict(ref.config))
    model = UNet(config).double().eval()
    model.load_state_dict(diffusers_format.state_dict_from_diffusers(ref.state_dict(), config), strict=True)
    return model


def rel(a, b):
    return float((a - b).norm() / b.norm())


# ----------------------------------------------------------------------------- the paper's padding
def test_same_padding_is_tensorflow_same_for_even_sizes():
    torch.manual_seed(0)
    down = Downsample(4, "same").double()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    # TensorFlow 'SAME' for a stride-2 3x3 conv on n = 8: output ceil(8/2) = 4, total padding (4-1)*2 + 3 - 8 = 1,
    # split floor/ceil: 0 before, 1 after.
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), down.conv.weight, down.conv.bias, stride=2)
    torch.testing.assert_close(down(x), expected, rtol=0, atol=0)
    sym = Downsample(4, "symmetric").double()
    sym.load_state_dict(down.state_dict())
    torch.testing.assert_close(sym(x), F.conv2d(x, down.conv.weight, down.conv.bias, stride=2, padding=1))
    assert down(x).shape == sym(x).shape == (2, 4, 4, 4)
    assert (down(x) - sym(x)).abs().max() > 0.01


def test_the_papers_configs_use_the_papers_padding_and_old_configs_stay_symmetric():
    assert {name for name, c in CONFIGS.items() if c.get("downsample_padding") == "same"} == {
        "ddpm_cifar10", "ddpm_celeba64", "ddpm_256"}
    assert unet_config("mnist_cpu").downsample_padding == "symmetric"
    assert UNetConfig().downsample_padding == "symmetric"  # a stored config without the field: as it was trained
    assert sum(p.numel() for p in UNet(unet_config("ddpm_cifar10")).parameters()) == 35_746_307
    with pytest.raises(ValueError, match="downsample_padding must be one of same, symmetric"):
        UNetConfig(downsample_padding="valid")


def test_the_shipped_mnist_model_says_symmetric_and_samples_as_before():
    model, diffusion = pretrained.load_mnist()
    assert model.config.downsample_padding == "symmetric"
    ckpt = torch.load(ROOT / "data" / "pretrained" / "mnist_cond_ema_fp16.pt", weights_only=True)
    assert ckpt["unet_config"]["downsample_padding"] == "symmetric"
    reference = torch.load(ROOT / "tests" / "fixtures" / "mnist_pretrained_ddim10_seed0.pt", weights_only=True)
    x = sampling.sample(diffusion, model, (4, 1, 32, 32), sampler="ddim", steps=10, y=torch.arange(4),
                        generator=torch.Generator().manual_seed(0), clip_denoised=True)
    torch.testing.assert_close(x, reference["samples"], rtol=0, atol=1e-3)  # computed before the option existed


def test_the_published_256_config_is_our_ddpm_256():
    # unet/config.json and scheduler/scheduler_config.json of google/ddpm-cat-256, as published (diffusers 0.0.4)
    published = {"_class_name": "UNet2DModel", "_diffusers_version": "0.0.4", "act_fn": "silu",
                 "attention_head_dim": None, "block_out_channels": [128, 128, 256, 256, 512, 512],
                 "center_input_sample": False, "down_block_types": ["DownBlock2D"] * 4 + ["AttnDownBlock2D", "DownBlock2D"],
                 "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3,
                 "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32,
                 "out_channels": 3, "sample_size": 256, "time_embedding_type": "positional",
                 "up_block_types": ["UpBlock2D", "AttnUpBlock2D"] + ["UpBlock2D"] * 4}
    assert diffusers_format.unet_config_from_diffusers(published) == unet_config("ddpm_256")
    scheduler = {"_class_name": "DDPMScheduler", "_diffusers_version": "0.1.1", "beta_end": 0.02,
                 "beta_schedule": "linear", "beta_start": 0.0001, "clip_sample": True, "num_train_timesteps": 1000,
                 "trained_betas": None, "variance_type": "fixed_small"}
    diffusion = diffusers_format.diffusion_from_scheduler(scheduler)
    assert diffusion.var_type.value == "fixed_small" and diffusion.mean_type.value == "eps"
    torch.testing.assert_close(diffusion.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))


# ----------------------------------------------------------------------------- parity with UNet2DModel
@pytest.mark.parametrize("name, config, classes", [("cifar10", CIFAR10, None), ("six levels", SIX_LEVELS, 5),
                                                   ("tiny conditional", TINY, 3), ("8 groups", NARROW, 10)])
def test_converted_unet_matches_diffusers_in_float64(name, config, classes):
    ref = random_diffusers_unet(**config, **({"num_class_embeds": classes + 1} if classes else {}))
    ours = converted(ref)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    if name == "cifar10":
        assert ours.config == unet_config("ddpm_cifar10", dropout=0.0)
        assert sum(p.numel() for p in ours.parameters()) == 35_746_307
    if name == "8 groups":
        assert ours.config == unet_config("mnist_cpu_short", num_classes=10)
        assert all(m.num_groups == min(8, m.num_channels) for m in ours.modules() if isinstance(m, torch.nn.GroupNorm))
    size = config["sample_size"]
    x = torch.randn(2, config["in_channels"], size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, classes]) if classes else None  # a class and the null label
    with torch.no_grad():
        for t in (0, 500, 999):
            tt = torch.full((2,), t)
            expected = ref(x, tt, class_labels=y).sample
            assert rel(ours(x, tt, y=y), expected) < 1e-10, (name, t)


def test_symmetric_padding_would_break_the_papers_weights():
    ref = random_diffusers_unet(**CIFAR10)
    ours = converted(ref)
    wrong = UNet(UNetConfig(**{**ours.config.to_dict(), "downsample_padding": "symmetric"})).double().eval()
    wrong.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = ref(x, torch.tensor([500])).sample
        assert rel(ours(x, torch.tensor([500])), expected) < 1e-10
        assert rel(wrong(x, torch.tensor([500])), expected) > 0.5  # measured: 0.80 at t = 500


def test_older_attention_names_load_the_same():
    ref = random_diffusers_unet(**TINY)
    state = {}
    for k, v in ref.state_dict().items():
        for new, old in zip(("to_q", "to_k", "to_v", "to_out.0"), ("query", "key", "value", "proj_attn")):
            k = k.replace(f".{new}.", f".{old}.")
        state[k] = v
    assert any(".query." in k for k in state)
    config = diffusers_format.unet_config_from_diffusers(dict(ref.config))
    new = diffusers_format.state_dict_from_diffusers(ref.state_dict(), config)
    old = diffusers_format.state_dict_from_diffusers(state, config)
    assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in new)


def test_every_source_tensor_is_used_exactly_once():
    ref = random_diffusers_unet(**TINY)
    config = diffusers_format.unet_config_from_diffusers(dict(ref.config))
    state = dict(ref.state_dict())
    with pytest.raises(ValueError, match="fit nowhere.*extra.weight"):
        diffusers_format.state_dict_from_diffusers({**state, "extra.weight": torch.zeros(1)}, config)
    state.pop("mid_block.attentions.0.to_k.weight")
    with pytest.raises(ValueError, match="'mid_block.attentions.0.to_k.weight' is missing"):
        diffusers_format.state_dict_from_diffusers(state, config)


# ----------------------------------------------------------------------------- export and round trip
def small_model(**overrides):
    config = UNetConfig(**{**dict(in_channels=3, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,),
                                  resolution=16, dropout=0.0, downsample_padding="same"), **overrides})
    return random_unet(config)


def test_round_trip_gives_identical_tensors_and_the_same_diffusion(tmp_path):
    for i, (model, diffusion) in enumerate([
        (small_model(), GaussianDiffusion.from_schedule("linear", 50, 1e-4, 0.2)),
        (small_model(num_classes=4, downsample_padding="symmetric"),
         GaussianDiffusion.from_schedule("cosine", 40, mean_type="v", var_type="fixed_small")),
        (small_model(), GaussianDiffusion.from_schedule("jsd", 30, mean_type="x0")),  # no diffusers name: trained_betas
    ]):
        folder = pretrained.to_diffusers(model, diffusion, tmp_path / f"m{i}")
        back, d2 = pretrained.from_diffusers(folder)
        assert back.config == model.config
        assert back.state_dict().keys() == model.state_dict().keys()
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
        torch.testing.assert_close(d2.betas, diffusion.betas, rtol=1e-12, atol=0)
        assert (d2.mean_type, d2.var_type) == (diffusion.mean_type, diffusion.var_type)
    schedule = json.loads((tmp_path / "m2" / "scheduler" / "scheduler_config.json").read_text())
    assert schedule["trained_betas"] is not None
    assert json.loads((tmp_path / "m1" / "scheduler" / "scheduler_config.json").read_text())["beta_schedule"] == \
        "squaredcos_cap_v2"


def test_ddpm_pipeline_from_the_export_draws_our_images(tmp_path):
    model, diffusion = small_model(), GaussianDiffusion.from_schedule("linear", 50, 1e-4, 0.2)
    folder = pretrained.to_diffusers(model, diffusion, tmp_path / "export")
    pipe = DDPMPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=50,
                  output_type="np").images
    # diffusers draws x_T, then one z per step except the last, from the same generator: our ancestral sampler too
    ours = sampling.sample(diffusion, model, (2, 3, 16, 16), sampler="ddpm", clip_denoised=True,
                           generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(theirs, ((ours + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy(), rtol=0, atol=1e-5)


def test_a_conditional_export_runs_in_diffusers_with_class_labels(tmp_path):
    model = small_model(num_classes=3)
    folder = pretrained.to_diffusers(model, GaussianDiffusion.from_schedule("linear", 20), tmp_path / "cond")
    config = json.loads((folder / "unet" / "config.json").read_text())
    assert config["num_class_embeds"] == 4  # three classes and the null label
    ref = UNet2DModel.from_pretrained(folder, subfolder="unet").eval()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        torch.testing.assert_close(ref(x, torch.tensor([3, 7, 11, 19]), class_labels=y).sample,
                                   model(x, torch.tensor([3, 7, 11, 19]), y=y), rtol=1e-4, atol=1e-5)


def test_one_ddpm_step_and_a_ddim_loop_agree_with_the_schedulers(tmp_path):
    model, diffusion = small_model(), GaussianDiffusion.from_schedule("linear", 50, 1e-4, 0.2)
    folder = pretrained.to_diffusers(model, diffusion, tmp_path / "export")
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    ddpm = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    with torch.no_grad():
        eps = model(x, torch.full((2,), 30))
        theirs = ddpm.step(eps, 30, x, generator=torch.Generator().manual_seed(5)).prev_sample
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    ours = sampling.p_sample(diffusion, model, x, 30, clip_denoised=True, noise=z)["sample"]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)

    ddim = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
    ddim.set_timesteps(10)  # 'leading' spacing: 45, 40, ..., 0
    kept = sorted(int(t) for t in ddim.timesteps)
    assert kept == list(range(0, 50, 5))
    y = x.clone()
    with torch.no_grad():
        for t in ddim.timesteps:
            y = ddim.step(model(y, t.expand(2)), t, y, eta=0.0, use_clipped_model_output=True).prev_sample
    ours = sampling.sample(diffusion, model, x.shape, sampler="ddim", steps=kept, noise=x, clip_denoised=True)
    torch.testing.assert_close(ours, y, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- refusals
def write_tiny_folder(tmp_path, name="tiny", **unet_changes):
    ref = UNet2DModel(**TINY)
    pipe = DDPMPipeline(unet=ref, scheduler=DDPMScheduler(num_train_timesteps=20, variance_type="fixed_large"))
    folder = tmp_path / name
    pipe.save_pretrained(folder)
    if unet_changes:
        path = folder / "unet" / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **unet_changes}))
    return folder


def test_a_diffusers_saved_pipeline_loads(tmp_path):
    folder = write_tiny_folder(tmp_path)
    model, diffusion = pretrained.from_diffusers(folder)
    assert diffusion.num_timesteps == 20 and diffusion.var_type.value == "fixed_large"
    assert model.config.resolution == 16 and model.config.attn_resolutions == (8,)


@pytest.mark.parametrize("change, message", [
    ({"flip_sin_to_cos": True}, "flip_sin_to_cos = True"),
    ({"attention_head_dim": 8}, "attention_head_dim = 8"),
    ({"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"]}, "down_block_types\\[1\\] = 'CrossAttnDownBlock2D'"),
    ({"up_block_types": ["UpBlock2D", "UpBlock2D"]}, "attention at level 1 in one path only"),
    ({"resnet_time_scale_shift": "scale_shift"}, "resnet_time_scale_shift = 'scale_shift'"),
    ({"cross_attention_dim": 64}, "unknown UNet2DModel field\\(s\\) \\['cross_attention_dim'\\]"),
    ({"_class_name": "UNet2DConditionModel"}, "_class_name = 'UNet2DConditionModel'"),
    ({"downsample_padding": 2}, "downsample_padding = 2"),
    ({"norm_num_groups": 12}, "norm_num_groups = 12"),
    ({"attn_norm_num_groups": 16}, "attn_norm_num_groups = 16"),
])
def test_configs_ddpm_core_cannot_express_are_refused_by_field(tmp_path, change, message):
    folder = write_tiny_folder(tmp_path, **change)
    with pytest.raises(ValueError, match=message):
        pretrained.from_diffusers(folder)


@pytest.mark.parametrize("change, message", [
    ({"prediction_type": "sample", "clip_sample": False}, "clip_sample = False"),
    ({"thresholding": True}, "thresholding = True"),
    ({"beta_schedule": "exp"}, "beta_schedule = 'exp'"),
    ({"variance_type": "learned_range"}, "out_channels = 3 does not fit the scheduler's variance_type"),
])
def test_schedulers_ddpm_core_cannot_express_are_refused_by_field(tmp_path, change, message):
    folder = write_tiny_folder(tmp_path)
    path = folder / "scheduler" / "scheduler_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ValueError, match=message):
        pretrained.from_diffusers(folder)


def test_missing_files_are_named(tmp_path):
    folder = write_tiny_folder(tmp_path)
    (folder / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="scheduler_config.json"):
        pretrained.from_diffusers(folder)
    folder = write_tiny_folder(tmp_path, "noweights")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="diffusion_pytorch_model.safetensors or diffusion_pytorch_model.bin"):
        pretrained.from_diffusers(folder)
    with pytest.raises(FileNotFoundError, match="not a Hugging Face Hub id"):
        pretrained.from_diffusers(tmp_path / "nothing" / "here" / "at all")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a folder"):
        pretrained.from_diffusers(tmp_path / "file.txt")


def test_a_bin_file_loads_safely_and_a_pickle_is_refused(tmp_path):
    folder = write_tiny_folder(tmp_path)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file

    state = load_file(str(weights))
    weights.unlink()
    torch.save(state, folder / "unet" / "diffusion_pytorch_model.bin")
    model, _ = pretrained.from_diffusers(folder)
    torch.testing.assert_close(model.conv_in.weight, state["conv_in.weight"])
    torch.save({"weights": state, "code": print}, folder / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(ValueError, match="weights_only=True"):
        pretrained.from_diffusers(folder)


def test_a_hub_id_without_network_says_what_to_do_and_a_cached_copy_needs_none(tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", offline)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(FileNotFoundError, match="could not be downloaded from the Hugging Face Hub.*ConnectionError"):
        pretrained.from_diffusers("google/ddpm-cifar10-32", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="could not be downloaded"):
        pretrained.from_diffusers("google/ddpm-cifar10-32", cache_dir=tmp_path, download=False)
    cached = write_tiny_folder(tmp_path, "someone--tiny")
    (cached / ".complete").write_text("")
    model, _ = pretrained.from_diffusers("someone/tiny", cache_dir=tmp_path)
    assert model.config.resolution == 16


def test_a_unet_narrower_than_its_groups_is_not_exported_as_something_else():
    # ch 16 with the default 32 groups: ddpm_core normalises each channel alone, UNet2DModel cannot say that
    with pytest.raises(ValueError, match="ch = 16 is narrower than norm_groups = 32"):
        diffusers_format.unet_config_to_diffusers(UNetConfig(in_channels=1, ch=16, ch_mult=(1, 2), resolution=8))
    config = UNetConfig(in_channels=1, ch=16, ch_mult=(1, 2), attn_resolutions=(4,), resolution=8, norm_groups=8)
    assert diffusers_format.unet_config_from_diffusers(diffusers_format.unet_config_to_diffusers(config)) == config


def test_export_refuses_a_non_empty_folder_and_other_models(tmp_path):
    (tmp_path / "x.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an empty folder"):
        pretrained.to_diffusers(small_model(), GaussianDiffusion.from_schedule("linear", 10), tmp_path)
    with pytest.raises(TypeError, match="exports ddpm_core's UNet"):
        pretrained.to_diffusers(torch.nn.Linear(2, 2), GaussianDiffusion.from_schedule("linear", 10), tmp_path / "n")
    with pytest.raises(ValueError, match="mean_type 'mean' has no diffusers prediction_type"):
        pretrained.to_diffusers(small_model(), GaussianDiffusion.from_schedule("linear", 10, mean_type="mean"),
                                tmp_path / "m")


# ----------------------------------------------------------------------------- the commands
def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ddpm_core", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT)


def test_export_and_sample_from_diffusers_commands(tmp_path):
    folder = tmp_path / "mnist_diffusers"
    done = run_cli("export", "--pretrained", "mnist", "--to-diffusers", folder)
    assert done.returncode == 0, done.stderr
    assert "1,114,209 parameters" in done.stdout
    model, diffusion = pretrained.from_diffusers(folder)
    shipped, _ = pretrained.load_mnist()
    assert model.config == UNetConfig(**{**shipped.config.to_dict(), "class_dropout": 0.0})  # training-only, not kept
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), shipped.state_dict().values()))
    grid = tmp_path / "grid.png"
    done = run_cli("sample", "--from-diffusers", folder, "--n", 4, "--sampler", "ddim", "--steps", 5, "--out", grid,
                   "--no-progress", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    from PIL import Image

    with Image.open(grid) as im:
        assert im.size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)  # a 2x2 grid with 2-pixel borders
    done = run_cli("export", "--pretrained", "mnist", "--to-diffusers", folder)
    assert done.returncode == 2 and "give a new or empty folder" in done.stderr
    done = run_cli("sample", "--from-diffusers", tmp_path / "missing", "--n", 2, "--out", tmp_path / "s.npz")
    assert done.returncode == 2 and "no such folder" in done.stderr
