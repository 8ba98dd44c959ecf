"""Head registry: `@register_head("name")`, `build_head`, `list_heads`.

Every head maps `(x[B, C, T], mask[B, 1, T])` to per-frame logits `[B, num_classes, T]`,
with padded steps (mask 0) influencing neither the loss nor the valid outputs. Every module in
`stages.heads.models` is imported on the first lookup and registers its heads; a head's
options are its constructor's keyword parameters, checked against that signature.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from stages.common.options import check_options
from stages.common.registry import Registry
from stages.heads.options import check_head_ranges

HEADS: Registry = Registry("head", package="stages.heads.models")
register_head = HEADS.register


def build_head(name: str, in_features: int, num_classes: int, **options: Any) -> nn.Module:
    """Build a head; unknown or ill-typed options are a MotionsegError listing the accepted."""
    head = HEADS.get(name)
    owner = f"head {name!r}"
    checked = check_options(head, options, owner, skip=("in_features", "num_classes"))
    check_head_ranges(owner, head, checked)
    return head(in_features=in_features, num_classes=num_classes, **checked)


def list_heads() -> list[str]:
    return HEADS.names()
