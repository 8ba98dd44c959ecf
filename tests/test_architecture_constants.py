"""Architecture constants that change no shape or parameter count, so no other test would notice
them change. Each is checked against the value in the paper or the authors' code, by behaviour
where the module allows it.

Sources: Lea et al.'s `tf_models.py` (TemporalConvolutionalNetworks: `Dilated_TCN` blocks
`range(0, dilation_depth + 1)` with `atrous_rate=2**i`, kernel 3; `ED_TCN` decoder
`UpSampling1D(2)`, which repeats each step); Farha & Gall's MS-TCN (`DilatedResidualLayer(2 ** i)`
for i < 10); the LCDC authors' network (`*_branch2b_offset` 3x3 convs with `rate=2`,
`expand_cir_shift` gathering undilated neighbours, TF 'SAME' 3D convs, `reduce_time`: the mean
over time, ../shared/reference/backbones.md).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from stages.features.models import lcdc_fusion
from stages.features.models.deform import (
    LocallyConsistentDeformConv2d,
    expand_lcdc_offsets,
    lcdc_conv2d,
)
from stages.features.models.lcdc_fusion import SpaceTimeConv, SpaceTimeFusion
from stages.features.registry import build_backbone
from stages.heads.models.mstcn import MSTCN
from stages.heads.models.tcn import EDTCN, DilatedTCN

SMALL = {"depth": 18, "weights": "none", "crop": 32}


def test_dilated_tcn_blocks_use_dilation_2_to_the_i_for_layers_plus_one_blocks_per_stack():
    head = DilatedTCN(8, 3, filters=4, stacks=2, layers=5)
    convs = [block.dilated for block in head.blocks]
    assert [c.dilation[0] for c in convs] == [1, 2, 4, 8, 16, 32] * 2
    assert {c.kernel_size[0] for c in convs} == {3}


def test_mstcn_layers_use_dilation_2_to_the_i_in_every_stage():
    head = MSTCN(8, 3)
    for stage in head.stages:
        assert [layer.dilated.dilation[0] for layer in stage.layers] == [2**i for i in range(10)]


def test_ed_tcn_decoder_upsamples_by_repeating_each_step():
    """Keras' UpSampling1D(2) is nearest: the decoder convs see every step twice."""
    torch.manual_seed(0)
    head = EDTCN(5, 3, filters=(4, 6), filter_length=3).eval()
    seen = []
    for conv in head.decoder:
        conv.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    head(torch.randn(1, 5, 16), torch.ones(1, 1, 16))
    assert [x.shape[-1] for x in seen] == [8, 16]
    for x in seen:
        assert torch.equal(x[..., 0::2], x[..., 1::2])
        assert not torch.equal(x[..., 0::2][..., :-1], x[..., 0::2][..., 1:])


@pytest.mark.parametrize("name", ["lcdc", "dc"])
def test_offset_convs_are_3x3_at_the_deformable_convs_dilation_2(name):
    model = build_backbone(name, 4, **SMALL, snippet_length=6)
    for block in model.trunk.layer4:
        offset = block.conv2.offset
        assert (offset.kernel_size, offset.dilation, offset.padding) == ((3, 3), (2, 2), (2, 2))


def test_fusion_pads_time_one_before_two_after_as_tensorflow_same():
    """Conv3d (4, 3, 3) whose only weight is temporal tap 0 at the spatial centre: with TF
    'SAME' (1 frame before, 2 after) output t reads input t - 1. BN in eval with fresh
    statistics scales by 1/sqrt(1 + eps); the pool keeps the larger of frames 2t', 2t' + 1."""
    block = SpaceTimeConv(1, 1).eval()
    with torch.no_grad():
        block.conv.weight.zero_()
        block.conv.weight[0, 0, 0, 1, 1] = 1.0
    x = torch.arange(1.0, 9.0).view(1, 1, 8, 1, 1).expand(1, 1, 8, 3, 3).contiguous()
    out = block(x)[0, 0, :, 1, 1] * (1 + block.bn.eps) ** 0.5
    shifted = torch.cat([torch.zeros(1), torch.arange(1.0, 8.0)])  # x[t - 1], zero at t = 0
    expected = torch.maximum(shifted[0::2], shifted[1::2])
    torch.testing.assert_close(out, expected)
    assert lcdc_fusion.SAME_PADDING_4x3x3[-2:] == (1, 2)


def test_fusion_takes_the_mean_over_time_then_a_2x2_max_pool(monkeypatch):
    fusion = SpaceTimeFusion(2, 2)
    fusion.spacetime_conv1 = nn.Identity()
    fusion.spacetime_conv2 = nn.Identity()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 2, 4, 4)  # [B, T, C, h, w]
    expected = F.max_pool2d(x.mean(dim=1), kernel_size=2, stride=2)
    torch.testing.assert_close(fusion(x), expected)


def field(height: int, width: int) -> torch.Tensor:
    """A non-constant offset field, distinct at every location (float64)."""
    rows = torch.arange(height, dtype=torch.float64).view(height, 1)
    cols = torch.arange(width, dtype=torch.float64).view(1, width)
    return torch.stack((0.3 * torch.sin(rows + 2 * cols), 0.4 * torch.cos(2 * rows - cols)))[None]


def test_undilated_form_gathers_the_neighbours_at_distance_one():
    """The authors' `expand_cir_shift`: tap (a, b) of location n takes the offset at
    n + (a - 1, b - 1), zero beyond the border, whatever the conv's dilation."""
    offset = field(5, 6)
    expanded = expand_lcdc_offsets(offset, 3, 1)
    padded = F.pad(offset, (1, 1, 1, 1))
    for a in range(3):
        for b in range(3):
            k = 3 * a + b
            neighbour = padded[..., a : a + 5, b : b + 6]
            torch.testing.assert_close(expanded[:, 2 * k : 2 * k + 2], neighbour)


def test_both_offset_expansions_are_offered_and_differ_only_for_varying_fields():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 9, 9, dtype=torch.float64)
    weight = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    offset = field(9, 9)
    paper = lcdc_conv2d(x, offset, weight, 2, "deform")
    authors = lcdc_conv2d(x, offset, weight, 2, "undilated")
    expected = deform_conv2d(x, expand_lcdc_offsets(offset, 3, 1), weight, padding=2, dilation=2)
    torch.testing.assert_close(authors, expected)
    torch.testing.assert_close(paper, lcdc_conv2d(x, offset, weight, 2, "warp"))
    assert not torch.allclose(paper, authors)
    constant = torch.full_like(offset, 0.25)
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # away from the zero border
    torch.testing.assert_close(
        lcdc_conv2d(x, constant, weight, 2, "undilated")[inner],
        lcdc_conv2d(x, constant, weight, 2, "warp")[inner],
    )


def test_lcdc_backbone_builds_the_authors_form():
    model = build_backbone("lcdc", 4, **SMALL, snippet_length=6, lcdc_form="undilated")
    convs = [block.conv2 for block in model.trunk.layer4]
    assert all(isinstance(c, LocallyConsistentDeformConv2d) for c in convs)
    assert {c.form for c in convs} == {"undilated"}


@pytest.mark.parametrize("name", ["lcdc", "dc"])
def test_resize_range_follows_crop_as_for_resnet(name):
    assert build_backbone(name, 4, **SMALL, snippet_length=6).preprocessing.resize_range == (
        32,
        54,
    )
    full = build_backbone(name, 4, depth=18, weights="none", snippet_length=6).preprocessing
    assert full.resize_range == (224, 246)
    resnet = build_backbone("resnet", 4, depth=18, weights="none", crop=32)
    assert resnet.preprocessing.resize_range == (32, 54)
