"""Disentangled dynamics (seed 004): BN-Inception and model counts, shapes, pairs, extraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stages.common.errors import MotionsegError
from stages.features import extract
from stages.features.extract import video_features, window_indices
from stages.features.models.bninception import BNInception
from stages.features.models.dynamics import temporal_max_pool
from stages.features.registry import build_backbone

SMALL = {"crop": 32, "resize_range": [32, 36], "snippet_length": 4}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_reference():
    with torch.device("meta"):
        inception = BNInception()
        model = build_backbone("dynamics", 18)
    assert count(inception) == 10_270_240
    assert count(inception.conv1) == 9_600
    assert count(model) - count(model.heads) == 30_792_864
    assert count(model) == 30_848_214
    assert count(model.motion_entry) == 1_344


def test_bninception_maps_224_to_1024_by_7x7():
    with torch.device("meta"):
        inception = BNInception()
        x = inception.conv1(torch.empty(1, 3, 224, 224))
        assert x.shape == (1, 64, 112, 112)
        sizes = []
        for stage in inception.trunk.stages():
            x = stage(x)
            sizes.append(tuple(x.shape[1:]))
    assert sizes == [(192, 28, 28), (576, 14, 14), (1056, 7, 7), (1024, 7, 7)]


def test_temporal_max_pool_takes_pairs_and_repeats_an_odd_last_frame():
    x = torch.tensor([1.0, 5.0, 2.0, 0.0, 7.0]).view(5, 1, 1, 1)
    pooled, frames = temporal_max_pool(x, 5)
    assert frames == 3
    assert pooled.flatten().tolist() == [5.0, 2.0, 7.0]
    pooled, frames = temporal_max_pool(torch.arange(16.0).view(16, 1, 1, 1), 8)  # 2 snippets
    assert frames == 4
    assert pooled.flatten().tolist() == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]
    assert temporal_max_pool(x[:1], 1)[1] == 1


def test_shapes_and_averaged_branch_predictions():
    torch.manual_seed(0)
    model = build_backbone("dynamics", 5, **SMALL).eval()
    snippets = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(snippets)
        logits = model(snippets)
    assert features.shape == (2, 3072) and model.feature_dim == 3072
    parts = features.split(1024, dim=1)
    expected = sum(head(part) for head, part in zip(model.heads, parts, strict=True)) / 3
    torch.testing.assert_close(logits, expected)


def test_width_scales_every_branch_and_keeps_the_layout():
    torch.manual_seed(3)
    model = build_backbone("dynamics", 2, **SMALL, width=8).eval()
    assert model.feature_dim == 3 * 128  # 1024 / 8 per branch
    assert count(model.conv1) == 3 * 49 * 8 + 8 + 2 * 8
    assert count(model) < 30_848_214 / 40
    with torch.no_grad():
        assert model(torch.randn(2, 4, 3, 32, 32)).shape == (2, 2)


def test_pair_encoding_pairs_each_frame_with_the_next_one():
    torch.manual_seed(1)
    model = build_backbone("dynamics", 3, **SMALL).eval()
    frames = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        _, motion, change = model.encode_frames(frames)
        low = model.conv1(frames)
        pair_motion, pair_change = model.pair_features(low[1:2], low[2:3])
        last_motion, _ = model.pair_features(low[2:3], low[2:3])
    torch.testing.assert_close(motion[1:2], pair_motion)
    torch.testing.assert_close(change[1:2], pair_change)
    torch.testing.assert_close(motion[2:3], last_motion)


def test_training_batchnorm_sees_the_batch_of_real_pairs():
    """One pass over the batch's 2 x 3 real pairs, not one per snippet with a self-pair: with
    per-snippet statistics the model learned what eval-mode statistics do not reproduce."""
    model = build_backbone("dynamics", 2, **SMALL).train()
    seen = []
    model.motion_entry[1].register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    model(torch.randn(2, 4, 3, 32, 32))
    assert [len(x) for x in seen] == [2 * 3]


@pytest.mark.parametrize(("num_frames", "block", "batch"), [(13, 5, 2), (3, 256, 8)])
def test_extraction_equals_the_per_window_definition(monkeypatch, num_frames, block, batch):
    monkeypatch.setattr(extract, "CENTRES_PER_BLOCK", block)  # several blocks and chunks
    torch.manual_seed(2)
    model = build_backbone("dynamics", 3, **SMALL).eval()
    video = torch.randn(num_frames, 3, 32, 32)
    features = video_features(
        model, lambda lo, hi: video[lo:hi], num_frames, batch, torch.device("cpu")
    )
    indices = window_indices(np.arange(num_frames), model.preprocessing, num_frames)
    with torch.no_grad():
        expected = torch.cat([model.forward_features(video[row][None]) for row in indices])
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_bad_options_are_errors():
    with pytest.raises(MotionsegError, match="ImageNet"):
        build_backbone("dynamics", 3, weights="imagenet")
    with pytest.raises(MotionsegError, match="tau"):
        build_backbone("dynamics", 3, tau=0.0)
    with pytest.raises(MotionsegError, match="batch_size >= 2"):
        build_backbone("dynamics", 3, **SMALL).train()(torch.randn(1, 4, 3, 32, 32))


def test_freeze_bn_keeps_every_branch_statistics():
    model = build_backbone("dynamics", 2, **SMALL, width=8, freeze_bn=True).train()
    before = {n: b.clone() for n, b in model.named_buffers() if n.endswith("running_mean")}
    model(torch.randn(2, 4, 3, 32, 32))
    after = dict(model.named_buffers())
    assert all(torch.equal(after[n], b) for n, b in before.items())
    assert model.dropout.training  # only BatchNorm is held in eval mode
