"""LCDC/DC backbones (seed 000): parameter counts, eq. 4-7 equivalence, Proposition 1, wiring."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torchvision
from torch import nn

from stages.common.errors import MotionsegError
from stages.features.models import lcdc
from stages.features.models.deform import expand_lcdc_offsets, lcdc_conv2d
from stages.features.models.lcdc import LCDCNet
from stages.features.registry import BACKBONES, build_backbone

# Built from user options (JSON kwargs), as the CLI and checkpoints build them.
build_lcdc = partial(build_backbone, "lcdc")
build_dc = partial(build_backbone, "dc")

SMALL = {"depth": 18, "weights": "none", "crop": 32, "resize_range": (32, 36)}


def small_model(builder, num_classes: int = 4, **options) -> LCDCNet:
    torch.manual_seed(0)
    model = builder(num_classes, **{**SMALL, "snippet_length": 6, **options})
    for block in model.trunk.layer4:  # non-zero offsets, so deformation actually happens
        nn.init.normal_(block.conv2.offset.weight, std=0.02)
        nn.init.normal_(block.conv2.offset.bias, std=0.5)
    return model


def smooth_field(height: int, width: int, amplitude: float) -> torch.Tensor:
    """A smooth, non-integer 2-channel offset field `[1, 2, H, W]` (float64)."""
    rows = torch.arange(height, dtype=torch.float64).view(height, 1)
    cols = torch.arange(width, dtype=torch.float64).view(1, width)
    dy = amplitude * torch.sin(0.5 * rows + 0.3 * cols + 0.2)
    dx = amplitude * torch.cos(0.4 * rows - 0.35 * cols + 1.1)
    return torch.stack((dy, dx))[None]


@pytest.mark.parametrize(
    ("builder", "total_m", "offset_params"),
    [(build_lcdc, 42.7, 27_654), (build_dc, 45.7, 995_544)],
)
def test_parameter_counts_match_paper_table3(builder, total_m, offset_params):
    model = builder(18, weights="none")
    total = sum(p.numel() for p in model.parameters())
    offsets = sum(p.numel() for name, p in model.named_parameters() if "offset" in name)
    assert round(total / 1e6, 1) == total_m
    assert offsets == offset_params


def test_backbones_are_registered():
    assert BACKBONES.get("lcdc") is lcdc.build_lcdc
    assert BACKBONES.get("dc") is lcdc.build_dc


@pytest.mark.parametrize("amplitude", [0.8, 3.3])
def test_lcdc_deform_form_equals_warp_then_conv(amplitude):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 11, 13, dtype=torch.float64)
    weight = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    smooth = smooth_field(11, 13, amplitude).expand(2, -1, -1, -1)
    offset = (smooth + 0.3 * torch.randn(2, 2, 11, 13, dtype=torch.float64)).requires_grad_()
    inputs = (x.requires_grad_(), weight.requires_grad_())
    outputs, grads = {}, {}
    for form in ("warp", "deform"):
        outputs[form] = lcdc_conv2d(x, offset, weight, 2, form)
        grads[form] = torch.autograd.grad(outputs[form].square().sum(), (*inputs, offset))
    torch.testing.assert_close(outputs["deform"], outputs["warp"], rtol=1e-10, atol=1e-10)
    for g_deform, g_warp in zip(grads["deform"], grads["warp"], strict=True):
        torch.testing.assert_close(g_deform, g_warp, rtol=1e-8, atol=1e-8)


def test_expanded_offsets_gather_dilated_neighbours():
    offset = torch.arange(2 * 5 * 6, dtype=torch.float64).view(1, 2, 5, 6)
    expanded = expand_lcdc_offsets(offset, kernel_size=3, dilation=2)
    assert expanded.shape == (1, 18, 5, 6)
    # tap k = (0, 2) of output (3, 1) samples input (3 - 2, 1 + 2) = (1, 3)
    tap = 0 * 3 + 2
    assert expanded[0, 2 * tap, 3, 1] == offset[0, 0, 1, 3]
    assert expanded[0, 2 * tap + 1, 3, 1] == offset[0, 1, 1, 3]
    # outside the map the gathered offset is zero
    assert expanded[0, 2 * tap, 0, 1] == 0


def bilinear_map(rows: torch.Tensor, cols: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Per-channel f_c(y, x) = a + b y + c x + d x y: locally varying, and reproduced exactly by
    bilinear interpolation, so sub-pixel translations of it are exact."""
    a, b, c, d = (coeffs[:, i, None, None] for i in range(4))
    return a + b * rows + c * cols + d * rows * cols


def translated_pair(shift: tuple[float, float], size: int = 18, channels: int = 4):
    """x_prev(p) = f(p), x_t(p) = f(p - o) = x_prev(p - o) (eq. 9 with constant o)."""
    torch.manual_seed(2)
    coeffs = torch.randn(channels, 4, dtype=torch.float64) * torch.tensor([1.0, 0.3, 0.3, 0.05])
    rows = torch.arange(size, dtype=torch.float64).view(size, 1)
    cols = torch.arange(size, dtype=torch.float64).view(1, size)
    x_prev = bilinear_map(rows, cols, coeffs)[None]
    x_now = bilinear_map(rows - shift[0], cols - shift[1], coeffs)[None]
    return x_prev, x_now


INTERIOR = slice(6, -6)  # dilation-2 taps reach 2 px, offsets + shift at most ~2 px more


def test_proposition1_shifted_offsets_make_outputs_agree():
    shift = (0.37, -0.61)
    x_prev, x_now = translated_pair(shift)
    torch.manual_seed(3)
    weight = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    offset_prev = smooth_field(18, 18, 0.7)
    offset_now = offset_prev + torch.tensor(shift, dtype=torch.float64).view(1, 2, 1, 1)
    for form in ("warp", "deform"):
        y_prev = lcdc_conv2d(x_prev, offset_prev, weight, 2, form)[..., INTERIOR, INTERIOR]
        y_now = lcdc_conv2d(x_now, offset_now, weight, 2, form)[..., INTERIOR, INTERIOR]
        torch.testing.assert_close(y_now, y_prev, rtol=1e-10, atol=1e-10)
        unmoved = lcdc_conv2d(x_now, offset_prev, weight, 2, form)[..., INTERIOR, INTERIOR]
        assert (unmoved - y_prev).abs().max() > 0.1


def test_proposition1_offset_difference_that_restores_output_is_the_motion():
    shift = (-0.42, 0.83)
    x_prev, x_now = translated_pair(shift)
    torch.manual_seed(4)
    weight = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    offset_prev = smooth_field(18, 18, 0.5)
    target = lcdc_conv2d(x_prev, offset_prev, weight, 2, "warp")[..., INTERIOR, INTERIOR]
    difference = torch.zeros(1, 2, 1, 1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([difference], max_iter=100, line_search_fn="strong_wolfe")

    def mismatch() -> torch.Tensor:
        optimiser.zero_grad()
        y = lcdc_conv2d(x_now, offset_prev + difference, weight, 2, "warp")
        loss = (y[..., INTERIOR, INTERIOR] - target).square().mean()
        loss.backward()
        return loss

    optimiser.step(mismatch)
    torch.testing.assert_close(
        difference.detach().flatten(), torch.tensor(shift, dtype=torch.float64), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("builder", [build_lcdc, build_dc])
def test_model_fuses_appearance_with_offset_differences(builder):
    model = small_model(builder).eval()
    captured: dict[str, list[torch.Tensor]] = {"offsets": [], "appearance": [], "fused": []}
    for block in model.trunk.layer4:
        block.conv2.offset.register_forward_hook(
            lambda _m, _i, out: captured["offsets"].append(out)
        )
    model.conv_new_1.register_forward_hook(
        lambda _m, _i, out: captured["appearance"].append(torch.relu(out))
    )
    model.fusion.register_forward_pre_hook(lambda _m, args: captured["fused"].append(args[0]))
    batch, frames = 2, 6
    with torch.no_grad():
        model.forward_features(torch.randn(batch, frames, 3, 32, 32))
    fused = captured["fused"][0]
    offset_channels = captured["offsets"][0].shape[1]
    assert offset_channels == (2 if builder is build_lcdc else 72)
    assert fused.shape[:3] == (batch, frames - 1, 256 + 2 * offset_channels)
    appearance = captured["appearance"][0].unflatten(0, (batch, frames))
    torch.testing.assert_close(fused[:, :, :256], appearance[:, :-1])
    for layer, offset in enumerate(captured["offsets"]):
        offset = offset.unflatten(0, (batch, frames))
        assert offset.abs().max() > 0
        start = 256 + layer * offset_channels
        motion = fused[:, :, start : start + offset_channels]
        torch.testing.assert_close(motion, offset[:, 1:] - offset[:, :-1])


@pytest.mark.parametrize("builder", [build_lcdc, build_dc])
def test_forward_shapes_and_offset_gradients(builder):
    model = small_model(builder, num_classes=7).train()
    snippets = torch.randn(2, 5, 3, 32, 32)
    assert model.forward_features(snippets).shape == (2, 1024)
    assert model.feature_dim == 1024
    logits = model(snippets)
    assert logits.shape == (2, 7)
    logits.sum().backward()
    offset_grads = [p.grad for name, p in model.named_parameters() if "offset" in name]
    assert len(offset_grads) == 4
    assert all(g is not None and g.abs().sum() > 0 for g in offset_grads)


def test_too_short_or_wrong_size_snippets_are_user_errors():
    model = small_model(build_lcdc).eval()
    with pytest.raises(MotionsegError, match="too short"):
        model(torch.randn(1, 4, 3, 32, 32))
    with pytest.raises(MotionsegError, match="crop 32"):
        model(torch.randn(1, 6, 3, 64, 64))
    with pytest.raises(MotionsegError, match="snippet_length"):
        build_lcdc(4, **SMALL, snippet_length=4)


@pytest.mark.parametrize(
    ("builder", "options", "message"),
    [
        (build_lcdc, {"lcdc_form": "fast"}, "lcdc_form"),
        (build_dc, {"lcdc_form": "warp"}, "unknown option"),
        (build_lcdc, {"depth": 34}, "depth"),
        (build_lcdc, {"resize_range": (30, 40)}, "resize_range"),
    ],
)
def test_bad_options_are_user_errors(builder, options, message):
    with pytest.raises(MotionsegError, match=message):
        builder(4, **{**SMALL, **options})


def test_preprocessing_follows_options():
    model = small_model(build_lcdc)
    prep = model.preprocessing
    assert (prep.snippet_length, prep.feature_window, prep.crop) == (6, 6, 32)
    assert prep.resize_range == (32, 36)
    assert build_lcdc(4, weights="none", depth=18).preprocessing.crop == 224


def test_trunk_batchnorm_stays_frozen_in_training():
    model = small_model(build_lcdc).train()
    trunk_bn = model.trunk.layer4[0].bn2
    before = trunk_bn.running_mean.clone()
    model(torch.randn(2, 6, 3, 32, 32))
    assert not trunk_bn.training
    torch.testing.assert_close(trunk_bn.running_mean, before)
    assert model.fusion.spacetime_conv1.bn.training
    unfrozen = small_model(build_lcdc, freeze_bn=False).train()
    assert unfrozen.trunk.layer4[0].bn2.training


def test_checkpoint_weights_reach_trunk_and_deformable_convs(tmp_path):
    torch.manual_seed(5)
    resnet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pt"
    torch.save(resnet.state_dict(), path)
    model = build_lcdc(4, **{**SMALL, "weights": str(path)})
    torch.testing.assert_close(model.trunk.conv1.weight, resnet.conv1.weight)
    torch.testing.assert_close(model.trunk.layer3[1].conv2.weight, resnet.layer3[1].conv2.weight)
    for ours, theirs in zip(model.trunk.layer4, resnet.layer4, strict=True):
        torch.testing.assert_close(ours.conv2.weight, theirs.conv2.weight)
        torch.testing.assert_close(ours.conv1.weight, theirs.conv1.weight)


def test_warp_and_deform_forms_give_same_model_outputs():
    warp = small_model(build_lcdc, lcdc_form="warp").eval()
    deform = small_model(build_lcdc, lcdc_form="deform").eval()
    deform.load_state_dict(warp.state_dict())
    snippets = torch.randn(1, 6, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(deform(snippets), warp(snippets), rtol=1e-4, atol=1e-5)
        offset = warp.encode_frames(snippets[0])[1]
    assert offset.abs().max() > 0.1 and not torch.allclose(offset, offset.round())


def test_zero_initialised_offsets_start_as_the_ordinary_dilated_conv():
    model = build_lcdc(4, **SMALL).eval()
    block = model.trunk.layer4[1]
    x = torch.randn(1, 512, 2, 2)
    y, offset = block.conv2(x)
    assert offset.abs().max() == 0
    expected = nn.functional.conv2d(x, block.conv2.weight, padding=2, dilation=2)
    torch.testing.assert_close(y, expected)
