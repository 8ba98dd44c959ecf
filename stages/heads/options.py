"""Head options checked against each head's constructor annotations, before torch sees them.

Every integer option of a head (filters, filter_length, layers, stacks, stages, clusters,
pca_dim, window, hidden, stream_passes, and each entry of a filter list) is a count or a
length, so it must be >= 1; every float must be finite and > 0, except `dropout` (a
probability in [0, 1)) and `smoothing_weight` (>= 0, 0 turns the term off).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from stages.common.errors import MotionsegError

ZERO_ALLOWED = frozenset({"dropout", "smoothing_weight"})


def check_head_options(name: str, head_class: type, options: Mapping[str, Any]) -> None:
    """Raise one `MotionsegError` listing every option of `head_class` that is out of range."""
    hints = typing.get_type_hints(head_class.__init__)
    problems = [
        f"{key} {problem}"
        for key, value in options.items()
        if key in hints and (problem := _problem(key, value, hints[key])) is not None
    ]
    if problems:
        raise MotionsegError(f"head {name!r}: " + "; ".join(problems))


def _problem(key: str, value: Any, hint: Any) -> str | None:
    allowed = set(typing.get_args(hint)) if _is_union(hint) else {hint}
    if value is None:
        return None if type(None) in allowed else "must not be null"
    if int in allowed:
        return _count_problem(value)
    if float in allowed:
        return _float_problem(key, value)
    if any(typing.get_origin(h) in (Sequence, list, tuple) for h in allowed):
        if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
            return f"must be a non-empty list of positive integers, got {value!r}"
        return next((f"entry {p}" for v in value if (p := _count_problem(v))), None)
    if str in allowed and not isinstance(value, str):
        return f"must be a string, got {value!r}"
    return None


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _count_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"must be a positive integer, got {value!r}"
    return None


def _float_problem(key: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if key == "dropout" and not 0 <= value < 1:
        return f"must be in [0, 1), got {value!r}"
    if key in ZERO_ALLOWED and value < 0:
        return f"must be >= 0, got {value!r}"
    if key not in ZERO_ALLOWED and value <= 0:
        return f"must be > 0, got {value!r}"
    return None
