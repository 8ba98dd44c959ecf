"""Segmentation metrics: frame accuracy, segmental edit score and F1@k.

Implemented from the definitions in the reference (`metrics-and-heads.md`, after Lea et al.'s
TCN code). Labels are compared as strings; any number of class names may count as background.
Background segments are dropped before edit and F1, background frames still count for accuracy.

Two ways to combine videos are offered because published numbers depend on the choice:
`per-video` (mean of per-video values; the TCN code and the LCDC tables) and `pooled` (accuracy
and F1 from frame and segment counts summed over videos, as MS-TCN's `eval.py`; edit is still
the per-video mean). Choices the definitions leave open:

- A video whose ground truth and prediction both have no foreground segment scores 100 for F1,
  like the edit score (the TCN code would give 0 via `nan_to_num`); pooled F1 with no segment
  in any video is 100 for the same reason.
- Thresholds must lie in (0, 1]: with k = 0 a prediction overlapping nothing would count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from stages.common.labels import Segment, segments

Convention = Literal["per-video", "pooled"]
CONVENTIONS: tuple[Convention, ...] = ("per-video", "pooled")
THRESHOLDS: tuple[float, ...] = (0.10, 0.25, 0.50)
DEFAULT_BACKGROUND: tuple[str, ...] = ("background",)


def f1_key(threshold: float) -> str:
    """Result key of a threshold: 0.1 -> 'f1@10'."""
    return f"f1@{round(threshold * 100)}"


def metric_keys(thresholds: Sequence[float] = THRESHOLDS) -> list[str]:
    """Result keys in table order: acc, edit, then one F1 per threshold."""
    return ["acc", "edit", *(f1_key(k) for k in thresholds)]


@dataclass(frozen=True)
class Counts:
    """Segment matching outcome at one IoU threshold."""

    tp: int
    fp: int
    fn: int

    @property
    def f1(self) -> float:
        return f1_from_counts(self.tp, self.fp, self.fn)


@dataclass(frozen=True)
class VideoScore:
    """Everything both conventions need from one video."""

    frames: int
    correct: int
    edit: float
    counts: dict[float, Counts]

    @property
    def acc(self) -> float:
        return 100.0 * self.correct / self.frames


def f1_from_counts(tp: int, fp: int, fn: int) -> float:
    """F1 in percent; 100 when there is nothing to find and nothing was predicted."""
    if tp + fp + fn == 0:
        return 100.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    if precision + recall == 0:
        return 0.0
    return 100.0 * 2 * precision * recall / (precision + recall)


def foreground_segments(
    labels: Sequence[str] | np.ndarray, background: Iterable[str]
) -> list[Segment]:
    """Maximal runs of equal labels, background runs removed (labels compared as strings)."""
    labels = np.asarray(labels).astype(str).astype(object)
    drop = set(background)
    return [s for s in segments(labels) if s.label not in drop]


def levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    """Unit-cost edit distance, one numpy row per element of the shorter sequence.

    Within a row, insertions chain left to right; `j + cummin(tmp - j)` resolves that chain
    without a Python loop over the columns.
    """
    if len(a) > len(b):
        a, b = b, a
    b_arr = np.asarray(b, dtype=object)
    cols = np.arange(len(b_arr) + 1)
    row = cols.copy()
    for i, label in enumerate(a, 1):
        substitute = row[:-1] + (b_arr != label)
        tmp = np.empty_like(row)
        tmp[0] = i
        tmp[1:] = np.minimum(row[1:] + 1, substitute)
        row = cols + np.minimum.accumulate(tmp - cols)
    return int(row[-1])


def edit_score(gt_segs: Sequence[Segment], pred_segs: Sequence[Segment]) -> float:
    """(1 - lev / max length) * 100 on segment label sequences; two empty ones score 100."""
    y = [s.label for s in gt_segs]
    p = [s.label for s in pred_segs]
    longest = max(len(y), len(p))
    if longest == 0:
        return 100.0
    return (1.0 - levenshtein(p, y) / longest) * 100.0


def _best_matches(
    gt_segs: Sequence[Segment], pred_segs: Sequence[Segment]
) -> tuple[np.ndarray, np.ndarray]:
    """For each predicted segment (in order): best IoU with a same-label GT segment, and its index.

    A prediction with no same-label GT segment gets IoU 0 and index -1. Ties go to the earlier
    ground-truth segment, as `argmax` does in the TCN code.
    """
    best_iou = np.zeros(len(pred_segs))
    best_idx = np.full(len(pred_segs), -1)
    gt_by_label: dict[str, list[int]] = {}
    for i, s in enumerate(gt_segs):
        gt_by_label.setdefault(s.label, []).append(i)
    pred_by_label: dict[str, list[int]] = {}
    for j, s in enumerate(pred_segs):
        pred_by_label.setdefault(s.label, []).append(j)
    for label, pred_ids in pred_by_label.items():
        gt_ids = gt_by_label.get(label)
        if not gt_ids:
            continue
        g = np.array([(gt_segs[i].start, gt_segs[i].end) for i in gt_ids])
        p = np.array([(pred_segs[j].start, pred_segs[j].end) for j in pred_ids])
        inter = np.minimum(p[:, None, 1], g[None, :, 1]) - np.maximum(p[:, None, 0], g[None, :, 0])
        union = np.maximum(p[:, None, 1], g[None, :, 1]) - np.minimum(p[:, None, 0], g[None, :, 0])
        iou = np.clip(inter, 0, None) / union
        arg = iou.argmax(axis=1)
        best_iou[pred_ids] = iou[np.arange(len(pred_ids)), arg]
        best_idx[pred_ids] = np.asarray(gt_ids)[arg]
    return best_iou, best_idx


def match_counts(
    gt_segs: Sequence[Segment], pred_segs: Sequence[Segment], thresholds: Sequence[float]
) -> dict[float, Counts]:
    """TP/FP/FN of the greedy matching at each threshold.

    Walking predictions in order, a prediction is a TP iff its best ground-truth segment has
    IoU >= k and was not matched before. Because each prediction's best segment does not depend
    on earlier matches, the TPs are exactly the distinct best indices among predictions with
    IoU >= k, which needs no loop.
    """
    best_iou, best_idx = _best_matches(gt_segs, pred_segs)
    out: dict[float, Counts] = {}
    for k in thresholds:
        if not 0 < k <= 1:
            raise ValueError(f"IoU threshold must be in (0, 1], got {k}")
        tp = len(np.unique(best_idx[best_iou >= k]))
        out[k] = Counts(tp=tp, fp=len(pred_segs) - tp, fn=len(gt_segs) - tp)
    return out


def score_video(
    gt: Sequence[str] | np.ndarray,
    pred: Sequence[str] | np.ndarray,
    background: Iterable[str] = DEFAULT_BACKGROUND,
    thresholds: Sequence[float] = THRESHOLDS,
) -> VideoScore:
    """Per-video counts and edit score; `gt` and `pred` must have the same, non-zero length."""
    gt = np.asarray(gt).astype(str)
    pred = np.asarray(pred).astype(str)
    if gt.ndim != 1 or gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    if gt.size == 0:
        raise ValueError("cannot score a video with no frames")
    background = tuple(background)
    gt_segs = foreground_segments(gt, background)
    pred_segs = foreground_segments(pred, background)
    return VideoScore(
        frames=int(gt.size),
        correct=int(np.count_nonzero(gt == pred)),
        edit=edit_score(gt_segs, pred_segs),
        counts=match_counts(gt_segs, pred_segs, thresholds),
    )


def combine(
    scores: Sequence[VideoScore],
    convention: Convention = "per-video",
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict[str, float]:
    """Metrics over videos, keyed as `metric_keys(thresholds)`."""
    if not scores:
        raise ValueError("no videos to combine")
    edit = float(np.mean([s.edit for s in scores]))
    if convention == "per-video":
        result = {"acc": float(np.mean([s.acc for s in scores])), "edit": edit}
        for k in thresholds:
            result[f1_key(k)] = float(np.mean([s.counts[k].f1 for s in scores]))
    elif convention == "pooled":
        correct = sum(s.correct for s in scores)
        frames = sum(s.frames for s in scores)
        result = {"acc": 100.0 * correct / frames, "edit": edit}
        for k in thresholds:
            tp, fp, fn = (sum(getattr(s.counts[k], f) for s in scores) for f in ("tp", "fp", "fn"))
            result[f1_key(k)] = f1_from_counts(tp, fp, fn)
    else:
        raise ValueError(f"unknown convention {convention!r} (known: {', '.join(CONVENTIONS)})")
    return result
