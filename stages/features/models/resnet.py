"""Appearance-only backbones: a torchvision ResNet applied to every frame of a snippet.

One class, `FrameResNet`, covers three registry entries that differ only in parameters:

- `resnet`: plain torchvision ResNet-18/50 (global average pool -> linear classifier). It is
  fine-tuned on snippets by averaging the per-frame logits over the snippet; because the
  classifier is linear this equals classifying the mean of the frame features, which is how it
  is computed. Its feature is one frame's pooled ResNet feature (`feature_window` 1, so
  512-d for ResNet-18, 2048-d for ResNet-50).
- `naive-appear`: Table 3's NaiveAppear of the LCDC paper (seed 000): frame-wise class
  prediction with ResNet-50, no temporal information, so a training example is a single frame
  (`snippet_length` 1).
- `naive-temp-appear`: Table 3's NaiveTempAppear: the same network fed a 16-frame snippet whose
  frame features are averaged "before feeding to two fc layers with ReLU"; its feature covers
  the whole snippet (`feature_window` = `snippet_length`).

The paper says both naive models end in two fc layers with ReLU but not their width; we use
1024, the width of LCDC's `fc_new_1`/`fc_new_2`, and extract the second fc layer's output (as
LCDC's features are `fc_new_2`), so the Table-3 rows hand the heads features of the same size.
With global average pooling this gives 26.7M parameters for ResNet-50 and 18 classes; the paper
prints 38.9M, which implies an unstated larger head (a flattened 7x7x256 map into the first fc,
as in LCDC's fusion, would give 37.9M). We keep global pooling so the model works at any crop
size.

BatchNorm: the LCDC authors froze BN statistics (batches of 3 snippets are too small to
estimate them). With `freeze_bn` (default) every BN layer stays in eval mode during training,
so its running statistics are never updated; its affine weight and bias still learn unless
`freeze_bn_affine` is set. Freezing only makes sense with pretrained weights: with
`weights: none` the frozen statistics are the initial ones (mean 0, variance 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from stages.features.base import Backbone, BackboneOptions, Encoded, Preprocessing
from stages.features.registry import register_backbone
from stages.features.weights import resnet_trunk

NAIVE_FC_DIMS = (1024, 1024)
# A random-init ResNet-18 of width 8 at 32 px: trains in seconds on a CPU (registry traits).
# naive-appear keeps its 1-frame snippets; the others see 8 frames.
SMALL_FRAME_OPTIONS = {
    "depth": 18, "weights": "none", "width": 8, "freeze_bn": False, "crop": 32,
    "resize_range": [32, 36],
}  # fmt: skip
SMALL_OPTIONS = {**SMALL_FRAME_OPTIONS, "snippet_length": 8}


class FrameResNet(Backbone):
    """ResNet per frame -> mean over the snippet's frames -> optional fc+ReLU layers -> linear."""

    def __init__(
        self,
        num_classes: int,
        depth: int = 50,
        weights: str = "imagenet",
        width: int = 64,
        fc_dims: Sequence[int] = (),
        freeze_bn: bool = True,
        freeze_bn_affine: bool = False,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        super().__init__()
        trunk = resnet_trunk(depth, weights, width)
        trunk_dim = trunk.fc.in_features
        trunk.fc = nn.Identity()
        self.trunk = trunk
        layers: list[nn.Module] = []
        out_dim = trunk_dim
        for dim in fc_dims:
            layers += [nn.Linear(out_dim, dim), nn.ReLU(inplace=True)]
            out_dim = dim
        self.fc = nn.Sequential(*layers)
        self.classifier = nn.Linear(out_dim, num_classes)
        self.feature_dim = out_dim
        self.preprocessing = preprocessing or Preprocessing()
        self.freeze_bn = freeze_bn
        if freeze_bn_affine:
            for module in self.trunk.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.requires_grad_(False)

    def encode_frames(self, frames: torch.Tensor) -> Encoded:
        """The pooled ResNet feature of every frame: `[N, 3, H, W]` -> `([N, trunk_dim],)`."""
        return (self.trunk(frames),)

    def features_from_encoded(self, windows: Encoded) -> torch.Tensor:
        """Mean of a window's frame features, then the fc layers (none for `resnet`)."""
        (frames,) = windows
        return self.fc(frames.mean(dim=1))

    def forward(self, snippets: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(snippets))


@dataclass(frozen=True)
class ResNetOptions(BackboneOptions):
    """`resnet` and `naive-temp-appear`: the common options plus `freeze_bn_affine`."""

    freeze_bn_affine: bool = False


@dataclass(frozen=True)
class NaiveAppearOptions(ResNetOptions):
    """`naive-appear` classifies single frames, so a training example is one frame."""

    snippet_length: int = 1


def _build(
    num_classes: int,
    options: ResNetOptions,
    fc_dims: Sequence[int],
    window_is_snippet: bool,
) -> FrameResNet:
    window = options.snippet_length if window_is_snippet else 1
    return FrameResNet(
        num_classes,
        depth=options.depth,
        weights=options.weights,
        width=options.width,
        fc_dims=fc_dims,
        freeze_bn=options.freeze_bn,
        freeze_bn_affine=options.freeze_bn_affine,
        preprocessing=options.preprocessing(feature_window=window),
    )


@register_backbone("resnet", sees_motion=False, small_options=SMALL_OPTIONS)
def build_resnet(num_classes: int, options: ResNetOptions) -> FrameResNet:
    """Per-frame ResNet features; fine-tuned on 16-frame snippets by averaging frame logits."""
    return _build(num_classes, options, (), window_is_snippet=False)


@register_backbone("naive-appear", sees_motion=False, small_options=SMALL_FRAME_OPTIONS)
def build_naive_appear(num_classes: int, options: NaiveAppearOptions) -> FrameResNet:
    """NaiveAppear (LCDC Table 3): one frame in, ResNet + two fc layers, per-frame features."""
    return _build(num_classes, options, NAIVE_FC_DIMS, window_is_snippet=False)


@register_backbone("naive-temp-appear", sees_motion=False, small_options=SMALL_OPTIONS)
def build_naive_temp_appear(num_classes: int, options: ResNetOptions) -> FrameResNet:
    """NaiveTempAppear (LCDC Table 3): mean of 16 frame features, then two fc layers."""
    return _build(num_classes, options, NAIVE_FC_DIMS, window_is_snippet=True)
