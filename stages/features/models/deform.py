"""Deformable 3x3 convolutions of seed 000: locally-consistent (LCDC) and plain (DC).

Offsets follow `torchvision.ops.deform_conv2d`: for tap k (row-major over the kernel),
channel 2k is the y offset and 2k+1 the x offset, in input pixels. A deformable conv samples
tap k of output n at `n + dilation * (k - centre) + offset`, bilinearly, zeros outside.

LCDC (eq. 4-5) predicts one 2-vector per input location, `offset_n`, and uses at tap k the
offset of the location it samples: `offset_{n,k} = offset_{n + dilation * (k - centre)}`.
`expand_lcdc_offsets` builds that 18-channel field by gathering neighbours at the conv's own
dilation (zeros beyond the border). With this, LCDC is exactly "warp the input once by the
2-channel field, then an ordinary conv" (eq. 6-7; `warp_by_offsets` + `F.conv2d`), which the tests
check numerically. The authors' TensorFlow release gathers the *undilated* neighbours
(`expand_cir_shift`, rate 1) while its deformable conv uses rate 2, which breaks eq. 6-7 and
Proposition 1 for non-constant fields. The default forms ("warp", "deform") follow the paper's
equations; form "undilated" is the authors' network (deform conv at the conv's dilation on
offsets gathered at dilation 1), to reproduce the published model.

Offset convs start at zero (weights and bias, as in the authors' code), so every deformable
conv starts as the ordinary (dilated) conv whose ImageNet weights it inherits.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

LCDCForm = Literal["warp", "deform", "undilated"]
LCDC_FORMS: tuple[str, ...] = ("warp", "deform", "undilated")
OFFSET_KERNEL = 3  # the offset learner: 3x3 at the deformable conv's dilation (authors' rate=2)


def expand_lcdc_offsets(offset: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    """`[N, 2, H, W]` per-location offsets -> `[N, 2*k*k, H, W]` deformable-conv offsets (eq. 5).

    Tap (a, b) of output n takes the offset of input location n + dilation*(a-c, b-c), c the
    kernel centre; locations outside the map contribute zero offsets (they sample zeros anyway).
    """
    height, width = offset.shape[-2:]
    reach = dilation * (kernel_size // 2)
    padded = F.pad(offset, (reach, reach, reach, reach))
    taps = [
        padded[..., a * dilation : a * dilation + height, b * dilation : b * dilation + width]
        for a in range(kernel_size)
        for b in range(kernel_size)
    ]
    return torch.cat(taps, dim=1)


def warp_by_offsets(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """D_offset{x}[n] = x(n + offset_n) (eq. 7): bilinear, zeros outside, integer offset = shift.

    `grid_sample` with `align_corners=False` maps pixel p to (2p + 1) / size - 1, which keeps
    pixel centres on the grid for any map size (including 1-pixel-wide maps).
    """
    height, width = x.shape[-2:]
    rows = torch.arange(height, dtype=x.dtype, device=x.device).view(1, height, 1)
    cols = torch.arange(width, dtype=x.dtype, device=x.device).view(1, 1, width)
    y = rows + offset[:, 0]
    xx = cols + offset[:, 1]
    grid = torch.stack(((2 * xx + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def lcdc_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    dilation: int,
    form: LCDCForm,
) -> torch.Tensor:
    """Locally-consistent deformable conv, stride 1, 'same' padding, no bias.

    `form="warp"` warps once then convolves (eq. 6-7); `form="deform"` runs
    `deform_conv2d` on the expanded offsets (eq. 4-5). Both give the same numbers.
    `form="undilated"` gathers the offsets of the undilated neighbours (the authors' code).
    """
    padding = dilation * (weight.shape[-1] // 2)
    if form == "warp":
        return F.conv2d(warp_by_offsets(x, offset), weight, padding=padding, dilation=dilation)
    gather = 1 if form == "undilated" else dilation
    expanded = expand_lcdc_offsets(offset, weight.shape[-1], gather)
    return deform_conv2d(x, expanded, weight, padding=padding, dilation=dilation)


def _zero_offset_conv(channels: int, out_channels: int, dilation: int) -> nn.Conv2d:
    """3x3 offset learner, dilation as the deformable conv, 'same', bias; zero init."""
    conv = nn.Conv2d(
        channels, out_channels, OFFSET_KERNEL, padding=dilation, dilation=dilation, bias=True
    )
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class LocallyConsistentDeformConv2d(nn.Module):
    """LCDC replacing a ResNet 3x3 conv: `forward(x) -> (y, offset [N, 2, H, W])`.

    `weight` is copied from the conv it replaces (so ImageNet init carries over and checkpoint
    keys stay those of the ResNet); `offset` predicts the 2-channel field from the same input.
    """

    def __init__(self, weight: torch.Tensor, dilation: int, form: LCDCForm) -> None:
        super().__init__()
        if form not in LCDC_FORMS:
            raise ValueError(f"unknown LCDC form {form!r} (choose {LCDC_FORMS})")
        self.weight = nn.Parameter(weight.detach().clone())
        self.dilation = dilation
        self.form = form
        self.offset = _zero_offset_conv(weight.shape[1], 2, dilation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offset = self.offset(x)
        return lcdc_conv2d(x, offset, self.weight, self.dilation, self.form), offset


class DeformConv2dWithOffsets(nn.Module):
    """Plain deformable conv (ablation "DC"): `forward(x) -> (y, offset [N, 2*G*k*k, H, W])`.

    One offset per (group, tap), predicted by a 3x3 conv; no local-coherency constraint.
    """

    def __init__(self, weight: torch.Tensor, dilation: int, offset_groups: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.dilation = dilation
        kernel_size = weight.shape[-1]
        self.offset = _zero_offset_conv(
            weight.shape[1], 2 * offset_groups * kernel_size * kernel_size, dilation
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offset = self.offset(x)
        padding = self.dilation * (self.weight.shape[-1] // 2)
        y = deform_conv2d(x, offset, self.weight, padding=padding, dilation=self.dilation)
        return y, offset
