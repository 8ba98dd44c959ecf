"""GTEA: parse the distributed per-video action files into per-frame verb labels.

A GTEA label file has one action per line: the verb and its objects in angle brackets, then an
inclusive, 1-based frame range and usually a bracketed number, e.g.::

    <take><bread> (38-77) [1]
    <spread><peanut,knife,bread> (1027-1065) [1]

What the parser accepts (anything else is an error naming the file and line):

- blank lines, and comment lines starting with `#`, `//` or `%`; a byte-order mark; Windows
  line endings; spaces around and inside the brackets and the range (`< Take > ( 38 - 77 )`);
- any number of object groups, including none (`<take> (38-77)`);
- a missing trailing `[n]`, or any text in it (`[1]`, `[0.5]`, `[]`);
- verbs in any case (`Take` = `take`); the verb `x` (unlabelled in some releases) and
  `background` mean background.

Frames not covered by any line are background; where lines overlap the later line wins. The
frame count comes from the video (or a `--num-frames` TSV), so trailing frames after the last
action are background too; a range that runs past the end is cut at the last frame (a warning),
one that starts after it is an error. MS-TCN-style `groundTruth/` folders (one class name per
frame) are accepted instead with `from_groundtruth`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stages.common.errors import MotionsegError, input_error
from stages.common.labels import ClassList, frames_from_segments, read_label_file, write_label_file
from stages.common.manifest import Manifest, load_manifest, read_tsv
from stages.data.locate import (
    VIDEO_SUFFIXES,
    is_own_link,
    link_video,
    pick,
    pick_each,
    require_folder,
    scan,
)
from stages.decode.video import probe_video

BACKGROUND = "background"
BACKGROUND_VERBS = {"x", BACKGROUND}
COMMENT_PREFIXES = ("#", "//", "%")
LINE = re.compile(
    r"<\s*(?P<verb>[^<>]*?)\s*>"
    r"(?:\s*<[^<>]*>)*"
    r"\s*\(\s*(?P<start>\d+)\s*-\s*(?P<end>\d+)\s*\)"
    r"(?:\s*\[[^\]]*\])?"
)
ID = r"(?P<id>S\d+_[A-Za-z]+_C\d+)"
SUFFIXES = "|".join(s.lstrip(".") for s in VIDEO_SUFFIXES)
PATTERNS = {
    "labels": re.compile(ID + r"\.txt"),
    "video": re.compile(ID + rf"\.(?i:{SUFFIXES})"),
}
PREFERRED = {
    "labels": {"labels", "labels_cleaned", "gtea_labels", "gtea_labels_cleaned"},
    "video": {"videos", "video", "rgb"},
}


@dataclass(frozen=True)
class Action:
    """One label line: 0-based inclusive frame range, verb, and the line it came from."""

    start: int
    end: int
    verb: str
    line: int


def parse_label_file(path: Path, classes: ClassList) -> list[Action]:
    """Actions of a GTEA label file, validated against the class list."""
    actions: list[Action] = []
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(COMMENT_PREFIXES):
            continue
        match = LINE.fullmatch(line)
        if match is None:
            raise input_error(
                path, f"line {lineno}: expected '<verb><objects> (start-end) [n]', got {line!r}"
            )
        verb = match["verb"].lower()
        verb = BACKGROUND if verb in BACKGROUND_VERBS else verb
        if verb not in classes.names:
            raise input_error(
                path, f"line {lineno}: unknown verb {verb!r} (known: {', '.join(classes.names)})"
            )
        start, end = int(match["start"]), int(match["end"])
        if start < 1 or end < start:
            raise input_error(path, f"line {lineno}: bad frame range {start}-{end} (1-based)")
        actions.append(Action(start - 1, end - 1, verb, lineno))
    return actions


def frame_labels(
    path: Path, actions: list[Action], num_frames: int
) -> tuple[np.ndarray, list[str]]:
    """Per-frame verbs (later lines win overlaps) and warnings for ranges cut at the end."""
    warnings = []
    for action in actions:
        if action.start >= num_frames:
            raise input_error(
                path,
                f"line {action.line}: range starts at frame {action.start + 1}, after the "
                f"video's last frame {num_frames}",
            )
        if action.end >= num_frames:
            warnings.append(
                f"{path}: line {action.line}: range ends at {action.end + 1}, cut at {num_frames}"
            )
    segs = [(a.start, a.end, a.verb) for a in actions]
    return frames_from_segments(segs, num_frames, BACKGROUND), warnings


def read_num_frames(path: Path) -> dict[str, int]:
    """A TSV of `video_id` and `num_frames` columns."""
    df = read_tsv(path, ["video_id", "num_frames"])
    try:
        return {v: int(n) for v, n in zip(df["video_id"], df["num_frames"], strict=True)}
    except ValueError as err:
        raise input_error(path, f"num_frames must be integers ({err})") from None


@dataclass
class GteaImport:
    converted: dict[str, int] = field(default_factory=dict)
    linked: list[str] = field(default_factory=list)
    missing_videos: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def import_gtea(
    root: Path,
    out: Path,
    manifest_dir: Path,
    num_frames: Path | None = None,
    groundtruth: Path | None = None,
) -> GteaImport:
    """Write per-frame labels for every manifest video and link the videos found below `root`."""
    require_folder(root, "the GTEA download (label files and videos)", "gtea")
    manifest = load_manifest(manifest_dir, out)
    found = scan(root, PATTERNS)
    videos = pick_each(found["video"], PREFERRED["video"], is_own_link(out / "videos"))
    counts = read_num_frames(num_frames) if num_frames else {}
    report = GteaImport()
    results: dict[str, np.ndarray] = {}
    if groundtruth is not None:
        require_folder(groundtruth, "MS-TCN groundTruth files (<video_id>.txt)", "gtea")
        for vid in manifest.video_ids:
            results[vid] = read_label_file(groundtruth / f"{vid}.txt", manifest.classes)
    else:
        out_labels = (out / manifest.label_template).parent.resolve()
        sources = _label_sources(root, manifest, found["labels"], out_labels)
        for vid in manifest.video_ids:
            actions = parse_label_file(sources[vid], manifest.classes)
            total = counts.get(vid) or _video_frames(vid, videos, num_frames)
            results[vid], warnings = frame_labels(sources[vid], actions, total)
            report.warnings += warnings
    for vid, labels in results.items():
        write_label_file(manifest.label_path(vid), labels)
        report.converted[vid] = labels.size
        if vid in videos:
            link_video(videos[vid], manifest.video_path(vid))
            report.linked.append(vid)
        else:
            report.missing_videos.append(vid)
    return report


def _label_sources(
    root: Path, manifest: Manifest, found: dict[str, list[Path]], out_labels: Path
) -> dict[str, Path]:
    """The action file of every manifest video, never one under groundTruth/ or our output."""

    def skip(p: Path) -> bool:
        return p.parent.name.lower() == "groundtruth" or p.parent.resolve() == out_labels

    chosen = {
        vid: pick(found.get(vid, []), PREFERRED["labels"], skip) for vid in manifest.video_ids
    }
    missing = [vid for vid, p in chosen.items() if p is None]
    if missing:
        raise MotionsegError(
            f"{root}: no GTEA label file for {len(missing)} video(s): {', '.join(missing)}. "
            f"Expected <video_id>.txt with '<verb><objects> (start-end)' lines below this folder "
            f"(outside {out_labels}); for per-frame groundTruth files use --from-groundtruth."
        )
    return {vid: p for vid, p in chosen.items() if p is not None}


def _video_frames(vid: str, videos: dict[str, Path], num_frames: Path | None) -> int:
    if vid in videos:
        return probe_video(videos[vid]).num_frames
    source = f"nor in {num_frames}" if num_frames else "and no --num-frames table was given"
    raise MotionsegError(
        f"{vid}: frame count unknown: no video {vid}.mp4/.avi found below the download folder "
        f"{source}"
    )
