"""Per-frame features from a fine-tuned checkpoint, or a frozen backbone, into feature stores.

A frozen backbone (`frozen_backbone`) is built from its registry name and options: its features
come from its initial weights (`weights`: `imagenet`, a local checkpoint path, or `none`), so
they do not depend on any split. Its classifier is never used for features; it is built with
`FROZEN_NUM_CLASSES` outputs. Its stores record `frozen: true`, `checkpoint: null` and the
weights.

Every frame t of the frame store gets one feature: the model's `forward_features` on a window
of `feature_window` frames centred on t, i.e. frames t - W//2 ... t - W//2 + W - 1 (for
W = 16: 8 before, t, 7 after). Windows that reach past either end of the video repeat the first
or last frame ("replicate" padding, recorded in the store's `padding` attribute). A backbone
may define other windows (`Preprocessing.feature_offsets`, e.g. DIMOFS's pair (t, t + 2)) and
"mirror" padding (t - 2 where t + 2 is past the end). Frames get the
evaluation transform (square resize to `resize_range[0]`, centre crop). The store has exactly
one row per stored frame, in the frame store's order, so heads can align features and labels
through `frame_index`.

Two phases (see `stages.features.base`): every frame goes through the costly per-frame part
(`encode_frames`: the ResNet trunk) once; each window is then gathered from the encoded frames
and only the per-window part (`features_from_encoded`) runs per window. For W = 16 that is a
sixteenth of the trunk work of `forward_features` on every window, with the same numbers (the
model is in eval mode, so frames do not interact in the trunk). `benchmarks/bench_features.py`
(2 shared CPU threads, random weights), frames/s per window -> two-phase: `lcdc` depth 50 at
224 px 0.21 -> 1.89, `dc` 0.17 -> 1.49; depth 18 at 64 px `lcdc` 9.2 -> 39.7, `dc` 4.8 -> 28.4.
What remains per window (LCDC's space-time fusion, ~280 ms of ~540 ms per frame at 224 px,
two thirds of it the first 3D conv) is then about half the cost.

Memory stays bounded for long videos: centres are taken `CENTRES_PER_BLOCK` at a time, and a
rolling buffer on the model's device holds the encoded frames that block's windows need (the
block plus W - 1 frames of overlap). Frames encoded for the previous block are kept, not
re-encoded; those no later window needs are dropped. New frames are read and encoded
`batch_size * feature_window` at a time, so peak activation memory is that of `batch_size`
windows through `forward_features`.

Input overlap: while the model computes on one piece of new frames, the next pieces
(`prefetch` of them) are read and preprocessed on a background thread (zarr decompression,
resize, normalise; into pinned host memory on CUDA, then copied without blocking;
`stages.common.prefetch`). The pieces and their order are the same without it, so the
features are identical (tested bit for bit on CPU). A thread rather than a `DataLoader`: the
reads are few, large and sequential, and the heavy parts (Blosc, torch kernels) release the
GIL; `benchmarks/bench_pipeline.py` measures the overlap.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from stages.common.atomic import check_destination
from stages.common.errors import MotionsegError, input_error
from stages.common.outputs import FEATURE_STORE
from stages.common.prefetch import prefetched
from stages.common.progress import Progress
from stages.common.runtime import (
    DeviceSettings,
    apply_device_settings,
    autocast,
    resolve_device,
)
from stages.common.stores import first_non_finite_row, open_store, write_store
from stages.features.base import Backbone, Encoded, Preprocessing
from stages.features.checkpoint import load_checkpoint, model_from_checkpoint
from stages.features.registry import build_backbone
from stages.features.snippets import FRAME_ARRAYS, eval_transform, frame_indices

FROZEN_NUM_CLASSES = 1  # the classifier of a frozen backbone is never used
CENTRES_PER_BLOCK = 256  # features computed per block; bounds the encoded-frame buffer
PREFETCH_PIECES = 2  # pieces of frames read ahead of the model (0: read when needed)

ReadFrames = Callable[[int, int], torch.Tensor]  # (lo, hi) -> preprocessed [hi - lo, 3, H, W]


@dataclass(frozen=True)
class LoadedBackbone:
    """A backbone in eval mode on its device, and what feature stores record of it.

    `checkpoint_path` is None for a frozen backbone (features from its initial weights).
    """

    model: Backbone
    device: torch.device
    checkpoint_path: Path | None
    backbone: str
    options: dict[str, Any]
    epoch: int | None

    @property
    def frozen(self) -> bool:
        return self.checkpoint_path is None

    def source_files(self) -> list[Path]:
        """The checkpoint, or a frozen backbone's local weights file: inputs never overwritten."""
        if not self.frozen:
            return [self.checkpoint_path]
        weights = Path(str(self.options.get("weights", "")))
        return [weights] if weights.is_file() else []


def load_backbone(
    checkpoint_path: str | Path,
    device: str = "auto",
    settings: DeviceSettings | None = None,
) -> LoadedBackbone:
    """Load a checkpoint once, to extract any number of videos with it; `settings` are the
    CUDA speed settings (default `DeviceSettings()`; nothing changes on CPU)."""
    path = Path(checkpoint_path)
    checkpoint = load_checkpoint(path)
    model = model_from_checkpoint(checkpoint, path)
    torch_device = resolve_device(device)
    model.to(torch_device).eval()
    apply_device_settings(model, torch_device, settings or DeviceSettings())
    return LoadedBackbone(
        model,
        torch_device,
        path,
        checkpoint["backbone"],
        checkpoint["options"],
        checkpoint.get("epoch"),
    )


def frozen_backbone(
    name: str,
    options: dict[str, Any],
    device: str = "auto",
    settings: DeviceSettings | None = None,
) -> LoadedBackbone:
    """A registered backbone with its initial weights (`options["weights"]`), not fine-tuned."""
    model = build_backbone(name, FROZEN_NUM_CLASSES, **options)
    torch_device = resolve_device(device)
    model.to(torch_device).eval()
    apply_device_settings(model, torch_device, settings or DeviceSettings())
    return LoadedBackbone(model, torch_device, None, name, dict(options), None)


def window_indices(centres: np.ndarray, prep: Preprocessing, num_frames: int) -> np.ndarray:
    """(len(centres), window) frame indices of the windows of these frames (by default
    centred and edge-replicated; see `Preprocessing.window_offsets` and `padding`)."""
    return frame_indices(centres, prep.window_offsets(), num_frames, prep.padding)


def block_spans(num_frames: int, prep: Preprocessing) -> list[tuple[int, int]]:
    """(lo, hi): the frames lo .. hi - 1 the windows of each block of centres need (hi never
    decreasing). Each block's windows must start within the frames already needed, which holds
    for any window holding its own frame (offset 0), as all registered backbones' do."""
    spans: list[tuple[int, int]] = []
    for first in range(0, num_frames, CENTRES_PER_BLOCK):
        centres = np.arange(first, min(first + CENTRES_PER_BLOCK, num_frames))
        rows = window_indices(centres, prep, num_frames)
        lo, hi = int(rows.min()), int(rows.max()) + 1
        if spans:
            if not spans[-1][0] <= lo <= spans[-1][1]:
                raise MotionsegError(
                    f"windows with offsets {prep.window_offsets().tolist()} do not move "
                    "forward with their frames; extraction needs them to"
                )
            hi = max(hi, spans[-1][1])
        spans.append((lo, hi))
    return spans


def _staged(read_frames: ReadFrames, device: torch.device) -> Callable[[tuple[int, int]], Any]:
    """Read a span; on CUDA into pinned memory, so the copy to the device can be asynchronous."""

    def read(span: tuple[int, int]) -> torch.Tensor:
        frames = read_frames(*span)
        return frames.pin_memory() if device.type == "cuda" else frames

    return read


def video_features(
    model: Backbone,
    read_frames: ReadFrames,
    num_frames: int,
    batch_size: int,
    device: torch.device,
    amp: bool | None = None,
    prefetch: int = PREFETCH_PIECES,
    progress: Progress | None = None,
) -> np.ndarray:
    """float32 `[num_frames, feature_dim]`: each frame encoded once, then per window (see the
    module docstring). `model` must be in eval mode on `device`. `prefetch` pieces of frames
    (one encoding batch each) are read ahead on a background thread (0: read when needed);
    `progress` counts frames."""
    prep = model.preprocessing
    encode_step = batch_size * len(prep.window_offsets())
    features = np.empty((num_frames, model.feature_dim), dtype=np.float32)
    spans = block_spans(num_frames, prep)
    # The frames new to each block (after the previous block's buffer), in pieces of one
    # encoding batch, so that reading overlaps computing from the first piece on.
    ends = [0, *(hi for _, hi in spans)]
    reads = [
        (start, min(start + encode_step, end))
        for begin, end in itertools.pairwise(ends)
        for start in range(begin, end, encode_step)
    ]
    pieces = prefetched(_staged(read_frames, device), reads, prefetch)
    buffer: Encoded = ()  # encoded frames buffer_start .. buffer_end - 1
    buffer_start = buffer_end = 0
    with torch.inference_mode(), autocast(device, amp), contextlib.closing(pieces):
        for first, (lo, hi) in zip(range(0, num_frames, CENTRES_PER_BLOCK), spans, strict=True):
            centres = np.arange(first, min(first + CENTRES_PER_BLOCK, num_frames))
            indices = window_indices(centres, prep, num_frames)  # lo <= buffer_end <= hi
            parts = [tuple(t[lo - buffer_start :] for t in buffer)] if buffer else []
            for _ in range(buffer_end, hi, encode_step):
                frames = next(pieces).to(device, non_blocking=True)
                parts.append(model.encode_frames(frames))
            buffer = tuple(torch.cat(tensors) for tensors in zip(*parts, strict=True))
            buffer_start, buffer_end = lo, hi
            for start in range(0, len(centres), batch_size):
                rows = torch.from_numpy(indices[start : start + batch_size] - lo).to(device)
                out = model.features_from_encoded(tuple(t[rows] for t in buffer))
                features[first + start : first + start + len(rows)] = out.float().cpu().numpy()
            if progress is not None:
                progress.update(len(centres))
    return features


def open_frames(frames_path: str | Path) -> zarr.Group:
    """Open a frame store for extraction; an empty or inconsistent one is an error naming it."""
    store = open_store(frames_path, FRAME_ARRAYS)
    num_frames, num_indices = store["frames"].shape[0], store["frame_index"].shape[0]
    if num_frames == 0 or num_frames != num_indices:
        raise input_error(frames_path, f"{num_frames} frames but {num_indices} frame indices")
    return store


def _frame_reader(frames: zarr.Array, frames_path: Path, model: Backbone) -> ReadFrames:
    """Read + eval-transform frames; an unreadable chunk is an error naming the store."""

    def read(lo: int, hi: int) -> torch.Tensor:
        try:
            block = frames[lo:hi]
        except Exception as err:  # codecs and stores raise many types for a damaged chunk
            raise input_error(
                frames_path, f"cannot read frames {lo}..{hi - 1} ({type(err).__name__}: {err})"
            ) from None
        return eval_transform(block, model.preprocessing)

    return read


def extract_features(
    checkpoint: str | Path | LoadedBackbone,
    frames_path: str | Path,
    out_path: str | Path,
    video_id: str | None = None,
    batch_size: int = 8,
    device: str = "auto",
    amp: bool | None = None,
    echo: Callable[[str], None] = print,
    prefetch: int = PREFETCH_PIECES,
    settings: DeviceSettings | None = None,
) -> Path:
    """Write `out_path` (Zarr feature store, docs/contracts.md) for one frame store.

    `checkpoint` is a checkpoint file (loaded onto `device` with the CUDA speed `settings`) or
    a `LoadedBackbone`, which avoids reloading the model for every video. `video_id` defaults
    to the store name without `.zarr`. The store appears only once complete.
    """
    frames_path = Path(frames_path)
    sources = checkpoint.source_files() if isinstance(checkpoint, LoadedBackbone) else [checkpoint]
    check_destination(out_path, FEATURE_STORE, inputs=(frames_path, *sources))
    if batch_size < 1:
        raise MotionsegError(f"batch size must be >= 1, got {batch_size}")
    loaded = (
        checkpoint
        if isinstance(checkpoint, LoadedBackbone)
        else load_backbone(checkpoint, device, settings)
    )
    model = loaded.model
    store = open_frames(frames_path)
    frame_index = np.asarray(store["frame_index"][:], dtype=np.int64)
    num_frames = len(frame_index)
    reader = _frame_reader(store["frames"], frames_path, model)
    with Progress(f"extract {frames_path.name}", num_frames, "frames") as progress:
        features = video_features(
            model, reader, num_frames, batch_size, loaded.device, amp, prefetch, progress
        )
    bad = first_non_finite_row(features)
    if bad is not None:
        raise input_error(
            frames_path,
            f"backbone {loaded.backbone!r} gave non-finite features from frame {frame_index[bad]} "
            f"(row {bad}) on; {out_path} not written",
        )
    attrs = {
        "video_id": video_id or frames_path.name.removesuffix(".zarr"),
        "backbone": loaded.backbone,
        "options": loaded.options,
        "weights": loaded.options.get("weights", "imagenet"),
        "checkpoint": None if loaded.frozen else str(loaded.checkpoint_path.resolve()),
        "checkpoint_epoch": loaded.epoch,
        "frozen": loaded.frozen,
        "preprocessing": model.preprocessing.to_dict(),
        "fps": store.attrs.get("fps"),
        "source_fps": store.attrs.get("source_fps"),
        "feature_dim": int(model.feature_dim),
        "padding": model.preprocessing.padding,
    }
    chunk = max(1, min(num_frames, 4096))
    write_store(
        out_path,
        {
            "features": (features, ("time", "channel"), (chunk, model.feature_dim)),
            "frame_index": (frame_index, ("time",), (chunk,)),
        },
        attrs,
        FEATURE_STORE,
        inputs=(frames_path, *loaded.source_files()),
    )
    echo(f"{attrs['video_id']}: {num_frames} features of {model.feature_dim} -> {out_path}")
    return Path(out_path)


def extract_many(
    backbone: str | Path | Callable[[], LoadedBackbone],
    frames_paths: Sequence[str | Path],
    out_dir: str | Path,
    batch_size: int = 8,
    device: str = "auto",
    amp: bool | None = None,
    echo: Callable[[str], None] = print,
    prefetch: int = PREFETCH_PIECES,
    settings: DeviceSettings | None = None,
) -> list[Path]:
    """`out_dir/{frame store name}` for every frame store, with the model loaded once.

    `backbone` is a checkpoint path, or a function that builds the model (`frozen_backbone`).

    All frame stores are opened and checked before the model is loaded, and their names must
    differ (they name the outputs). Stores are then written one after another, each atomically:
    if one fails, the ones before it stay (complete and valid) and it leaves nothing behind.
    """
    paths = [Path(p) for p in frames_paths]
    if not paths:
        raise MotionsegError("no frame stores given")
    if batch_size < 1:
        raise MotionsegError(f"batch size must be >= 1, got {batch_size}")
    if prefetch < 0:
        raise MotionsegError(f"prefetch must be >= 0, got {prefetch}")
    first_with_name: dict[str, Path] = {}
    for path in paths:
        if path.name in first_with_name:
            raise input_error(
                path, f"same name as {first_with_name[path.name]}: both would write {path.name}"
            )
        first_with_name[path.name] = path
        open_frames(path)
    loaded = backbone() if callable(backbone) else load_backbone(backbone, device, settings)
    out_dir = Path(out_dir)
    return [
        extract_features(
            loaded,
            path,
            out_dir / path.name,
            batch_size=batch_size,
            amp=amp,
            echo=echo,
            prefetch=prefetch,
        )
        for path in paths
    ]
