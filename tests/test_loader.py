"""LoaderBatches: a DataLoader (workers, pinned memory) over a DistributedSampler with set_epoch.

Checked against independent computations: each epoch is the permutation torch.randperm draws from seed + epoch
(DistributedSampler's documented shuffle), cut into whole global batches; uint8 images arrive in [-1, 1] by
x = 2 p / 255 - 1; flips mirror exactly the images the trainer's data generator says; resuming mid-epoch and
across an epoch boundary gives the same batches and the same trained parameters as one straight run.
"""

import pytest
import torch
from torch.utils.data import TensorDataset

from ddpm_core.diffusion import GaussianDiffusion
from ddpm_core.models.unet import UNet, UNetConfig
from ddpm_core.training import LoaderBatches, Trainer, TrainConfig

N = 10  # images in the toy set; batch 4 -> 2 whole batches per epoch, 2 images dropped


def numbered(n: int = N) -> TensorDataset:
    """Image i is constant i (uint8, 1x2x2), label i: a batch tells which items it holds."""
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 1, 2, 2).contiguous()
    return TensorDataset(images, torch.arange(n))


def draw(source: LoaderBatches, steps: int, batch: int = 4, generator: torch.Generator | None = None) -> list:
    generator = generator or torch.Generator().manual_seed(0)
    return [source.next_batch(batch, generator)[1].tolist() for _ in range(steps)]


def test_epochs_are_seeded_permutations_cut_into_whole_batches():
    source = LoaderBatches(numbered(), labels=True, num_workers=0, seed=3)
    got = draw(source, 6)  # three epochs of two batches
    for epoch in range(3):
        perm = torch.randperm(N, generator=torch.Generator().manual_seed(3 + epoch)).tolist()
        assert got[2 * epoch] == perm[:4] and got[2 * epoch + 1] == perm[4:8]
    assert got[0] != got[2]  # set_epoch reshuffles
    assert source.batches == 6


def test_uint8_images_arrive_in_unit_range_and_flips_follow_the_generator():
    images = torch.randint(0, 256, (N, 3, 4, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    source = LoaderBatches(TensorDataset(images, torch.arange(N)), labels=True, hflip=True, num_workers=0)
    gen = torch.Generator().manual_seed(7)
    x, y = source.next_batch(4, gen)
    coins = torch.rand(4, generator=torch.Generator().manual_seed(7)) < 0.5  # the same draw, independently
    expected = images[y].double() * 2 / 255 - 1
    expected = torch.where(coins[:, None, None, None], expected.flip(-1), expected)
    assert x.dtype == torch.float32 and coins.any() and not coins.all()
    torch.testing.assert_close(x.double(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_gives_the_same_batches(workers):
    straight = draw(LoaderBatches(numbered(), labels=True, num_workers=workers), 5)
    first = LoaderBatches(numbered(), labels=True, num_workers=workers)
    gen = torch.Generator().manual_seed(0)
    part = draw(first, 3, generator=gen)  # stops mid-epoch (epoch 1, batch 0 done)
    again = LoaderBatches(numbered(), labels=True, num_workers=workers)
    again.load_state_dict(first.state_dict())
    assert part + draw(again, 2, generator=gen) == straight


def tiny_trainer(steps: int, source: LoaderBatches) -> Trainer:
    torch.manual_seed(0)
    model = UNet(UNetConfig(in_channels=1, ch=32, ch_mult=(1,), num_res_blocks=1, attn_resolutions=(),
                            resolution=4, dropout=0.1, num_classes=N))
    diffusion = GaussianDiffusion.from_schedule("linear", 20)
    config = TrainConfig(steps=steps, batch_size=4, lr=1e-3, ema_decay=0.9, log_every=1)
    return Trainer(model, diffusion, source, config, device="cpu", conditional=True)


def test_trainer_resume_across_an_epoch_boundary_is_exact(tmp_path):
    def source() -> LoaderBatches:
        images = torch.randint(0, 256, (N, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
        return LoaderBatches(TensorDataset(images, torch.arange(N)), labels=True, hflip=True, num_workers=0)

    straight = tiny_trainer(5, source())
    straight.train(progress=False)
    half = tiny_trainer(5, source())
    half.train(3, progress=False)
    half.save(tmp_path / "ckpt.pt")
    resumed = tiny_trainer(5, source())
    resumed.resume(tmp_path / "ckpt.pt")
    assert resumed.data.batches == 3
    resumed.train(progress=False)
    for a, b in zip(straight.state_dict()["model"].values(), resumed.state_dict()["model"].values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_loader_errors(tmp_path):
    with pytest.raises(ValueError, match="num_workers must be an integer >= 0"):
        LoaderBatches(numbered(), num_workers=-1)
    with pytest.raises(ValueError, match="fewer than one batch of 16"):
        LoaderBatches(numbered()).next_batch(16, torch.Generator())
    with pytest.raises(ValueError, match=r"needs dataset items \(image, label\)"):
        LoaderBatches(torch.zeros(8, 1, 2, 2), labels=True, num_workers=0).next_batch(4, torch.Generator())
    source = LoaderBatches(numbered(), seed=1)
    with pytest.raises(ValueError, match="shuffled with seed 0, this loader uses 1"):
        source.load_state_dict({"batches": 2, "seed": 0})
    # a checkpoint written with in-memory batches has no data position
    trainer = tiny_trainer(1, LoaderBatches(numbered(), labels=True, num_workers=0))
    state = trainer.state_dict()
    del state["data"]
    with pytest.raises(ValueError, match="no data position"):
        trainer.load_state_dict(state)
