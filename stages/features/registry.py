"""Backbone registry: `@register_backbone("name")`, `build_backbone`, `list_backbones`.

Every module in `stages.features.models` is imported on the first lookup and registers its
entries. A builder has the signature `(num_classes: int, options: SomeOptions) -> Backbone`,
where `SomeOptions` is the family's frozen options dataclass; `build_backbone` reads that class
from the builder's annotation and parses the user's options (JSON kwargs) into it, so unknown
or ill-typed options are an error listing what the backbone accepts.

Every entry declares two traits (`register_backbone(name, sees_motion=..., small_options=...)`):
`sees_motion`, whether its feature depends on the order of a window's frames (a motion model;
a per-frame or temporal-mean model cannot tell a leftward from a rightward slide), and
`small_options`, options of a small random-init instance that trains in seconds on a CPU.
tests/test_learning_backbones.py trains every entry at its `small_options` on snippets whose
classes differ only in the direction of motion and holds it to what `sees_motion` promises.
"""

from __future__ import annotations

import typing
from typing import Any

from stages.common.errors import MotionsegError
from stages.common.options import parse_options
from stages.common.registry import Registry
from stages.features.base import Backbone

BACKBONES: Registry = Registry("backbone", package="stages.features.models")
register_backbone = BACKBONES.register


def options_class(name: str) -> type:
    """The options dataclass of backbone `name` (the annotation of its builder's `options`)."""
    return typing.get_type_hints(BACKBONES.get(name))["options"]


def build_backbone(name: str, num_classes: int, **options: Any) -> Backbone:
    """Build a registered backbone from user options (the builder kwargs checkpoints store)."""
    parsed = parse_options(options_class(name), options, f"backbone {name!r}")
    return BACKBONES.get(name)(num_classes=num_classes, options=parsed)


def sees_motion(name: str) -> bool:
    """Whether backbone `name` declared itself a motion model (see the module docstring)."""
    traits = BACKBONES.traits(name)
    if "sees_motion" not in traits:
        raise MotionsegError(f"backbone {name!r} was registered without `sees_motion`")
    return bool(traits["sees_motion"])


def list_backbones() -> list[str]:
    return BACKBONES.names()
