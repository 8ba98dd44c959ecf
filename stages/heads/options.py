"""Ranges of head options, checked after their types (`stages.common.options.check_options`)
and before torch or sklearn sees them, so a bad value is one line naming the head.

Every integer option of a head (filters, filter_length, layers, stacks, stages, clusters,
pca_dim, window, hidden, stream_passes, and each entry of a filter list) is a count or a
length, so it must be >= 1; every float must be finite and > 0, except `dropout` (a
probability in [0, 1)) and `smoothing_weight` (>= 0, 0 turns the term off).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Any

from stages.common.errors import MotionsegError
from stages.common.options import accepted_options

ZERO_ALLOWED = frozenset({"dropout", "smoothing_weight"})


def check_head_ranges(owner: str, head: type, options: Mapping[str, Any]) -> None:
    """Raise one `MotionsegError` listing every type-checked option that is out of range."""
    annotations = accepted_options(head)
    problems = [
        f"{key} {problem}"
        for key, value in options.items()
        if (problem := _problem(key, value, annotations.get(key, Any))) is not None
    ]
    if problems:
        raise MotionsegError(f"{owner}: " + "; ".join(problems))


def _problem(key: str, value: Any, annotation: Any) -> str | None:
    """What is wrong with `value`, whose type already fits `annotation`."""
    kinds = set(typing.get_args(annotation)) | {annotation}
    if value is None or isinstance(value, bool | str):
        return None
    if float in kinds:
        return _float_problem(key, float(value))
    if isinstance(value, int):
        return None if value >= 1 else f"must be a positive integer, got {value!r}"
    if isinstance(value, list | tuple) and any(isinstance(v, int) and v < 1 for v in value):
        return f"entries must be positive integers, got {list(value)!r}"
    return None


def _float_problem(key: str, value: float) -> str | None:
    if not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if key == "dropout" and not 0 <= value < 1:
        return f"must be in [0, 1), got {value!r}"
    if key in ZERO_ALLOWED and value < 0:
        return f"must be >= 0, got {value!r}"
    if key not in ZERO_ALLOWED and value <= 0:
        return f"must be > 0, got {value!r}"
    return None
