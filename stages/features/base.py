"""What every backbone offers the rest of the pipeline.

Input snippets are float tensors `[B, T, 3, H, W]`, already normalised with
`preprocessing["mean"]`/`["std"]`. `forward` returns class logits `[B, num_classes]` for
fine-tuning (the snippet's majority label); `forward_features` returns the feature `[B, D]`
that extraction assigns to the snippet's centre frame.

`forward_features` is split in two so that extraction can encode every frame once instead of
once per window it belongs to (16 times for a 16-frame window):

- `encode_frames(frames [N, 3, H, W])` -> a tuple of tensors `[N, ...]`: everything that
  depends on one frame only (the ResNet trunk; for LCDC/DC the appearance map and the offset
  fields of every deformable layer);
- `features_from_encoded(windows)` -> `[B, D]`, where `windows` holds the same tensors
  regrouped as `[B, T, ...]`: everything that mixes the frames of a window (mean over the
  window, offset differences, space-time fusion, fc layers).

`forward_features(x)` is by definition `features_from_encoded` of `encode_frames(x.flatten(0,
1))` regrouped per snippet, so the two paths share all code. Encoding frames separately gives
the same numbers as encoding them inside a snippet whenever the per-frame part does not mix
frames, which holds in eval mode (BatchNorm uses running statistics), i.e. at extraction.

A model whose per-frame part needs the following frame(s) (the dynamics model encodes each
frame pair (t, t+1) once) sets `encode_lookahead` to that number: `encode_frames` then reads
its input as consecutive frames of one clip, the encoding of frame i may use frames up to
i + `encode_lookahead` (the last ones repeat the clip's last frame), `forward_features`
encodes each snippet as its own clip, and extraction encodes overlapping chunks of a video
and computes windows that repeat an end frame through `forward_features` itself. Encoding
snippet by snippet gives BatchNorm one snippet's statistics in training, not the batch's:
such a model with BatchNorm should override `forward_features` to encode the batch in one
pass (`dynamics` does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from stages.common.errors import MotionsegError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Per-frame encodings: one or more tensors sharing the leading (frame, or batch and time) dims.
Encoded = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Preprocessing:
    """Input conventions a backbone was trained with; stored in checkpoints and feature stores.

    `snippet_length` frames are fed per training example; `feature_window` frames (centred) per
    extracted feature (1 for per-frame appearance models). `crop` is the training/eval input
    size, `resize_range` the random short-side range before the random crop.

    Which frames a snippet holds (defaults: a clip of consecutive frames). A training window
    starts at an anchor frame and is labelled by the majority of the `label_frames` frames
    from it (None: `snippet_length`). Its frames are the anchor plus `snippet_offsets`: by
    default 0 .. snippet_length - 1; with `train_offsets`, one of those patterns drawn
    uniformly per training example, and `feature_offsets` for validation (e.g. DIMOFS's frame
    pairs (0, delta)). At extraction frame t's window is t plus `window_offsets`:
    `feature_offsets`, else the centred -W//2 .. W - 1 - W//2. Frames past a video's ends are
    the first/last frame (`padding` "replicate") or, with "mirror", the frame at the offset's
    opposite sign (t - d for t + d), clamped into the video.
    """

    snippet_length: int = 16
    feature_window: int = 16
    crop: int = 224
    resize_range: tuple[int, int] = (224, 246)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    extra: dict = field(default_factory=dict)
    label_frames: int | None = None
    train_offsets: tuple[tuple[int, ...], ...] = ()
    feature_offsets: tuple[int, ...] = ()
    padding: Literal["replicate", "mirror"] = "replicate"

    def to_dict(self) -> dict:
        return asdict(self)

    def label_length(self) -> int:
        return self.snippet_length if self.label_frames is None else self.label_frames

    def consecutive(self) -> bool:
        """True when a training snippet is the plain clip anchor .. anchor + length - 1."""
        return not self.train_offsets

    def snippet_offsets(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Frame offsets of one training (`rng` given) or validation (`rng` None) snippet."""
        if self.consecutive():
            return np.arange(self.snippet_length)
        if rng is None:
            return np.asarray(self.feature_offsets or self.train_offsets[0])
        return np.asarray(self.train_offsets[int(rng.integers(len(self.train_offsets)))])

    def window_offsets(self) -> np.ndarray:
        """Offsets from the frame a feature belongs to, of the frames its window holds."""
        if self.feature_offsets:
            return np.asarray(self.feature_offsets)
        return np.arange(self.feature_window) - self.feature_window // 2


@dataclass(frozen=True)
class SnippetOptions:
    """Options every backbone family accepts (the `--options` JSON keys, stored in checkpoints).

    A family subclasses this or `BackboneOptions` (frozen) to add its own fields or change a
    default; the registry parses user options into the class its builder's `options`
    parameter is annotated with (`stages.common.options`). `resize_range` None means
    (crop, crop + 22), the paper's 224 -> [224, 246] margin at any crop. `width`
    (`BackboneOptions`) is the ResNet trunk's base channels (64 in every paper; smaller only for
    CPU demos and tests, from random init; see `stages.features.weights.resnet_trunk`).
    """

    weights: str = "imagenet"
    freeze_bn: bool = True
    snippet_length: int = 16
    crop: int = 224
    resize_range: tuple[int, int] | None = None
    width: int = 64

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.snippet_length < 1:
            raise ValueError(f"snippet_length must be >= 1, got {self.snippet_length}")
        if self.crop < 1:
            raise ValueError(f"crop must be >= 1, got {self.crop}")
        low, high = self.train_resize_range()
        if not self.crop <= low <= high:
            raise ValueError(
                f"resize_range must be [low, high] with crop ({self.crop}) <= low <= high, "
                f"got {[low, high]}"
            )

    def train_resize_range(self) -> tuple[int, int]:
        return self.resize_range or (self.crop, self.crop + 22)

    def preprocessing(self, feature_window: int) -> Preprocessing:
        """The input conventions these options give, extracting one feature per `feature_window`."""
        return Preprocessing(
            snippet_length=self.snippet_length,
            feature_window=feature_window,
            crop=self.crop,
            resize_range=self.train_resize_range(),
        )


@dataclass(frozen=True)
class BackboneOptions(SnippetOptions):
    """The common options plus the `depth` of a ResNet trunk (families without one, such as
    the BN-Inception-based `dynamics`, subclass `SnippetOptions`)."""

    depth: int = 50


class Backbone(nn.Module):
    """Base class: subclasses set `feature_dim`, `preprocessing` and implement
    `encode_frames`, `features_from_encoded` and `forward` (see the module docstring)."""

    feature_dim: int
    preprocessing: Preprocessing
    trunk: nn.Module  # the ResNet
    freeze_bn = False  # keep the trunk's BatchNorm layers in eval mode while training
    encode_lookahead = 0  # following frames a frame's encoding depends on (see module doc)

    def train(self, mode: bool = True) -> Backbone:
        """Like `nn.Module.train`, but with `freeze_bn` the trunk's BatchNorm layers stay in
        eval mode, so their running statistics are never updated."""
        super().train(mode)
        if mode and self.freeze_bn:
            for module in self.trunk.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def encode_frames(self, frames: torch.Tensor) -> Encoded:  # [N,3,H,W] -> ([N,...], ...)
        raise NotImplementedError

    def features_from_encoded(self, windows: Encoded) -> torch.Tensor:  # ([B,T,...],) -> [B,D]
        raise NotImplementedError

    def forward_features(self, snippets: torch.Tensor) -> torch.Tensor:  # [B,T,3,H,W] -> [B,D]
        if snippets.ndim != 5 or snippets.shape[2] != 3:
            raise MotionsegError(
                f"{type(self).__name__}: snippets must be [B, T, 3, H, W], "
                f"got {list(snippets.shape)}"
            )
        if self.encode_lookahead:
            clips = [self.encode_frames(snippet) for snippet in snippets]
            return self.features_from_encoded(tuple(map(torch.stack, zip(*clips, strict=True))))
        batch, time = snippets.shape[:2]
        encoded = self.encode_frames(snippets.flatten(0, 1))
        return self.features_from_encoded(tuple(t.unflatten(0, (batch, time)) for t in encoded))

    def forward(self, snippets: torch.Tensor) -> torch.Tensor:  # [B,T,3,H,W] -> [B,K]
        raise NotImplementedError
