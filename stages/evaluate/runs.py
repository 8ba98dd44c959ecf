"""Find and score the runs of a predictions tree.

Layout (docs/contracts.md): `{backbone}/{head}/split{split}/run{r}/` holding `pred/` and `gt/`
at the feature rate and `native/pred/`, `native/gt/` at the source frame rate; the split is any
name (stages.common.results_paths parses the folders). Hidden entries (the temporary names of
atomic writes) and folders whose names do not follow `split{split}`/`run{r}` are not runs and
are skipped; a run folder without the label folders of the chosen rate is an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from stages.common.errors import input_error
from stages.common.labels import ClassList
from stages.common.results_paths import parse_run_dir, split_sort_key
from stages.evaluate.label_folders import Span, crop_to_span, read_pairs
from stages.evaluate.metrics import VideoScore, score_video

Rate = Literal["feature", "native"]
RATES: tuple[Rate, ...] = ("feature", "native")


@dataclass(frozen=True)
class RunDir:
    """One trained head's predictions on one split."""

    backbone: str
    head: str
    split: str
    run: int
    path: Path

    @property
    def model(self) -> str:
        """Row name in the tables, as in the LCDC paper's 'LCDC + ED-TCN'."""
        return f"{self.backbone} + {self.head}"

    def label_dirs(self, rate: Rate) -> tuple[Path, Path]:
        """(ground truth, prediction) folders at `rate`."""
        base = self.path / "native" if rate == "native" else self.path
        gt, pred = base / "gt", base / "pred"
        for folder in (gt, pred):
            if not folder.is_dir():
                raise input_error(folder, f"missing: run folder has no {rate}-rate labels")
        return gt, pred


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_runs(
    predictions_dir: str | Path, only: Sequence[str | Path] | None = None
) -> list[RunDir]:
    """All run folders, sorted by backbone, head, split and run.

    `only` restricts them to the given run folders (the workflow passes the runs its config
    asks for, so folders left by an earlier config do not leak into the tables); each must exist.
    """
    root = Path(predictions_dir)
    if not root.is_dir():
        raise input_error(root, "predictions folder not found")
    runs: list[RunDir] = []
    for backbone in _subdirs(root):
        for head in _subdirs(backbone):
            for split in _subdirs(head):
                for run in _subdirs(split):
                    key = parse_run_dir(run.relative_to(root))
                    if key is not None:
                        runs.append(RunDir(key.backbone, key.head, key.split, key.run, run))
    if only is not None:
        wanted = {Path(p).resolve() for p in only}
        missing = sorted(str(p) for p in wanted - {r.path.resolve() for r in runs})
        if missing:
            raise input_error(root, f"requested run folder(s) not found: {missing}")
        runs = [r for r in runs if r.path.resolve() in wanted]
    if not runs:
        raise input_error(root, "no run folders ({backbone}/{head}/split{split}/run{r}/) found")
    return sorted(runs, key=lambda r: (r.backbone, r.head, split_sort_key(r.split), r.run))


@dataclass(frozen=True)
class RunScores:
    """Per-video scores of one run, the labels seen in it (for a shared colour map) and its
    frames counted by (ground truth, prediction) over all its videos (per-class accuracy)."""

    run: RunDir
    videos: dict[str, VideoScore]
    labels: frozenset[str]
    pairs: dict[tuple[str, str], int]


def score_run(
    run: RunDir,
    rate: Rate,
    background: Sequence[str],
    classes: ClassList | None = None,
    span: Span = "video",
) -> RunScores:
    """Score every video of a run at `rate` over `span` (label_folders.crop_to_span)."""
    gt_dir, pred_dir = run.label_dirs(rate)
    videos: dict[str, VideoScore] = {}
    labels: set[str] = set()
    pairs: Counter[tuple[str, str]] = Counter()
    for video, (gt, pred) in read_pairs(gt_dir, pred_dir, classes).items():
        scored_gt, scored_pred = crop_to_span(gt, pred, background, span)
        videos[video] = score_video(scored_gt, scored_pred, background)
        labels.update(np.unique(gt.astype(str)), np.unique(pred.astype(str)))
        frames = zip(scored_gt.astype(str).tolist(), scored_pred.astype(str).tolist(), strict=True)
        pairs.update(frames)
    return RunScores(run, videos, frozenset(labels), dict(pairs))
