"""Head registry: `@register_head("name")`, `build_head`, `list_heads`.

Every head maps `(x[B, C, T], mask[B, 1, T])` to per-frame logits `[B, num_classes, T]`,
with padded steps (mask 0) influencing neither the loss nor the valid outputs.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from stages.common.registry import Registry

HEADS: Registry = Registry("head")
register_head = HEADS.register

_MODEL_MODULES: tuple[str, ...] = (
    "stages.heads.tcn",
    "stages.heads.mstcn",
    "stages.heads.kmeans_mlp",
)


def _load_models() -> None:
    for module in _MODEL_MODULES:
        importlib.import_module(module)


def head_class(name: str) -> Any:
    """The registered builder (head class) of `name`, e.g. for its `default_train`."""
    _load_models()
    return HEADS.get(name)


def build_head(name: str, in_features: int, num_classes: int, **options: Any) -> nn.Module:
    return head_class(name)(in_features=in_features, num_classes=num_classes, **options)


def list_heads() -> list[str]:
    _load_models()
    return HEADS.names()
