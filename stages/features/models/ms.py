"""MotionSqueeze on TSM-ResNet (Kwon et al., ECCV 2020, seed 001; ../reference/backbones.md `ms`).

A TSM-ResNet-50 (`stages.features.models.tsm`; option `depth: 18`) runs the T frames of a
snippet (8 by default, option 16) as one batch. After `layer2` the MotionSqueeze module
(`MotionSqueeze`) estimates, for every pair of consecutive frames, a displacement and its
confidence from a 15x15 local correlation and adds a feature computed from them to the
`layer2` output of frame t; `layer3`, `layer4` and global average pooling follow per frame.

- Feature (`forward_features`): the pooled feature of the snippet's centre frame, index T//2
  (2048-d; 512-d for ResNet-18).
- Fine-tuning (`forward`): dropout 0.5, then Linear(D, K) per frame, then the mean over T
  (TSM's average consensus).

The module follows the authors' code, not the paper's text where they differ:
- a 64-channel reduction, where the paper says C/2;
- channel order (dx, dy, confidence);
- the confidence taken before the Gaussian;
- an unnormalised Gaussian.

Frame T-1 has no successor and reuses the last pair's displacement. Parameter counts with
random init: module 70,905 (reduction 32,896, transformation 38,009), trunk without fc
23,578,937, with Linear(2048, 18) 23,615,819; ResNet-18: module 20,985, trunk 11,197,497.
Unverifiable: why the paper says C/2 and +1.2%, and whether its R50 runs used the released
64-channel reduction.

Training recipe (paper and code; `pipeline/config/*.yaml`): Nesterov SGD, momentum 0.9, weight
decay 5e-4, lr 0.01 (for batch 48), divided by 10 at epochs 20 and 30 of 40, gradient-norm
clip 200, BatchNorm not frozen ("no partial BN": `freeze_bn` false). The paper's augmentation
(short side 240, multi-scale 224 crops of scales 1 ... 0.66) maps to this project's square
resize to s in `resize_range` = [224, 336] before the 224 crop (crop/s from 1 to 0.67).

Extraction: TSM mixes the frames of a window in every block, and a frame's 4th block already
depends on the window's zero-padded ends, so beyond the stem (conv1 ... max-pool,
`encode_frames`) no activation is shared between the windows of neighbouring centres: the
exact per-window definition costs the trunk once per frame of the window (see
`benchmarks/bench_features.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from stages.common.errors import MotionsegError
from stages.features.base import Backbone, BackboneOptions, Encoded
from stages.features.models.correlation import (
    l2_normalise,
    local_correlation,
    motion_squeeze_flow,
)
from stages.features.models.tsm import shifted_layer, stem
from stages.features.registry import register_backbone
from stages.features.weights import resnet_trunk

REDUCED_CHANNELS = 64
RADIUS = 7  # 15x15 window
SIGMA = 5.0
TEMPERATURE = 100.0
TRANSFORM_WIDTHS = (16, 32, 64)  # pointwise outputs of the first three separable stages


def _separable(in_channels: int, out_channels: int, kernel: int) -> list[nn.Module]:
    """Depthwise kernel x kernel, BN, ReLU, pointwise, BN, ReLU; bias-free as in the code."""
    return [
        nn.Conv2d(
            in_channels, in_channels, kernel, padding=kernel // 2, groups=in_channels, bias=False
        ),
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class MotionSqueeze(nn.Module):
    """Correlation-based motion feature added to a stage's output (paper Fig. 2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduction = nn.Sequential(
            nn.Conv2d(channels, REDUCED_CHANNELS, 1, bias=False),
            nn.BatchNorm2d(REDUCED_CHANNELS),
            nn.ReLU(inplace=True),
        )
        widths = (3, *TRANSFORM_WIDTHS, channels)  # (dx, dy, confidence) in
        kernels = (7, 3, 3, 3)
        layers = []
        for kernel, width_in, width_out in zip(kernels, widths[:-1], widths[1:], strict=True):
            layers += _separable(width_in, width_out, kernel)
        self.transform = nn.Sequential(*layers)

    def flow(self, x: torch.Tensor, time: int) -> torch.Tensor:
        """(dx/7, dy/7, confidence) `[B*T, 3, h, w]` of every frame towards the next one."""
        reduced = l2_normalise(self.reduction(x)).unflatten(0, (-1, time))
        corr = local_correlation(
            reduced[:, :-1].flatten(0, 1), reduced[:, 1:].flatten(0, 1), RADIUS
        )
        flow = motion_squeeze_flow(F.relu(corr), RADIUS, SIGMA, TEMPERATURE)
        flow = flow.unflatten(0, (-1, time - 1))
        return torch.cat([flow, flow[:, -1:]], dim=1).flatten(0, 1)  # frame T-1: last pair's

    def forward(self, x: torch.Tensor, time: int) -> torch.Tensor:
        return x + self.transform(self.flow(x, time))


@dataclass(frozen=True)
class MSOptions(BackboneOptions):
    """Options of `ms` (defaults: the paper's 8-frame TSM-R50, BN not frozen, see above)."""

    depth: Literal[18, 50] = 50
    freeze_bn: bool = False
    snippet_length: int = 8
    resize_range: tuple[int, int] = (224, 336)
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.snippet_length < 2:
            raise ValueError(
                f"snippet_length must be >= 2 (motion needs a frame pair), "
                f"got {self.snippet_length}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        super().__post_init__()


class MotionSqueezeNet(Backbone):
    """TSM-ResNet with MotionSqueeze after `layer2`; see the module docstring."""

    def __init__(self, num_classes: int, options: MSOptions) -> None:
        super().__init__()
        self.trunk = resnet_trunk(options.depth, options.weights, options.width)
        self.feature_dim = self.trunk.fc.in_features
        self.trunk.fc = nn.Identity()
        self.motion = MotionSqueeze(self.trunk.layer2[-1].conv1.in_channels)
        self.dropout = nn.Dropout(options.dropout)
        self.classifier = nn.Linear(self.feature_dim, num_classes)
        self.freeze_bn = options.freeze_bn
        self.preprocessing = options.preprocessing(feature_window=options.snippet_length)

    def encode_frames(self, frames: torch.Tensor) -> Encoded:
        """The stem of every frame, `[N, 64, H/4, W/4]`: all that does not mix frames."""
        return (stem(self.trunk, frames),)

    def frame_features(self, windows: Encoded) -> torch.Tensor:
        """Encoded stems `[B, T, ...]` -> the pooled feature of every frame `[B, T, D]`."""
        (stems,) = windows
        batch, time = stems.shape[:2]
        if time < 2:
            raise MotionsegError(f"ms: a snippet of {time} frame(s) has no frame pair")
        trunk = self.trunk
        x = shifted_layer(
            trunk.layer2, shifted_layer(trunk.layer1, stems.flatten(0, 1), time), time
        )
        x = self.motion(x, time)
        x = shifted_layer(trunk.layer4, shifted_layer(trunk.layer3, x, time), time)
        return trunk.avgpool(x).flatten(1).unflatten(0, (batch, time))

    def features_from_encoded(self, windows: Encoded) -> torch.Tensor:
        """The centre frame's (index T//2) feature `[B, D]`."""
        features = self.frame_features(windows)
        return features[:, features.shape[1] // 2]

    def forward(self, snippets: torch.Tensor) -> torch.Tensor:
        """Per-frame logits averaged over the snippet (TSM's average consensus)."""
        batch, time = snippets.shape[:2]
        encoded = self.encode_frames(snippets.flatten(0, 1))
        features = self.frame_features(tuple(t.unflatten(0, (batch, time)) for t in encoded))
        return self.classifier(self.dropout(features)).mean(dim=1)


# A small random-init instance for the learning tests (tests/test_learning_backbones.py).
SMALL_OPTIONS = {
    "depth": 18,
    "weights": "none",
    "width": 8,
    "crop": 32,
    "resize_range": [32, 36],
    "snippet_length": 8,
}


@register_backbone("ms", sees_motion=True, small_options=SMALL_OPTIONS)
def build_ms(num_classes: int, options: MSOptions) -> MotionSqueezeNet:
    """MotionSqueeze in TSM-ResNet-50 (seed 001), 8-frame snippets, centre-frame features."""
    return MotionSqueezeNet(num_classes, options)
