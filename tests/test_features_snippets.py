"""Snippet windows (majority label, purity) and their transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stages.common.errors import MotionsegError
from stages.features.base import Preprocessing
from stages.features.snippets import eval_transform, label_windows, train_transform

PREP = Preprocessing(snippet_length=4, feature_window=4, crop=8, resize_range=(8, 12))


def test_windows_majority_and_purity():
    # 0 0 0 0 | 1 1 1 2 | 2 2 2 2 | 0 0 1 1 | 2
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 0, 0, 1, 1, 2])
    kept = label_windows(labels, length=4, stride=4, purity=0.7, num_classes=3)
    # windows at 0, 4, 8, 12 (16 would run past the end); 12 is a 50/50 tie -> dropped
    assert kept == [(0, 0, 1.0), (4, 1, 0.75), (8, 2, 1.0)]
    lenient = label_windows(labels, length=4, stride=4, purity=0.5, num_classes=3)
    assert lenient[-1] == (12, 0, 0.5)  # ties go to the lower class index


def test_windows_stride_and_short_video():
    labels = np.zeros(10, dtype=np.int64)
    assert [w[0] for w in label_windows(labels, 4, 2, 0.7, 1)] == [0, 2, 4, 6]
    assert label_windows(labels[:3], 4, 2, 0.7, 1) == []
    with pytest.raises(MotionsegError):
        label_windows(labels, 4, 0, 0.7, 1)


def _frames(t: int = 4, h: int = 6, w: int = 9) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def test_eval_transform_shape_and_normalisation():
    flat = np.full((2, 5, 7, 3), 255, dtype=np.uint8)
    out = eval_transform(flat, PREP)
    assert out.shape == (2, 3, 8, 8)
    expected = (1 - torch.tensor(PREP.mean)) / torch.tensor(PREP.std)
    torch.testing.assert_close(out[0, :, 4, 4], expected)
    assert torch.equal(eval_transform(_frames(), PREP), eval_transform(_frames(), PREP))


def test_train_transform_crop_is_shared_and_seeded():
    frames = np.repeat(_frames(1), 4, axis=0)  # four identical frames
    out = train_transform(frames, PREP, np.random.default_rng(5))
    assert out.shape == (4, 3, 8, 8)
    assert all(torch.equal(out[0], out[t]) for t in range(4))  # same resize and crop per frame
    again = train_transform(frames, PREP, np.random.default_rng(5))
    assert torch.equal(out, again)
    variants = {
        train_transform(frames, PREP, np.random.default_rng(s)).sum().item() for s in range(8)
    }
    assert len(variants) > 1


def test_transform_rejects_non_rgb():
    with pytest.raises(MotionsegError):
        eval_transform(np.zeros((2, 4, 4), dtype=np.uint8), PREP)
