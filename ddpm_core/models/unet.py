"""The DDPM UNet (Ho et al. 2020, appendix B; the paper's ``diffusion_tf/models/unet.py``).

A PixelCNN++-style UNet: a sinusoidal time embedding fed through a ``4 * ch`` MLP into every residual
block; residual blocks of GroupNorm(32) -> SiLU -> 3x3 conv, the time projection added after the first
conv, dropout, a zero-initialised last conv; single-head self-attention at chosen resolutions; stride-2
conv downsampling (padded as the paper's TensorFlow ``'SAME'`` in the paper's configurations, so that the
published weights load; see :class:`Downsample`), nearest-neighbour upsampling; skip connections from
every down-path block to the up path; a zero-initialised output conv.  Optional class conditioning adds a
label embedding to the time embedding, with a reserved null label for classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import config as config_module
from .embeddings import TimestepEmbedding

GROUPS = 32  # the paper's GroupNorm groups (UNetConfig.norm_groups' default)


def _norm(channels: int, groups: int = GROUPS) -> nn.GroupNorm:
    """``GroupNorm(min(groups, channels))``: a layer narrower than ``groups`` normalises each channel on its own."""
    if channels > groups and channels % groups:
        raise ValueError(f"GroupNorm({groups}) needs channel counts divisible by {groups}, but this configuration has "
                         f"a {channels}-channel layer (skip concatenations add channels): use ch a multiple of "
                         f"norm_groups ({groups}), or a norm_groups that divides every layer's channels")
    return nn.GroupNorm(min(groups, channels), channels, eps=1e-6)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """``x + conv(drop(act(norm(conv(act(norm(x))) + W temb))))``, with a 1x1 skip conv when channels change."""

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, dropout: float, groups: int = GROUPS) -> None:
        super().__init__()
        self.norm1 = _norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_ch, out_ch)
        self.norm2 = _norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H x W positions, through ``F.scaled_dot_product_attention``."""

    def __init__(self, ch: int, groups: int = GROUPS) -> None:
        super().__init__()
        self.norm = _norm(ch, groups)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj_out = _zero(nn.Conv2d(ch, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)  # (B, HW, C) each
        h = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        return x + self.proj_out(h.transpose(-1, -2).reshape(B, C, H, W))

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The softmax attention weights ``(B, HW, HW)`` (for looking inside; not used in forward)."""
        B, C, H, W = x.shape
        q, k, _ = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)
        return torch.softmax(q @ k.transpose(-1, -2) / C**0.5, dim=-1)


DOWNSAMPLE_PADDINGS = ("same", "symmetric")


class Downsample(nn.Module):
    """A stride-2 3x3 conv.  ``padding="same"`` is the paper's TensorFlow ``pad='SAME'``: for an even size it pads
    0 pixels before and 1 after (diffusers' ``downsample_padding=0``); ``"symmetric"`` pads 1 on every side
    (``downsample_padding=1``).  Both halve the size; they see the image shifted by one pixel against each other."""

    def __init__(self, ch: int, padding: str = "same") -> None:
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1 if padding == "symmetric" else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


@dataclass
class UNetConfig:
    """UNet hyper-parameters.  ``out_channels`` defaults to ``in_channels`` (double it for a learned variance).

    ``downsample_padding``: ``"same"`` is the paper's (TensorFlow ``pad='SAME'``, what the published checkpoints
    need); ``"symmetric"`` (one pixel on every side) is the default because every model trained with ``ddpm_core``
    before the option existed, the shipped MNIST model included, used it: their stored configs, which lack the
    field, keep loading as they were trained.  The paper's named configurations set ``"same"``.
    """

    in_channels: int = 3
    out_channels: int | None = None
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    resolution: int = 32
    num_classes: int | None = None
    class_dropout: float = 0.0  # probability of replacing a label by the null label in training
    downsample_padding: str = "symmetric"  # or "same", the paper's (see above)
    norm_groups: int = GROUPS  # GroupNorm groups: the paper's 32; fewer lets narrow CPU networks (ch 16) normalise

    def __post_init__(self) -> None:
        config_module.check_fields(self, "unet")
        if self.downsample_padding not in DOWNSAMPLE_PADDINGS:
            raise ValueError(f"downsample_padding must be one of {', '.join(DOWNSAMPLE_PADDINGS)} ('same' is the "
                             f"paper's TensorFlow padding), got {self.downsample_padding!r}")
        if self.out_channels is None:
            self.out_channels = self.in_channels
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels!r}")
        if self.out_channels < 1:
            raise ValueError(f"out_channels must be a positive integer, got {self.out_channels!r}")
        if self.ch < 1:
            raise ValueError(f"ch (the base channel count) must be a positive integer, got {self.ch!r}")
        if not self.ch_mult or any(m < 1 for m in self.ch_mult):
            raise ValueError(f"ch_mult must be a non-empty list of positive integers (one per resolution level), "
                             f"got {list(self.ch_mult)!r}")
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be at least 1, got {self.num_res_blocks!r}")
        if self.resolution < 1 or any(r < 1 for r in self.attn_resolutions):
            raise ValueError(f"resolution and attn_resolutions must be positive, got {self.resolution!r} and "
                             f"{list(self.attn_resolutions)!r}")
        factor = 2 ** (len(self.ch_mult) - 1)
        if self.resolution % factor:
            raise ValueError(
                f"resolution {self.resolution} is not divisible by 2^{len(self.ch_mult) - 1} = {factor}, "
                f"which {len(self.ch_mult)} levels (ch_mult={self.ch_mult}) need"
            )
        if isinstance(self.norm_groups, bool) or not isinstance(self.norm_groups, int) or self.norm_groups < 1:
            raise ValueError(f"norm_groups (GroupNorm groups) must be a positive integer, got {self.norm_groups!r}")
        if self.ch % self.norm_groups and self.ch > self.norm_groups:
            raise ValueError(f"ch must be a multiple of norm_groups ({self.norm_groups}, the GroupNorm groups), "
                             f"got {self.ch}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.class_dropout < 1.0:
            raise ValueError("dropout and class_dropout must lie in [0, 1)")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer or None, got {self.num_classes!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ch_mult"], d["attn_resolutions"] = list(self.ch_mult), list(self.attn_resolutions)
        return d


CONFIGS: dict[str, dict] = {
    # The paper's CIFAR-10 model: 35.7M parameters (google/ddpm-cifar10-32).
    "ddpm_cifar10": dict(in_channels=3, ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                         dropout=0.1, resolution=32, downsample_padding="same"),
    # The paper's CelebA-HQ/LSUN family at 64x64 (ch_mult 1,2,2,2,4 as in the paper's 64x64 setting).
    "ddpm_celeba64": dict(in_channels=3, ch=128, ch_mult=(1, 2, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16,),
                          dropout=0.1, resolution=64, downsample_padding="same"),
    # The published 256x256 models (google/ddpm-celebahq-256, -church-256, -bedroom-256, -cat-256); dropout 0, as
    # the paper sets it for every dataset but CIFAR-10.
    "ddpm_256": dict(in_channels=3, ch=128, ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2, attn_resolutions=(16,),
                     dropout=0.0, resolution=256, downsample_padding="same"),
    # MNIST padded to 32x32, small enough for a laptop CPU (~1.1M parameters).
    "mnist_cpu": dict(in_channels=1, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,),
                      dropout=0.1, resolution=32),
    # MNIST at 28x28 for a laptop CPU in minutes (702,753 parameters): two levels (28, 14), attention at 14x14.
    "mnist_cpu_small": dict(in_channels=1, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(14,),
                            dropout=0.0, resolution=28),
    # MNIST at 28x28 for the 20-minute CPU budget (687,473 parameters with 10 classes): narrow at full resolution
    # (16 channels, 8 GroupNorm groups), wide where it is cheap (64 channels at 7x7, with attention). Forward FLOPs
    # are a third of mnist_cpu_small's (147 vs 431 MFLOP per image), so a 2-core CPU trains it 2.3x faster.
    "mnist_cpu_short": dict(in_channels=1, ch=16, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=(7,),
                            dropout=0.0, resolution=28, norm_groups=8),
    # MNIST for a Colab T4 / any recent GPU (6,472,705 parameters with 10 classes).
    "mnist_gpu": dict(in_channels=1, ch=64, ch_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(8,),
                      dropout=0.1, resolution=32),
}


def unet_config(name: str, **overrides) -> UNetConfig:
    """A named configuration (see :data:`CONFIGS`) with overrides."""
    if name not in CONFIGS:
        raise ValueError(f"unknown UNet configuration {name!r}; accepted: {', '.join(CONFIGS)}")
    return config_module.from_dict(UNetConfig, {**CONFIGS[name], **overrides}, "UNet option")


class UNet(nn.Module):
    """The DDPM UNet; ``forward(x, t, y=None)`` with integer timesteps t and optional integer labels y."""

    def __init__(self, config: UNetConfig | None = None, **kwargs) -> None:
        super().__init__()
        if config is None:
            config = UNetConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either a UNetConfig or keyword arguments, not both")
        self.config = c = config
        temb_ch, g = 4 * c.ch, c.norm_groups
        self.time_embed = TimestepEmbedding(c.ch, temb_ch)
        self.label_embed = nn.Embedding(c.num_classes + 1, temb_ch) if c.num_classes else None  # last = null
        self.conv_in = nn.Conv2d(c.in_channels, c.ch, 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels = [c.ch]
        block_in, res = c.ch, c.resolution
        for level, mult in enumerate(c.ch_mult):
            for _ in range(c.num_res_blocks):
                block_out = c.ch * mult
                layers = [ResBlock(block_in, block_out, temb_ch, c.dropout, g)]
                if res in c.attn_resolutions:
                    layers.append(AttnBlock(block_out, g))
                self.down.append(nn.ModuleList(layers))
                block_in = block_out
                skip_channels.append(block_in)
            if level != len(c.ch_mult) - 1:
                self.down.append(nn.ModuleList([Downsample(block_in, c.downsample_padding)]))
                res //= 2
                skip_channels.append(block_in)

        self.mid = nn.ModuleList([ResBlock(block_in, block_in, temb_ch, c.dropout, g), AttnBlock(block_in, g),
                                  ResBlock(block_in, block_in, temb_ch, c.dropout, g)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.ch_mult))):
            for _ in range(c.num_res_blocks + 1):
                block_out = c.ch * mult
                layers = [ResBlock(block_in + skip_channels.pop(), block_out, temb_ch, c.dropout, g)]
                if res in c.attn_resolutions:
                    layers.append(AttnBlock(block_out, g))
                self.up.append(nn.ModuleList(layers))
                block_in = block_out
            if level != 0:
                self.up.append(nn.ModuleList([Upsample(block_in)]))
                res *= 2

        self.norm_out = _norm(block_in, g)
        self.conv_out = _zero(nn.Conv2d(block_in, c.out_channels, 3, padding=1))

    @property
    def null_label(self) -> int:
        """The reserved "no class" label (classifier-free guidance), equal to ``num_classes``."""
        if self.config.num_classes is None:
            raise ValueError("this UNet is unconditional: it has no null label")
        return self.config.num_classes

    def _check_input(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> None:
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels:
            raise ValueError(f"UNet expects input (N, {c.in_channels}, H, W), got {tuple(x.shape)}")
        factor = 2 ** (len(c.ch_mult) - 1)
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"input size {tuple(x.shape[2:])} is not divisible by {factor} ({len(c.ch_mult)} levels)")
        if t.shape != (x.shape[0],):
            raise ValueError(f"timesteps must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        if y is not None:
            if self.label_embed is None:
                raise ValueError("labels given to an unconditional UNet (num_classes=None)")
            if y.shape != (x.shape[0],) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
                raise ValueError(f"labels must be integers of shape ({x.shape[0]},), got {tuple(y.shape)} {y.dtype}")
            # Checked where it costs no device sync (CPU labels); samplers and the trainer check the rest up front.
            if (y.device.type == "cpu" and y.numel() and not torch.compiler.is_compiling()
                    and (int(y.min()) < 0 or int(y.max()) > c.num_classes)):
                raise ValueError(f"labels must lie in 0..{c.num_classes - 1} (or {c.num_classes}, the null label), "
                                 f"got values from {int(y.min())} to {int(y.max())}")

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, t, y)
        temb = self.time_embed(t)
        if self.label_embed is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.null_label, device=x.device, dtype=torch.long)
            elif self.training and self.config.class_dropout > 0:
                drop = torch.rand(y.shape, device=y.device) < self.config.class_dropout
                y = torch.where(drop, torch.full_like(y, self.null_label), y)
            temb = temb + self.label_embed(y)

        h = self.conv_in(x)
        hs = [h]
        for layers in self.down:
            for layer in layers:
                h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
        for layers in self.up:
            if isinstance(layers[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            for layer in layers:
                h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))
