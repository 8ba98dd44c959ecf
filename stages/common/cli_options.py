"""CLI options and option-value parsing shared by the stage apps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from stages.common.errors import MotionsegError

ManifestOption = Annotated[Path, typer.Option(help="Dataset manifest folder.")]
RootOption = Annotated[Path, typer.Option(help="Data root the manifest's paths are relative to.")]


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
