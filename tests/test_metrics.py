"""Segmentation metrics: hand-made cases, a naive cross-check, and the TCN authors' predictions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import REFERENCE

from stages.evaluate.metrics import (
    Counts,
    combine,
    f1_from_counts,
    foreground_segments,
    levenshtein,
    match_counts,
    score_video,
)

TCN_PREDICTIONS = REFERENCE / "tcn_predictions"


def frames(*runs: tuple[str, int]) -> np.ndarray:
    """Per-frame labels from (label, length) runs."""
    return np.concatenate([np.full(n, label, dtype=object) for label, n in runs])


def metrics(gt, pred, background=("background",)) -> dict[str, float]:
    return combine([score_video(gt, pred, background)])


# --- hand-made cases -------------------------------------------------------------------------


def test_perfect_prediction_scores_100_in_both_conventions():
    gt = frames(("background", 5), ("cut", 10), ("peel", 7), ("background", 3), ("cut", 4))
    scores = [score_video(gt, gt), score_video(gt[:12], gt[:12])]
    for convention in ("per-video", "pooled"):
        assert combine(scores, convention) == pytest.approx(
            {"acc": 100, "edit": 100, "f1@10": 100, "f1@25": 100, "f1@50": 100}
        )


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("kitten", "sitting", 3),
        ("", "abc", 3),
        ("abc", "", 3),
        ("", "", 0),
        ("abcd", "abcd", 0),
        ("abcd", "dcba", 4),
        ("flaw", "lawn", 2),
    ],
)
def test_levenshtein_known_distances(a, b, distance):
    assert levenshtein(list(a), list(b)) == distance
    assert levenshtein(list(b), list(a)) == distance


def _naive_levenshtein(a, b) -> int:
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
    return d[-1][-1]


def test_levenshtein_matches_textbook_dynamic_programme():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = list(rng.choice(list("abcd"), rng.integers(0, 15)))
        b = list(rng.choice(list("abcd"), rng.integers(0, 15)))
        assert levenshtein(a, b) == _naive_levenshtein(a, b)


def test_edit_score_of_a_dropped_segment():
    gt = frames(("a", 4), ("b", 4), ("c", 4))
    pred = frames(("a", 8), ("c", 4))
    assert metrics(gt, pred)["edit"] == pytest.approx((1 - 1 / 3) * 100)


def test_over_segmentation_is_penalised_by_edit_and_f1_not_much_by_accuracy():
    gt = frames(("a", 10), ("b", 10))
    pred = frames(("a", 5), ("b", 1), ("a", 4), ("b", 10))
    m = metrics(gt, pred)
    assert m["acc"] == pytest.approx(95)
    assert m["edit"] == pytest.approx(50)  # a b a b vs a b: two insertions over 4 segments
    # a[0,5) TP (IoU .5), b[5,6) FP (no overlap with b), a[6,10) FP (its best GT is used), b TP
    for key in ("f1@10", "f1@25", "f1@50"):
        assert m[key] == pytest.approx(100 * 2 * 0.5 * 1 / 1.5)


@pytest.mark.parametrize(
    ("pred_len", "gt_len", "expected"),
    [
        (1, 10, {"f1@10": 100, "f1@25": 0, "f1@50": 0}),  # IoU exactly 0.10
        (5, 20, {"f1@10": 100, "f1@25": 100, "f1@50": 0}),  # IoU exactly 0.25
        (5, 10, {"f1@10": 100, "f1@25": 100, "f1@50": 100}),  # IoU exactly 0.50
        (4, 10, {"f1@10": 100, "f1@25": 100, "f1@50": 0}),  # IoU 0.40
    ],
)
def test_f1_thresholds_count_iou_equal_to_k_as_a_hit(pred_len, gt_len, expected):
    gt = frames(("a", gt_len), ("background", 5))
    pred = frames(("a", pred_len), ("background", gt_len - pred_len + 5))
    m = metrics(gt, pred)
    assert {k: m[k] for k in expected} == pytest.approx(expected)


def test_f1_needs_the_same_label():
    gt = frames(("a", 10))
    pred = frames(("b", 10))
    counts = match_counts(foreground_segments(gt, ()), foreground_segments(pred, ()), [0.1])
    assert counts[0.1] == Counts(tp=0, fp=1, fn=1)
    assert metrics(gt, pred)["f1@10"] == 0


def test_background_only_videos():
    bg = frames(("background", 30))
    assert metrics(bg, bg) == pytest.approx(
        {"acc": 100, "edit": 100, "f1@10": 100, "f1@25": 100, "f1@50": 100}
    )
    # a predicted action in a background-only video: edit 0, F1 0
    pred = frames(("background", 10), ("cut", 10), ("background", 10))
    m = metrics(bg, pred)
    assert (m["edit"], m["f1@10"], m["acc"]) == pytest.approx((0, 0, 100 * 20 / 30))
    # the reverse: a missed action
    m = metrics(pred, bg)
    assert (m["edit"], m["f1@10"]) == (0, 0)


def test_several_background_names():
    gt = frames(("start", 3), ("a", 3), ("end", 3))
    pred = frames(("end", 3), ("a", 3), ("start", 3))
    both = metrics(gt, pred, background=("start", "end"))
    assert both == pytest.approx(
        {"acc": 100 / 3, "edit": 100, "f1@10": 100, "f1@25": 100, "f1@50": 100}
    )
    one = metrics(gt, pred, background=("start",))
    assert one["edit"] < 100
    assert one["f1@10"] < 100


def test_labels_are_compared_as_strings():
    assert metrics(np.array([0, 1, 1, 2]), ["0", "1", "1", "2"], background=("0",))["acc"] == 100


def test_conventions_differ_on_unequal_videos():
    long_right = score_video(frames(("a", 50), ("b", 50)), frames(("a", 50), ("b", 50)))
    short_wrong = score_video(frames(("c", 10)), frames(("d", 10)))
    per_video = combine([long_right, short_wrong], "per-video")
    pooled = combine([long_right, short_wrong], "pooled")
    assert per_video["acc"] == pytest.approx(50)
    assert pooled["acc"] == pytest.approx(100 * 100 / 110)
    assert per_video["f1@50"] == pytest.approx(50)  # mean of 100 and 0
    assert pooled["f1@50"] == pytest.approx(100 * 2 / 3)  # TP 2, FP 1, FN 1
    assert per_video["edit"] == pooled["edit"] == pytest.approx(50)


def test_f1_from_counts_edge_cases():
    assert f1_from_counts(0, 0, 0) == 100
    assert f1_from_counts(0, 3, 0) == 0
    assert f1_from_counts(0, 0, 3) == 0
    assert f1_from_counts(1, 1, 1) == pytest.approx(50)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="differ in shape"):
        score_video(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no frames"):
        score_video([], [])
    with pytest.raises(ValueError, match="threshold"):
        score_video(["a"], ["a"], thresholds=(0.0,))
    with pytest.raises(ValueError, match="convention"):
        combine([score_video(["a"], ["a"])], "median")  # type: ignore[arg-type]


def _naive_f1_counts(gt, pred, background, k) -> tuple[int, int, int]:
    """The definition, written as the TCN code's loop, to cross-check the vectorised version."""
    y = foreground_segments(gt, background)
    p = foreground_segments(pred, background)
    used = [False] * len(y)
    tp = fp = 0
    for s in p:
        best, best_iou = None, -1.0
        for i, g in enumerate(y):
            if g.label != s.label:
                continue
            inter = min(s.end, g.end) - max(s.start, g.start)
            union = max(s.end, g.end) - min(s.start, g.start)
            iou = inter / union
            if iou > best_iou:
                best, best_iou = i, iou
        if best is not None and best_iou >= k and not used[best]:
            tp += 1
            used[best] = True
        else:
            fp += 1
    return tp, fp, len(y) - tp


def test_vectorised_matching_equals_the_greedy_loop():
    rng = np.random.default_rng(1)
    for _ in range(40):
        gt = np.repeat(rng.choice(["bg", "a", "b", "c"], 12), rng.integers(1, 9, 12))
        pred = gt.copy()
        flips = rng.random(gt.size) < 0.15
        pred[flips] = rng.choice(["bg", "a", "b", "c"], flips.sum())
        score = score_video(gt, pred, background=("bg",))
        for k in (0.1, 0.25, 0.5):
            c = score.counts[k]
            assert (c.tp, c.fp, c.fn) == _naive_f1_counts(gt, pred, ("bg",), k)


# --- regression against the TCN authors' released predictions -------------------------------

# (granularity, model folder) -> published F1@10, Edit, Acc (metrics-and-heads.md, seeds' Table 1)
SALADS_TABLE = {
    ("mid", "mid_video_tCNN_C36"): (55.9, 45.9, 59.4),
    ("mid", "mid_video_DilatedTCN_B3_L5"): (52.2, 43.1, 59.3),
    ("mid", "mid_video_ED-TCN_L2_C15"): (68.0, 59.8, 64.7),
    ("eval", "eval_video_tCNN_C36"): (61.7, 52.8, 71.3),
    ("eval", "eval_video_DilatedTCN_L5_B2"): (55.8, 46.9, 71.1),
    ("eval", "eval_video_ED-TCN_L2_C18"): (76.5, 72.2, 73.4),
}
# How the published one-decimal figures relate to ours: F1@10 and Acc are rounded, while the
# Edit column is truncated (45.953 -> 45.9, 52.872 -> 52.8, 72.266 -> 72.2; no other reading of
# the definition comes closer). One figure is off: mid ST-CNN accuracy is 59.466 from the
# released predictions but printed 59.4; it is pinned to our value so a change still fails.
PRINTED_OFF = {("mid", "mid_video_tCNN_C36", "acc"): 59.47}


def _truncate(x: float) -> float:
    return math.floor(x * 10) / 10


needs_tcn = pytest.mark.reference("tcn_predictions")


def _split_scores(folder: Path):
    from scipy.io import loadmat

    for mat in sorted(folder.glob("*.mat")):
        data = loadmat(mat)
        yield [
            score_video(np.ravel(y), np.ravel(p), background=("0",))
            for y, p in zip(data["Y"][0], data["P"][0], strict=True)
        ]


@needs_tcn
@pytest.mark.parametrize(("granularity", "model"), list(SALADS_TABLE))
def test_reproduces_published_50salads_numbers(granularity, model):
    """Per-video mean within each split, then the mean over the 5 splits (all splits hold 10
    videos, so this equals the mean over all 50 videos)."""
    splits = [combine(s) for s in _split_scores(TCN_PREDICTIONS / "50Salads" / granularity / model)]
    assert len(splits) == 5
    ours = {key: float(np.mean([s[key] for s in splits])) for key in ("f1@10", "edit", "acc")}
    f1, edit, acc = SALADS_TABLE[granularity, model]
    assert round(ours["f1@10"], 1) == f1
    assert _truncate(ours["edit"]) == edit
    pinned = PRINTED_OFF.get((granularity, model, "acc"))
    if pinned is None:
        assert round(ours["acc"], 1) == acc
    else:
        assert round(ours["acc"], 2) == pinned


@needs_tcn
def test_pooled_accuracy_is_correct_frames_over_all_frames():
    from scipy.io import loadmat

    folder = TCN_PREDICTIONS / "50Salads" / "mid" / "mid_video_ED-TCN_L2_C15"
    correct = total = 0
    scores = []
    for mat in sorted(folder.glob("*.mat")):
        data = loadmat(mat)
        for y, p in zip(data["Y"][0], data["P"][0], strict=True):
            correct += int((y == p).sum())
            total += y.size
            scores.append(score_video(np.ravel(y), np.ravel(p), background=("0",)))
    assert combine(scores, "pooled")["acc"] == pytest.approx(100 * correct / total)
    assert combine(scores, "pooled")["acc"] != pytest.approx(combine(scores)["acc"])
