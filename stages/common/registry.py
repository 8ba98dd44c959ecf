"""A name -> builder registry, as in timm: models register themselves on import."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from stages.common.errors import MotionsegError

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Maps names to builder callables; unknown names list what is available.

    `package` is the models package (e.g. "stages.features.models"): lookups first import
    every module in it, so a new model file registers itself just by existing there, and the
    registry is complete whichever entry point a user came through. `register(name, **traits)`
    may attach facts about the model that code and tests ask without building it
    (`traits(name)`; e.g. a backbone's `sees_motion` and `small_options`).
    """

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self._builders: dict[str, T] = {}
        self._traits: dict[str, dict[str, Any]] = {}
        self._loaded = False

    def register(self, name: str, **traits: Any) -> Callable[[T], T]:
        def decorator(builder: T) -> T:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._builders[name] = builder
            self._traits[name] = dict(traits)
            return builder

        return decorator

    def _load(self) -> None:
        if self._loaded:
            return
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__, f"{self.package}."):
            importlib.import_module(module.name)
        self._loaded = True

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._builders[name]
        except KeyError:
            raise MotionsegError(
                f"unknown {self.kind} {name!r} (available: {', '.join(self.names())})"
            ) from None

    def traits(self, name: str) -> dict[str, Any]:
        """What `name` was registered with (a copy; empty when nothing was declared)."""
        self.get(name)
        return dict(self._traits[name])

    def names(self) -> list[str]:
        self._load()
        return sorted(self._builders)
