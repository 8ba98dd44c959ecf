"""User options checked against a signature; registries discover their model modules."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

import pytest

from stages.common.errors import MotionsegError
from stages.common.options import check_options, parse_options
from stages.features.registry import list_backbones, options_class
from stages.heads.registry import build_head


@dataclass(frozen=True)
class Toy:
    depth: Literal[18, 50] = 50
    lr: float = 0.1
    flag: bool = False
    size: tuple[int, int] | None = None
    name: str = "x"

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def test_values_are_checked_and_lists_become_tuples():
    parsed = parse_options(Toy, {"depth": 18, "lr": 1, "flag": True, "size": [3, 4]}, "toy")
    assert parsed == Toy(depth=18, lr=1, flag=True, size=(3, 4))
    assert parse_options(Toy, {}, "toy") == Toy()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dpeth": 18}, r"toy: unknown option\(s\) \['dpeth'\] \(accepted: depth, lr, flag"),
        ({"depth": 34}, "option 'depth' must be one of 18, 50, got 34"),
        ({"depth": 18.0}, "'depth' must be one of 18, 50"),
        ({"lr": True}, "option 'lr' must be float"),
        ({"lr": "fast"}, "option 'lr' must be float"),
        ({"flag": 1}, "option 'flag' must be bool"),
        ({"size": [3]}, "option 'size' must be tuple"),
        ({"size": [3, "4"]}, "option 'size'"),
        ({"name": 3}, "option 'name' must be str"),
        ({"lr": -1}, "toy: lr must be positive, got -1"),
    ],
)
def test_bad_values_are_one_line_user_errors(values, message):
    with pytest.raises(MotionsegError, match=message):
        parse_options(Toy, values, "toy")


def test_a_constructor_signature_is_checked_the_same_way():
    def build(in_features: int, filters: int = 64, dropout: float = 0.3) -> None:
        """A head-like constructor."""

    assert check_options(build, {"filters": 8}, "head", skip=("in_features",)) == {"filters": 8}
    with pytest.raises(MotionsegError, match=r"unknown option\(s\) \['in_features'\]"):
        check_options(build, {"in_features": 8}, "head", skip=("in_features",))
    with pytest.raises(MotionsegError, match=r"head 'st-cnn': unknown .*filterz.*filter_length"):
        build_head("st-cnn", 4, 3, filterz=3)


def test_every_backbone_has_a_frozen_options_dataclass_of_defaults():
    for name in list_backbones():
        cls = options_class(name)
        assert cls.__dataclass_params__.frozen
        assert parse_options(cls, {}, name) == cls()


def test_registry_imports_every_module_of_its_package(tmp_path, monkeypatch):
    package = tmp_path / "toy_models_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module in ("alpha", "beta"):
        (package / f"{module}.py").write_text(
            f"from toy_registry import TOYS\n\n\n@TOYS.register({module!r})\ndef build():\n"
            f"    return {module!r}\n"
        )
    (tmp_path / "toy_registry.py").write_text(
        "from stages.common.registry import Registry\n\nTOYS = Registry('toy', 'toy_models_pkg')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from toy_registry import TOYS

        assert TOYS.names() == ["alpha", "beta"]
        assert TOYS.get("beta")() == "beta"
        with pytest.raises(MotionsegError, match="unknown toy 'gamma' .*alpha, beta"):
            TOYS.get("gamma")
    finally:
        for name in [n for n in sys.modules if n.startswith(("toy_registry", "toy_models_pkg"))]:
            del sys.modules[name]
