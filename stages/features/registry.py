"""Backbone registry: `@register_backbone("name")`, `build_backbone`, `list_backbones`.

Model modules register on import; the registry imports them on lookup, so it is complete
whichever entry point a user came through. Each new model file adds itself to `modules`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from stages.common.registry import Registry

BACKBONES: Registry = Registry(
    "backbone",
    modules=(
        "stages.features.resnet",
        "stages.features.lcdc",
        "stages.features.models.ms",
        "stages.features.models.dynamics",
    ),
)
register_backbone = BACKBONES.register


def build_backbone(name: str, num_classes: int, **options: Any) -> nn.Module:
    """Build a registered backbone; unknown options are an error from the builder."""
    return BACKBONES.get(name)(num_classes=num_classes, **options)


def list_backbones() -> list[str]:
    return BACKBONES.names()
