"""DistributedDataParallel on the CPU (gloo, 2 processes): the same global batches as one process, the same
gradients and parameters, rank-0 writes, and a checkpoint that resumes on a different number of processes.

Both data sources: in-memory batches (every rank draws the global batch and keeps its positions) and the
DataLoader over a DistributedSampler (each rank loads only its shard)."""

import copy

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ddpm_core import data
from ddpm_core.diffusion import GaussianDiffusion
from ddpm_core.models.unet import UNet, unet_config
from ddpm_core.training import ImageBatches, LoaderBatches, Trainer, TrainConfig

BATCH = 8


def make_trainer(steps: int, kind: str) -> Trainer:
    torch.manual_seed(0)
    model = UNet(unet_config("ddpm_cifar10", ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,),
                             dropout=0.0, num_classes=4))
    diffusion = GaussianDiffusion.from_schedule("linear", 50)
    shapes = data.make_shapes(32, size=16)
    if kind == "loader":
        batches = LoaderBatches(shapes, labels=True, hflip=True, num_workers=0)
    else:
        batches = ImageBatches(shapes.images, shapes.labels, hflip=True)
    config = TrainConfig(steps=steps, batch_size=BATCH, lr=1e-3, warmup_steps=1, ema_decay=0.9, log_every=1)
    return Trainer(model, diffusion, batches, config, device="cpu", conditional=True)


def worker(rank: int, world: int, store: str, out: str, resume: str | None, kind: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        tr = make_trainer(steps=2, kind=kind)
        if resume:
            tr.resume(resume)
        else:
            tr.train(1, progress=False)
            grads = {n: p.grad.clone() for n, p in tr.model.named_parameters()}
            torch.save(grads, f"{out}.grads{rank}")
        tr.train(progress=False)
        tr.save(out)  # only rank 0 writes
        if rank == 1:
            torch.save({"written_by_rank_1": True}, f"{out}.rank1")
    finally:
        dist.destroy_process_group()


def run_ddp(tmp_path, name: str, kind: str, resume=None) -> dict:
    out = tmp_path / name
    mp.spawn(worker, args=(2, str(tmp_path / f"{name}.store"), str(out), resume and str(resume), kind), nprocs=2,
             join=True)
    return torch.load(out, weights_only=True)


@pytest.fixture(scope="module", params=["memory", "loader"])
def single(request):
    torch.set_num_threads(1)
    tr = make_trainer(steps=2, kind=request.param)
    tr.train(1, progress=False)
    grads = {n: p.grad.clone() for n, p in tr.model.named_parameters()}
    state1 = copy.deepcopy(tr.state_dict())  # state_dict() holds live tensors
    tr.train(progress=False)
    return request.param, grads, state1, tr.state_dict()


def test_two_processes_match_one_on_the_same_global_batch(tmp_path, single):
    kind, grads, _, final = single
    state = run_ddp(tmp_path, "ddp.pt", kind)
    for rank in (0, 1):  # DDP averages the two half-batch gradients: the full-batch gradient
        ddp_grads = torch.load(tmp_path / f"ddp.pt.grads{rank}", weights_only=True)
        for name, g in grads.items():
            torch.testing.assert_close(ddp_grads[name], g, rtol=1e-4, atol=1e-6)
    assert state["step"] == 2
    # Adam's first steps move each weight by about lr * sign(g): near-zero gradients that differ in the last bits
    # (another summation order) may move by different amounts, so compare parameters to a tenth of lr.
    for name, p in final["model"].items():
        torch.testing.assert_close(state["model"][name], p, rtol=0, atol=1e-4)
    assert torch.load(tmp_path / "ddp.pt.rank1", weights_only=True)  # rank 1 ran to the end but did not save


def test_a_single_process_checkpoint_resumes_on_two(tmp_path, single):
    kind, _, state1, final = single
    torch.save(state1, tmp_path / "one.pt")
    state = run_ddp(tmp_path, "resumed.pt", kind, resume=tmp_path / "one.pt")
    assert state["step"] == 2
    # Adam's first steps move each weight by about lr * sign(g): near-zero gradients that differ in the last bits
    # (another summation order) may move by different amounts, so compare parameters to a tenth of lr.
    for name, p in final["model"].items():
        torch.testing.assert_close(state["model"][name], p, rtol=0, atol=1e-4)

