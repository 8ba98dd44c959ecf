"""50 Salads: find the download's files and turn timestamped annotations into per-frame labels.

As distributed, video `rgb-SS-N.avi` (30 fps) comes with `timestamps-SS-N.txt` (line i is
frame i: `<timestamp> <depth file>`) and `SS-N-activityAnnotation.txt` (`<start> <end>
<label>` lines in the same clock, three label levels mixed). The importer writes, under the
data root, `labels/<granularity>/SS-N.txt` (one class per video frame, as many lines as the
timestamps file) for every granularity of the manifest's `label_map.tsv`, and links each video
found to `videos/rgb-SS-N.avi`, the path the committed manifest names.

Choices where the dataset documentation is silent:

- Only low-level labels (`<action>_prep/_core/_post`) make frames; high-level ones are ignored.
  A label missing from `label_map.tsv` is an error naming the file and line.
- A frame belongs to an interval when its timestamp lies in [start, end] (both inclusive).
- Overlaps: in the real annotations ~2,100 pairs of intervals share a boundary timestamp (the end
  of `_prep` is the start of `_core`) and ~120 overlap further, mostly the `_post` of one action
  with the `_prep` of the next. Intervals are painted in order of start time (file order among
  equal starts), so where two overlap the one that *started later* wins: the next phase or
  action takes over from the tail of the previous one, including a shared boundary frame.
- Frames in no low-level interval are `background`; each granularity then maps the painted
  low-level label (e.g. `add_salt_core` -> `add_salt` at mid, `background` at eval).
- Annotation files of ids the manifest does not list (08 and 12 exist in the release) are
  converted too when their timestamps file is found, and are simply not used by any split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stages.common.errors import MotionsegError, input_error
from stages.common.labels import ClassList, write_label_file
from stages.common.manifest import load_manifest, read_dataset_yaml, read_tsv
from stages.data.locate import is_own_link, link_video, pick_each, require_folder, scan

LABEL_MAP_FILE = "label_map.tsv"
BACKGROUND = "background"
PATTERNS = {
    "video": re.compile(r"rgb-(?P<id>\d\d-\d)\.avi"),
    "timestamps": re.compile(r"timestamps-(?P<id>\d\d-\d)\.txt"),
    "annotation": re.compile(r"(?P<id>\d\d-\d)-activityAnnotation\.txt"),
}
PREFERRED = {
    "video": {"rgb", "videos"},
    "timestamps": {"timestamps", "ts"},
    "annotation": {"activityannotations", "ann-ts", "annotations", "anno"},
}


@dataclass(frozen=True)
class LabelMap:
    """Activity label -> class per granularity; `ignored` are the high-level labels."""

    granularities: dict[str, dict[str, str]]
    ignored: frozenset[str]

    @classmethod
    def read(cls, path: Path) -> LabelMap:
        df = read_tsv(path, ["label", "level"])
        bad = sorted(set(df["level"]) - {"low", "high"})
        if bad:
            raise input_error(path, f"level must be low or high, got {bad}")
        low = df[df["level"] == "low"]
        grans = [c for c in df.columns if c not in ("label", "level")]
        return cls(
            {g: dict(zip(low["label"], low[g], strict=True)) for g in grans},
            frozenset(df.loc[df["level"] == "high", "label"]),
        )


@dataclass(frozen=True)
class Interval:
    start: int
    end: int
    label: str


def read_timestamps(path: Path) -> np.ndarray:
    """Frame timestamps (int64, one per video frame, non-decreasing)."""
    stamps: list[int] = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            stamps.append(int(parts[0]))
        except ValueError:
            raise input_error(
                path, f"line {lineno}: expected '<timestamp> <file>', got {line!r}"
            ) from None
    if not stamps:
        raise input_error(path, "no timestamps")
    ts = np.asarray(stamps, dtype=np.int64)
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        raise input_error(path, f"line {back[0] + 2}: timestamp goes backwards")
    return ts


def read_annotation(path: Path, label_map: LabelMap) -> list[Interval]:
    """Low-level intervals in file order; every label must be in the label map."""
    known = set(next(iter(label_map.granularities.values())))
    intervals: list[Interval] = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise input_error(
                path, f"line {lineno}: expected '<start> <end> <label>', got {line!r}"
            )
        try:
            start, end = int(parts[0]), int(parts[1])
        except ValueError:
            raise input_error(
                path, f"line {lineno}: timestamps must be integers: {line!r}"
            ) from None
        label = parts[2]
        if label in label_map.ignored:
            continue
        if label not in known:
            raise input_error(
                path, f"line {lineno}: unknown label {label!r} (not in label_map.tsv)"
            )
        if end < start:
            raise input_error(path, f"line {lineno}: interval ends before it starts")
        intervals.append(Interval(start, end, label))
    return intervals


def paint(intervals: list[Interval], timestamps: np.ndarray) -> np.ndarray:
    """One low-level label per frame (or background); later-starting intervals win overlaps."""
    out = np.full(timestamps.size, BACKGROUND, dtype=object)
    for iv in sorted(intervals, key=lambda iv: iv.start):  # stable: file order among ties
        lo = np.searchsorted(timestamps, iv.start, side="left")
        hi = np.searchsorted(timestamps, iv.end, side="right")
        out[lo:hi] = iv.label
    return out


def convert(annotation: Path, timestamps: Path, label_map: LabelMap) -> dict[str, np.ndarray]:
    """Per-frame class names of one video at every granularity of the label map."""
    low = paint(read_annotation(annotation, label_map), read_timestamps(timestamps))
    result = {}
    for gran, mapping in label_map.granularities.items():
        table = {**mapping, BACKGROUND: BACKGROUND}
        result[gran] = np.asarray([table[x] for x in low], dtype=object)
    return result


@dataclass
class SaladsImport:
    """What an import did: converted ids, frame counts, and what it could not find."""

    converted: dict[str, int] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    missing_videos: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def import_50salads(
    root: Path,
    out: Path,
    manifest_dir: Path,
    annotations: Path | None = None,
    timestamps: Path | None = None,
    videos: Path | None = None,
) -> SaladsImport:
    """Convert every annotation found below `root` (or the override folders) into `out`.

    All manifest ids need an annotation and a timestamps file (else one error lists what is
    missing, before anything is written). Videos are optional here: ones not found are
    reported, and `motionseg data check` refuses to go on without them.
    """
    manifest = load_manifest(manifest_dir, out)
    label_map = LabelMap.read(manifest_dir / LABEL_MAP_FILE)
    _check_classes(manifest_dir, label_map)
    sources = {"annotation": annotations, "timestamps": timestamps, "video": videos}
    for kind, folder in sources.items():
        require_folder(folder or root, f"the 50 Salads {kind} files", "50salads")
    found = _find(root, sources, out / "videos")

    wanted = manifest.video_ids
    missing = [
        f"{vid} ({kind})"
        for vid in wanted
        for kind in ("annotation", "timestamps")
        if vid not in found[kind]
    ]
    if missing:
        raise MotionsegError(
            f"{root}: no annotation/timestamps file for {len(missing)} manifest video(s): "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}. Expected "
            f"SS-N-activityAnnotation.txt and timestamps-SS-N.txt below this folder; "
            f"point --annotations / --timestamps at them."
        )
    report = SaladsImport()
    extra = sorted(set(found["annotation"]) - set(wanted))
    converted = {}  # all files are parsed before the first is written
    for vid in [*wanted, *extra]:
        if vid in found["timestamps"]:
            converted[vid] = convert(found["annotation"][vid], found["timestamps"][vid], label_map)
        else:
            report.skipped.append(vid)
    for vid, labels in converted.items():
        for gran, frames in labels.items():
            write_label_file(out / "labels" / gran / f"{vid}.txt", frames)
        report.converted[vid] = len(next(iter(labels.values())))
        if vid in extra:
            report.extra.append(vid)
        if vid in found["video"]:
            link_video(found["video"][vid], out / "videos" / f"rgb-{vid}.avi")
            report.linked.append(vid)
        elif vid in wanted:
            report.missing_videos.append(vid)
    return report


def _find(
    root: Path, sources: dict[str, Path | None], own_links: Path
) -> dict[str, dict[str, Path]]:
    """One walk per distinct search folder; per id, the preferred candidate."""
    by_folder: dict[Path, list[str]] = {}
    for kind, folder in sources.items():
        by_folder.setdefault(folder or root, []).append(kind)
    skip = is_own_link(own_links)
    found: dict[str, dict[str, Path]] = {}
    for folder, kinds in by_folder.items():
        hits = scan(folder, {k: PATTERNS[k] for k in kinds})
        for kind in kinds:
            found[kind] = pick_each(hits[kind], PREFERRED[kind], skip)
    return found


def _check_classes(manifest_dir: Path, label_map: LabelMap) -> None:
    """The label map's targets must be exactly the classes each granularity declares."""
    meta = read_dataset_yaml(manifest_dir)
    for gran, mapping in label_map.granularities.items():
        if gran not in meta["granularities"]:
            raise input_error(manifest_dir / LABEL_MAP_FILE, f"column {gran!r} is no granularity")
        classes = ClassList.read(manifest_dir / meta["granularities"][gran]["classes"])
        unknown = sorted(set(mapping.values()) - set(classes.names))
        if unknown:
            raise input_error(
                manifest_dir / LABEL_MAP_FILE, f"{gran}: {unknown} not in the class list"
            )
