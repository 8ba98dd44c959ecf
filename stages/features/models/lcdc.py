"""LCDC and DC backbones of seed 000 (Mac et al., "Learning motion in feature space", Table 4).

A ResNet-50 runs all frames of all snippets as one batch `[B*T, 3, H, W]` (shared weights). res5
has stride 1 and dilation 2 (14x14 maps at 224 px); its three 3x3 convs (res5a/b/c `branch2b`)
become deformable convs whose offsets are predicted from the `branch2a` output by a 3x3
dilation-2 conv (`trunk.layer4.{i}.conv2.offset`, see `stages.features.models.deform`):

- `lcdc`: 2 offset channels per layer (locally-consistent, 9,218 parameters each);
- `dc`: 72 channels (4 deformable groups x 9 taps x 2; 331,848 parameters each).

Motion is the offset difference r(t) = offset(t) - offset(t-1) of every layer (T-1 maps).
`conv_new_1` (1x1 -> 256, ReLU) on res5c gives appearance; the snippet's last frame is dropped,
the three difference maps are concatenated (262 channels for LCDC, 472 for DC) and fused by
`stages.features.models.lcdc_fusion` -> 2x2 max-pool -> `fc_new_1` (1024, ReLU) -> `fc_new_2` (1024,
ReLU; `forward_features`) -> `cls_score`. No dropout. With 18 classes: LCDC 42.7M parameters
(27,654 in offset layers), DC 45.7M (995,544), as in paper Table 3. Everything up to
`conv_new_1` and the offsets depends on one frame only (`encode_frames`, run once per frame at
extraction); the differences, fusion and fc layers act per window (`features_from_encoded`).

Choices where the paper is silent:
- Offsets gather dilated neighbours (paper eq. 4-7); see `stages.features.models.deform`.
- torchvision's dilated ResNet-50 keeps dilation 1 in res5a's 3x3 conv; all three LCDC/DC convs
  here use dilation 2 as in the authors' code (same weight shape, ImageNet weights reused).
- `fc_new_1` takes `256 * p * p` inputs, p = (res5 side) // 2 with res5 side = `crop` halved,
  rounding up, four times (2x2 'valid' pool, as the authors' `pool_new`): p = 7 at crop 224
  (12,544 inputs), 2 at crop 64, 1 at crop 32; crops under 17 px are refused.
- The fusion's 3D convs have no bias (authors' code: BN follows; see `lcdc_fusion`).
- `freeze_bn` keeps the trunk's BatchNorm layers in eval mode (running statistics frozen, as the
  authors did); their affine parameters still train. The fusion's BN3d trains normally.
- `depth=18` (CPU demos/tests): ResNet-18's res5 has two BasicBlocks; their strides become 1
  and all their 3x3 convs get dilation/padding 2; the second 3x3 conv of each block is the
  LCDC/DC conv (offsets from the first conv's output), so 2 motion layers (260 channels for
  LCDC) and `conv_new_1` maps 512 -> 256.
- `width`, `fusion_width`, `fc_width` (not in the paper; CPU demos and tests from random init):
  the trunk's base channels (64), the channels of `conv_new_1` and the space-time fusion (256)
  and the width of `fc_new_1`/`fc_new_2` (1024, the feature size). At a narrow trunk the fixed
  fusion and fc layers dominate the cost, hence their own options.
- `lcdc_form`: "warp" (warp once with `grid_sample`, then the ordinary dilated conv, eq. 6-7) or
  "deform" (`torchvision.ops.deform_conv2d` on expanded offsets, eq. 4-5); same numbers.
  Default "warp", the faster on CPU. `benchmarks/bench_lcdc.py` (forward+backward of one
  16-frame snippet, 2 CPU threads on a heavily shared machine, so absolute times are inflated):
  depth 50 at 224 px 44.9 s "warp" vs 55.2 s "deform" (DC 51.6 s); at 64 px 6.4 s vs 10.2 s;
  depth 18 at 224 px 9.6 s vs 13.6 s, at 64 px 1.25 s vs 1.84 s. The res5 conv alone
  (16 x 512 x 14 x 14) 2.9 s vs 7.7 s (0.42 s vs 3.0 s on an idle machine).
  "undilated" is the authors' TensorFlow network: each tap takes the offset of its
  *undilated* neighbour (`expand_cir_shift`) while the conv samples at dilation 2; it departs
  from eq. 6-7 and is offered to reproduce the released model (runs as "deform").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from stages.common.errors import MotionsegError
from stages.features.base import Backbone, BackboneOptions, Encoded
from stages.features.models.deform import (
    DeformConv2dWithOffsets,
    LCDCForm,
    LocallyConsistentDeformConv2d,
)
from stages.features.models.lcdc_fusion import MIN_SNIPPET_LENGTH, SpaceTimeFusion
from stages.features.registry import register_backbone
from stages.features.weights import resnet_trunk

Motion = Literal["lcdc", "dc"]
RES5_DILATION = 2
DC_OFFSET_GROUPS = 4
APPEARANCE_CHANNELS = 256  # conv_new_1 and the fusion's 3D convs (default fusion_width)
FEATURE_DIM = 1024  # fc_new_1, fc_new_2 (default fc_width)
DEFAULT_LCDC_FORM = "warp"
# A random-init ResNet-18 of width 8 at 32 px with a narrow fusion: trains in seconds on a CPU.
SMALL_OPTIONS = {
    "depth": 18, "weights": "none", "width": 8, "fusion_width": 32, "fc_width": 128,
    "freeze_bn": False, "snippet_length": 8, "crop": 32, "resize_range": [32, 36],
}  # fmt: skip


def res5_map_size(side: int) -> int:
    """Side of the res5 map for an input side: four stride-2 stages, each rounding up."""
    for _ in range(4):
        side = (side + 1) // 2
    return side


def pooled_map_size(side: int) -> int:
    """Side of the map after the fusion's 2x2 stride-2 'valid' max-pool (7 at 224)."""
    return res5_map_size(side) // 2


def _dilated_trunk(depth: int, weights: str, width: int) -> ResNet:
    """ResNet whose res5 has stride 1; the 3x3 convs of res5 get dilation 2 (see module doc)."""
    if depth == 50:
        return resnet_trunk(50, weights, width, replace_stride_with_dilation=[False, False, True])
    trunk = resnet_trunk(18, weights, width)  # BasicBlock refuses dilation: patch layer4 by hand
    for block in trunk.layer4:
        block.conv1.stride = (1, 1)
        block.conv1.dilation = (RES5_DILATION, RES5_DILATION)
        block.conv1.padding = (RES5_DILATION, RES5_DILATION)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    return trunk


def _install_deformable_convs(trunk: ResNet, motion: Motion, lcdc_form: LCDCForm) -> None:
    """Replace every res5 block's `conv2` by an LCDC/DC conv initialised from its weights."""
    for block in trunk.layer4:
        weight = block.conv2.weight
        if motion == "lcdc":
            block.conv2 = LocallyConsistentDeformConv2d(weight, RES5_DILATION, lcdc_form)
        else:
            block.conv2 = DeformConv2dWithOffsets(weight, RES5_DILATION, DC_OFFSET_GROUPS)


def _res5_block(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A torchvision Bottleneck/BasicBlock forward whose `conv2` also returns its offsets."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    out, offset = block.conv2(out)
    out = block.bn2(out)
    if isinstance(block, Bottleneck):
        out = block.bn3(block.conv3(block.relu(out)))
    return block.relu(out + identity), offset


def offset_differences(offsets: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Motion features r(t) = offset(t) - offset(t-1) per layer: `[B, T, C, h, w]` -> T-1 maps."""
    return [offset[:, 1:] - offset[:, :-1] for offset in offsets]


class LCDCNet(Backbone):
    """LCDC (`motion="lcdc"`) or DC (`motion="dc"`) snippet model; see the module docstring."""

    def __init__(
        self,
        num_classes: int,
        motion: Motion,
        options: DCOptions,
        lcdc_form: LCDCForm = DEFAULT_LCDC_FORM,
    ) -> None:
        super().__init__()
        self.motion = motion
        self.freeze_bn = options.freeze_bn
        self.trunk = _dilated_trunk(options.depth, options.weights, options.width)
        res5_channels = self.trunk.fc.in_features  # 2048 / 512 (ResNet-50 / -18) at width 64
        self.trunk.fc = nn.Identity()  # the ImageNet classifier is not part of the model
        _install_deformable_convs(self.trunk, motion, lcdc_form)
        motion_channels = sum(block.conv2.offset.out_channels for block in self.trunk.layer4)
        fusion, fc = options.fusion_width, options.fc_width
        self.conv_new_1 = nn.Conv2d(res5_channels, fusion, 1)
        self.fusion = SpaceTimeFusion(fusion + motion_channels, fusion)
        self.pooled_size = pooled_map_size(options.crop)
        self.fc_new_1 = nn.Linear(fusion * self.pooled_size**2, fc)
        self.fc_new_2 = nn.Linear(fc, fc)
        self.cls_score = nn.Linear(fc, num_classes)
        self.feature_dim = fc
        self.preprocessing = options.preprocessing(feature_window=options.snippet_length)

    def encode_frames(self, frames: torch.Tensor) -> Encoded:
        """Per frame: the `conv_new_1` map `[N, 256, h, w]`, then each res5 layer's offsets
        `[N, C, h, w]` (all computed from that frame alone; see `Backbone`)."""
        self._check_frames(frames)
        trunk = self.trunk
        x = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(frames))))
        x = trunk.layer3(trunk.layer2(trunk.layer1(x)))
        offsets = []
        for block in trunk.layer4:
            x, offset = _res5_block(block, x)
            offsets.append(offset)
        return (F.relu(self.conv_new_1(x)), *offsets)

    def features_from_encoded(self, windows: Encoded) -> torch.Tensor:
        """Appearance of the first T-1 frames + offset differences -> fusion -> fc_new_1/2."""
        appearance, *offsets = windows
        if appearance.shape[1] < MIN_SNIPPET_LENGTH:
            raise MotionsegError(
                f"{self.motion}: a snippet of {appearance.shape[1]} frames is too short; the "
                f"space-time fusion needs at least {MIN_SNIPPET_LENGTH}"
            )
        fused = torch.cat([appearance[:, :-1], *offset_differences(offsets)], dim=2)
        x = self.fusion(fused).flatten(1)
        return F.relu(self.fc_new_2(F.relu(self.fc_new_1(x))))

    def forward(self, snippets: torch.Tensor) -> torch.Tensor:
        return self.cls_score(self.forward_features(snippets))

    def _check_frames(self, frames: torch.Tensor) -> None:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise MotionsegError(
                f"{self.motion}: frames must be [N, 3, H, W], got {list(frames.shape)}"
            )
        pooled = tuple(pooled_map_size(side) for side in frames.shape[-2:])
        if pooled != (self.pooled_size, self.pooled_size):
            raise MotionsegError(
                f"{self.motion}: frames of {frames.shape[-2]}x{frames.shape[-1]} px give "
                f"{pooled[0]}x{pooled[1]} pooled maps, but the model was built for crop "
                f"{self.preprocessing.crop} ({self.pooled_size}x{self.pooled_size})"
            )


@dataclass(frozen=True)
class DCOptions(BackboneOptions):
    """Options of `dc` (and, with `lcdc_form`, of `lcdc`); depth 18 or 50 only (see above).
    `resize_range` follows `crop` as for every backbone: (crop, crop + 22) unless given."""

    depth: Literal[18, 50] = 50
    fusion_width: int = APPEARANCE_CHANNELS
    fc_width: int = FEATURE_DIM

    def __post_init__(self) -> None:
        if self.fusion_width < 1 or self.fc_width < 1:
            raise ValueError(
                f"fusion_width and fc_width must be >= 1, got {self.fusion_width}, {self.fc_width}"
            )
        if self.snippet_length < MIN_SNIPPET_LENGTH:
            raise ValueError(
                f"snippet_length must be an integer >= {MIN_SNIPPET_LENGTH} (T-1 difference "
                f"maps go through two temporal pools of 2), got {self.snippet_length!r}"
            )
        if pooled_map_size(self.crop) < 1:
            raise ValueError(f"crop must be an integer >= 17 px, got {self.crop!r}")
        super().__post_init__()


@dataclass(frozen=True)
class LCDCOptions(DCOptions):
    """Options of `lcdc`: those of `dc` plus the `lcdc_form` of the deformable convs."""

    lcdc_form: LCDCForm = DEFAULT_LCDC_FORM


@register_backbone("lcdc", sees_motion=True, small_options=SMALL_OPTIONS)
def build_lcdc(num_classes: int, options: LCDCOptions) -> LCDCNet:
    """LCDC: 2-channel locally-consistent offsets at res5a/b/c (paper's model)."""
    return LCDCNet(num_classes, "lcdc", options, options.lcdc_form)


@register_backbone("dc", sees_motion=True, small_options=SMALL_OPTIONS)
def build_dc(num_classes: int, options: DCOptions) -> LCDCNet:
    """DC: plain deformable convs (4 groups, 72 offset channels) at res5a/b/c (ablation)."""
    return LCDCNet(num_classes, "dc", options)
