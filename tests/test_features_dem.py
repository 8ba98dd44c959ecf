"""`dem`: R(2+1)D-18 with Dynamic Equilibrium Modules (seed 003): counts, DEM algebra, layouts,
Kinetics weights. Large models are built on the meta device (counts and shapes only)."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn.functional as F
import torchvision

from stages.common.errors import MotionsegError
from stages.features.models import dem as dem_module
from stages.features.models.r2plus1d import (
    STAGES,
    DynamicEquilibrium,
    R2Plus1D18,
    dem_midplanes,
    midplanes,
)
from stages.features.registry import build_backbone

SMALL = {"crop": 32, "resize_range": [32, 36]}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def dems(module: torch.nn.Module) -> list[DynamicEquilibrium]:
    return [m for m in module.modules() if isinstance(m, DynamicEquilibrium)]


def test_midplane_helpers_give_table_3_1():
    plain = [midplanes(3, 64, 7), midplanes(64, 64)]
    plain += [midplanes(a, b) for a, b in [(64, 128), (128, 128), (128, 256), (256, 256)]]
    plain += [midplanes(256, 512), midplanes(512, 512)]
    assert plain == [83, 144, 230, 288, 460, 576, 921, 1152]
    with_dem = [dem_midplanes(3, 64, 7), dem_midplanes(64, 64)]
    with_dem += [dem_midplanes(a, b) for a, b in [(64, 128), (128, 128), (128, 256), (256, 256)]]
    with_dem += [dem_midplanes(256, 512), dem_midplanes(512, 512)]
    assert with_dem == [20, 67, 98, 134, 197, 269, 394, 538]


def test_parameter_counts():
    assert count(DynamicEquilibrium(67)) == 58_357  # 2 * 67^2 + 2 * 67^2 + 9 * 67^2
    with torch.device("meta"):
        model = build_backbone("dem", 18)
        assert sum(count(d) for d in dems(model)) == 233_428 and len(dems(model)) == 4
        assert count(model) - count(model.fc) == 33_174_865
        assert count(model) == 33_184_099
        assert count(build_backbone("dem", 11)) == 33_180_508
        assert count(R2Plus1D18(dem_stages=())) == 33_178_597  # Table 3.1 R(2+1)D-18
        assert count(R2Plus1D18(dem_stages=STAGES)) == 33_112_852  # DEM everywhere
        assert count(R2Plus1D18("torchvision", dem_stages=())) == 31_300_125
        residual = build_backbone("dem", 18, fusion="mul_residual")
        assert count(residual) == 33_184_099
        ablation = build_backbone("dem", 18, dem_stages=["conv2", "conv3", "conv4", "conv5"])
        assert len(dems(ablation)) == 16 and len(dems(ablation.trunk.stem)) == 0
        assert len(dems(build_backbone("dem", 18, dem_stages=[]))) == 0


def test_dem_widths_follow_the_insertion_points():
    with torch.device("meta"):
        model = R2Plus1D18(dem_stages=("conv3",))
    mids = [unit._modules["0"].out_channels for unit in _units(model.layer2)]
    assert mids == [98, 134, 134, 134]
    assert [d.f.in_channels for d in dems(model)] == [98, 134, 134, 134]
    assert [unit._modules["0"].out_channels for unit in _units(model.layer1)] == [144] * 4


def _units(stage: torch.nn.Module) -> list:
    return [unit for block in stage for unit in (block.conv1[0], block.conv2[0])]


def test_dem_keeps_shape_and_matches_the_hand_computed_difference():
    """One channel, one pixel: with f = (w0, w1), g = (u0, u1) and p the zero-padded sequence,
    D_t = u0 (w0 p_t + w1 p_t+1) + u1 (w0 p_t+1 + w1 p_t+2) - (w0 p_t + w1 p_t+2)."""
    dem = DynamicEquilibrium(1)
    w0, w1, u0, u1 = 0.5, -1.5, 2.0, 0.25
    with torch.no_grad():
        dem.f.weight.copy_(torch.tensor([w0, w1]).view(1, 1, 2, 1, 1))
        dem.g.weight.copy_(torch.tensor([u0, u1]).view(1, 1, 2, 1, 1))
    x = [1.0, -2.0, 3.0, 0.5]
    p = [0.0, *x, 0.0]
    expected = [
        u0 * (w0 * p[t] + w1 * p[t + 1])
        + u1 * (w0 * p[t + 1] + w1 * p[t + 2])
        - (w0 * p[t] + w1 * p[t + 2])
        for t in range(len(x))
    ]
    s = torch.tensor(x).view(1, 1, 4, 1, 1)
    torch.testing.assert_close(dem.difference(s).flatten(), torch.tensor(expected))

    wide = DynamicEquilibrium(5)
    s = torch.rand(2, 5, 6, 7, 8)
    assert wide(s).shape == s.shape


def test_f_weights_reach_both_terms():
    """With g = 0 only the dilated term is left, with g = identity-at-tap-0 both are: changing
    f.weight changes D in both cases, so the dilation-2 term really uses f's weights."""
    torch.manual_seed(0)
    dem = DynamicEquilibrium(3)
    s = torch.randn(1, 3, 5, 4, 4)
    with torch.no_grad():
        dem.g.weight.zero_()
        before = dem.difference(s)
        dem.f.weight.mul_(2)
        torch.testing.assert_close(dem.difference(s), 2 * before)  # -f_dil2 alone, linear in f
        dem.g.weight.normal_()
        first = dem.difference(s)
        dem.f.weight.add_(0.1)
        assert not torch.allclose(dem.difference(s), first)
    (dem.difference(s) ** 2).sum().backward()
    assert dem.f.weight.grad.abs().sum() > 0 and dem.g.weight.grad.abs().sum() > 0


def test_fusion_options_and_relu6_under_autocast():
    torch.manual_seed(0)
    mul, residual = (
        DynamicEquilibrium(2, fusion="mul"),
        DynamicEquilibrium(2, fusion="mul_residual"),
    )
    residual.load_state_dict(mul.state_dict())
    s = torch.rand(1, 2, 4, 5, 5) * 50
    with torch.no_grad():
        m = F.relu(mul.h(mul.difference(s)))
        torch.testing.assert_close(mul(s), s * m)
        torch.testing.assert_close(residual(s), s * (1 + m))
        assert m.max() > 6
        with torch.autocast("cpu", dtype=torch.bfloat16):
            capped = mul(s)
        assert (capped.float() <= 6 * s * 1.01 + 1e-3).all()
    with pytest.raises(ValueError, match="fusion"):
        DynamicEquilibrium(2, fusion="add")


def test_temporal_length_16_to_2_at_conv5():
    with torch.device("meta"):
        model = build_backbone("dem", 18)
        out = model.trunk(torch.empty(1, 3, 16, 112, 112))
        assert tuple(out.shape) == (1, 512, 2, 7, 7)
        assert tuple(model.forward_features(torch.empty(2, 16, 3, 112, 112)).shape) == (2, 512)


def test_forward_features_is_the_trunk_pooled_in_train_mode():
    """The frame-wise stem split keeps BatchNorm's batch statistics identical."""
    torch.manual_seed(0)
    model = build_backbone("dem", 4, **SMALL, snippet_length=4).train()
    x = torch.randn(2, 4, 3, 32, 32)
    direct = model.trunk(x.transpose(1, 2)).mean(dim=(2, 3, 4))
    torch.testing.assert_close(model.forward_features(x), direct)


def test_torchvision_layout_loads_a_local_r2plus1d_18_checkpoint(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.video.r2plus1d_18(weights=None).eval()
    path = tmp_path / "r2plus1d_18.pth"
    torch.save(reference.state_dict(), path)
    model = build_backbone(
        "dem", 400, **SMALL, layout="torchvision", dem_stages=[], weights=str(path)
    ).eval()
    x = torch.randn(1, 4, 3, 32, 32)
    reference.fc = torch.nn.Identity()
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), reference(x.transpose(1, 2)))
    # with a DEM in conv2_x the pretrained convs still fit (torchvision widths kept)
    with_dem = build_backbone("dem", 3, **SMALL, layout="torchvision", weights=str(path))
    key = "layer3.0.conv1.0.0.weight"
    assert torch.equal(with_dem.trunk.state_dict()[key], reference.state_dict()[key])


def test_kinetics_weights_offline_is_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(MotionsegError, match="Kinetics-400.*local checkpoint path"):
        dem_module.load_r2plus1d_weights(R2Plus1D18("torchvision"), "kinetics400")
    with pytest.raises(MotionsegError, match="layout 'torchvision'"):
        build_backbone("dem", 3, weights="kinetics400")


@pytest.mark.parametrize(
    "options",
    [{"weights": "imagenet"}, {"dem_stages": ["conv6"]}, {"crop": 8}, {"depth": 50}],
)
def test_bad_options(options):
    with pytest.raises(MotionsegError):
        build_backbone("dem", 3, **{**SMALL, **options})
