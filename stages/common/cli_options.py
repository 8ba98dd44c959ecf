"""Parsing of CLI option values shared by the stage apps."""

from __future__ import annotations

import json
from typing import Any

from stages.common.errors import MotionsegError


def json_object(text: str | None, option: str) -> dict[str, Any]:
    """A `--options`/`--train` JSON object (empty when not given); bad JSON names the option."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise MotionsegError(f"{option}: not valid JSON ({err.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise MotionsegError(f"{option}: expected a JSON object, got {text!r}")
    return value
