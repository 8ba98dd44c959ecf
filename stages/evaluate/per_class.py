"""Per-class frame accuracy and confusion matrices of every model, for the report.

A class's frame accuracy is the share of its ground-truth frames predicted as it (its recall).
Per run it is pooled over the frames of the split's test videos (a class may be missing from a
single video, so a per-video mean would be undefined), then, like the main table, averaged over
the splits of a run (splits whose test videos lack the class are left out) and over runs.
Classes the manifest marks `motion_only` (they look alike and differ only in motion) get a `*`
and their mean a column of its own: that is where a motion model must beat appearance.

The confusion matrix of a model sums the frames of all its runs and splits; rows (ground truth)
are normalised to 1, so the diagonal is the pooled per-class accuracy.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stages.evaluate.runs import RunScores

MOTION_MARK = "*"
MOTION_MEAN = "motion-only mean"


def confusion_counts(item: RunScores, order: Sequence[str]) -> np.ndarray:
    """Frames of a run by (ground truth, prediction), both in `order`: `[K, K]` int."""
    index = {name: i for i, name in enumerate(order)}
    counts = np.zeros((len(order), len(order)), dtype=np.int64)
    for (gt, pred), frames in item.pairs.items():
        counts[index[gt], index[pred]] += frames
    return counts


def _recall(counts: np.ndarray) -> np.ndarray:
    """Diagonal over row sums; NaN for classes without ground-truth frames."""
    totals = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(counts) / totals, np.nan)


def class_header(name: str, motion_only: Sequence[str]) -> str:
    return f"{name}{MOTION_MARK}" if name in motion_only else name


def per_class_table(
    scored: Sequence[RunScores],
    order: Sequence[str],
    motion_only: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per model: frame accuracy (%) of every class in `order` (mean over splits, then
    runs), and the mean over the motion-only classes when the manifest names any."""
    per_run: dict[str, dict[int, list[np.ndarray]]] = {}
    for item in scored:
        recall = _recall(confusion_counts(item, order))
        per_run.setdefault(item.run.model, {}).setdefault(item.run.run, []).append(recall)
    rows = []
    for model, runs in per_run.items():
        with warnings.catch_warnings():  # 'mean of empty slice': a class no split has -> NaN
            warnings.simplefilter("ignore", category=RuntimeWarning)
            run_means = np.stack([np.nanmean(np.stack(splits), axis=0) for splits in runs.values()])
            values = 100 * np.nanmean(run_means, axis=0)
            motion = np.nanmean([v for c, v in zip(order, values, strict=True) if c in motion_only])
        row: dict[str, object] = {"model": model}
        row.update({class_header(c, motion_only): v for c, v in zip(order, values, strict=True)})
        if motion_only:
            row[MOTION_MEAN] = float(motion)
        rows.append(row)
    return pd.DataFrame(rows)


def format_per_class(table: pd.DataFrame) -> pd.DataFrame:
    """Percentages with two decimals, '-' where a class never occurs in the test videos."""
    out = table.copy()
    for column in out.columns[1:]:
        out[column] = ["-" if np.isnan(v) else f"{v:.2f}" for v in out[column]]
    return out


def model_confusions(scored: Sequence[RunScores], order: Sequence[str]) -> dict[str, np.ndarray]:
    """Model -> frame counts summed over its runs and splits."""
    out: dict[str, np.ndarray] = {}
    for item in scored:
        counts = confusion_counts(item, order)
        out[item.run.model] = out.get(item.run.model, 0) + counts
    return out


def plot_confusion(
    out: str | Path,
    title: str,
    counts: np.ndarray,
    order: Sequence[str],
    motion_only: Sequence[str] = (),
) -> None:
    """A row-normalised confusion matrix as a PNG; motion-only class names carry the mark."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    names = [class_header(c, motion_only) for c in order]
    side = 1.2 + 0.45 * len(order)
    fig = Figure(figsize=(side + 1.5, side))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(shares, vmin=0.0, vmax=1.0, cmap="Blues")
    for (i, j), value in np.ndenumerate(shares):
        if value >= 0.005:
            colour = "white" if value > 0.6 else "black"
            ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(len(order)), names, rotation=60, ha="right", fontsize="small")
    ax.set_yticks(range(len(order)), names, fontsize="small")
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the class's frames")
    ax.set_title(title, fontsize="medium")
    fig.savefig(out, dpi=100, bbox_inches="tight")
