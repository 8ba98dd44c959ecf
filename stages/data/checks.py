"""Pre-flight checks before heavy work: every video exists, decodes, and matches its labels.

Hours of decoding and training should not die on video 37 because it is missing, truncated or
one frame longer than its label file. `check_dataset` looks at everything first and reports all
problems of a kind in one message.

Frame counts come from `stages.decode.video.probe_video`, which demuxes every packet of the
video stream instead of trusting the container header (often absent or wrong: AVI, phone
videos), so they are the counts the decode stage will see. The first frame is decoded to prove
the codec works.

Length policy: a label file (or 50 Salads timestamps file, from which the labels are made) and
its video may differ by a few frames (a dropped frame at the end, an encoder's final flush). A
difference of at most `tolerance` frames, by default max(2, 0.1% of the video's frames), is
accepted: the label file is rewritten to the video's length (padded with its last label, or
truncated) so every later stage can index labels by source frame, and the video is listed in a
warning. A larger difference is refused, naming the video and both counts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from stages.common.errors import MotionsegError, input_error
from stages.common.labels import write_label_file
from stages.common.manifest import Manifest, load_manifest, read_dataset_yaml
from stages.decode.video import VideoInfo, probe_video

IMPORTERS = ("50salads", "gtea")
"""Datasets with their own `motionseg data import` command."""


def check_video(path: Path) -> VideoInfo:
    """Frame count and rate (`probe_video`: every packet demuxed), then decode the first frame."""
    info = probe_video(path)
    try:
        with av.open(str(path)) as container:
            next(container.decode(video=0))
    except (av.FFmpegError, StopIteration) as err:
        raise input_error(path, f"first frame does not decode ({err or 'no frames'})") from None
    return info


def default_tolerance(num_frames: int) -> int:
    """Frames a label file may differ from its video by: max(2, 0.1%)."""
    return max(2, math.ceil(0.001 * num_frames))


def align_labels(labels: np.ndarray, num_frames: int) -> np.ndarray:
    """Labels cut or padded (with the last label) to exactly `num_frames`."""
    if labels.size >= num_frames:
        return labels[:num_frames]
    return np.concatenate([labels, np.full(num_frames - labels.size, labels[-1], dtype=object)])


@dataclass
class CheckReport:
    """Per video: frames and fps of the video, label frames per granularity; what was aligned."""

    videos: dict[str, VideoInfo] = field(default_factory=dict)
    label_frames: dict[str, dict[str, int]] = field(default_factory=dict)
    aligned: list[str] = field(default_factory=list)
    fps_mismatch: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "videos": {
                v: {"frames": c.num_frames, "fps": c.fps, "labels": self.label_frames[v]}
                for v, c in self.videos.items()
            },
            "aligned": self.aligned,
            "fps_mismatch": self.fps_mismatch,
        }


def check_root(manifest_dir: Path, root: Path) -> None:
    """A missing data root is one message: what belongs there and how to point at it."""
    if root.is_dir():
        return
    meta = read_dataset_yaml(manifest_dir)
    name = meta["name"]
    writer = (
        f"motionseg data import {name} DOWNLOAD --out {root}"
        if name in IMPORTERS
        else "motionseg data import generic"
    )
    raise MotionsegError(
        f"dataset {name!r}: data root {root} not found. It should hold the videos and label "
        f"files named in {manifest_dir}/, as `{writer}` writes them. In "
        f"pipeline/config/{name}.yaml set `root:` to your download (imported datasets) or to "
        f"the converted data root (your own dataset)."
    )


def _check_writable_inside(root: Path, paths: list[Path]) -> None:
    """Aligning rewrites label files: only those inside the data root (even where dataset.yaml
    lets paths leave it, since what lies outside is not the dataset's to change)."""
    top = Path(os.path.abspath(root))
    outside = [str(p) for p in paths if not Path(os.path.abspath(p)).is_relative_to(top)]
    if outside:
        raise MotionsegError(
            f"refusing to align label files outside the data root {root}: "
            f"{', '.join(outside)}; align them yourself or pass --no-align"
        )


def check_dataset(
    manifest_dir: Path,
    root: Path,
    granularities: list[str] | None = None,
    tolerance: int | None = None,
    align: bool = True,
) -> CheckReport:
    """Check every video against its label files; align small differences, refuse large ones."""
    check_root(manifest_dir, root)
    meta = read_dataset_yaml(manifest_dir)
    manifests = [
        load_manifest(manifest_dir, root, g) for g in granularities or meta["granularities"]
    ]
    for manifest in manifests:
        manifest.check_files()
    report = CheckReport()
    _count_all(manifests[0], report)

    too_far: list[str] = []
    to_align: list[tuple[Manifest, str, np.ndarray]] = []
    for manifest in manifests:
        for vid, count in report.videos.items():
            labels = manifest.labels(vid)
            report.label_frames.setdefault(vid, {})[manifest.granularity] = labels.size
            diff = count.num_frames - labels.size
            allowed = default_tolerance(count.num_frames) if tolerance is None else tolerance
            if abs(diff) > allowed:
                too_far.append(
                    f"{vid}: video {count.num_frames} frames, {manifest.label_path(vid)} "
                    f"{labels.size} (allowed difference {allowed})"
                )
            elif diff:
                to_align.append((manifest, vid, labels))
    if too_far:
        raise MotionsegError(
            f"dataset {manifests[0].name!r}: {len(too_far)} label file(s) do not match their "
            f"video's length:\n  " + "\n  ".join(too_far)
        )
    if align:
        _check_writable_inside(root, [m.label_path(vid) for m, vid, _ in to_align])
    for manifest, vid, labels in to_align:
        if align:
            num = report.videos[vid].num_frames
            write_label_file(manifest.label_path(vid), align_labels(labels, num))
        report.aligned.append(f"{vid} ({manifest.granularity})")
    return report


def _count_all(manifest: Manifest, report: CheckReport) -> None:
    """Count every video; one error lists all that cannot be decoded."""
    broken: list[str] = []
    for vid in manifest.video_ids:
        try:
            count = check_video(manifest.video_path(vid))
        except MotionsegError as err:
            broken.append(str(err))
            continue
        report.videos[vid] = count
        if count.fps and abs(count.fps - manifest.fps) > 0.01 * manifest.fps:
            report.fps_mismatch.append(f"{vid} ({count.fps:g} fps)")
    if broken:
        raise MotionsegError(
            f"dataset {manifest.name!r}: {len(broken)} video(s) cannot be decoded:\n  "
            + "\n  ".join(broken)
        )
