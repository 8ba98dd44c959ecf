"""Every registered head, at its declared `small_options`, learns a small sequence task with its
own default training recipe (`default_train`).

The task (independent of any head): 6 classes, each a fixed random direction in a 32-d
feature space; every frame's feature is its class direction plus Gaussian noise strong enough
that one frame alone is often misread (nearest class direction: about 75% correct, computed
below), and videos are runs of segments of varied length (5-40 frames). A head that learns
anything reaches >= 95% training frame accuracy; one whose training is broken (no gradient,
a wrong target alignment, an optimiser that does not step) stays near chance (1/6).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stages.heads.data import VideoFeatures
from stages.heads.predict import make_head, predict_indices
from stages.heads.registry import HEADS, list_heads
from stages.heads.train import TrainSettings, fit_head

CLASSES, DIM, VIDEOS = 6, 32, 8
SEGMENT_FRAMES = (5, 40)
SEGMENTS_PER_VIDEO = 10
NOISE = 1.8  # per-dimension std; class directions have norm SIGNAL
SIGNAL = 4.0


def _task(seed: int = 0) -> tuple[list[VideoFeatures], float]:
    """The videos, and the accuracy of classifying each frame alone by its nearest direction."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(CLASSES, DIM))
    directions *= SIGNAL / np.linalg.norm(directions, axis=1, keepdims=True)
    videos, nearest_correct, frames = [], 0, 0
    for v in range(VIDEOS):
        lengths = rng.integers(SEGMENT_FRAMES[0], SEGMENT_FRAMES[1] + 1, SEGMENTS_PER_VIDEO)
        classes = rng.integers(0, CLASSES, SEGMENTS_PER_VIDEO)
        targets = np.repeat(classes, lengths).astype(np.int64)
        features = directions[targets] + rng.normal(scale=NOISE, size=(targets.size, DIM))
        nearest = np.argmin(((features[:, None] - directions[None]) ** 2).sum(-1), axis=1)
        nearest_correct += int((nearest == targets).sum())
        frames += targets.size
        index = np.arange(targets.size, dtype=np.int64)
        names = np.array([str(c) for c in targets], dtype=object)
        videos.append(VideoFeatures(f"v{v}", features.astype(np.float32), index, targets, names))
    return videos, nearest_correct / frames


def test_the_task_needs_temporal_context():
    """Single frames are ambiguous enough that a head must use its neighbours to reach 95%."""
    _, single_frame = _task()
    assert 0.6 < single_frame < 0.85


@pytest.mark.parametrize("name", list_heads())
def test_head_reaches_95_percent_training_accuracy_with_its_default_recipe(name):
    small = HEADS.get(name).small_options
    assert small, f"head {name!r} declares no small_options (see SegmentationHead)"
    videos, _ = _task()
    torch.manual_seed(0)
    head = make_head(name, DIM, CLASSES, small)
    settings = TrainSettings.resolve(name, {"device": "cpu"})
    log = fit_head(head, videos, settings, seed=0)
    with torch.inference_mode():
        correct = sum(int((predict_indices(head, v.features) == v.targets).sum()) for v in videos)
    accuracy = correct / sum(v.targets.size for v in videos)
    assert accuracy >= 0.95, f"{name}: training frame accuracy {accuracy:.3f}"
    assert log.losses[-1] < log.losses[0]
