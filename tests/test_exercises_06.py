"""Lesson 06's exercise checks pass their solutions (lessons/solutions/06_unet.py) and reject the plausible wrong
answers (a rotation the wrong way, frequencies off, the time embedding after the second conv, a missing SiLU, no skip
projection, GroupNorm without its affine part or with another eps or group count, dropout in the wrong place or
always on, the block's own forward); unanswered exercises are 'not attempted yet'; the notebook's exercise cells hold
no solution."""


import torch
import torch.nn.functional as F
from torch import nn

from ddpm_core import exercises
from ddpm_core.models.embeddings import timestep_embedding
from ddpm_core.models.unet import ResBlock
from exercise_helpers import solution, verdicts

LESSON = "06_unet"


def not_yet(*args):
    raise NotImplementedError


# ----------------------------------------------------------------------------- exercise 1
def omega(h, divisor=None):
    return 10_000.0 ** (-torch.arange(h, dtype=torch.float64) / (divisor or (h - 1)))


def test_the_embedding_formula_is_ddpm_cores():
    t = torch.arange(0, 1000, 7)
    args = t.double()[:, None] * omega(64)[None]
    torch.testing.assert_close(torch.cat([args.sin(), args.cos()], 1).float(), timestep_embedding(t, 128),
                               atol=1e-4, rtol=0)   # ddpm_core's float32 frequencies


def test_lesson06_shift_embedding(capsys):
    s = solution(LESSON)
    assert verdicts(capsys, exercises.lesson06_shift_embedding, [s.shift_embedding]) == [True]
    # float32 works too, and so does recovering t from the slowest pair and embedding t + k again
    float32 = lambda e, k: s.shift_embedding(e.float(), k)  # noqa: E731

    def recover_t(e, k):
        h = e.shape[1] // 2
        t = torch.atan2(e[:, h - 1], e[:, -1]) / omega(h)[-1]
        args = (t + k)[:, None] * omega(h)[None]
        return torch.cat([args.sin(), args.cos()], 1)

    assert verdicts(capsys, exercises.lesson06_shift_embedding, [float32, recover_t]) == [True, True]

    def rotate(e, k, sign=1, divisor=None, swap=False):
        h = e.shape[1] // 2
        w = omega(h, divisor)
        a, b = (e[:, h:], e[:, :h]) if swap else (e[:, :h], e[:, h:])
        return torch.cat([a * torch.cos(k * w) + sign * b * torch.sin(k * w),
                          b * torch.cos(k * w) - sign * a * torch.sin(k * w)], 1)

    def interleaved(e, k):
        h = e.shape[1] // 2
        w = omega(h)
        sn, cs = e[:, 0::2], e[:, 1::2]
        return torch.stack([sn * torch.cos(k * w) + cs * torch.sin(k * w),
                            cs * torch.cos(k * w) - sn * torch.sin(k * w)], -1).reshape(e.shape)

    wrong = {
        "backwards": lambda e, k: rotate(e, k, sign=-1),
        "exponent i/h": lambda e, k: rotate(e, k, divisor=e.shape[1] // 2),
        "128 hard-coded": lambda e, k: rotate(e, k, divisor=63),
        "sin and cos halves swapped": lambda e, k: rotate(e, k, swap=True),
        "interleaved pairs": interleaved,
        "unchanged": lambda e, k: e,
        "adds the angle": lambda e, k: e + k * torch.cat([omega(e.shape[1] // 2)] * 2),
        "k + 1 steps": lambda e, k: rotate(e, k + 1),
        "wrong shape": lambda e, k: rotate(e, k)[:, : e.shape[1] // 2],
    }
    assert verdicts(capsys, exercises.lesson06_shift_embedding, list(wrong.values())) == [False] * len(wrong)
    assert verdicts(capsys, exercises.lesson06_shift_embedding, [not_yet]) == [None]
    for key, phrase in [("backwards", "wrong way"), ("exponent i/h", "frequencies"),
                        ("interleaved pairs", "interleaved"), ("unchanged", "unchanged")]:
        exercises.lesson06_shift_embedding(wrong[key])
        assert phrase in capsys.readouterr().out, key


# ----------------------------------------------------------------------------- exercise 2
def test_the_solution_matches_a_float64_resblock_by_hand():
    """An independent route for the check's truth (ddpm_core's ResBlock): the block by hand in float64."""
    block = ResBlock(64, 96, temb_ch=48, dropout=0.1).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.2 + 0.1)
    g = torch.Generator().manual_seed(1)
    x, temb = torch.randn(2, 64, 8, 8, generator=g), torch.randn(2, 48, generator=g)

    def gn(v, m):
        B, C, H, W = v.shape
        vg = v.reshape(B, m.num_groups, -1)
        vh = ((vg - vg.mean(-1, keepdim=True)) / (vg.var(-1, unbiased=False, keepdim=True) + m.eps).sqrt())
        return vh.reshape(B, C, H, W) * m.weight.double()[None, :, None, None] + m.bias.double()[None, :, None, None]

    def conv(v, m, pad):
        return F.conv2d(v, m.weight.double(), m.bias.double(), padding=pad)

    silu = lambda v: v * torch.sigmoid(v)  # noqa: E731
    with torch.no_grad():
        xd, td = x.double(), temb.double()
        h = conv(silu(gn(xd, block.norm1)), block.conv1, 1)
        h = h + (silu(td) @ block.temb_proj.weight.double().T + block.temb_proj.bias.double())[:, :, None, None]
        h = conv(silu(gn(h, block.norm2)), block.conv2, 1)
        by_hand = conv(xd, block.skip, 0) + h
        torch.testing.assert_close(block(x, temb).double(), by_hand, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(solution(LESSON).resblock_forward(block, x, temb).double(), by_hand,
                                   rtol=1e-5, atol=1e-5)


def _gn(m, v, affine=True, eps=None, groups=None):
    return F.group_norm(v, groups or m.num_groups, m.weight if affine else None, m.bias if affine else None,
                        m.eps if eps is None else eps)


def _skip(block, x):
    return x if isinstance(block.skip, nn.Identity) else F.conv2d(x, block.skip.weight, block.skip.bias)


def _forward(block, x, temb, *, temb_late=False, silu1=True, silu2=True, temb_silu=True, affine=True, eps=None,
             groups=None, skip=True, dropout="right"):
    act1 = F.silu if silu1 else (lambda v: v)
    act2 = F.silu if silu2 else (lambda v: v)
    h = F.conv2d(act1(_gn(block.norm1, x, affine, eps, groups)), block.conv1.weight, block.conv1.bias, padding=1)
    t = F.linear(F.silu(temb) if temb_silu else temb, block.temb_proj.weight, block.temb_proj.bias)[:, :, None, None]
    if not temb_late:
        h = h + t
    h = act2(_gn(block.norm2, h, affine, eps, groups))
    if dropout == "right":
        h = F.dropout(h, block.dropout.p, training=block.training)
    elif dropout == "always":
        h = F.dropout(h, block.dropout.p, training=True)
    h = F.conv2d(h, block.conv2.weight, block.conv2.bias, padding=1)
    if dropout == "late":
        h = F.dropout(h, block.dropout.p, training=block.training)
    if temb_late:
        h = h + t
    return _skip(block, x) + h if skip else h


def test_lesson06_resblock_forward(capsys):
    s = solution(LESSON)
    assert verdicts(capsys, exercises.lesson06_resblock_forward, [s.resblock_forward, _forward]) == [True, True]

    def own_forward(block, x, temb):          # the block's own forward: refused, the exercise is to write it
        return block(x, temb)

    def layers_called(block, x, temb):        # the layers themselves, in the right order: refused too
        h = block.conv1(F.silu(block.norm1(x))) + block.temb_proj(F.silu(temb))[:, :, None, None]
        return block.skip(x) + block.conv2(block.dropout(F.silu(block.norm2(h))))

    def no_skip_projection(block, x, temb):   # x + h: fails where the channels change
        return x + _forward(block, x, temb, skip=False)

    def silu_before_norm(block, x, temb):     # SiLU -> GN -> conv
        h = F.conv2d(_gn(block.norm1, F.silu(x)), block.conv1.weight, block.conv1.bias, padding=1)
        h = h + F.linear(F.silu(temb), block.temb_proj.weight, block.temb_proj.bias)[:, :, None, None]
        h = F.conv2d(F.dropout(_gn(block.norm2, F.silu(h)), block.dropout.p, block.training), block.conv2.weight,
                     block.conv2.bias, padding=1)
        return _skip(block, x) + h

    def norm2_on_input(block, x, temb):       # the two norms swapped
        n1, n2 = block.norm1, block.norm2
        block.norm1, block.norm2 = n2, n1
        try:
            return _forward(block, x, temb)
        finally:
            block.norm1, block.norm2 = n1, n2

    wrong = {
        "temb after conv2": lambda b, x, t: _forward(b, x, t, temb_late=True),
        "no SiLU before conv1": lambda b, x, t: _forward(b, x, t, silu1=False),
        "no SiLU before conv2": lambda b, x, t: _forward(b, x, t, silu2=False),
        "no SiLU on temb": lambda b, x, t: _forward(b, x, t, temb_silu=False),
        "norm without affine": lambda b, x, t: _forward(b, x, t, affine=False),
        "eps 1e-5": lambda b, x, t: _forward(b, x, t, eps=1e-5),
        "32 groups hard-coded": lambda b, x, t: _forward(b, x, t, groups=32),
        "no skip at all": lambda b, x, t: _forward(b, x, t, skip=False),
        "no skip projection": no_skip_projection,
        "dropout always on": lambda b, x, t: _forward(b, x, t, dropout="always"),
        "dropout never": lambda b, x, t: _forward(b, x, t, dropout="never"),
        "dropout after conv2": lambda b, x, t: _forward(b, x, t, dropout="late"),
        "SiLU before GroupNorm": silu_before_norm,
        "norms swapped": norm2_on_input,
        "own forward": own_forward,
        "layers called": layers_called,
        "returns x": lambda b, x, t: x,
    }
    assert verdicts(capsys, exercises.lesson06_resblock_forward, list(wrong.values())) == [False] * len(wrong)
    assert verdicts(capsys, exercises.lesson06_resblock_forward, [not_yet]) == [None]
    for key, phrase in [("temb after conv2", "after the second conv"), ("no SiLU before conv1", "norm1 and conv1"),
                        ("norm without affine", "scale and shift"), ("eps 1e-5", "eps"),
                        ("32 groups hard-coded", "num_groups"), ("dropout always on", "random in eval mode"),
                        ("dropout never", "dropout did nothing"), ("dropout after conv2", "before the second conv"),
                        ("SiLU before GroupNorm", "after GroupNorm"), ("own forward", "not called"),
                        ("no skip at all", "skip path")]:
        exercises.lesson06_resblock_forward(wrong[key])
        assert phrase in capsys.readouterr().out, key


def test_lesson06_resblock_check_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    exercises.lesson06_resblock_forward(solution(LESSON).resblock_forward)
    assert torch.equal(torch.get_rng_state(), before)


# ----------------------------------------------------------------------------- exercise 3
def test_lesson06_fresh_gradients(capsys):
    right = solution(LESSON).exercise_3()
    assert verdicts(capsys, exercises.lesson06_fresh_gradients, [right, sorted(right), tuple(right)]) == [True] * 3
    everything = {n for n, _ in ResBlock(64, 128, temb_ch=256, dropout=0.0).named_parameters()}
    wrong = [everything,                                         # every parameter
             {"conv2.weight", "conv2.bias"},                     # the skip path forgotten
             {"skip.weight", "skip.bias"},                       # "conv2 is zero, so it learns nothing"
             {"conv2.weight", "skip.weight"},                    # the biases forgotten
             right | {"norm2.weight"},                           # one behind the zero conv
             right | {"conv3.weight"},                           # not a parameter
             set(), "conv2.weight", [1, 2]]
    assert verdicts(capsys, exercises.lesson06_fresh_gradients, wrong) == [False] * len(wrong)
    assert verdicts(capsys, exercises.lesson06_fresh_gradients, [None]) == [None]
