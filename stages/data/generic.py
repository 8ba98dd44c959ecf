"""A user's own videos: a table of videos and labels in, a standard manifest out.

Input table (TSV, one row per video): `video_id`, `video` (path; a relative path is relative to
the data root and goes into the manifest as is), optionally `labels` (per-video label file; a
relative path is relative to the table's folder), `split`, `num_frames`, and any grouping column
(e.g. `subject`). Labels come from the `labels` column, else from
`<labels_dir>/<video_id>.{txt,tsv,csv,npy}`, in one of two forms, told apart by content:

- per-frame (MS-TCN `groundTruth/` layout): one class name per line, one line per video frame,
  or a `.npy` array of class indices;
- segment table: a header line naming `start`, `end`, `label` (tab-, comma- or
  space-separated). `start`/`end` are frames (0-based, end exclusive) or seconds (frame i, at
  time i / fps, is in [start, end)). Frames in no segment are background; where segments
  overlap the later row wins. The video's frame count (for trailing background) comes from a
  `num_frames` column, else from the video; seconds need the fps, from `fps` or the video.

Splits: a `split` column with only `train`/`test` values makes one split; other values name
folds (a video is tested in the fold it names, trained on in the others; empty = never tested).
Without it, `folds` groups of videos are made deterministically: groups (values of `group_by`,
or single videos) go, largest first and then by name, to the fold with the fewest videos so
far, ties to the lowest fold number.

Writes `dataset.yaml`, `videos.tsv`, `splits.tsv`, `classes.txt` into the manifest folder and one
per-frame label file per video under `<root>/frame_labels/`. Everything is read and checked
before the first file is written; each file is written atomically.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from stages.common.atomic import check_destination, write_text
from stages.common.errors import MotionsegError, input_error
from stages.common.labels import (
    ClassList,
    frames_from_segments,
    read_label_file,
    read_text,
    write_label_file,
)
from stages.common.manifest import read_tsv
from stages.common.outputs import MANIFEST, MANIFEST_PART
from stages.decode.video import VideoInfo, probe_video

LABEL_TEMPLATE = "frame_labels/{video_id}.txt"
LABEL_SUFFIXES = (".txt", ".tsv", ".csv", ".npy")
SEGMENT_COLUMNS = ("start", "end", "label")
HEADER = "# Written by `motionseg data import generic`; `settings` may be edited.\n"


@dataclass(frozen=True)
class Settings:
    """Per-dataset settings written into dataset.yaml (the 50 Salads values by default)."""

    backbone_fps: float = 6
    purity: float = 0.7
    feature_fps: float = 3


@dataclass
class GenericImport:
    manifest: dict
    frames: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def import_generic(
    table: Path,
    classes_file: Path,
    out: Path,
    root: Path | None = None,
    labels_dir: Path | None = None,
    folds: int | None = None,
    group_by: str | None = None,
    fps: float | None = None,
    segment_units: str = "frames",
    name: str | None = None,
    background: str = "background",
    settings: Settings = Settings(),
) -> GenericImport:
    """Read the table, labels and classes; write the manifest and per-frame labels."""
    if segment_units not in ("frames", "seconds"):
        raise MotionsegError(f"--segment-units must be frames or seconds, got {segment_units!r}")
    check_destination(out, MANIFEST, inputs=(table, classes_file))
    root = root if root is not None else table.parent
    videos = _read_table(table, group_by)
    classes = ClassList.read(classes_file, [background])
    splits = _splits(table, videos, folds, group_by)
    report = GenericImport(manifest={})
    probed: dict[str, float] = {}

    labels: dict[str, np.ndarray] = {}
    for row in videos.itertuples(index=False):
        source = _label_source(table, row, labels_dir)
        header = _segment_header(source)
        if header is None:
            labels[row.video_id] = read_label_file(source, classes)
            continue
        num = int(row.num_frames) if getattr(row, "num_frames", "") else None
        rate = fps
        if num is None or (segment_units == "seconds" and rate is None):
            count = _probe(root / row.video)
            num = num if num is not None else count.num_frames
            rate = rate if rate is not None else count.fps
            probed[row.video_id] = count.fps
        segs = _read_segments(source, header, classes, segment_units, rate, num, report)
        labels[row.video_id] = frames_from_segments(segs, num, background)
        dest = root / LABEL_TEMPLATE.format(video_id=row.video_id)
        if dest.exists() and dest.resolve() == source.resolve():
            raise input_error(source, "the per-frame output would overwrite this input")

    dataset_fps = fps if fps is not None else _dataset_fps(videos, root, probed, report)
    meta = {
        "name": name or out.name,
        "fps": _plain(dataset_fps),
        "background": [background],
        "default_root": str(root),
        "videos": "videos.tsv",
        "splits": "splits.tsv",
        "default_granularity": "default",
        "granularities": {"default": {"classes": "classes.txt", "labels": LABEL_TEMPLATE}},
        "settings": {k: _plain(v) for k, v in asdict(settings).items()},
    }
    for vid, frames in labels.items():
        write_label_file(root / LABEL_TEMPLATE.format(video_id=vid), frames)
        report.frames[vid] = frames.size
    out.mkdir(parents=True, exist_ok=True)
    columns = ["video_id", "video"] + (["group"] if "group" in videos.columns else [])
    write_text(out / "videos.tsv", videos[columns].to_csv(sep="\t", index=False), MANIFEST_PART)
    write_text(out / "splits.tsv", splits.to_csv(sep="\t", index=False), MANIFEST_PART)
    classes.write(out / "classes.txt", MANIFEST_PART)
    write_text(out / "dataset.yaml", HEADER + yaml.safe_dump(meta, sort_keys=False), MANIFEST_PART)
    report.manifest = meta
    return report


def _plain(value: float) -> float | int:
    """30.0 -> 30 in YAML; other values unchanged."""
    return int(value) if float(value).is_integer() else value


def _read_table(table: Path, group_by: str | None) -> pd.DataFrame:
    df = read_tsv(table, ["video_id", "video"])
    if df.empty:
        raise input_error(table, "no videos listed")
    bad = [v for v in df["video_id"] if not v or "/" in v or v != v.strip()]
    if bad:
        raise input_error(table, f"video ids must be non-empty file names, got {bad[:5]}")
    dupes = sorted(set(df["video_id"][df["video_id"].duplicated()]))
    if dupes:
        raise input_error(table, f"duplicate video id(s) {dupes}")
    if group_by is not None:
        if group_by not in df.columns:
            raise input_error(table, f"--group-by column {group_by!r} not in {list(df.columns)}")
        df["group"] = df[group_by]
    if "num_frames" in df.columns:
        bad = [n for n in df["num_frames"] if n and not n.isdigit()]
        if bad:
            raise input_error(table, f"num_frames must be positive integers, got {bad[:5]}")
    return df


def _splits(
    table: Path, videos: pd.DataFrame, folds: int | None, group_by: str | None
) -> pd.DataFrame:
    """Test videos per split, from the `split` column or from grouped folds."""
    ids = list(videos["video_id"])
    if "split" in videos.columns and folds is None:
        values = list(videos["split"])
        if {v.lower() for v in values} <= {"train", "test"}:
            rows = [("1", v) for v, s in zip(ids, values, strict=True) if s.lower() == "test"]
        else:
            rows = [(s, v) for v, s in zip(ids, values, strict=True) if s]
        if not rows:
            raise input_error(table, "the split column marks no video as test")
        return pd.DataFrame(rows, columns=["split", "video_id"])
    if folds is None:
        raise input_error(table, "no `split` column: pass --folds K (and --group-by COLUMN)")
    groups: dict[str, list[str]] = {}
    keys = videos[group_by] if group_by else videos["video_id"]
    for key, vid in zip(keys, ids, strict=True):
        groups.setdefault(key, []).append(vid)
    if not 2 <= folds <= len(groups):
        raise input_error(table, f"--folds {folds}: need 2 to {len(groups)} (number of groups)")
    sizes = [0] * folds
    rows: list[tuple[str, str]] = []
    for key in sorted(groups, key=lambda k: (-len(groups[k]), k)):
        fold = min(range(folds), key=lambda f: (sizes[f], f))
        sizes[fold] += len(groups[key])
        rows += [(str(fold + 1), vid) for vid in groups[key]]
    order = {vid: i for i, vid in enumerate(ids)}
    rows.sort(key=lambda r: (int(r[0]), order[r[1]]))
    return pd.DataFrame(rows, columns=["split", "video_id"])


def _label_source(table: Path, row, labels_dir: Path | None) -> Path:
    """The label file of one video: the `labels` column, else `<labels_dir>/<id>.<suffix>`."""
    given = getattr(row, "labels", "")
    if given:
        return table.parent / given
    if labels_dir is None:
        raise input_error(table, f"{row.video_id}: no `labels` column value and no --labels-dir")
    for suffix in LABEL_SUFFIXES:
        if (path := labels_dir / f"{row.video_id}{suffix}").is_file():
            return path
    raise input_error(labels_dir, f"no label file {row.video_id}{{{','.join(LABEL_SUFFIXES)}}}")


def _segment_header(path: Path) -> str | None:
    """The delimiter of a segment table ('\\t', ',' or None for spaces); None if per-frame."""
    if path.suffix == ".npy" or not path.is_file():
        return None
    first = next((line for line in read_text(path).splitlines() if line.strip()), "")
    for sep in ("\t", ",", " "):
        cells = [c.strip().lower() for c in first.split(sep if sep != " " else None)]
        if set(SEGMENT_COLUMNS) <= set(cells):
            return sep
        if {"start", "end"} <= set(cells):
            raise input_error(
                path,
                f"the header {first.strip()!r} names start and end but no 'label' column; a "
                f"segment table needs the columns {', '.join(SEGMENT_COLUMNS)}",
            )
    return None


def _probe(video: Path) -> VideoInfo:
    try:
        return probe_video(video)
    except MotionsegError as err:
        raise MotionsegError(
            f"{err}; the video is read for its frame count (or fps): add a num_frames column "
            f"(and pass --fps) to import without it"
        ) from None


def _read_segments(
    path: Path,
    sep: str,
    classes: ClassList,
    units: str,
    fps: float | None,
    num_frames: int,
    report: GenericImport,
) -> list[tuple[int, int, str]]:
    """(start, end_inclusive, label) rows in frames, validated; line numbers in errors.

    A segment running past the last frame is cut there (a warning); one starting after it is
    an error.
    """
    if units == "seconds" and not fps:
        raise input_error(path, "segments in seconds need the fps (--fps or a readable video)")
    df = pd.read_csv(
        path,
        sep=r"\s+" if sep == " " else sep,
        dtype=str,
        keep_default_na=False,
        encoding="utf-8-sig",
    )
    df.columns = [c.strip().lower() for c in df.columns]
    segs = []
    for lineno, (start, end, label) in enumerate(
        df[list(SEGMENT_COLUMNS)].itertuples(index=False), 2
    ):
        try:
            lo, hi = float(start), float(end)
        except ValueError:
            raise input_error(path, f"line {lineno}: start/end must be numbers") from None
        if hi < lo or lo < 0:
            raise input_error(path, f"line {lineno}: bad segment {start}-{end}")
        label = label.strip()
        if label not in classes.names:
            raise input_error(
                path, f"line {lineno}: unknown class {label!r} (known: {', '.join(classes.names)})"
            )
        if units == "seconds":
            lo, hi = lo * fps, hi * fps
        elif not (lo.is_integer() and hi.is_integer()):
            raise input_error(path, f"line {lineno}: frame numbers must be whole numbers")
        first, stop = math.ceil(lo - 1e-6), math.ceil(hi - 1e-6)
        if first >= num_frames:
            raise input_error(
                path, f"line {lineno}: segment starts at frame {first}, the video has {num_frames}"
            )
        if stop > num_frames:
            report.warnings.append(f"{path}: line {lineno}: segment cut at frame {num_frames}")
        if stop > first:
            segs.append((first, stop - 1, label))
    return segs


def _dataset_fps(
    videos: pd.DataFrame, root: Path, probed: dict[str, float], report: GenericImport
) -> float:
    """The most common probed frame rate; probes the first video if none was probed."""
    if not probed:
        first = videos.iloc[0]
        try:
            probed[first.video_id] = probe_video(root / first.video).fps
        except MotionsegError as err:
            raise MotionsegError(f"{err}; pass --fps to import without reading it") from None
    rates = sorted({round(r, 3) for r in probed.values()})
    if len(rates) > 1:
        report.warnings.append(
            f"videos have different frame rates {rates}; dataset.yaml records the most common"
        )
    values = list(probed.values())
    return max(set(values), key=values.count)
