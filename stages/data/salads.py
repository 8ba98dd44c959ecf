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
- Each granularity is painted on its own: every low-level label is mapped to its class (e.g.
  `add_salt_core` -> `add_salt` at mid), and intervals whose class is `background` at that
  granularity (`add_salt`, `add_vinegar` at eval) are removed *before* painting, so they never
  hide the frames of an overlapping action (the TCN authors' labels behave this way).
- Overlaps are resolved per *action*, not per phase: consecutive lines `<action>_prep`,
  `_core`, `_post` of one action form one action, starting at its first phase. Actions are
  painted in order of start (file order among equal starts), so where two overlap the one that
  *started later* wins; within an action, later phases win their shared boundary frame. (Per
  phase, the `_post` of one action would cut the next action in two: 13-1, 27-1.) In the real
  annotations ~2,100 pairs of intervals share a boundary timestamp and ~120 overlap further,
  mostly the `_post` of one action with the `_prep` of the next.
- Identical intervals of different actions (several `place_*_into_bowl` annotated on one span
  in 09-1, 16-2, 18-1, 18-2, 21-1, 21-2): the same rule decides, so among actions that start
  together the last in the file wins; the import warns, naming the file and the actions.
- Frames in no remaining interval are `background`.
- Warnings, naming the files: several copies of an input file below the download (the one in
  a usual sub-folder, else the shallowest, is used), and intervals that cover no frame (between
  two frame timestamps) or run past the first or last frame (clipped to the video).
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


PHASES = ("_prep", "_core", "_post")


@dataclass(frozen=True)
class Interval:
    start: int
    end: int
    label: str
    line: int = 0  # line in the annotation file, for warnings

    @property
    def action(self) -> str:
        """`cut_tomato_core` -> `cut_tomato`."""
        return next((self.label.removesuffix(p) for p in PHASES if self.label.endswith(p)), "")

    @property
    def phase(self) -> int:
        return next((i for i, p in enumerate(PHASES) if self.label.endswith(p)), -1)


@dataclass(frozen=True)
class Action:
    """One performed action: its phase intervals, consecutive lines of the annotation file."""

    phases: tuple[Interval, ...]

    @property
    def start(self) -> int:
        return min(p.start for p in self.phases)


def group_actions(intervals: list[Interval]) -> list[Action]:
    """The phases of each performed action (prep -> core -> post, any may be missing), in
    file order of their first phase. A phase joins the latest performance of its action that
    has only earlier phases so far; a repeated or earlier phase starts the next performance.
    (Phases of different actions may interleave: 16-2 lists several `_prep` lines, then their
    `_core` lines.)"""
    groups: list[list[Interval]] = []
    open_group: dict[str, list[Interval]] = {}
    for iv in intervals:
        group = open_group.get(iv.action)
        if group is not None and group[-1].phase < iv.phase:
            group.append(iv)
        else:
            open_group[iv.action] = [iv]
            groups.append(open_group[iv.action])
    return [Action(tuple(g)) for g in groups]


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
        intervals.append(Interval(start, end, label, lineno))
    return intervals


def paint(actions: list[Action], timestamps: np.ndarray, mapping: dict[str, str]) -> np.ndarray:
    """One class per frame (or background): actions in order of start, the later-starting one
    winning overlaps; each phase painted with its class under `mapping`."""
    out = np.full(timestamps.size, BACKGROUND, dtype=object)
    for action in sorted(actions, key=lambda a: a.start):  # stable: file order among ties
        for iv in sorted(action.phases, key=lambda iv: iv.start):
            lo = np.searchsorted(timestamps, iv.start, side="left")
            hi = np.searchsorted(timestamps, iv.end, side="right")
            out[lo:hi] = mapping[iv.label]
    return out


def annotation_warnings(path: Path, actions: list[Action], timestamps: np.ndarray) -> list[str]:
    """Identical intervals of different actions, intervals on no frame or past the video."""
    warnings = []
    by_span: dict[tuple[int, int], list[str]] = {}
    for iv in sorted((iv for a in actions for iv in a.phases), key=lambda iv: iv.line):
        by_span.setdefault((iv.start, iv.end), []).append(iv.action)
    clashes = {tuple(dict.fromkeys(names)) for names in by_span.values() if len(set(names)) > 1}
    for names in sorted(clashes):
        warnings.append(
            f"{path}: identical intervals of {', '.join(names)}; where they overlap, the action "
            "starting later, else the last in the file, is used"
        )
    empty, outside = [], []
    for iv in (iv for action in actions for iv in action.phases):
        lo = np.searchsorted(timestamps, iv.start, side="left")
        hi = np.searchsorted(timestamps, iv.end, side="right")
        if lo == hi:
            empty.append(iv.line)
        elif iv.start < timestamps[0] or iv.end > timestamps[-1]:
            outside.append(iv.line)
    if empty:
        warnings.append(f"{path}: interval(s) on line(s) {_lines(empty)} cover no frame, dropped")
    if outside:
        warnings.append(
            f"{path}: interval(s) on line(s) {_lines(outside)} run past the video's first or "
            "last frame, clipped"
        )
    return warnings


def _lines(lines: list[int]) -> str:
    return ", ".join(map(str, lines[:10])) + (" ..." if len(lines) > 10 else "")


def convert(
    annotation: Path, timestamps: Path, label_map: LabelMap
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per-frame class names of one video at every granularity of the label map, and the
    warnings about its annotation."""
    stamps = read_timestamps(timestamps)
    actions = group_actions(read_annotation(annotation, label_map))
    result = {}
    for gran, mapping in label_map.granularities.items():
        kept = [
            Action(phases)
            for action in actions
            if (phases := tuple(iv for iv in action.phases if mapping[iv.label] != BACKGROUND))
        ]
        result[gran] = paint(kept, stamps, mapping)
    return result, annotation_warnings(annotation, actions, stamps)


@dataclass
class SaladsImport:
    """What an import did: converted ids, frame counts, and what it could not find."""

    converted: dict[str, int] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    missing_videos: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


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
    report = SaladsImport()
    found = _find(root, sources, out / "videos", report.warnings)

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
    extra = sorted(set(found["annotation"]) - set(wanted))
    converted = {}  # all files are parsed before the first is written
    for vid in [*wanted, *extra]:
        if vid in found["timestamps"]:
            converted[vid], warnings = convert(
                found["annotation"][vid], found["timestamps"][vid], label_map
            )
            report.warnings += warnings
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
    root: Path, sources: dict[str, Path | None], own_links: Path, warnings: list[str]
) -> dict[str, dict[str, Path]]:
    """One walk per distinct search folder; per id, the preferred candidate (a warning names
    the copies not used)."""
    by_folder: dict[Path, list[str]] = {}
    for kind, folder in sources.items():
        by_folder.setdefault(folder or root, []).append(kind)
    skip = is_own_link(own_links)
    found: dict[str, dict[str, Path]] = {}
    for folder, kinds in by_folder.items():
        hits = scan(folder, {k: PATTERNS[k] for k in kinds})
        for kind in kinds:
            found[kind] = pick_each(hits[kind], PREFERRED[kind], skip)
            for vid, chosen in sorted(found[kind].items()):
                others = [str(p) for p in hits[kind][vid] if p != chosen and not skip(p)]
                if others:
                    warnings.append(
                        f"{vid}: {len(others) + 1} copies of its {kind} file; using {chosen}, "
                        f"not {', '.join(others)}"
                    )
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
