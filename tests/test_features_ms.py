"""MotionSqueeze on TSM-ResNet (seed 001): counts, temporal shift, shapes, extraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_features_correlation import translated

from stages.common.errors import MotionsegError
from stages.features.extract import video_features, window_indices
from stages.features.models.ms import MotionSqueeze
from stages.features.models.tsm import temporal_shift
from stages.features.registry import build_backbone

SMALL = {"depth": 18, "weights": "none", "crop": 48, "resize_range": [48, 52]}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("depth", "module", "trunk"), [(50, 70_905, 23_578_937), (18, 20_985, 11_197_497)]
)
def test_parameter_counts_match_the_reference(depth, module, trunk):
    with torch.device("meta"):
        model = build_backbone("ms", 18, depth=depth, weights="none")
    assert count(model.motion) == module
    assert count(model) - count(model.classifier) == trunk
    if depth == 50:
        assert count(model.motion.reduction) == 32_896
        assert count(model.motion.transform) == 38_009
        assert count(model) == 23_615_819


def test_temporal_shift_moves_a_one_hot_channel_by_exactly_one_frame():
    time, channels = 5, 16  # fold = 2: channels 0-1 from t+1, 2-3 from t-1, 4.. unshifted
    for channel, moved_to in ((1, 1), (3, 3), (9, 2)):  # one-hot at frame 2
        x = torch.zeros(2 * time, channels, 3, 3)
        x[time + 2, channel] = 1.0  # second snippet of the batch, frame 2
        out = temporal_shift(x, time).unflatten(0, (2, time))
        expected = torch.zeros(2, time, channels, 3, 3)
        expected[1, moved_to, channel] = 1.0
        torch.testing.assert_close(out, expected)
    x = torch.zeros(time, channels, 1, 1)
    x[0, 0] = x[time - 1, 2] = 1.0  # shifted past the snippet's ends: gone, zeros come in
    assert temporal_shift(x, time).abs().sum() == 0


def test_motion_squeeze_reads_frame_t_towards_t_plus_1_and_repeats_the_last_pair():
    torch.manual_seed(4)
    module = MotionSqueeze(32).eval()
    first = torch.randn(1, 32, 24, 24)
    x = torch.cat([first, translated(first, 2, -3)])  # one snippet of 2 frames
    with torch.no_grad():
        flow = module.flow(x, time=2)[:, :, 7:-7, 7:-7]
    expected = torch.tensor([-3 / 7, 2 / 7, 1.0]).view(1, 3, 1, 1).expand(2, 3, 10, 10)
    torch.testing.assert_close(flow, expected, atol=1e-3, rtol=0)


def test_shapes_and_centre_frame_feature():
    torch.manual_seed(0)
    model = build_backbone("ms", 5, **SMALL).eval()
    snippets = torch.randn(2, 8, 3, 48, 48)
    with torch.no_grad():
        frames = model.frame_features(
            tuple(t.unflatten(0, (2, 8)) for t in model.encode_frames(snippets.flatten(0, 1)))
        )
        features = model.forward_features(snippets)
        logits = model(snippets)
    assert frames.shape == (2, 8, 512)
    assert model.preprocessing.snippet_length == model.preprocessing.feature_window == 8
    torch.testing.assert_close(features, frames[:, 4])
    assert logits.shape == (2, 5)
    # in eval mode (no dropout) the logits are the mean of per-frame classifications
    torch.testing.assert_close(logits, model.classifier(frames).mean(dim=1))


def test_frames_interact_through_shift_and_motion():
    torch.manual_seed(1)
    model = build_backbone("ms", 3, **SMALL).eval()
    snippet = torch.randn(1, 8, 3, 48, 48)
    changed = snippet.clone()
    changed[0, 7] = torch.randn(3, 48, 48)  # only the last frame differs
    with torch.no_grad():
        assert not torch.allclose(model.forward_features(snippet), model.forward_features(changed))


def test_extraction_equals_the_per_window_definition():
    torch.manual_seed(2)
    model = build_backbone("ms", 3, **{**SMALL, "snippet_length": 4}).eval()
    video = torch.randn(11, 3, 48, 48)
    features = video_features(model, lambda lo, hi: video[lo:hi], 11, 3, torch.device("cpu"))
    indices = window_indices(np.arange(11), model.preprocessing, 11)
    with torch.no_grad():
        expected = torch.cat([model.forward_features(video[row][None]) for row in indices])
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_bad_options_are_errors():
    with pytest.raises(MotionsegError, match="snippet_length"):
        build_backbone("ms", 3, **{**SMALL, "snippet_length": 1})
    with pytest.raises(MotionsegError, match="depth"):
        build_backbone("ms", 3, **{**SMALL, "depth": 34})
