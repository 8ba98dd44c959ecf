"""BN-Inception (Ioffe & Szegedy, 2015) in the layout of TSN/TSM and `pretrainedmodels`.

Every conv has a bias and is followed by BatchNorm (affine) and ReLU; pools use `ceil_mode`.
The network is split where the disentangled-dynamics model (seed 004) needs it:

- `ConvUnit` `conv1_7x7_s2` (3 -> 64, 7x7, stride 2): 112x112 at 224 px; the shared low level;
- `BNInceptionTrunk` = `pool1` ... `inception_5b` in four stages (`stage2`: pool1, conv2,
  pool2 -> 192 x 28 x 28; `stage3`: 3a-3c -> 576 x 14 x 14; `stage4`: 4a-4e -> 1056 x 7 x 7;
  `stage5`: 5a-5b -> 1024 x 7 x 7), so that temporal pooling can sit between stages.

Parameters (random init, without fc): 10,270,240, of which conv1 + BN 9,600 and the trunk
10,260,640. No pretrained weights are available in this workplace; `weights` may name a local
state dict with these module names. `scale` (not in any paper; CPU demos and tests) multiplies
every layer's width (rounded, at least 1); 1 is the published network.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

CONV1_CHANNELS = 64


class ConvUnit(nn.Sequential):
    """Conv (with bias) -> BatchNorm -> ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class InceptionSpec(NamedTuple):
    """Widths of one inception module; `pool` is "avg" or "max"; `stride` 2 = reduction module
    (no 1x1 branch, no pool projection, stride-2 3x3 convs and max-pool)."""

    in_channels: int
    conv1x1: int
    reduce3x3: int
    conv3x3: int
    reduce_double: int
    conv_double: int
    pool: str
    pool_proj: int
    stride: int = 1


SPECS: dict[str, InceptionSpec] = {
    "inception_3a": InceptionSpec(192, 64, 64, 64, 64, 96, "avg", 32),
    "inception_3b": InceptionSpec(256, 64, 64, 96, 64, 96, "avg", 64),
    "inception_3c": InceptionSpec(320, 0, 128, 160, 64, 96, "max", 0, stride=2),
    "inception_4a": InceptionSpec(576, 224, 64, 96, 96, 128, "avg", 128),
    "inception_4b": InceptionSpec(576, 192, 96, 128, 96, 128, "avg", 128),
    "inception_4c": InceptionSpec(576, 160, 128, 160, 128, 160, "avg", 128),
    "inception_4d": InceptionSpec(608, 96, 128, 192, 160, 192, "avg", 128),
    "inception_4e": InceptionSpec(608, 0, 128, 192, 192, 256, "max", 0, stride=2),
    "inception_5a": InceptionSpec(1056, 352, 192, 320, 160, 224, "avg", 128),
    "inception_5b": InceptionSpec(1024, 352, 192, 320, 192, 224, "max", 128),
}
STAGES = {
    "stage3": ("inception_3a", "inception_3b", "inception_3c"),
    "stage4": ("inception_4a", "inception_4b", "inception_4c", "inception_4d", "inception_4e"),
    "stage5": ("inception_5a", "inception_5b"),
}


def scaled(channels: int, scale: float) -> int:
    """A layer width times `scale`, rounded, at least 1 (0 stays 0: an absent branch)."""
    return max(1, round(channels * scale)) if channels else 0


class Inception(nn.Module):
    """Branches 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool (-> 1x1), concatenated."""

    def __init__(self, spec: InceptionSpec, in_channels: int, scale: float = 1.0) -> None:
        super().__init__()
        s = spec.stride
        w = {name: scaled(getattr(spec, name), scale) for name in InceptionSpec._fields[1:6]}
        self.branch1x1 = ConvUnit(in_channels, w["conv1x1"], 1) if w["conv1x1"] else None
        self.branch3x3 = nn.Sequential(
            ConvUnit(in_channels, w["reduce3x3"], 1),
            ConvUnit(w["reduce3x3"], w["conv3x3"], 3, stride=s, padding=1),
        )
        self.branch_double = nn.Sequential(
            ConvUnit(in_channels, w["reduce_double"], 1),
            ConvUnit(w["reduce_double"], w["conv_double"], 3, padding=1),
            ConvUnit(w["conv_double"], w["conv_double"], 3, stride=s, padding=1),
        )
        if spec.pool == "avg":
            pool: nn.Module = nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True)
        elif s == 2:
            pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        else:
            pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        proj_width = scaled(spec.pool_proj, scale)
        proj = [ConvUnit(in_channels, proj_width, 1)] if proj_width else []
        self.branch_pool = nn.Sequential(pool, *proj)
        self.out_channels = (
            w["conv1x1"] + w["conv3x3"] + w["conv_double"] + (proj_width or in_channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch3x3(x), self.branch_double(x), self.branch_pool(x)]
        if self.branch1x1 is not None:
            branches.insert(0, self.branch1x1(x))
        return torch.cat(branches, dim=1)


def conv1_unit(scale: float = 1.0) -> ConvUnit:
    """`conv1_7x7_s2`: 3 -> 64, 7x7, stride 2, padding 3, with BN and ReLU."""
    return ConvUnit(3, scaled(CONV1_CHANNELS, scale), 7, stride=2, padding=3)


class BNInceptionTrunk(nn.Module):
    """`pool1` ... `inception_5b`: a 64-channel map at conv1 resolution -> 1024 x H/16 x W/16
    (widths times `scale`; `out_channels` is the final width)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        conv1, reduce, conv2 = (scaled(c, scale) for c in (CONV1_CHANNELS, 64, 192))
        self.stage2 = nn.Sequential(
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
            ConvUnit(conv1, reduce, 1),
            ConvUnit(reduce, conv2, 3, padding=1),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
        )
        width = conv2
        for stage, names in STAGES.items():
            modules = []
            for name in names:
                modules.append(Inception(SPECS[name], width, scale))
                width = modules[-1].out_channels
            self.add_module(stage, nn.Sequential(*modules))
        self.out_channels = width

    def stages(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        return self.stage2, self.stage3, self.stage4, self.stage5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages():
            x = stage(x)
        return x


class BNInception(nn.Module):
    """The whole network without its classifier: `[N, 3, H, W]` -> pooled `[N, 1024]`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = conv1_unit()
        self.trunk = BNInceptionTrunk()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.conv1(x)).mean(dim=(2, 3))
