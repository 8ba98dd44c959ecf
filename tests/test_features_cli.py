"""`motionseg features list`: every backbone with its parameter counts."""

from __future__ import annotations

from typer.testing import CliRunner

from stages.cli import app
from stages.features.registry import list_backbones


def test_list_shows_every_backbone_with_counts():
    result = CliRunner().invoke(app, ["features", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["backbone", "params", "offset"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == list_backbones()
    # name, "23.5M", "(23,544,914)", offset params, feature dim, snippet, window
    assert rows["resnet"][1:] == ["23.5M", "(23,544,914)", "-", "2048", "16", "1"]
    assert rows["naive-appear"][1:] == ["26.7M", "(26,674,258)", "-", "1024", "1", "1"]
    assert rows["naive-temp-appear"][3:] == ["-", "1024", "16", "16"]
    assert rows["dem"][1:] == ["33.2M", "(33,184,099)", "-", "512", "16", "16"]
    assert rows["dimofs"][1:] == ["72.5M", "(72,473,828)", "4,720,640", "2048", "2", "2"]
