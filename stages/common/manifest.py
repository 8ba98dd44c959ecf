"""Dataset manifests: which videos, which labels, which splits, which classes.

A manifest is a folder (`data_manifests/<name>/`) holding `dataset.yaml`, a videos TSV, a
splits TSV and one class list per granularity. Paths to videos and labels are relative to a
*data root* that the user's config names, so the committed manifest never hard-codes where a
user keeps their download.

dataset.yaml::

    name: demo
    fps: 15                      # native frame rate of the videos
    background: [background]     # class names removed from edit/F1
    default_root: data/demo      # used when no root is given
    videos: videos.tsv           # columns video_id, video[, group]
    splits: splits.tsv           # columns split, video_id: the *test* videos of each split
    default_granularity: default
    granularities:
      default: {classes: classes.txt, labels: "labels/{video_id}.txt"}
    settings: {backbone_fps: 15, purity: 0.7}   # free-form per-dataset settings
    motion_only: [slide_left, slide_right]      # optional: classes that look alike and
                                                # differ only in motion (the report marks them)

Training videos of a split are all manifest videos that are not its test videos.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from stages.common.errors import MotionsegError, input_error
from stages.common.labels import ClassList, read_label_file

MANIFEST_FILE = "dataset.yaml"


@dataclass(frozen=True)
class VideoEntry:
    video_id: str
    path: Path
    group: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A validated dataset description bound to a data root and one granularity."""

    name: str
    directory: Path
    root: Path
    fps: float
    classes: ClassList
    classes_path: Path
    granularity: str
    label_template: str
    videos: Mapping[str, VideoEntry]
    splits: Mapping[str, tuple[str, ...]]
    settings: Mapping[str, Any] = field(default_factory=dict)
    motion_only: tuple[str, ...] = ()

    @property
    def video_ids(self) -> list[str]:
        return list(self.videos)

    @property
    def split_names(self) -> list[str]:
        return list(self.splits)

    def test_ids(self, split: str | int) -> list[str]:
        return list(self._split(split))

    def train_ids(self, split: str | int) -> list[str]:
        test = set(self._split(split))
        return [v for v in self.videos if v not in test]

    def video_path(self, video_id: str) -> Path:
        return self.root / self._entry(video_id).path

    def label_path(self, video_id: str) -> Path:
        self._entry(video_id)
        return self.root / self.label_template.format(video_id=video_id)

    def labels(self, video_id: str) -> np.ndarray:
        """Per-frame class names at the video's native frame rate, validated against classes."""
        return read_label_file(self.label_path(video_id), self.classes)

    def check_files(self) -> None:
        """Every video and label file exists; one error lists everything that is missing."""
        missing = [
            str(p)
            for v in self.videos
            for p in (self.video_path(v), self.label_path(v))
            if not p.is_file()
        ]
        if missing:
            shown = "\n  ".join(missing[:20])
            more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
            raise MotionsegError(
                f"dataset {self.name!r} (root {self.root}): {len(missing)} file(s) missing:\n"
                f"  {shown}{more}\nPoint the config's `root` at the folder that holds them."
            )

    def _split(self, split: str | int) -> tuple[str, ...]:
        key = str(split)
        if key not in self.splits:
            raise MotionsegError(
                f"{self.directory}: no split {key!r} (splits: {', '.join(self.splits)})"
            )
        return self.splits[key]

    def _entry(self, video_id: str) -> VideoEntry:
        try:
            return self.videos[video_id]
        except KeyError:
            raise MotionsegError(f"{self.directory}: unknown video id {video_id!r}") from None


def read_tsv(path: Path, required: list[str]) -> pd.DataFrame:
    """A tab-separated table read as strings; missing file or columns name the file."""
    if not path.is_file():
        raise input_error(path, "file not found")
    try:
        df = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, comment="#", encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError:
        raise input_error(path, f"empty table: expected a header with {required}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise input_error(path, f"not a readable UTF-8 TSV ({err})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise input_error(path, f"missing column(s) {missing}; has {list(df.columns)}")
    return df


def read_dataset_yaml(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise input_error(path, "manifest not found (expected dataset.yaml in this folder)")
    try:
        meta = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise input_error(path, f"invalid YAML ({err})") from None
    if not isinstance(meta, dict):
        raise input_error(path, "expected a mapping at the top level")
    for key in ("name", "fps", "videos", "splits", "granularities"):
        if key not in meta:
            raise input_error(path, f"missing key {key!r}")
    return meta


OUTSIDE_ROOT_KEY = "allow_paths_outside_root"
"""dataset.yaml key: `true` lets video paths and label templates climb out of the data root."""


def escapes_root(relative: str | Path) -> bool:
    """A relative path that climbs above its root (`../x`, `a/../../x`); absolute paths are the
    user's explicit choice and do not count."""
    relative = Path(relative)
    return not relative.is_absolute() and os.path.normpath(relative).split(os.sep)[0] == ".."


def _check_inside_root(
    videos_path: Path, yaml_path: Path, videos: Mapping[str, VideoEntry], label_template: str
) -> None:
    """Paths of the manifest stay in the data root unless dataset.yaml allows otherwise."""
    hint = f"set `{OUTSIDE_ROOT_KEY}: true` in {yaml_path} if that is intended"
    for entry in videos.values():
        if escapes_root(entry.path):
            raise input_error(
                videos_path,
                f"video {entry.video_id!r}: {entry.path} leaves the data root; {hint}",
            )
        label = label_template.format(video_id=entry.video_id)
        if escapes_root(label):
            raise input_error(
                yaml_path,
                f"label template {label_template!r} puts video {entry.video_id!r}'s labels at "
                f"{label}, outside the data root; {hint}",
            )


def load_manifest(
    directory: str | Path,
    root: str | Path | None = None,
    granularity: str | None = None,
) -> Manifest:
    """Read and validate a manifest folder; errors name the file and what is wrong."""
    directory = Path(directory)
    meta = read_dataset_yaml(directory)
    yaml_path = directory / MANIFEST_FILE

    granularities = meta["granularities"]
    granularity = granularity or meta.get("default_granularity") or next(iter(granularities))
    if granularity not in granularities:
        raise input_error(
            yaml_path, f"no granularity {granularity!r} (has {', '.join(granularities)})"
        )
    gran = granularities[granularity]
    classes_path = directory / gran["classes"]
    classes = ClassList.read(classes_path, meta.get("background", ["background"]))

    videos_df = read_tsv(directory / meta["videos"], ["video_id", "video"])
    dupes = videos_df["video_id"][videos_df["video_id"].duplicated()].tolist()
    if dupes:
        raise input_error(directory / meta["videos"], f"duplicate video id(s) {sorted(set(dupes))}")
    has_group = "group" in videos_df.columns
    videos = {
        row.video_id: VideoEntry(row.video_id, Path(row.video), row.group if has_group else None)
        for row in videos_df.itertuples(index=False)
    }

    splits_path = directory / meta["splits"]
    splits_df = read_tsv(splits_path, ["split", "video_id"])
    unknown = sorted(set(splits_df["video_id"]) - set(videos))
    if unknown:
        raise input_error(splits_path, f"split lists unknown video id(s) {unknown}")
    splits: dict[str, tuple[str, ...]] = {}
    for split, rows in splits_df.groupby("split", sort=False):
        ids = tuple(rows["video_id"])
        if len(set(ids)) != len(ids):
            raise input_error(splits_path, f"split {split} lists a video twice")
        splits[str(split)] = ids

    motion_only = meta.get("motion_only") or []
    if not isinstance(motion_only, list) or not all(isinstance(m, str) for m in motion_only):
        raise input_error(yaml_path, "motion_only must be a list of class names")
    unknown_motion = sorted(set(motion_only) - set(classes.names))
    if unknown_motion:
        raise input_error(
            yaml_path, f"motion_only names class(es) not in {classes_path.name}: {unknown_motion}"
        )

    root = Path(root) if root is not None else Path(meta.get("default_root", "."))
    if meta.get(OUTSIDE_ROOT_KEY) is not True:
        _check_inside_root(directory / meta["videos"], yaml_path, videos, str(gran["labels"]))
    return Manifest(
        name=str(meta["name"]),
        directory=directory,
        root=root,
        fps=float(meta["fps"]),
        classes=classes,
        classes_path=classes_path,
        granularity=granularity,
        label_template=str(gran["labels"]),
        videos=videos,
        splits=splits,
        settings=dict(meta.get("settings") or {}),
        motion_only=tuple(motion_only),
    )
