"""Every registered backbone, at its declared `small_options`, on snippets whose two classes
differ only in the direction of a translation: motion models (`sees_motion`) must learn it
(>= 85% on held-out snippets), the others must not be able to (<= 65%).

A snippet: a flat square of a random colour on per-snippet random noise, sliding 2 px per frame
to the left (class 0) or right (class 1) within the frame, plus sensor noise per frame. Start
positions are drawn so that a rightward snippet's frames, taken as a set, are distributed like
a leftward one's: one frame, or the mean of the frames, carries no cue to the class, only their
order does. Training sees fresh snippets every epoch (no memorising), with the training loop's
own pieces: Adam, `run_epoch`, and BatchNorm re-estimation before evaluation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stages.common.runtime import make_optimizer
from stages.features.registry import BACKBONES, build_backbone, list_backbones, sees_motion
from stages.features.train import reestimate_batchnorm, run_epoch

SQUARE, SPEED = 8, 2.0  # px, px per frame
EPOCHS, PER_EPOCH, BATCH, LR = 6, 128, 8, 3e-3
HELD_OUT = 256
CPU = torch.device("cpu")


def direction_snippets(count: int, length: int, side: int, seed: int):
    """`count` snippets `[count, length, 3, side, side]` and their labels (1: rightward)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    travel = SPEED * (length - 1)
    cols = np.arange(side) + 0.5
    rows = cols[:, None]
    out = np.empty((count, length, 3, side, side), dtype=np.float32)
    for i, label in enumerate(labels):
        background = rng.normal(0.0, 0.5, (3, side, side))
        colour = rng.uniform(1.0, 2.0, (3, 1, 1))
        start = rng.uniform(SQUARE / 2, side - SQUARE / 2 - travel)
        top = rng.uniform(SQUARE / 2, side - SQUARE / 2)
        step = SPEED if label else -SPEED
        start = start if label else start + travel
        for t in range(length):
            inside = (np.abs(cols - start - step * t) < SQUARE / 2) & (
                np.abs(rows - top) < SQUARE / 2
            )
            noise = rng.normal(0.0, 0.2, (3, side, side))
            out[i, t] = np.where(inside, colour, background) + noise
    return torch.from_numpy(out), torch.from_numpy(labels)


def _batches(x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, len(x), BATCH)]


def test_one_frame_carries_no_direction_cue():
    """Where the square is, frame by frame, is distributed alike in both classes."""
    x, y = direction_snippets(400, 8, 32, seed=0)
    bright = x.mean(dim=2) > 0.9  # the square's pixels
    column = torch.arange(32.0)
    centre = (bright.float() * column).sum((-1, -2)) / bright.float().sum((-1, -2))
    left, right = centre[y == 0], centre[y == 1]
    assert abs(left.mean() - right.mean()) < 1.0  # px, over all frames
    assert (left[:, -1] - left[:, 0]).mean() < -10 < 10 < (right[:, -1] - right[:, 0]).mean()


# Minutes, not seconds, on 2 CPU cores (R(2+1)D-18 at full width has no narrow option).
SLOW = {"dem": "about 2-6 min on 2 cores"}


def _cases() -> list:
    return [
        pytest.param(name, marks=[pytest.mark.slow] if name in SLOW else [], id=name)
        for name in list_backbones()
    ]


@pytest.mark.parametrize("name", _cases())
def test_backbone_learns_direction_iff_it_sees_motion(name):
    traits = BACKBONES.traits(name)
    assert {"small_options", "sees_motion"} <= set(traits), (
        f"backbone {name!r} must register sees_motion and small_options (see the registry)"
    )
    torch.manual_seed(0)
    model = build_backbone(name, 2, **traits["small_options"])
    prep = model.preprocessing
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, "adam", LR, 0.0, 0.9)
    for epoch in range(EPOCHS):
        x, y = direction_snippets(PER_EPOCH, prep.snippet_length, prep.crop, seed=1 + epoch)
        run_epoch(model, _batches(x, y), CPU, False, optimizer)
    reestimate_batchnorm(model, _batches(x, y), CPU, False)
    x, y = direction_snippets(HELD_OUT, prep.snippet_length, prep.crop, seed=1000)
    accuracy = run_epoch(model, _batches(x, y), CPU, False)[1]
    if sees_motion(name):
        assert accuracy >= 0.85, f"{name} (a motion model) reached only {accuracy:.3f}"
    else:
        assert accuracy <= 0.65, f"{name} (no motion) reached {accuracy:.3f}: a leak?"
