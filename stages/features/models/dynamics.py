"""Disentangled dynamics (Zhao, Xiong & Lin, "Recognize actions by disentangling components of
dynamics", CVPR 2018, seed 004; ../reference/backbones.md `dynamics`).

An 8-frame snippet (consecutive frames at the backbone rate) is encoded per frame by the
shared low level, BN-Inception's `conv1_7x7_s2` (64 x 112 x 112 at 224 px), then by three
branches, each a BN-Inception `pool1` ... `inception_5b` with its own weights
(`stages.features.models.bninception`):

- static appearance: every frame's map, with temporal max-pooling (kernel 2, stride 2) after
  `pool2`, `inception_3c` and `inception_4e` (8 -> 4 -> 2 -> 1 frames), global average pool;
- motion: for each consecutive pair (t, t+1), the cosine cost volume of F_t and F_{t+1} over a
  (2r+1)^2 window, the displacement V = (v^y, v^x) in pixels from one joint softmax of the
  volume / tau (eq. 2), an entry `Conv2d(2, 64, 3)` + BN + ReLU, the branch, global average
  pool, mean over the 7 pairs;
- appearance change: F_{t+1} minus F_t backward-warped by V (bilinear, zeros outside), the
  branch, global average pool, mean over pairs.

The feature (`forward_features`) is the 3072-d concatenation (static, motion, change) for the
window's centre frame; the paper fuses predictions, not features, so this is our choice. For
fine-tuning (`forward`) each 1024-d part goes through dropout and its own Linear(1024, K); the
three logits are averaged (the paper's fusion by average), and the loss is the cross-entropy of
that average. Parameters (random init): 30,792,864 without heads, 30,848,214 with three
18-class heads.

Choices where the paper is silent (its supplement, which holds them, is not available):
- `radius` 7 (15 x 15 window) and `tau` 0.1: options;
- the kernel-2 temporal pools; for T other than 8 they halve until one frame is left (odd
  lengths repeat the last frame), and the remaining frames are averaged after pooling;
- `dropout` 0.8 after each global pool (TSN's RGB default; the paper follows TSN [30]);
- the static branch shares conv1 with the others;
- the low level runs at stride 2 (the paper's "112 x 112" row); the 224 x 224 row
  (`lowlevel_stride=1`) is not implemented;
- no pretrained weights exist here (`weights` is `none` or a local state dict of this model);
  ImageNet mean/std (RGB) normalisation, not Caffe's BGR mean;
- one learning rate for all branches (the paper used 0.001 for the static branch and 0.005
  for the others); `pipeline/config/*.yaml` use SGD momentum 0.9, lr 0.005, gradient clip 20.

Extraction: only the static branch mixes the frames of a window; the motion and change
branches depend on one frame pair each, so `encode_frames` treats its input as consecutive
frames and computes every pair's pooled motion and change features once (`encode_lookahead`
1: frame i's encoding also uses frame i+1; the last frame pairs with itself), together with
the static branch's per-frame part (conv1 ... pool2). Per window only the static branch's
temporal pools and inception stages remain, and the mean of 7 pair features.

`forward_features` (training, BatchNorm re-estimation) encodes all snippets of a batch in one
pass and only their T - 1 real pairs (`encode_clips`), rather than `Backbone`'s snippet by
snippet: that made every BatchNorm of conv1 and of the motion and change branches normalise
over one snippet's 8 pairs (7 real, 1 of the last frame with itself), 8 values per channel in
the 1 x 1 maps of inception_4e/5 at 32 px, while evaluation uses population statistics. The
model learned features relative to its own snippet (and to the self-pair) that the running
statistics do not reproduce: on the direction test (`tests/test_learning_backbones.py`) it
scored 1.00 held-out with per-snippet statistics but 0.60 in eval mode; encoded per batch it
reaches 0.93 in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from stages.common.errors import MotionsegError
from stages.features.base import Backbone, Encoded, SnippetOptions
from stages.features.models.bninception import (
    CONV1_CHANNELS,
    BNInceptionTrunk,
    ConvUnit,
    conv1_unit,
    scaled,
)
from stages.features.models.correlation import (
    backward_warp,
    l2_normalise,
    local_correlation,
    soft_displacement,
)
from stages.features.registry import register_backbone
from stages.features.weights import load_checkpoint_into

BRANCHES = ("static", "motion", "change")


def temporal_max_pool(x: torch.Tensor, time: int) -> tuple[torch.Tensor, int]:
    """Max over consecutive frame pairs (kernel 2, stride 2) of `[B*T, ...]`; an odd T repeats
    its last frame; T = 1 is left as is. Returns the pooled maps and their frame count."""
    if time == 1:
        return x, 1
    frames = x.unflatten(0, (-1, time))
    if time % 2:
        frames = torch.cat([frames, frames[:, -1:]], dim=1)
    pooled = frames.unflatten(1, (-1, 2)).amax(dim=2)
    return pooled.flatten(0, 1), pooled.shape[1]


def global_pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3))


@dataclass(frozen=True)
class DynamicsOptions(SnippetOptions):
    """Options of `dynamics`: no ResNet depth; window `radius`, softmax `tau` and `dropout`
    are the choices listed above. `weights` is `none` or a local state dict of this model;
    `freeze_bn` keeps every BatchNorm layer in eval mode (TSN's partial BN is not offered).
    `width` is conv1's channels (64 in the paper); every BN-Inception width scales with it
    (not in the paper: CPU demos and tests)."""

    weights: str = "none"
    freeze_bn: bool = False
    snippet_length: int = 8
    resize_range: tuple[int, int] = (224, 336)
    radius: int = 7
    tau: float = 0.1
    dropout: float = 0.8
    width: int = CONV1_CHANNELS

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.snippet_length < 2:
            raise ValueError(
                f"snippet_length must be >= 2 (motion needs a frame pair), "
                f"got {self.snippet_length}"
            )
        if self.radius < 1:
            raise ValueError(f"radius must be >= 1, got {self.radius}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.weights == "imagenet":
            raise ValueError(
                "no ImageNet BN-Inception weights are available; use `weights: none` or the "
                "path of a state dict of this model"
            )
        super().__post_init__()


class DisentangledDynamics(Backbone):
    """Static, motion and appearance-change branches on a shared conv1; see the module doc."""

    encode_lookahead = 1

    def __init__(self, num_classes: int, options: DynamicsOptions) -> None:
        super().__init__()
        self.radius, self.tau = options.radius, float(options.tau)
        scale = options.width / CONV1_CHANNELS
        self.conv1 = conv1_unit(scale)
        self.static = BNInceptionTrunk(scale)
        self.motion_entry = ConvUnit(2, scaled(CONV1_CHANNELS, scale), 3, padding=1)
        self.motion = BNInceptionTrunk(scale)
        self.change = BNInceptionTrunk(scale)
        self.branch_dim = self.static.out_channels  # 1024 at width 64
        self.dropout = nn.Dropout(options.dropout)
        self.heads = nn.ModuleList(nn.Linear(self.branch_dim, num_classes) for _ in BRANCHES)
        self.feature_dim = self.branch_dim * len(BRANCHES)
        self.freeze_bn = options.freeze_bn
        self.preprocessing = options.preprocessing(feature_window=options.snippet_length)
        if options.weights not in ("none", ""):
            load_checkpoint_into(self, Path(options.weights), strict=False)

    @property
    def trunk(self) -> nn.Module:
        """What `freeze_bn` acts on (see `Backbone.train`): every branch."""
        return self

    def displacement(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """V `[N, 2, h, w]` (dy, dx in pixels) from the cosine cost volume of two conv1 maps."""
        corr = local_correlation(l2_normalise(first), l2_normalise(second), self.radius)
        return soft_displacement(corr, self.radius, self.tau)

    def pair_features(
        self, first: torch.Tensor, second: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled motion and appearance-change features `[N, 1024]` of conv1 map pairs."""
        displacement = self.displacement(first, second)
        motion = global_pool(self.motion(self.motion_entry(displacement)))
        change = global_pool(self.change(second - backward_warp(first, displacement)))
        return motion, change

    def encode_clips(self, clips: torch.Tensor, pair_last_with_itself: bool) -> Encoded:
        """Clips of consecutive frames `[B, T, 3, H, W]`, all in one pass -> the static branch
        up to pool2 `[B, T, 192, h, w]` and the motion and change features `[B, P, 1024]` of
        the pairs (t, t+1): P = T - 1, or T with the last frame paired with itself (what
        extraction's per-frame encodings need). One pass over the whole batch, not one per
        clip, so that BatchNorm in training normalises with the batch's statistics of real
        pairs, the statistics it is evaluated with after re-estimation (see the module doc)."""
        batch, time = clips.shape[:2]
        low = self.conv1(clips.flatten(0, 1)).unflatten(0, (batch, time))
        first, second = low[:, :-1], low[:, 1:]
        if pair_last_with_itself:
            first, second = low, torch.cat([second, low[:, -1:]], dim=1)
        motion, change = self.pair_features(first.flatten(0, 1), second.flatten(0, 1))
        static = self.static.stage2(low.flatten(0, 1)).unflatten(0, (batch, time))
        return static, motion.unflatten(0, (batch, -1)), change.unflatten(0, (batch, -1))

    def encode_frames(self, frames: torch.Tensor) -> Encoded:
        """Consecutive frames `[N, 3, H, W]` -> per frame i: the static branch up to pool2
        `[N, 192, h, w]` and the motion and change features `[N, 1024]` of the pair (i, i+1),
        the last frame paired with itself."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise MotionsegError(f"dynamics: frames must be [N, 3, H, W], got {list(frames.shape)}")
        return tuple(part[0] for part in self.encode_clips(frames[None], True))

    def forward_features(self, snippets: torch.Tensor) -> torch.Tensor:
        """`[B, T, 3, H, W]` -> `[B, 3072]`: `features_from_encoded` of the batch's T - 1 real
        pairs per snippet, encoded together (`Backbone`'s default encodes snippet by snippet)."""
        if snippets.ndim != 5 or snippets.shape[2] != 3:
            raise MotionsegError(
                f"dynamics: snippets must be [B, T, 3, H, W], got {list(snippets.shape)}"
            )
        return self.features_from_encoded(self.encode_clips(snippets, False))

    def features_from_encoded(self, windows: Encoded) -> torch.Tensor:
        """Static branch over the window's frames, mean of its first T - 1 pair features
        (the pairs within the window; a T-th one pairs the last frame with itself): `[B, 3072]`."""
        static, motion, change = windows
        batch, time = static.shape[:2]
        x = static.flatten(0, 1)
        x, frames = temporal_max_pool(x, time)
        x, frames = temporal_max_pool(self.static.stage3(x), frames)
        if self.training:
            self._check_batchnorm_values(batch, frames, *x.shape[2:])
        x, frames = temporal_max_pool(self.static.stage4(x), frames)
        static_feature = global_pool(self.static.stage5(x)).unflatten(0, (batch, frames))
        parts = (static_feature, motion[:, : time - 1], change[:, : time - 1])
        return torch.cat([part.mean(dim=1) for part in parts], dim=1)

    def _check_batchnorm_values(self, batch: int, frames: int, height: int, width: int) -> None:
        """In training, BatchNorm needs > 1 value per channel; the static branch's last maps
        (inception_4e's output and stage 5: one more halving in space and time) are the
        smallest. Small crops with one snippet per batch fail there: say so in one line."""
        values = batch * ((frames + 1) // 2) * ((height + 1) // 2) * ((width + 1) // 2)
        if values < 2:
            raise MotionsegError(
                f"dynamics: {batch} snippet(s) of {self.preprocessing.snippet_length} frames at "
                f"crop {self.preprocessing.crop} leave BatchNorm a single value per channel in "
                "inception_4e/5; train with batch_size >= 2, more frames or a larger crop"
            )

    def forward(self, snippets: torch.Tensor) -> torch.Tensor:
        """Average of the three branch classifiers' logits."""
        parts = self.forward_features(snippets).split(self.branch_dim, dim=1)
        logits = [head(self.dropout(part)) for head, part in zip(self.heads, parts, strict=True)]
        return torch.stack(logits).mean(dim=0)


# A small random-init instance for the learning tests (tests/test_learning_backbones.py).
SMALL_OPTIONS = {
    "weights": "none",
    "width": 8,
    "crop": 32,
    "resize_range": [32, 36],
    "snippet_length": 8,
}


@register_backbone("dynamics", sees_motion=True, small_options=SMALL_OPTIONS)
def build_dynamics(num_classes: int, options: DynamicsOptions) -> DisentangledDynamics:
    """Disentangled dynamics (seed 004): static, motion and change BN-Inception branches."""
    return DisentangledDynamics(num_classes, options)
