"""What every backbone offers the rest of the pipeline.

Input snippets are float tensors `[B, T, 3, H, W]`, already normalised with
`preprocessing["mean"]`/`["std"]`. `forward` returns class logits `[B, num_classes]` for
fine-tuning (the snippet's majority label); `forward_features` returns the feature `[B, D]`
that extraction assigns to the snippet's centre frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Input conventions a backbone was trained with; stored in checkpoints and feature stores.

    `snippet_length` frames are fed per training example; `feature_window` frames (centred) per
    extracted feature (1 for per-frame appearance models). `crop` is the training/eval input
    size, `resize_range` the random short-side range before the random crop.
    """

    snippet_length: int = 16
    feature_window: int = 16
    crop: int = 224
    resize_range: tuple[int, int] = (224, 246)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class Backbone(nn.Module):
    """Base class: subclasses set `feature_dim`, `preprocessing` and implement both forwards."""

    feature_dim: int
    preprocessing: Preprocessing

    def forward_features(self, snippets: torch.Tensor) -> torch.Tensor:  # [B,T,3,H,W] -> [B,D]
        raise NotImplementedError

    def forward(self, snippets: torch.Tensor) -> torch.Tensor:  # [B,T,3,H,W] -> [B,K]
        raise NotImplementedError
