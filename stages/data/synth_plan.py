"""The timeline of the demo dataset: which actions each video shows, when, and for how long.

Videos are laid out like short cooking clips: a little background, then a random order of a
random subset of the actions, each lasting 1.5-4 s, separated by background gaps of 0.5-2 s,
then a little background again. Each action appears at most once per video, and the actions
of each new video are drawn from the least-used ones so far (ties broken at random), so every
class appears in the dataset and the class counts stay balanced even for a dozen videos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.common.labels import Segment, frames_from_segments

BACKGROUND = "background"

# Same object, same look; the class is only in how it moves.
MOTION_ACTIONS: tuple[str, ...] = (
    "slide_left",
    "slide_right",
    "rotate",
    "shake",
    "stir_slow",
    "stir_fast",
)
# Something new appears on screen.
APPEARANCE_ACTIONS: tuple[str, ...] = ("add_ingredient", "pour")
ACTIONS: tuple[str, ...] = MOTION_ACTIONS + APPEARANCE_ACTIONS
CLASSES: tuple[str, ...] = (BACKGROUND, *ACTIONS)

ACTIONS_PER_VIDEO = (6, 8)  # inclusive range
ACTION_SECONDS = (1.5, 3.0)
GAP_SECONDS = (0.5, 1.5)
EDGE_SECONDS = (0.5, 1.0)  # background before the first and after the last action


@dataclass(frozen=True)
class VideoPlan:
    """One video's identity and its action segments (frames [start, end), background between)."""

    video_id: str
    index: int
    group: int  # 0-based; split `group + 1` tests it
    num_frames: int
    actions: tuple[Segment, ...]

    @property
    def group_name(self) -> str:
        return f"S{self.group + 1}"

    def labels(self) -> np.ndarray:
        """Per-frame class names at the native frame rate."""
        rows = [(s.start, s.end - 1, s.label) for s in self.actions]
        return frames_from_segments(rows, self.num_frames, BACKGROUND)


def group_of(index: int, num_videos: int, num_groups: int) -> int:
    """Contiguous, near-equal blocks: 12 videos in 4 groups -> 3 videos per group."""
    return index * num_groups // num_videos


def plan_videos(
    rng: np.random.Generator, num_videos: int, num_groups: int, fps: int
) -> list[VideoPlan]:
    """Draw every video's timeline; ids are `S<group>_<nn>` (GTEA-like subject prefix)."""

    def frames(bounds: tuple[float, float], minimum: int) -> int:
        return max(minimum, round(rng.uniform(*bounds) * fps))

    counts = np.zeros(len(ACTIONS), dtype=np.int64)
    per_group = np.zeros(num_groups, dtype=np.int64)
    plans: list[VideoPlan] = []
    for index in range(num_videos):
        group = group_of(index, num_videos, num_groups)
        per_group[group] += 1
        k = int(rng.integers(ACTIONS_PER_VIDEO[0], ACTIONS_PER_VIDEO[1] + 1))
        least_used = np.lexsort((rng.random(len(ACTIONS)), counts))[:k]
        counts[least_used] += 1
        order = rng.permutation(least_used)

        t = frames(EDGE_SECONDS, 1)
        actions: list[Segment] = []
        for i, action in enumerate(order):
            if i:
                t += frames(GAP_SECONDS, 1)
            length = frames(ACTION_SECONDS, 2)
            actions.append(Segment(ACTIONS[action], t, t + length))
            t += length
        t += frames(EDGE_SECONDS, 1)
        video_id = f"S{group + 1}_{per_group[group]:02d}"
        plans.append(VideoPlan(video_id, index, group, t, tuple(actions)))
    return plans
