"""Backbone registry: `@register_backbone("name")`, `build_backbone`, `list_backbones`.

Model modules register on import; `_load_models` imports them so the registry is complete
whichever entry point a user came through.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from stages.common.registry import Registry

BACKBONES: Registry = Registry("backbone")
register_backbone = BACKBONES.register

# Modules whose import registers backbones. Each new model file adds itself here.
_MODEL_MODULES: tuple[str, ...] = ("stages.features.resnet", "stages.features.lcdc")


def _load_models() -> None:
    for module in _MODEL_MODULES:
        importlib.import_module(module)


def build_backbone(name: str, num_classes: int, **options: Any) -> nn.Module:
    """Build a registered backbone; unknown options are an error from the builder."""
    _load_models()
    return BACKBONES.get(name)(num_classes=num_classes, **options)


def list_backbones() -> list[str]:
    _load_models()
    return BACKBONES.names()
