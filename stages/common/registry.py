"""A name -> builder registry, as in timm: models register themselves on import."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from stages.common.errors import MotionsegError

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Maps names to builder callables; unknown names list what is available."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(builder: T) -> T:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._builders[name] = builder
            return builder

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._builders[name]
        except KeyError:
            raise MotionsegError(
                f"unknown {self.kind} {name!r} (available: {', '.join(self.names())})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._builders)
