"""Pair ground-truth and prediction folders (one label file per video) and score them.

Videos are matched by file stem. Anything that would make a score silently wrong is an error
naming the video: a video on one side only, two files for one video, or a prediction whose
length differs from its ground truth (no truncation to the shorter one).

Span: `video` scores every frame; `annotated` scores each video from its first to its last
non-background ground-truth frame. The TCN authors' 50 Salads labels cover only the span from
the first to the last annotation (82.8% of the frames), so Table 1 of their paper (and of the
LCDC paper) is comparable only with `annotated`. Where the first or last annotated action is
background at the chosen granularity (add_salt, add_vinegar at eval), the span starts or ends
at the next action; a video without any non-background frame is scored whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from stages.common.errors import input_error
from stages.common.labels import ClassList, read_label_file
from stages.evaluate.metrics import DEFAULT_BACKGROUND, THRESHOLDS, VideoScore, score_video

LABEL_SUFFIXES = (".txt", ".npy")
Span = Literal["video", "annotated"]
SPAN_NOTES: dict[str, str] = {
    "video": "Every frame of each video is scored.",
    "annotated": "Each video is scored from its first to its last annotated (non-background) "
    "ground-truth frame, the span the TCN authors' 50 Salads labels cover.",
}


def crop_to_span(
    gt: np.ndarray, pred: np.ndarray, background: Sequence[str], span: Span
) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, prediction) restricted to the frames `span` scores."""
    if span == "video":
        return gt, pred
    annotated = np.flatnonzero(~np.isin(gt.astype(str), list(background)))
    if annotated.size == 0:
        return gt, pred
    frames = slice(annotated[0], annotated[-1] + 1)
    return gt[frames], pred[frames]


def label_files(folder: str | Path) -> dict[str, Path]:
    """Video id (file stem) -> label file, for the `.txt` and `.npy` files of a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise input_error(folder, "label folder not found")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in LABEL_SUFFIXES or path.name.startswith(".") or not path.is_file():
            continue
        if path.stem in found:
            raise input_error(
                folder,
                f"two label files for video {path.stem!r}: {found[path.stem].name} and {path.name}",
            )
        found[path.stem] = path
    if not found:
        raise input_error(folder, f"no label files ({' or '.join(LABEL_SUFFIXES)})")
    return found


def read_pairs(
    gt_dir: str | Path, pred_dir: str | Path, classes: ClassList | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Video id -> (ground truth, prediction) label arrays of equal length, sorted by id."""
    gt_files = label_files(gt_dir)
    pred_files = label_files(pred_dir)
    only_gt = sorted(set(gt_files) - set(pred_files))
    only_pred = sorted(set(pred_files) - set(gt_files))
    if only_gt:
        raise input_error(
            pred_dir, f"no prediction for video(s) {', '.join(only_gt)} (present in {gt_dir})"
        )
    if only_pred:
        raise input_error(
            gt_dir, f"no ground truth for video(s) {', '.join(only_pred)} (present in {pred_dir})"
        )
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for video, gt_path in gt_files.items():
        if classes is None and gt_path.suffix != pred_files[video].suffix:
            raise input_error(
                pred_files[video],
                f"video {video!r}: {pred_files[video].suffix} prediction against a "
                f"{gt_path.suffix} ground truth ({gt_path}): .npy files hold class indices, "
                ".txt files names; pass --classes to map one onto the other",
            )
        gt = read_label_file(gt_path, classes)
        pred = read_label_file(pred_files[video], classes)
        if len(gt) != len(pred):
            raise input_error(
                pred_files[video],
                f"video {video!r}: prediction has {len(pred)} frames but the ground truth "
                f"{gt_path} has {len(gt)}",
            )
        pairs[video] = (gt, pred)
    return pairs


def unseen_names(
    pairs: dict[str, tuple[np.ndarray, np.ndarray]], names: Sequence[str]
) -> list[str]:
    """The `names` that occur in no ground-truth or prediction file (a typo there changes F1)."""
    seen: set[str] = set()
    for gt, pred in pairs.values():
        seen.update(np.unique(gt).tolist(), np.unique(pred).tolist())
    return [name for name in names if name not in seen]


def score_folders(
    gt_dir: str | Path,
    pred_dir: str | Path,
    background: Sequence[str] = DEFAULT_BACKGROUND,
    classes: ClassList | None = None,
    thresholds: Sequence[float] = THRESHOLDS,
    warn: Callable[[str], None] | None = None,
    span: Span = "video",
) -> dict[str, VideoScore]:
    """Video id -> per-video score for every video of the two folders; `warn` hears of
    background names that occur in no label file."""
    pairs = read_pairs(gt_dir, pred_dir, classes)
    unseen = unseen_names(pairs, background)
    if warn is not None and unseen:
        warn(f"background class(es) {unseen} occur in no label file of {gt_dir} or {pred_dir}")
    return {
        video: score_video(*crop_to_span(gt, pred, background, span), background, thresholds)
        for video, (gt, pred) in pairs.items()
    }
