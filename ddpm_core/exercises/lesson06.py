"""Lesson 06's exercise checks (the UNet)."""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._common import NOT_ATTEMPTED, _run, _say


# ----------------------------------------------------------------------------- exercise 1: the time embedding
def _embedding64(t: torch.Tensor, dim: int, exponent_divisor: int | None = None) -> torch.Tensor:
    """e(t) = [sin(t w_i) ..., cos(t w_i) ...], w_i = 10000^(-i/(h-1)), in float64 (the lesson's formula)."""
    h = dim // 2
    omega = 10_000.0 ** (-torch.arange(h, dtype=torch.float64) / (exponent_divisor or (h - 1)))
    args = t.double()[:, None] * omega[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def _rotate(e: torch.Tensor, k: float, exponent_divisor: int | None = None, interleaved: bool = False) -> torch.Tensor:
    """Each (sin, cos) pair of e turned by k w_i: the check's catalogue of slips uses it."""
    h = e.shape[1] // 2
    omega = 10_000.0 ** (-torch.arange(h, dtype=torch.float64) / (exponent_divisor or (h - 1)))
    s, c = (e[:, 0::2], e[:, 1::2]) if interleaved else (e[:, :h], e[:, h:])
    cs, sn = torch.cos(k * omega), torch.sin(k * omega)
    s2, c2 = s * cs + c * sn, c * cs - s * sn
    if interleaved:
        return torch.stack([s2, c2], dim=-1).reshape(e.shape)
    return torch.cat([s2, c2], dim=1)


def lesson06_shift_embedding(function: Callable[..., Any]) -> bool | None:
    """Exercise 1: ``function(e, k)`` -> :math:`e(t + k)` from the embeddings ``e = e(t)`` alone, ``(N, d)``.

    The truth is the lesson's formula evaluated at ``t + k`` in float64, for embedding sizes 128 and 32 and shifts
    1, 37 and 250 (the function is never told ``t``).
    """
    name = "Exercise 1"
    g = torch.Generator().manual_seed(16)
    t = torch.randint(0, 1000, (6,), generator=g)
    for dim in (128, 32):
        e = _embedding64(t, dim)
        for k in (1, 37, 250):
            done, out = _run(name, function, e.clone(), k)
            if done:
                return out
            expected = _embedding64(t + k, dim)
            if not isinstance(out, torch.Tensor) or out.shape != e.shape:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                return _say(name, False, f"return a tensor shaped like e, {tuple(e.shape)}; got {got}.")
            close = lambda ref: torch.allclose(out.double(), ref, rtol=0, atol=1e-4)  # noqa: E731
            if close(expected):
                continue
            if close(_embedding64(t - k, dim)):
                return _say(name, False, "that is e(t - k): the rotation turns the wrong way. sin(a + b) = sin a cos b "
                                         "+ cos a sin b, cos(a + b) = cos a cos b - sin a sin b.")
            if close(e):
                return _say(name, False, "the embeddings came back unchanged: each (sin, cos) pair must turn by k w_i.")
            if close(_rotate(e, k, exponent_divisor=dim // 2)):
                return _say(name, False, "the frequencies are off: w_i = 10000^(-i/(h-1)), so that the last one is "
                                         "exactly 1e-4 (you divided by h).")
            if close(_rotate(e, k, interleaved=True)):
                return _say(name, False, "that treats e as interleaved pairs (sin, cos, sin, cos, ...); ddpm_core "
                                         "concatenates: all sines, then all cosines.")
            return _say(name, False, f"for d = {dim}, k = {k} your result differs from e(t + k): with h = d/2, entry i "
                                     "(sine) and i + h (cosine) turn by the angle k w_i.")
    return _say(name, True, "k steps later is one 2x2 rotation per frequency, the same for every t: a linear map, so "
                            "the network's first Linear layer can use it.")


# ----------------------------------------------------------------------------- exercise 2: the residual block
def _random_block(cin: int, cout: int, groups: int, dropout: float, seed: int) -> nn.Module:
    """ddpm_core's ResBlock with seeded random weights: norm scales 1 +- 0.5, shifts and biases non-zero, conv2 not
    zero, fan-in scaled weights (activations of order 1)."""
    from ..models.unet import ResBlock

    with torch.random.fork_rng(devices=[]):  # the default initialisation draws from the global generator
        block = ResBlock(cin, cout, temb_ch=48, dropout=dropout, groups=groups)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in block.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if pname.startswith("norm"):
                p.copy_((1.0 if pname.endswith("weight") else 0.0) + 0.5 * noise)
            elif pname.endswith("bias"):
                p.copy_(0.3 * noise)
            else:
                p.copy_(noise / math.sqrt(p[0].numel()))
    return block


def _refuse(what: str) -> Callable[..., Any]:
    def forward(*args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{what} is not called in this exercise: write the computation with torch.nn.functional "
                        "(F.group_norm, F.silu, F.conv2d, F.linear, F.dropout) and the block's parameters")
    return forward


def _handed_out(block: nn.Module) -> nn.Module:
    """A copy of the block whose layers with parameters (and the block itself) refuse to be called."""
    given = copy.deepcopy(block)
    given.forward = _refuse("block(x, temb)")
    for mname, m in given.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.GroupNorm)):
            m.forward = _refuse(f"block.{mname}(...)")
    return given


def _resblock_slip(block: nn.Module, x: torch.Tensor, temb: torch.Tensor, slip: str) -> torch.Tensor:
    """The block's forward with one known slip (so that the check can name what went wrong)."""
    def norm(m: nn.GroupNorm, v: torch.Tensor) -> torch.Tensor:
        if slip == "no_affine":
            return F.group_norm(v, m.num_groups, eps=m.eps)
        return F.group_norm(v, 32 if slip == "groups" else m.num_groups, m.weight, m.bias,
                            1e-5 if slip == "eps" else m.eps)

    def pre(m: nn.GroupNorm, v: torch.Tensor, silu: bool = True) -> torch.Tensor:  # GN then SiLU (or a slip)
        if slip == "silu_first":
            return norm(m, F.silu(v))
        return F.silu(norm(m, v)) if silu else norm(m, v)

    def drop(v: torch.Tensor) -> torch.Tensor:
        return F.dropout(v, block.dropout.p, block.training)

    h = F.conv2d(pre(block.norm1, x, slip != "no_silu1"), block.conv1.weight, block.conv1.bias, padding=1)
    t = F.linear(temb if slip == "temb_raw" else F.silu(temb), block.temb_proj.weight, block.temb_proj.bias)
    if slip != "temb_late":
        h = h + t[:, :, None, None]
    if slip == "drop_early":                      # dropout before the second SiLU
        h = F.silu(drop(norm(block.norm2, h)))
    elif slip == "drop_late":                     # dropout after the second conv
        h = pre(block.norm2, h)
    else:
        h = drop(pre(block.norm2, h, slip != "no_silu2"))
    h = F.conv2d(h, block.conv2.weight, block.conv2.bias, padding=1)
    if slip == "drop_late":
        h = drop(h)
    if slip == "temb_late":
        h = h + t[:, :, None, None]
    if slip == "no_skip":
        return h
    skip = x if isinstance(block.skip, nn.Identity) else F.conv2d(x, block.skip.weight, block.skip.bias)
    return skip + h


_SLIPS = {
    "temb_late": "the time embedding is added after the second conv; it belongs right after conv1 (h + "
                 "temb_proj(SiLU(temb))[:, :, None, None]), before norm2",
    "temb_raw": "the time embedding goes through SiLU before its projection: F.linear(F.silu(temb), ...)",
    "no_silu1": "the SiLU between norm1 and conv1 is missing",
    "no_silu2": "the SiLU between norm2 and conv2 is missing",
    "silu_first": "SiLU comes after GroupNorm, not before: conv(SiLU(GN(x)))",
    "no_affine": "GroupNorm without its scale and shift: pass block.norm1.weight and .bias (and norm2's) to "
                 "F.group_norm",
    "eps": "GroupNorm's eps is block.norm1.eps (1e-6 in ddpm_core), not F.group_norm's default 1e-5; it shows on "
           "inputs of small scale",
    "groups": "the number of groups is block.norm1.num_groups (8 in this block), not always 32",
    "no_skip": "the skip path is missing: the output is skip(x) + h",
    "drop_early": "dropout comes after the second SiLU, not before it",
    "drop_late": "dropout comes before the second conv, not after it",
}

# (what, in channels, out channels, GroupNorm groups, input scale, training mode)
_STAGES = [("96 -> 96 channels (identity skip)", 96, 96, 32, 1.0, False),
           ("64 -> 96 channels (1x1 skip conv)", 64, 96, 32, 1.0, False),
           ("32 -> 64 channels with 8 GroupNorm groups", 32, 64, 8, 1.0, False),
           ("64 -> 96 channels on an input of scale 1e-3", 64, 96, 32, 1e-3, False),
           ("64 -> 96 channels in training mode (dropout 0.3, the same random seed)", 64, 96, 32, 1.0, True)]


def lesson06_resblock_forward(function: Callable[..., Any]) -> bool | None:
    """Exercise 2: ``function(block, x, temb)`` -> the output of ddpm_core's ``ResBlock`` ``block``, written with
    ``torch.nn.functional`` and the block's own parameters.

    The check builds blocks with seeded random weights (non-trivial norms, biases and ``conv2``), hands out a copy
    whose layers refuse to be called, and compares with the untouched block's output on inputs of its own: with and
    without a channel change, 8 GroupNorm groups, a small-scale input (GroupNorm's eps), and in training mode with
    dropout (both under the same seed).
    """
    name = "Exercise 2"
    if not callable(function):
        return _say(name, False, f"expected a function, got {type(function).__name__}")
    for i, (what, cin, cout, groups, scale, train) in enumerate(_STAGES):
        block = _random_block(cin, cout, groups, 0.3 if train else 0.1, seed=20 + i).train(train)
        g = torch.Generator().manual_seed(30 + i)
        x = scale * (torch.randn(2, cin, 8, 8, generator=g) + 0.5)
        temb = torch.randn(2, 48, generator=g)

        def seeded(f: Callable[..., Any], *args: Any) -> Any:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(40 + i)
                return f(*args)

        expected = seeded(block, x, temb)
        done, out = _run(name, lambda *a: seeded(function, *a), _handed_out(block), x.clone(), temb.clone())
        if done:
            return out
        if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
            return _say(name, False, f"at {what}: return a tensor of shape {tuple(expected.shape)}; got "
                                     f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}.")
        close = lambda ref: torch.allclose(out.double(), ref.double(), rtol=1e-4, atol=1e-4)  # noqa: E731
        if close(expected):
            continue
        for slip, why in _SLIPS.items():
            try:
                variant = seeded(_resblock_slip, block, x, temb, slip)
            except RuntimeError:  # a slip that cannot run on this block (32 groups of 16 channels): not this one
                continue
            if close(variant):
                return _say(name, False, f"at {what}: {why}.")
        if not train:
            try:
                with torch.random.fork_rng(devices=[]), torch.no_grad():
                    torch.manual_seed(99)  # another seed: an output that depends on it is random
                    again = function(_handed_out(block), x.clone(), temb.clone())
            except Exception:  # the learner's code: it ran once already; no verdict from a second run
                again = out
            if isinstance(again, torch.Tensor) and not torch.equal(again, out):
                return _say(name, False, f"at {what}: your output is random in eval mode: dropout must do nothing "
                                         "there, F.dropout(h, block.dropout.p, training=block.training).")
        elif close(seeded(_resblock_slip, block.eval(), x, temb, "none")):
            return _say(name, False, f"at {what}: dropout did nothing; apply F.dropout(h, block.dropout.p, "
                                     "training=block.training) between the second SiLU and conv2.")
        return _say(name, False, f"at {what}: your output differs from ddpm_core's ResBlock. The order: GN -> SiLU "
                                 "-> conv1, + temb_proj(SiLU(temb)) per channel, GN -> SiLU -> dropout -> conv2, "
                                 "+ skip(x) (a 1x1 conv when the channels change).")
    return _say(name, True, "your block matches ddpm_core's on random weights: with and without a channel change, "
                            "8 groups, a small input, and with dropout in training mode.")


# ----------------------------------------------------------------------------- exercise 3: gradients of a fresh block
def lesson06_fresh_gradients(answer: Any) -> bool | None:
    """Exercise 3: the names of the parameters of a freshly built ``ResBlock(64, 128, temb_ch=256)`` (``conv2`` zero)
    that get a non-zero gradient from one backward pass.  The check runs the backward pass (autograd) itself."""
    from ..models.unet import ResBlock

    name = "Exercise 3"
    if answer is None:
        return _say(name, None, NOT_ATTEMPTED)
    if isinstance(answer, str) or not isinstance(answer, (set, frozenset, list, tuple)) or \
            not all(isinstance(n, str) for n in answer):
        return _say(name, False, "give a set of parameter names (strings), such as {'conv1.weight', ...}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(15)
        block = ResBlock(64, 128, temb_ch=256, dropout=0.0)
    g = torch.Generator().manual_seed(15)
    x, temb = torch.randn(2, 64, 8, 8, generator=g), torch.randn(2, 256, generator=g)
    (block(x, temb) * torch.randn(2, 128, 8, 8, generator=g)).sum().backward()   # any loss
    names = {n for n, _ in block.named_parameters()}
    truth = {n for n, p in block.named_parameters() if p.grad is not None and p.grad.abs().max() > 0}
    answer = set(answer)
    if answer == truth:
        return _say(name, True, "behind the zero conv2 nothing can change the output yet, so norm1, conv1, temb_proj "
                                "and norm2 get zero gradients; conv2's own gradient (its input times the upstream "
                                "gradient) is not zero, and the skip conv is on the other path.")
    unknown = sorted(answer - names)
    if unknown:
        return _say(name, False, f"not parameter names of the block: {', '.join(unknown)} (see "
                                 "block.named_parameters()).")
    behind = sorted(answer - truth)
    if behind:
        return _say(name, False, f"{', '.join(behind)}: behind (or before) the zero conv2, changing it cannot change "
                                 "the output yet, so its gradient is zero.")
    missing = sorted(truth - answer)
    if {"conv2.weight", "conv2.bias"} <= set(missing):
        return _say(name, False, "conv2 is zero, but its own gradient is its input times the upstream gradient: not "
                                 "zero (that is why training is not stuck).")
    if {"skip.weight", "skip.bias"} <= set(missing):
        return _say(name, False, "the 1x1 skip conv (64 -> 128 channels) is on the other path: it gets a gradient.")
    return _say(name, False, f"some are missing: {', '.join(missing)} (the biases count too).")
