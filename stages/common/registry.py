"""A name -> builder registry, as in timm: models register themselves on import."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from stages.common.errors import MotionsegError

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Maps names to builder callables; unknown names list what is available.

    `modules` are the model modules whose import registers builders; lookups import them
    first, so the registry is complete whichever entry point a user came through.
    """

    def __init__(self, kind: str, modules: Sequence[str] = ()) -> None:
        self.kind = kind
        self.modules = tuple(modules)
        self._builders: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(builder: T) -> T:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._builders[name] = builder
            return builder

        return decorator

    def _load(self) -> None:
        for module in self.modules:
            importlib.import_module(module)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._builders[name]
        except KeyError:
            raise MotionsegError(
                f"unknown {self.kind} {name!r} (available: {', '.join(self.names())})"
            ) from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._builders)
