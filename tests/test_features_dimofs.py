"""`dimofs`: counts, the deformable resampling, offsets learning a known shift, frame pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stages.common.errors import MotionsegError
from stages.common.outputs import FRAME_STORE
from stages.common.stores import write_store
from stages.features.models.fpn import LEVELS, P4, MotionOffsets, fpn_level
from stages.features.registry import build_backbone
from stages.features.snippets import SnippetDataset, Window

SMALL = {"depth": 18, "weights": "none", "crop": 32, "resize_range": [32, 36]}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts():
    with torch.device("meta"):
        model = build_backbone("dimofs", 18, weights="none")
        assert count(model.trunk) == 26_799_296
        assert [count(s) for s in model.scales] == [1_245_696] * 4
        assert count(model.scales[0].offset) == 1_180_160
        assert count(model.scales[0].resample) == 65_536
        assert count(model.appearance_mlp) == 13_895_680
        assert count(model.motion_mlp) == 26_740_736
        classifiers = count(model.pretext_classifier) + count(model.classifier)
        assert (count(model) - classifiers, count(model)) == (72_418_496, 72_473_828)
        deep = build_backbone("dimofs", 18, weights="none", depth=101)
        assert count(deep.trunk) == 45_739_200
        assert count(deep) - 18 * 1025 - 18 * 2049 == 91_358_400
        assert model.feature_dim == 2048


def test_zero_offsets_resample_is_a_plain_1x1_conv():
    torch.manual_seed(0)
    module = MotionOffsets(8)
    f_a, f_b = torch.randn(2, 8, 6, 5), torch.randn(2, 8, 6, 5)
    resampled, offsets = module(f_a, f_b)  # offset conv is zero-initialised
    assert offsets.shape == (2, 16, 6, 5) and not offsets.any()
    torch.testing.assert_close(resampled, F.conv2d(f_b, module.resample.weight))


def smooth_field(channels: int, size: int, seed: int) -> torch.Tensor:
    """A band-limited random map (blurred noise): bilinear sampling has useful gradients."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, channels, size, size, generator=gen)
    kernel = torch.exp(-((torch.arange(9) - 4.0) ** 2) / 8)
    kernel = (kernel[:, None] * kernel[None, :] / kernel.sum() ** 2).expand(channels, 1, 9, 9)
    return F.conv2d(F.pad(noise, (4,) * 4, mode="circular"), kernel, groups=channels) * 5


@pytest.mark.parametrize("shift", [(1, -1), (-1, 1)])
def test_offsets_learn_the_sign_of_a_known_shift(shift):
    """Toy pair task: B is A translated by `shift` (B(p) = A(p - shift)); learning to recover
    A's features from B's resampled ones drives the (dy, dx) offsets to the shift's signs."""
    torch.manual_seed(0)
    channels = 4
    module = MotionOffsets(channels)
    with torch.no_grad():
        module.resample.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
    module.resample.weight.requires_grad_(False)
    f_a = smooth_field(channels, 24, seed=1)
    f_b = torch.roll(f_a, shifts=shift, dims=(2, 3))
    optimizer = torch.optim.Adam(module.offset.parameters(), lr=0.02)
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    for _ in range(60):
        resampled, _ = module(f_a, f_b)
        loss = F.mse_loss(resampled[inner], f_a[inner])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        offsets = module.offsets(f_a, f_b)[inner]
    dy, dx = offsets[:, 0::2].mean().item(), offsets[:, 1::2].mean().item()
    assert np.sign(dy) == np.sign(shift[0]) and abs(dy) > 0.3
    assert np.sign(dx) == np.sign(shift[1]) and abs(dx) > 0.3


def test_p4_alone_equals_the_full_pyramid():
    torch.manual_seed(0)
    model = build_backbone("dimofs", 3, **SMALL).eval()
    frames = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pyramid = model.trunk(frames)
        for level in (0, P4):
            torch.testing.assert_close(
                fpn_level(model.trunk, frames, level), pyramid[LEVELS[level]]
            )


@pytest.mark.parametrize(("levels", "trained_scales"), [("all", [0, 1, 2, 3]), ("p4", [P4])])
def test_pretext_levels_decide_which_scales_learn(levels, trained_scales):
    torch.manual_seed(0)
    model = build_backbone("dimofs", 3, **SMALL, pretext_levels=levels).train()
    for param in model.parameters():
        param.grad = None
    F.cross_entropy(model(torch.randn(2, 2, 3, 32, 32)), torch.tensor([0, 2])).backward()
    got = [i for i, s in enumerate(model.scales) if s.offset.weight.grad is not None]
    assert got == trained_scales
    assert model.motion_mlp[0].weight.grad is not None and model.classifier.weight.grad.any()


@pytest.mark.parametrize("recognition", ["end_to_end", "detached"])
def test_recognition_loss_reaches_the_offsets_unless_detached(recognition):
    """`end_to_end` (default): the recognition logits alone train the offset conv and the FPN;
    `detached`: they train only the MLPs and the classifier."""
    torch.manual_seed(0)
    model = build_backbone("dimofs", 3, **SMALL, recognition=recognition)
    p4 = fpn_level(model.trunk, torch.randn(2, 3, 32, 32), P4)
    offsets = model.scales[P4].offsets(p4, p4.flip(0))
    model.recognition_logits(p4, offsets).sum().backward()
    assert model.motion_mlp[0].weight.grad is not None
    end_to_end = recognition == "end_to_end"
    offset_grad = model.scales[P4].offset.weight.grad
    assert (offset_grad is not None and bool(offset_grad.any())) == end_to_end
    assert any(p.grad is not None for p in model.trunk.parameters()) == end_to_end


def test_offset_features_and_options():
    torch.manual_seed(0)
    model = build_backbone("dimofs", 3, **SMALL, feature="offsets", offset_grid=2).eval()
    assert model.feature_dim == 2 * 256 * 4
    with torch.no_grad():
        assert model.forward_features(torch.randn(3, 2, 3, 32, 32)).shape == (3, 2048)
    with torch.device("meta"):
        assert build_backbone("dimofs", 3, weights="none", feature="offsets").feature_dim == 25_088
    for bad in ({"snippet_length": 16}, {"crop": 16}, {"train_deltas": []}):
        with pytest.raises(MotionsegError):
            build_backbone("dimofs", 3, **{**SMALL, **bad})


def test_pairs_are_a_then_a_plus_delta_mirrored_at_the_end(tmp_path):
    """Frame i holds the value i: training draws delta in -2..2 (all five seen), validation and
    extraction use +2, and frames past an end are mirrored (t - delta)."""
    num = 6
    frames = np.repeat(np.arange(num, dtype=np.uint8), 4 * 4 * 3).reshape(num, 4, 4, 3)
    index = np.arange(num, dtype=np.int64)
    store = tmp_path / "v.zarr"
    write_store(
        store,
        {
            "frames": (frames, ("time", "height", "width", "channel"), (4, 4, 4, 3)),
            "frame_index": (index, ("time",), (64,)),
        },
        {},
        FRAME_STORE,
    )
    prep = build_backbone("dimofs", 3, **SMALL).preprocessing
    assert (prep.snippet_length, prep.label_length(), prep.padding) == (2, 1, "mirror")
    windows = [Window("v", start, 0, 1.0) for start in range(num)]
    dataset = SnippetDataset(windows, tmp_path, prep, train=True, seed=0)
    deltas = set()
    for epoch in range(8):
        for start in range(num):
            rng = np.random.default_rng([0, epoch, start])
            a, b = (int(f[0, 0, 0]) for f in dataset._read(windows[start], rng))
            assert a == start and abs(b - a) <= 2 and 0 <= b < num
            deltas.add(b - a)
    assert deltas >= {-2, -1, 0, 1, 2}
    evaluation = SnippetDataset(windows, tmp_path, prep, train=False)
    pairs = [[int(f[0, 0, 0]) for f in evaluation._read(w, None)] for w in windows]
    assert pairs == [[0, 2], [1, 3], [2, 4], [3, 5], [4, 2], [5, 3]]
    snippet, label = dataset[0]
    assert snippet.shape == (2, 3, 32, 32) and label == 0
