"""`dimofs`: motion offsets between two frames through a deformable resampling (seed 002).

Bertasius et al. learn motion by predicting frame A's targets from frame B's features
resampled at offsets computed from f_A - f_B. Here (../shared/reference/backbones.md,
`dimofs`): frames A = t and B = t + delta go through a shared ResNet-50-FPN
(`stages.features.models.fpn`, option `depth` 101 as in the paper, 18 for CPU tests); at each
of P2..P5 a `MotionOffsets` module (own weights per scale, unverifiable in the paper) predicts
256 (dy, dx) pairs per pixel from f_A - f_B (zero-initialised) and resamples f_B with a 1x1
deformable conv. The whole frame is the "RoI": `AdaptiveAvgPool2d(7)` on P4, the level
torchvision's LevelMapper assigns to a 224 x 224 box. Appearance MLP 256*49 -> 1024 -> 1024 and
motion MLP (on the P4 offsets) 512*49 -> 1024 -> 1024, ReLU. The feature of frame t is
concat(MLP_app(pool(f_A)), MLP_mot(pool(offsets))) = **2048-d**.
Counts (tested): R50-FPN 26,799,296; each scale 1,245,696; 72,418,496 without classifiers,
72,473,828 with Linear(1024, 18) + Linear(2048, 18); depth 101 91,358,400.

Training, choices of this project (the paper's pretext task is pose, and it trains the
recognition stage separately; neither fits action segmentation without pose labels):
- Pretext (the DIMOFS step): A's action label predicted by `pretext_classifier`
  (Linear(1024, K)) from MLP_app(pool(resampled f_B)). With `pretext_levels: all` (default)
  each of P2..P5 is pooled and classified through the same MLP and classifier and the logits
  averaged, as an FPN shares its box head over levels, so every scale module learns; `p4`
  uses P4 alone as the reference reads the paper (the other three scale modules then never
  receive a gradient).
- Recognition (stage 2, Fig. 4 without deformable convs): `classifier` (Linear(2048, K)) on
  the feature, trained at the same time. `forward` returns the mean of the pretext and
  recognition logits (one cross-entropy, as the trainer expects). `recognition: end_to_end`
  (default) fine-tunes the whole motion path on the action labels: the recognition loss
  reaches MLP_mot, the P4 offset conv and the FPN, as the paper's stage 2 optimises the Fig. 4
  network, initialised from the DIMOFS step, for its labels, and as every other backbone here
  is fine-tuned. `detached` (the earlier behaviour) detaches the MLP inputs, so the labels
  reach the offsets only through the pretext, which asks for A's label, not A's motion. On
  the direction test (tests/test_learning_backbones.py) that stays at chance: held-out 0.53
  at depth 18 / width 64 (P4 offsets |mean| 0.02 px, the same mean dx for both directions)
  and 0.40 at the current `SMALL_OPTIONS` (there the offsets' mean dx does take the motion's
  sign, +-0.65 px, but drowned in offsets of |mean| 14 px that nothing ties to the labels);
  `end_to_end` reaches 0.95 at the same options.
- Frame pairs: a training example is A = the window's frame, labelled by A alone, and
  B = A + delta, delta drawn uniformly from `train_deltas` (default -2..2 frames at the
  backbone rate, about +-0.33 s at 6 fps; the paper's +-10 is at 25 fps); validation and
  extraction use `extract_delta` (+2), mirrored (t - 2) where t + 2 is past the video's end.
  With `recognition: end_to_end`, a negative delta shows A's motion reversed under the same
  label, so the labels can teach the offsets speed but not direction; `train_deltas: [1, 2]`
  would keep direction (not measured on real data).
- Input: ImageNet normalisation, `crop` 224 (square resize in 224..246 then a random crop, as
  the other backbones). BatchNorm: torchvision's detection default `FrozenBatchNorm2d`
  (`freeze_bn`; false gives trainable BatchNorm2d, +53,120 parameters at depth 50).
- `width` narrows the ResNet (the FPN stays 256 channels), `roi_size` (7) and `mlp_width`
  (1024) shrink the RoI pool and the MLPs; not in the paper, for CPU tests from random init.
- `feature: offsets` makes the feature the 7 x 7 (`offset_grid`) pooled P4 offsets, 512 per
  cell (the cells stand in for the paper's pose joints, for the section 5.2 pipeline through
  the `kmeans-mlp` head); training is the same.

Extraction: the FPN is per frame, so `encode_frames` runs it once per frame (P4 only: the
feature needs nothing else, see `fpn.fpn_level`) and `features_from_encoded` computes the
offsets and MLPs per pair. `benchmarks/bench_features.py --backbones dimofs` (2 CPU threads,
random weights, one timed run at load ~15 on 2 cores; see `dem` for the `lcdc` reference
measured alongside): forward+backward of one 224 px pair 56.5 s; extraction 0.15 frames/s per
pair -> 0.43 two-phase (each frame's FPN once instead of twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from stages.common.errors import MotionsegError
from stages.features.base import Backbone, BackboneOptions, Encoded, Preprocessing
from stages.features.models.fpn import (
    FPN_CHANNELS,
    LEVELS,
    P4,
    MotionOffsets,
    fpn_level,
    resnet_fpn,
)
from stages.features.registry import register_backbone

POOLED = 7  # the RoI pool's side
BRANCH_DIM = 1024  # each MLP
MIN_CROP = 32  # P5 (stride 32) keeps at least one pixel
PAIR = 2


@dataclass(frozen=True)
class DIMOFSOptions(BackboneOptions):
    """Options of `dimofs` (see the module docstring); `snippet_length` is the pair, 2."""

    depth: Literal[18, 50, 101] = 50
    snippet_length: int = PAIR
    train_deltas: tuple[int, ...] = (-2, -1, 0, 1, 2)
    extract_delta: int = 2
    pretext_levels: Literal["all", "p4"] = "all"
    recognition: Literal["end_to_end", "detached"] = "end_to_end"
    feature: Literal["appearance_motion", "offsets"] = "appearance_motion"
    offset_grid: int = POOLED
    roi_size: int = POOLED
    mlp_width: int = BRANCH_DIM

    def __post_init__(self) -> None:
        if self.snippet_length != PAIR:
            raise ValueError(
                f"snippet_length must be {PAIR} (a frame pair), got {self.snippet_length}"
            )
        if self.crop < MIN_CROP:
            raise ValueError(f"crop must be >= {MIN_CROP} px, got {self.crop}")
        if not self.train_deltas:
            raise ValueError("train_deltas must hold at least one frame offset")
        for name in ("offset_grid", "roi_size", "mlp_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        super().__post_init__()

    def preprocessing(self, feature_window: int) -> Preprocessing:
        return Preprocessing(
            snippet_length=PAIR,
            feature_window=feature_window,
            crop=self.crop,
            resize_range=self.train_resize_range(),
            label_frames=1,
            train_offsets=tuple((0, delta) for delta in self.train_deltas),
            feature_offsets=(0, self.extract_delta),
            padding="mirror",
        )


def mlp(in_features: int, width: int) -> nn.Sequential:
    """The 2-layer box-head MLP (Linear, ReLU, Linear, ReLU) of one branch."""
    return nn.Sequential(
        nn.Linear(in_features, width),
        nn.ReLU(inplace=True),
        nn.Linear(width, width),
        nn.ReLU(inplace=True),
    )


class DIMOFSNet(Backbone):
    """Frame pair `[B, 2, 3, H, W]` (A, B) -> logits / 2048-d feature of A; see module doc."""

    def __init__(self, num_classes: int, options: DIMOFSOptions) -> None:
        super().__init__()
        self.trunk = resnet_fpn(
            options.depth, options.weights, options.width, frozen_bn=options.freeze_bn
        )
        self.freeze_bn = options.freeze_bn
        self.scales = nn.ModuleList(MotionOffsets(FPN_CHANNELS) for _ in LEVELS)
        cells, width = options.roi_size**2, options.mlp_width
        self.pool = nn.AdaptiveAvgPool2d(options.roi_size)
        self.appearance_mlp = mlp(FPN_CHANNELS * cells, width)
        self.motion_mlp = mlp(2 * FPN_CHANNELS * cells, width)
        self.pretext_classifier = nn.Linear(width, num_classes)
        self.classifier = nn.Linear(2 * width, num_classes)
        self.pretext_levels = range(len(LEVELS)) if options.pretext_levels == "all" else [P4]
        self.feature = options.feature
        self.detach_recognition = options.recognition == "detached"
        self.offset_pool = nn.AdaptiveAvgPool2d(options.offset_grid)
        if options.feature == "offsets":
            self.feature_dim = 2 * FPN_CHANNELS * options.offset_grid**2
        else:
            self.feature_dim = 2 * width
        self.preprocessing = options.preprocessing(feature_window=PAIR)

    def encode_frames(self, frames: torch.Tensor) -> Encoded:
        """P4 of every frame: `[N, 3, H, W]` -> `([N, 256, H/16, W/16],)`."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise MotionsegError(f"dimofs: frames must be [N, 3, H, W], got {list(frames.shape)}")
        return (fpn_level(self.trunk, frames, P4),)

    def features_from_encoded(self, windows: Encoded) -> torch.Tensor:
        """P4 of each pair `[B, 2, 256, h, w]` -> offsets -> the feature of frame A."""
        (p4,) = windows
        f_a, f_b = p4[:, 0], p4[:, 1]
        offsets = self.scales[P4].offsets(f_a, f_b)
        if self.feature == "offsets":
            return self.offset_pool(offsets).flatten(1)
        return self.pair_feature(f_a, offsets)

    def pair_feature(self, f_a: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """concat(MLP_app(pool(f_A^P4)), MLP_mot(pool(offsets^P4))), `[B, 2 * mlp_width]`."""
        appearance = self.appearance_mlp(self.pool(f_a).flatten(1))
        motion = self.motion_mlp(self.pool(offsets).flatten(1))
        return torch.cat([appearance, motion], dim=1)

    def recognition_logits(self, f_a: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """`classifier` on the feature; with `recognition: detached` its MLP inputs are
        detached, so the action labels train the MLPs and classifier but not the offsets."""
        if self.detach_recognition:
            f_a, offsets = f_a.detach(), offsets.detach()
        return self.classifier(self.pair_feature(f_a, offsets))

    def forward(self, snippets: torch.Tensor) -> torch.Tensor:
        """Mean of the pretext logits (A's label from resampled B, per level) and the
        recognition logits (`recognition_logits`); see the module docstring."""
        if snippets.ndim != 5 or snippets.shape[1] != PAIR:
            raise MotionsegError(
                f"dimofs: input must be frame pairs [B, 2, 3, H, W], got {list(snippets.shape)}"
            )
        batch = snippets.shape[0]
        pyramid = self.trunk(torch.cat([snippets[:, 0], snippets[:, 1]]))
        pretext, p4 = [], None
        for index in self.pretext_levels:
            f_a, f_b = pyramid[LEVELS[index]].split(batch)
            resampled, offsets = self.scales[index](f_a, f_b)
            pooled = self.pool(resampled).flatten(1)
            pretext.append(self.pretext_classifier(self.appearance_mlp(pooled)))
            if index == P4:
                p4 = (f_a, offsets)
        recognition = self.recognition_logits(*p4)
        return (torch.stack(pretext).mean(dim=0) + recognition) / 2


# A small random-init instance for the learning tests (tests/test_learning_backbones.py):
# ResNet-18 of width 16 at 32 px, where P4 is 2 x 2, so the RoI pool keeps those 2 x 2 cells
# (7 x 7 would repeat each about 12 times) and the MLPs are 128 wide. The full-size MLPs
# (40M parameters) cost 10x the time and, under Adam at 3e-3 from random init, blew up
# (losses 20-40, dead motion units). At width 8 the trunk did not learn the task in 6 epochs.
SMALL_OPTIONS = {
    "depth": 18, "weights": "none", "width": 16, "crop": 32, "roi_size": 2, "mlp_width": 128,
}  # fmt: skip


@register_backbone("dimofs", sees_motion=True, small_options=SMALL_OPTIONS)
def build_dimofs(num_classes: int, options: DIMOFSOptions) -> DIMOFSNet:
    """DIMOFS: ResNet-FPN frame pairs, per-scale deformable offsets, 2048-d features."""
    return DIMOFSNet(num_classes, options)
