"""Per-frame features from a fine-tuned checkpoint into a feature store.

Every frame t of the frame store gets one feature: the model's `forward_features` on a window
of `feature_window` frames centred on t, i.e. frames t - W//2 ... t - W//2 + W - 1 (for
W = 16: 8 before, t, 7 after). Windows that reach past either end of the video repeat the first
or last frame ("replicate" padding, recorded in the store's `padding` attribute). Frames get the
evaluation transform (square resize to `resize_range[0]`, centre crop). The store has exactly
one row per stored frame, in the frame store's order, so heads can align features and labels
through `frame_index`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from stages.common.errors import input_error
from stages.common.stores import open_store, write_store
from stages.features.checkpoint import load_checkpoint, model_from_checkpoint
from stages.features.snippets import FRAME_ARRAYS, eval_transform
from stages.features.train import autocast, resolve_device

PADDING = "replicate"  # windows past either end repeat the first/last frame
FRAMES_PER_READ = 256  # centre frames read and preprocessed together


def window_indices(centres: np.ndarray, window: int, num_frames: int) -> np.ndarray:
    """(len(centres), window) frame indices of the centred, edge-replicated windows."""
    offsets = np.arange(window) - window // 2
    return np.clip(centres[:, None] + offsets[None, :], 0, num_frames - 1)


def extract_features(
    checkpoint_path: str | Path,
    frames_path: str | Path,
    out_path: str | Path,
    video_id: str | None = None,
    batch_size: int = 8,
    device: str = "auto",
    amp: bool | None = None,
    echo: Callable[[str], None] = print,
) -> Path:
    """Write `out_path` (Zarr feature store, docs/contracts.md) for one frame store."""
    checkpoint_path, frames_path = Path(checkpoint_path), Path(frames_path)
    if batch_size < 1:
        raise input_error(frames_path, f"batch size must be >= 1, got {batch_size}")
    checkpoint = load_checkpoint(checkpoint_path)
    model = model_from_checkpoint(checkpoint, checkpoint_path)
    prep = model.preprocessing
    store = open_store(frames_path, FRAME_ARRAYS)
    frames = store["frames"]
    frame_index = np.asarray(store["frame_index"][:], dtype=np.int64)
    num_frames = frames.shape[0]
    if num_frames == 0 or num_frames != len(frame_index):
        raise input_error(frames_path, f"{num_frames} frames but {len(frame_index)} frame indices")

    torch_device = resolve_device(device)
    model.to(torch_device).eval()
    window = prep.feature_window
    features = np.empty((num_frames, model.feature_dim), dtype=np.float32)
    with torch.inference_mode():
        for first in range(0, num_frames, FRAMES_PER_READ):
            centres = np.arange(first, min(first + FRAMES_PER_READ, num_frames))
            indices = window_indices(centres, window, num_frames)
            lo, hi = int(indices.min()), int(indices.max()) + 1
            block = eval_transform(frames[lo:hi], prep)
            for start in range(0, len(centres), batch_size):
                rows = indices[start : start + batch_size] - lo
                snippets = block[torch.from_numpy(rows)].to(torch_device)
                with autocast(torch_device, amp):
                    out = model.forward_features(snippets)
                features[first + start : first + start + len(rows)] = out.float().cpu().numpy()
    attrs = {
        "video_id": video_id or frames_path.name.removesuffix(".zarr"),
        "backbone": checkpoint["backbone"],
        "options": checkpoint["options"],
        "weights": checkpoint["options"].get("weights", "imagenet"),
        "checkpoint": str(checkpoint_path.resolve()),
        "checkpoint_epoch": checkpoint.get("epoch"),
        "preprocessing": prep.to_dict(),
        "fps": store.attrs.get("fps"),
        "source_fps": store.attrs.get("source_fps"),
        "frame_indices": frame_index.tolist(),
        "feature_dim": int(model.feature_dim),
        "padding": PADDING,
    }
    chunk = max(1, min(num_frames, 4096))
    write_store(
        out_path,
        {
            "features": (features, ("time", "channel"), (chunk, model.feature_dim)),
            "frame_index": (frame_index, ("time",), (chunk,)),
        },
        attrs,
    )
    echo(f"{attrs['video_id']}: {num_frames} features of {model.feature_dim} -> {out_path}")
    return Path(out_path)
