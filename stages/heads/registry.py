"""Head registry: `@register_head("name")`, `build_head`, `list_heads`.

Every head maps `(x[B, C, T], mask[B, 1, T])` to per-frame logits `[B, num_classes, T]`,
with padded steps (mask 0) influencing neither the loss nor the valid outputs.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from stages.common.registry import Registry

HEADS: Registry = Registry(
    "head", modules=("stages.heads.tcn", "stages.heads.mstcn", "stages.heads.kmeans_mlp")
)
register_head = HEADS.register


def build_head(name: str, in_features: int, num_classes: int, **options: Any) -> nn.Module:
    return HEADS.get(name)(in_features=in_features, num_classes=num_classes, **options)


def list_heads() -> list[str]:
    return HEADS.names()
