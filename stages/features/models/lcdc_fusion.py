"""Space-time fusion of LCDC/DC (seed 000 sec. 3.4, Table 4; authors' `make_spacetime` onwards).

Input: `[B, T-1, C, h, w]`, the appearance maps of the first T-1 frames concatenated with the
per-layer offset differences. Twice: Conv3d (4, 3, 3) stride 1 'same' -> BN3d -> ReLU ->
MaxPool3d (2, 1, 1) stride (2, 1, 1), 'valid' (T-1 = 15 -> 7 -> 3). Then the mean over time and
a 2x2 max-pool, stride 2 ('valid': 14x14 -> 7x7 at crop 224).

TensorFlow's 'same' padding for the even temporal kernel 4 pads 3 frames in total, 1 before and
2 after; spatially 1 on each side. The 3D convs have no bias (the authors' `biased=False`: BN
follows). Their BN3d trains normally; only the ResNet trunk's BN is frozen.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TEMPORAL_KERNEL = 4
# (w_left, w_right, h_top, h_bottom, t_before, t_after): TF 'same' for kernel (4, 3, 3).
SAME_PADDING_4x3x3 = (1, 1, 1, 1, 1, 2)


# Fewest frames whose T-1 difference maps survive both temporal pools: 4 maps -> 2 -> 1.
MIN_SNIPPET_LENGTH = 5


class SpaceTimeConv(nn.Module):
    """Conv3d (4, 3, 3) 'same', no bias -> BN3d -> ReLU -> temporal MaxPool3d (2, 1, 1)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, (TEMPORAL_KERNEL, 3, 3), bias=False)
        self.bn = nn.BatchNorm3d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T, h, w]
        x = F.relu(self.bn(self.conv(F.pad(x, SAME_PADDING_4x3x3))))
        return F.max_pool3d(x, kernel_size=(2, 1, 1), stride=(2, 1, 1))


class SpaceTimeFusion(nn.Module):
    """`[B, T-1, C, h, w]` -> `[B, out_channels, h//2, w//2]` (two SpaceTimeConv, mean, pool)."""

    def __init__(self, in_channels: int, out_channels: int = 256) -> None:
        super().__init__()
        self.spacetime_conv1 = SpaceTimeConv(in_channels, out_channels)
        self.spacetime_conv2 = SpaceTimeConv(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)  # Conv3d wants [B, C, T, h, w]
        x = self.spacetime_conv2(self.spacetime_conv1(x))
        return F.max_pool2d(x.mean(dim=2), kernel_size=2, stride=2)
