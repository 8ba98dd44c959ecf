"""User options (JSON objects) checked against a signature, as timm's `create_model` does.

A model family's options are one frozen dataclass: its fields write each name, type and
default once. `parse_options` turns a JSON mapping into that dataclass: unknown keys are an
error listing the accepted ones, and every value must fit its annotation (booleans are not
numbers, lists are accepted for tuples, `Literal` lists its choices). The same check runs
against any callable's signature (`check_options`), e.g. a head's constructor or a training
settings dataclass, so there is one option mechanism in the project.

Range checks belong in the dataclass's `__post_init__`: a `ValueError` raised there is turned
into a `MotionsegError` naming the owner.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from stages.common.errors import MotionsegError

T = TypeVar("T")


def accepted_options(target: Callable, skip: Collection[str] = ()) -> dict[str, Any]:
    """Option name -> annotation of `target`'s keyword parameters (a class: its `__init__`)."""
    plain_class = inspect.isclass(target) and not dataclasses.is_dataclass(target)
    hints = typing.get_type_hints(target.__init__ if plain_class else target)
    parameters = inspect.signature(target).parameters.values()
    return {
        p.name: hints.get(p.name, Any)
        for p in parameters
        if p.name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def check_options(
    target: Callable, values: Mapping[str, Any], owner: str, skip: Collection[str] = ()
) -> dict[str, Any]:
    """`values` checked against `target`'s signature; returned with lists made tuples where
    the annotation is a tuple. Errors name `owner` (e.g. "backbone 'lcdc'")."""
    accepted = accepted_options(target, skip)
    unknown = sorted(set(values) - set(accepted))
    if unknown:
        raise MotionsegError(
            f"{owner}: unknown option(s) {unknown} (accepted: {', '.join(accepted)})"
        )
    return {name: _checked(owner, name, value, accepted[name]) for name, value in values.items()}


def parse_options(cls: type[T], values: Mapping[str, Any], owner: str) -> T:
    """The options dataclass `cls` built from a JSON mapping; any problem is a MotionsegError."""
    try:
        return cls(**check_options(cls, values, owner))
    except ValueError as err:
        raise MotionsegError(f"{owner}: {err}") from None


def _checked(owner: str, name: str, value: Any, annotation: Any) -> Any:
    if not _fits(value, annotation):
        raise MotionsegError(
            f"{owner}: option {name!r} must be {_describe(annotation)}, got {value!r}"
        )
    if annotation is float:
        return float(value)  # JSON writes 4.0 as 4: a float option stays a float
    return tuple(value) if isinstance(value, list) and _wants_tuple(annotation) else value


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _wants_tuple(annotation: Any) -> bool:
    """A tuple annotation (alone or in a union): JSON lists become tuples, so the frozen
    options stay hashable and compare equal to their defaults."""
    if _is_union(annotation):
        return any(_wants_tuple(arg) for arg in typing.get_args(annotation))
    return typing.get_origin(annotation) is tuple


def _fits(value: Any, annotation: Any) -> bool:
    """Whether a JSON value fits `annotation` (the types options use)."""
    if annotation is Any:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _is_union(annotation):
        return any(_fits(value, arg) for arg in args)
    if origin is typing.Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if origin is tuple or origin in (collections.abc.Sequence, list):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_fits, value, args))
        return all(_fits(item, args[0]) for item in value) if args else True
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _describe(annotation: Any) -> str:
    if _is_union(annotation):
        return " or ".join(_describe(arg) for arg in typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if typing.get_args(annotation):
        return str(annotation).replace("typing.", "").replace("collections.abc.", "")
    return getattr(annotation, "__name__", str(annotation))
