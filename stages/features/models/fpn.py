"""ResNet-FPN trunk and the per-scale motion-offset module of DIMOFS (seed 002).

`resnet_fpn` is torchvision's `resnet_fpn_backbone(f"resnet{depth}", trainable_layers=5)`
(P2..P5 at 256 channels plus a parameter-free max-pooled level), built from
`stages.features.weights.resnet_trunk` so ImageNet weights, local files and their errors work
as for every ResNet here. Its BatchNorm layers are torchvision's detection default,
`FrozenBatchNorm2d` (fixed statistics and affine, not parameters: 26,799,296 parameters for
ResNet-50), or trainable `BatchNorm2d` with `frozen_bn=False`.

`MotionOffsets` is one scale's module: offsets = `Conv2d(256, 512, 3, p=1)` on f_A - f_B,
zero-initialised (DCN practice), i.e. one (dy, dx) pair per channel and pixel, and
`DeformConv2d(256, 256, 1, bias=False)` resampling f_B at those offsets with 256 offset groups
(one pair per input channel). torchvision's offset order: channel 2c is dy, 2c+1 is dx, in
pixels of that level; f_B is sampled at p + offset, bilinearly, zeros outside. At zero offsets
the resampling is a plain 1x1 conv of f_B (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _resnet_fpn_extractor
from torchvision.ops import DeformConv2d, FrozenBatchNorm2d

from stages.features.weights import IMAGENET_WIDTH, resnet_trunk

FPN_CHANNELS = 256
LEVELS = ("0", "1", "2", "3")  # P2..P5 in torchvision's FPN output; "pool" is not used
P4 = 2  # index of P4 in LEVELS


def resnet_fpn(
    depth: int, weights: str, width: int = IMAGENET_WIDTH, frozen_bn: bool = True
) -> BackboneWithFPN:
    """torchvision's ResNet-FPN with all five stages trainable (see the module docstring);
    `width` narrows the ResNet (CPU tests), the FPN keeps its 256 channels."""
    norm_layer = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    trunk = resnet_trunk(depth, weights, width, norm_layer=norm_layer)
    return _resnet_fpn_extractor(trunk, trainable_layers=5)


def fpn_level(fpn: BackboneWithFPN, frames: torch.Tensor, level: int) -> torch.Tensor:
    """One FPN output (`level` indexes P2..P5) without computing the finer levels' outputs:
    the same numbers as `fpn(frames)[LEVELS[level]]` (top-down path from C5 to that level)."""
    body = list(fpn.body(frames).values())
    pyramid = fpn.fpn
    inner = pyramid.get_result_from_inner_blocks(body[-1], -1)
    for index in range(len(body) - 2, level - 1, -1):
        lateral = pyramid.get_result_from_inner_blocks(body[index], index)
        inner = lateral + F.interpolate(inner, size=lateral.shape[-2:], mode="nearest")
    return pyramid.get_result_from_layer_blocks(inner, level)


class MotionOffsets(nn.Module):
    """One scale of DIMOFS: offsets from f_A - f_B, and f_B resampled at them."""

    def __init__(self, channels: int = FPN_CHANNELS) -> None:
        super().__init__()
        self.offset = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.resample = DeformConv2d(channels, channels, kernel_size=1, bias=False)

    def offsets(self, f_a: torch.Tensor, f_b: torch.Tensor) -> torch.Tensor:
        """`[B, 2C, h, w]`: (dy, dx) of channel c at channels (2c, 2c + 1)."""
        return self.offset(f_a - f_b)

    def forward(self, f_a: torch.Tensor, f_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(resampled f_B `[B, C, h, w]`, offsets `[B, 2C, h, w]`)."""
        offsets = self.offsets(f_a, f_b)
        return self.resample(f_b, offsets.to(f_b.dtype)), offsets
