"""CUDA speed settings: what they change on a CUDA device, and that they change nothing else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stages.common.runtime import DeviceSettings, apply_device_settings
from stages.features.registry import build_backbone

OPTIONS = {"depth": 18, "weights": "none", "crop": 32, "resize_range": [32, 36]}
FLAGS = ("cuda.matmul.allow_tf32", "cudnn.allow_tf32", "cudnn.benchmark")


def flags() -> dict[str, bool]:
    values = {}
    for name in FLAGS:
        owner, attr = name.rsplit(".", 1)
        target = torch.backends
        for part in owner.split("."):
            target = getattr(target, part)
        values[name] = bool(getattr(target, attr))
    return values


def layouts(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: p.stride() for name, p in model.named_parameters()}


def test_settings_do_nothing_off_cuda():
    model = build_backbone("lcdc", 4, snippet_length=6, **OPTIONS)
    before, strides = flags(), layouts(model)
    apply_device_settings(model, torch.device("cpu"), DeviceSettings())
    assert flags() == before and layouts(model) == strides


@pytest.fixture
def restore_flags():
    """The switches are process-wide: put them back for the other tests."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    ) = saved


def test_on_cuda_2d_conv_weights_go_channels_last_and_flags_follow(restore_flags):
    """Applied for a CUDA device (the weights may stay on the CPU for this test): every
    Conv2d weight becomes NHWC, 3-D convs (LCDC's fusion) and other parameters keep theirs."""
    model = build_backbone("lcdc", 4, snippet_length=6, **OPTIONS)
    conv2d = {n + ".weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    strides = layouts(model)
    apply_device_settings(model, torch.device("cuda"), DeviceSettings(cudnn_benchmark=False))
    assert flags() == dict.fromkeys(FLAGS, True) | {"cudnn.benchmark": False}
    params = dict(model.named_parameters())
    assert conv2d and all(
        params[n].is_contiguous(memory_format=torch.channels_last) for n in conv2d
    )
    assert any(params[n].dim() == 5 for n in params)
    assert all(params[n].stride() == strides[n] for n in params if n not in conv2d)
    assert any(params[n].stride() != strides[n] for n in conv2d)
