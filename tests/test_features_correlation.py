"""Local correlation and its read-outs (MotionSqueeze seed 001, disentangled dynamics seed 004)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stages.features.models.correlation import (
    backward_warp,
    l2_normalise,
    local_correlation,
    motion_squeeze_flow,
    soft_displacement,
)


def translated(f1: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """f2(p) = f1(p - (dy, dx)): the content of f1 moved by (dy, dx), zeros where it came in."""
    f2 = torch.roll(f1, shifts=(dy, dx), dims=(-2, -1))
    if dy > 0:
        f2[..., :dy, :] = 0
    elif dy < 0:
        f2[..., dy:, :] = 0
    if dx > 0:
        f2[..., :, :dx] = 0
    elif dx < 0:
        f2[..., :, dx:] = 0
    return f2


def reference_correlation(f1: torch.Tensor, f2: torch.Tensor, radius: int) -> torch.Tensor:
    """Independent definition through `unfold`: every window patch of f2, dotted with f1."""
    n, c, h, w = f1.shape
    size = 2 * radius + 1
    patches = F.unfold(f2, size, padding=radius).view(n, c, size * size, h, w)
    return (f1.unsqueeze(2) * patches).sum(dim=1)


def test_correlation_equals_unfold_definition_and_layout_is_dy_major():
    torch.manual_seed(0)
    f1, f2 = torch.randn(2, 2, 5, 9, 11, dtype=torch.float64)
    corr = local_correlation(f1, f2, radius=3)
    assert corr.shape == (2, 49, 9, 11)
    torch.testing.assert_close(corr, reference_correlation(f1, f2, 3))
    # index (dy + r) * 7 + (dx + r) at p = (4, 5) with (dy, dx) = (-2, 1) is f1(4, 5) . f2(2, 6)
    expected = (f1[:, :, 4, 5] * f2[:, :, 2, 6]).sum(dim=1)
    torch.testing.assert_close(corr[:, 1 * 7 + 4, 4, 5], expected)
    assert torch.all(corr[:, :7, 0, :] == 0)  # dy = -3 from the top row is outside: zero


def test_correlation_gradients_pass_float64_gradcheck():
    torch.manual_seed(1)
    f1 = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    f2 = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: local_correlation(a, b, 2), (f1, f2))


def test_readouts_pass_float64_gradcheck():
    torch.manual_seed(2)
    f1 = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    f2 = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)

    def dynamics(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        corr = local_correlation(l2_normalise(a), l2_normalise(b), 2)
        displacement = soft_displacement(corr, 2, tau=0.5)
        return b - backward_warp(a, displacement)

    def squeeze(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        corr = F.relu(local_correlation(l2_normalise(a), l2_normalise(b), 2))
        return motion_squeeze_flow(corr, 2, sigma=5.0, temperature=3.0)

    assert torch.autograd.gradcheck(dynamics, (f1, f2))
    assert torch.autograd.gradcheck(squeeze, (f1, f2))


@pytest.mark.parametrize(("dy", "dx"), [(2, -3), (-1, 4), (0, 0)])
def test_motion_squeeze_flow_recovers_an_integer_shift(dy, dx):
    torch.manual_seed(3)
    radius = 7
    f1 = l2_normalise(torch.randn(2, 64, 28, 28))
    f2 = translated(f1, dy, dx)
    flow = motion_squeeze_flow(F.relu(local_correlation(f1, f2, radius)), radius)
    interior = flow[:, :, radius:-radius, radius:-radius]
    torch.testing.assert_close(
        interior[:, 0], torch.full_like(interior[:, 0], dx / 7), atol=1e-3, rtol=0
    )
    torch.testing.assert_close(
        interior[:, 1], torch.full_like(interior[:, 1], dy / 7), atol=1e-3, rtol=0
    )
    torch.testing.assert_close(interior[:, 2], torch.ones_like(interior[:, 2]), atol=1e-3, rtol=0)


@pytest.mark.parametrize(("dy", "dx"), [(1, -2), (-3, 0)])
def test_soft_displacement_recovers_the_shift_and_warped_difference_vanishes(dy, dx):
    torch.manual_seed(4)
    radius = 7
    f1 = torch.relu(torch.randn(2, 64, 24, 26))
    f2 = translated(f1, dy, dx)
    corr = local_correlation(l2_normalise(f1), l2_normalise(f2), radius)
    displacement = soft_displacement(corr, radius, tau=0.01)
    inner = (slice(None), slice(None), slice(radius, -radius), slice(radius, -radius))
    expected = torch.tensor([dy, dx], dtype=torch.float32).view(1, 2, 1, 1)
    torch.testing.assert_close(
        displacement[inner], expected.expand_as(displacement[inner]), atol=1e-3, rtol=0
    )
    change = f2 - backward_warp(f1, displacement)
    assert change[inner].abs().max() < 1e-3 * f1.abs().max()


def test_backward_warp_is_zero_outside_and_identity_at_zero_displacement():
    torch.manual_seed(5)
    features = torch.randn(1, 3, 5, 6)
    torch.testing.assert_close(backward_warp(features, torch.zeros(1, 2, 5, 6)), features)
    far = torch.full((1, 2, 5, 6), 10.0)
    assert torch.all(backward_warp(features, far) == 0)
