"""Initial weights from a local checkpoint, and clear errors for bad ones."""

from __future__ import annotations

import pytest
import torch
import torchvision

from stages.common.errors import MotionsegError
from stages.features.registry import build_backbone


def test_weights_from_local_state_dict(tmp_path):
    torch.manual_seed(3)
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pt"
    torch.save({"state_dict": source.state_dict()}, path)

    model = build_backbone("resnet", 4, depth=18, weights=str(path))
    assert torch.equal(model.trunk.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert torch.equal(model.trunk.bn1.running_var, source.bn1.running_var)
    fresh = build_backbone("resnet", 4, depth=18, weights="none")
    assert not torch.equal(fresh.trunk.layer3[0].conv1.weight, source.layer3[0].conv1.weight)


def test_missing_weights_file(tmp_path):
    with pytest.raises(MotionsegError, match="not found"):
        build_backbone("resnet", 4, depth=18, weights=str(tmp_path / "nope.pt"))


def test_corrupt_weights_file(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"definitely not a torch file")
    with pytest.raises(MotionsegError, match="corrupt.pt"):
        build_backbone("naive-appear", 4, depth=18, weights=str(path))


def test_weights_for_another_model(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"something.else": torch.zeros(3)}, path)
    with pytest.raises(MotionsegError, match="no parameter"):
        build_backbone("resnet", 4, depth=18, weights=str(path))
