"""Saved head models, per-video prediction and the prediction folder layout.

A model file (`model.pt`) is a dict holding everything prediction needs: `head`,
`in_features`, `classes`, `background`, `granularity`, `options` (builder kwargs), `train`
(resolved settings, including `sample_rate`), `seed` and `state_dict` (for kmeans-mlp also
its PCA and k-means state, which are buffers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages import __version__
from stages.common.atomic import VERSION_KEY
from stages.common.errors import MotionsegError, input_error
from stages.common.labels import ClassList, write_label_file
from stages.common.manifest import Manifest
from stages.common.torch_files import load_torch_file
from stages.heads.base import SegmentationHead
from stages.heads.data import VideoFeatures, load_videos, nearest_rows
from stages.heads.registry import build_head

PREDICTIONS_MARKER = "predictions.json"  # stages.common.outputs.PREDICTIONS
MODEL_KEYS = ("head", "in_features", "classes", "options", "train", "state_dict")


def make_head(
    name: str, in_features: int, num_classes: int, options: Mapping[str, Any]
) -> SegmentationHead:
    """Build a head from user options; a bad option is a user error naming the head."""
    try:
        return build_head(name, in_features, num_classes, **dict(options))
    except (TypeError, ValueError) as err:
        raise MotionsegError(f"head {name!r}: bad options {dict(options)} ({err})") from None


def write_marker(out: Path, model: Path, videos: Sequence[str]) -> None:
    """predictions.json: what was predicted from which model (and proof OUT is ours)."""
    info = {"model": str(Path(model).resolve()), "videos": list(videos), VERSION_KEY: __version__}
    (out / PREDICTIONS_MARKER).write_text(json.dumps(info, indent=2) + "\n")


def save_model(path: Path, head: SegmentationHead, meta: Mapping[str, Any]) -> None:
    torch.save({**dict(meta), "state_dict": head.state_dict()}, path)


def load_model(path: str | Path) -> tuple[SegmentationHead, dict[str, Any]]:
    """Rebuild a saved head (in eval mode) and return it with its metadata."""
    path = Path(path)
    saved = load_torch_file(path, "model file")
    missing = [k for k in MODEL_KEYS if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise input_error(path, f"not a heads model file (missing {missing})")
    head = make_head(saved["head"], saved["in_features"], len(saved["classes"]), saved["options"])
    try:
        head.load_state_dict(saved["state_dict"])
    except RuntimeError as err:  # torch: a heading line, then one line per mismatch
        lines = str(err).strip().splitlines()
        problem = lines[min(1, len(lines) - 1)].strip()
        raise input_error(path, f"weights do not fit a {saved['head']!r} head: {problem}") from None
    head.eval()
    return head, saved


@torch.no_grad()
def predict_indices(head: SegmentationHead, features: np.ndarray) -> np.ndarray:
    """Class index of every row of one video's features `[T, C]`."""
    device = next(head.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(features.T))[None].to(device)
    mask = torch.ones(1, 1, x.shape[-1], device=device)
    return head(x, mask)[0].argmax(0).cpu().numpy()


def write_video_outputs(
    out: Path, video: VideoFeatures, predicted: np.ndarray, classes: ClassList
) -> None:
    """pred/gt at the feature rate, and both mapped to every source frame under native/."""
    names = classes.decode(predicted)
    write_label_file(out / "pred" / f"{video.video_id}.txt", names)
    write_label_file(out / "gt" / f"{video.video_id}.txt", classes.decode(video.targets))
    rows = nearest_rows(video.frame_indices, video.native_labels.size)
    write_label_file(out / "native" / "pred" / f"{video.video_id}.txt", names[rows])
    write_label_file(out / "native" / "gt" / f"{video.video_id}.txt", video.native_labels)


def predict_videos(
    head: SegmentationHead,
    saved: Mapping[str, Any],
    manifest: Manifest,
    features_dir: str | Path,
    video_ids: Sequence[str],
    out: Path,
) -> None:
    """Predict videos with a loaded head and write their label files into `out`."""
    if list(manifest.classes.names) != list(saved["classes"]):
        raise MotionsegError(
            f"{manifest.directory}: class list ({manifest.granularity}) differs from the one "
            f"the model was trained with ({len(saved['classes'])} classes)"
        )
    videos = load_videos(features_dir, manifest, video_ids, int(saved["train"]["sample_rate"]))
    for video in videos:
        if video.features.shape[1] != saved["in_features"]:
            raise MotionsegError(
                f"{features_dir}: features of {video.video_id} have {video.features.shape[1]} "
                f"channels, the model expects {saved['in_features']}"
            )
    predict_into(head, videos, manifest.classes, out)


def predict_into(
    head: SegmentationHead, videos: Sequence[VideoFeatures], classes: ClassList, out: Path
) -> None:
    """Predict each video and write its label files into `out`."""
    for video in videos:
        write_video_outputs(out, video, predict_indices(head, video.features), classes)
