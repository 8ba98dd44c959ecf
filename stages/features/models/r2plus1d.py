"""R(2+1)D-18 trunks with optional Dynamic Equilibrium Modules (seed 003, thesis chapter 3).

Every 3x3x3 convolution of R3D-18 becomes a (2+1)D unit: a `1 x d x d` spatial conv to `mid`
channels -> BN -> ReLU -> [DEM] -> a `3 x 1 x 1` temporal conv (d = 7 in the stem, 3 elsewhere).
Two layouts:

- `"table3.1"` (the thesis's Table 3.1): `mid` per conv from `midplanes` (stem 83, conv2_x 144,
  conv3_x 230/288, ...), and where a DEM sits the smaller `dem_midplanes` (stem 20, conv2_x 67,
  conv3_x 98/134, conv4_x 197/269, conv5_x 394/538), the root of thesis eq. 3.5, so the network
  keeps R3D-18's parameter budget;
- `"torchvision"`: `torchvision.models.video.r2plus1d_18` exactly (stem 45, one `mid` per block
  from the block's input width), so Kinetics-400 weights load; a DEM inserted here keeps
  torchvision's `mid` (no reduction), so every pretrained conv still fits.

Module names follow torchvision's `VideoResNet` (`stem.0`, `layer1.0.conv1.0.0`, ...; a DEM is
`<unit>.dem`), so a torchvision state dict loads without renaming. No max-pool after the stem
(as torchvision's R(2+1)D stem). Initialisation as torchvision/the thesis: Kaiming normal
(fan_out) convs, BN gamma 1 and beta 0.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Layout = Literal["table3.1", "torchvision"]
Fusion = Literal["mul", "mul_residual"]
STAGES = ("stem", "conv2", "conv3", "conv4", "conv5")
WIDTHS = (64, 128, 256, 512)  # conv2_x .. conv5_x
STEM_KERNEL = 7
KERNEL = 3
TORCHVISION_STEM_MID = 45


def midplanes(in_channels: int, out_channels: int, d: int = KERNEL) -> int:
    """Table 3.1's `mid` of a (2+1)D unit with the parameters of a `3 x d x d` conv:
    `int(3 d^2 in out / (d^2 in + 3 out))` (= `int(27 in out / (9 in + 3 out))` for d = 3)."""
    return (3 * d * d * in_channels * out_channels) // (d * d * in_channels + 3 * out_channels)


def dem_midplanes(in_channels: int, out_channels: int, d: int = KERNEL) -> int:
    """`mid` of a (2+1)D unit with a DEM inside at the budget of a `3 x d x d` conv (eq. 3.5):
    the largest M with `(4 + d^2) M^2 + (d^2 in + 3 out) M <= 3 d^2 in out`, the DEM holding
    `2 M^2` (f) + `2 M^2` (g) + `d^2 M^2` (h) parameters."""
    a, b, c = (
        4 + d * d,
        d * d * in_channels + 3 * out_channels,
        3 * d * d * in_channels * out_channels,
    )
    m = int((-b + math.sqrt(b * b + 4 * a * c)) / (2 * a))
    while a * (m + 1) ** 2 + b * (m + 1) <= c:
        m += 1
    while a * m * m + b * m > c:
        m -= 1
    return m


class DynamicEquilibrium(nn.Module):
    """The DEM (thesis ch. 3) on `s` of shape (B, C, T, H, W); returns the same shape.

    With one zero frame padded at each temporal end, `a = f(pad(s))` (T + 1 maps),
    `D = g(a) - f_dil2(pad(s))` (T maps), where `f_dil2` is f's weights at temporal dilation 2,
    and `m = ReLU(h(D))` (ReLU6 under autocast, as the thesis trains with AMP). `fusion`:
    `"mul"` gives `s * m`, `"mul_residual"` gives `s * (1 + m)`; the place of the product is a
    reading of a figure, so both are offered (same parameters). No BN inside (eq. 3.5 counts
    none).
    """

    def __init__(self, channels: int, d: int = KERNEL, fusion: Fusion = "mul") -> None:
        super().__init__()
        if fusion not in ("mul", "mul_residual"):
            raise ValueError(f"fusion must be 'mul' or 'mul_residual', got {fusion!r}")
        self.fusion = fusion
        self.f = nn.Conv3d(channels, channels, (2, 1, 1), bias=False)
        self.g = nn.Conv3d(channels, channels, (2, 1, 1), bias=False)
        self.h = nn.Conv3d(channels, channels, (1, d, d), padding=(0, d // 2, d // 2), bias=False)

    def difference(self, s: torch.Tensor) -> torch.Tensor:
        """D = g(f(pad(s))) - f_dil2(pad(s)), shape of `s`."""
        padded = F.pad(s, (0, 0, 0, 0, 1, 1))
        two_step = self.g(self.f(padded))
        one_jump = F.conv3d(padded, self.f.weight, dilation=(2, 1, 1))
        return two_step - one_jump

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        d = self.h(self.difference(s))
        m = F.relu6(d) if _under_autocast(s) else F.relu(d)
        return s * m if self.fusion == "mul" else s * (1 + m)


def _under_autocast(x: torch.Tensor) -> bool:
    kind = x.device.type
    return kind in ("cpu", "cuda") and torch.is_autocast_enabled(kind)


class SpatioTemporalUnit(nn.Module):
    """(2+1)D unit: children `0` spatial conv, `1` BN, `2` ReLU, [`dem`], `3` temporal conv
    (torchvision's `Conv2Plus1D` names); with `tail`, `4` BN and `5` ReLU (torchvision's stem)."""

    def __init__(
        self,
        in_channels: int,
        mid: int,
        out_channels: int,
        d: int = KERNEL,
        stride: int = 1,
        dem: DynamicEquilibrium | None = None,
        tail: bool = False,
    ) -> None:
        super().__init__()
        self.add_module(
            "0",
            nn.Conv3d(
                in_channels,
                mid,
                (1, d, d),
                stride=(1, stride, stride),
                padding=(0, d // 2, d // 2),
                bias=False,
            ),
        )
        self.add_module("1", nn.BatchNorm3d(mid))
        self.add_module("2", nn.ReLU(inplace=True))
        self.add_module(
            "3",
            nn.Conv3d(
                mid, out_channels, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False
            ),
        )
        if tail:
            self.add_module("4", nn.BatchNorm3d(out_channels))
            self.add_module("5", nn.ReLU(inplace=True))
        self.dem = dem
        self.tail = tail

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        """The frame-wise part: spatial conv -> BN -> ReLU (each frame on its own)."""
        modules = self._modules
        return modules["2"](modules["1"](modules["0"](x)))

    def temporal(self, s: torch.Tensor) -> torch.Tensor:
        """DEM (if any), temporal conv (and with `tail` BN -> ReLU): mixes frames."""
        modules = self._modules
        if self.dem is not None:
            s = self.dem(s)
        x = modules["3"](s)
        return modules["5"](modules["4"](x)) if self.tail else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.spatial(x))


class BasicBlock3d(nn.Module):
    """torchvision's video `BasicBlock` with a (mid1, mid2) pair and optional DEMs:
    unit -> BN -> ReLU -> unit -> BN -> (+ shortcut) -> ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mids: tuple[int, int],
        stride: int,
        dem_fusion: Fusion | None,
    ) -> None:
        super().__init__()

        def unit(cin: int, mid: int, s: int) -> SpatioTemporalUnit:
            dem = None if dem_fusion is None else DynamicEquilibrium(mid, KERNEL, dem_fusion)
            return SpatioTemporalUnit(cin, mid, out_channels, KERNEL, s, dem)

        self.conv1 = nn.Sequential(
            unit(in_channels, mids[0], stride),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(unit(out_channels, mids[1], 1), nn.BatchNorm3d(out_channels))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


class R2Plus1D18(nn.Module):
    """Stem + conv2_x..conv5_x (`layer1`..`layer4`), no pooling or fc; (B, 3, T, H, W) ->
    (B, 512, T/8, H/16, W/16). DEMs sit in the units of the stages named in `dem_stages`."""

    def __init__(
        self,
        layout: Layout = "table3.1",
        dem_stages: Collection[str] = ("conv2",),
        fusion: Fusion = "mul",
    ) -> None:
        super().__init__()
        unknown = sorted(set(dem_stages) - set(STAGES))
        if unknown:
            raise ValueError(f"dem_stages must be among {list(STAGES)}, got {unknown}")
        if layout not in ("table3.1", "torchvision"):
            raise ValueError(f"layout must be 'table3.1' or 'torchvision', got {layout!r}")
        self.layout = layout

        def fusion_at(stage: str) -> Fusion | None:
            return fusion if stage in dem_stages else None

        stem_fusion = fusion_at("stem")
        stem_mid = self._mid(layout, 3, WIDTHS[0], STEM_KERNEL, stem_fusion is not None)
        if layout == "torchvision":
            stem_mid = TORCHVISION_STEM_MID
        stem_dem = (
            None if stem_fusion is None else DynamicEquilibrium(stem_mid, STEM_KERNEL, stem_fusion)
        )
        self.stem = SpatioTemporalUnit(
            3, stem_mid, WIDTHS[0], STEM_KERNEL, stride=2, dem=stem_dem, tail=True
        )
        # torchvision's stem strides space only
        self.stem._modules["3"].stride = (1, 1, 1)
        in_channels = WIDTHS[0]
        for index, (stage, width) in enumerate(zip(STAGES[1:], WIDTHS, strict=True)):
            stage_fusion = fusion_at(stage)
            blocks = []
            for block in range(2):
                stride = 2 if index > 0 and block == 0 else 1
                cin = in_channels if block == 0 else width
                mids = self._block_mids(layout, cin, width, stage_fusion is not None)
                blocks.append(BasicBlock3d(cin, width, mids, stride, stage_fusion))
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
            in_channels = width
        self._initialise()

    @staticmethod
    def _mid(layout: Layout, cin: int, cout: int, d: int, with_dem: bool) -> int:
        if layout == "table3.1" and with_dem:
            return dem_midplanes(cin, cout, d)
        return midplanes(cin, cout, d)

    def _block_mids(self, layout: Layout, cin: int, cout: int, with_dem: bool) -> tuple[int, int]:
        if layout == "torchvision":  # one mid per block, from the block's input width
            mid = midplanes(cin, cout)
            return mid, mid
        return self._mid(layout, cin, cout, KERNEL, with_dem), self._mid(
            layout, cout, cout, KERNEL, with_dem
        )

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def stages(self) -> Sequence[nn.Module]:
        return (self.layer1, self.layer2, self.layer3, self.layer4)

    def forward_from_stem_spatial(self, s: torch.Tensor) -> torch.Tensor:
        """The network after the stem's frame-wise spatial conv/BN/ReLU (see `stem.spatial`)."""
        x = self.stem.temporal(s)
        for stage in self.stages():
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from_stem_spatial(self.stem.spatial(x))
