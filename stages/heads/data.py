"""Feature stores + manifest labels -> per-video training examples, batches and native maps.

Length policy (checked per video, errors name the store and the label file):
- the store's `features` rows and its `frame_index` array must have the same length;
- every feature's source frame index must be a labelled frame (index < number of labels);
- the labels may run past the last feature by at most the largest step between consecutive
  feature frame indices (the sampling step); more means the features and labels describe
  different videos or a truncated decode.
A feature's label is the native label of its source frame. Nothing is silently truncated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.common.errors import MotionsegError, input_error
from stages.common.manifest import Manifest
from stages.common.stores import first_non_finite_row, open_store


@dataclass(frozen=True)
class VideoFeatures:
    """One video at the head's rate: features `[T, C]`, their source frames and labels."""

    video_id: str
    features: np.ndarray  # float32 [T, C]
    frame_indices: np.ndarray  # int64 [T]
    targets: np.ndarray  # int64 [T], class indices at the feature rate
    native_labels: np.ndarray  # class names of every source frame


def feature_store_path(features_dir: str | Path, video_id: str) -> Path:
    return Path(features_dir) / f"{video_id}.zarr"


def load_video(
    features_dir: str | Path, manifest: Manifest, video_id: str, sample_rate: int = 1
) -> VideoFeatures:
    """Read one video's features (every `sample_rate`-th row) and align its labels."""
    path = feature_store_path(features_dir, video_id)
    group = open_store(path, required=("features", "frame_index"))
    features = np.asarray(group["features"][...], dtype=np.float32)
    if features.ndim != 2 or features.shape[0] == 0:
        raise input_error(path, f"expected non-empty (time, channel) features: {features.shape}")
    frames = np.asarray(group["frame_index"][...], dtype=np.int64)
    if frames.shape != (features.shape[0],):
        raise input_error(
            path, f"{features.shape[0]} feature rows but {frames.size} frame_index entries"
        )
    bad = first_non_finite_row(features)
    if bad is not None:
        raise input_error(path, f"non-finite features from row {bad} (frame {frames[bad]}) on")
    native = manifest.labels(video_id)
    _check_alignment(path, manifest.label_path(video_id), frames, native.size)
    targets = manifest.classes.encode(native[frames], source=manifest.label_path(video_id))
    rows = slice(None, None, sample_rate)
    return VideoFeatures(video_id, features[rows], frames[rows], targets[rows], native)


def _check_alignment(store: Path, labels: Path, frames: np.ndarray, num_labels: int) -> None:
    if frames.min() < 0 or np.any(np.diff(frames) <= 0):
        raise input_error(store, "frame_index must be non-negative and strictly increasing")
    if frames[-1] >= num_labels:
        raise MotionsegError(
            f"{store}: feature of source frame {frames[-1]} but {labels} labels only "
            f"{num_labels} frames (features and labels do not match)"
        )
    step = int(np.diff(frames).max()) if frames.size > 1 else 1
    if num_labels - 1 - frames[-1] > step:
        raise MotionsegError(
            f"{store}: features end at source frame {frames[-1]} but {labels} labels "
            f"{num_labels} frames (more than one sampling step of {step} beyond; features "
            "and labels do not match)"
        )


def feature_sample_rate(features_dir: str | Path, manifest: Manifest, video_id: str) -> int:
    """The row step that brings a feature store to the manifest's `settings.feature_fps`.

    The rate the heads see is stated once, in the manifest (the LCDC authors' 3 per second for
    50 Salads and GTEA); the store's own rate is its `fps` attr (the decode rate). Without a
    `feature_fps` every row is used. A rate that no integer step reaches is an error.
    """
    target = manifest.settings.get("feature_fps")
    if target is None:
        return 1
    path = feature_store_path(features_dir, video_id)
    store_fps = open_store(path).attrs.get("fps")
    if not store_fps:
        raise input_error(path, "no 'fps' attr to reach the manifest's feature_fps from")
    step = round(store_fps / target)
    if step < 1 or abs(store_fps / step - target) > 1e-6 * target:
        raise MotionsegError(
            f"{path}: features at {store_fps:g} fps cannot be sampled to the manifest's "
            f"feature_fps {target:g} by an integer step; set the head's sample_rate"
        )
    return step


def load_videos(
    features_dir: str | Path, manifest: Manifest, video_ids: Sequence[str], sample_rate: int = 1
) -> list[VideoFeatures]:
    """Load several videos; missing stores are reported together, and all share one width."""
    paths = (feature_store_path(features_dir, v) for v in video_ids)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise MotionsegError(f"{len(missing)} feature store(s) missing: {', '.join(missing)}")
    videos = [load_video(features_dir, manifest, v, sample_rate) for v in video_ids]
    widths = {v.features.shape[1] for v in videos}
    if len(widths) > 1:
        raise MotionsegError(f"{features_dir}: feature stores differ in width {sorted(widths)}")
    return videos


def nearest_rows(frame_indices: np.ndarray, num_frames: int) -> np.ndarray:
    """For every source frame 0..num_frames-1, the row whose frame index is nearest.

    Ties (a frame exactly between two features) go to the earlier feature.
    """
    frames = np.arange(num_frames)
    right = np.clip(np.searchsorted(frame_indices, frames), 0, frame_indices.size - 1)
    left = np.clip(right - 1, 0, None)
    use_left = np.abs(frames - frame_indices[left]) <= np.abs(frame_indices[right] - frames)
    return np.where(use_left, left, right)
