"""Snippets for fine-tuning: windows over frame stores, their labels, and their augmentation.

Following the LCDC paper (seed 000, section 4.1, and ../reference/backbones.md): windows of
`snippet_length` consecutive frames of a frame store (already sampled at the training rate)
start every `stride` frames; a window's label is its majority label, and windows whose
majority covers less than `purity` of the frames are dropped. A window that would run past the
end of a video is not taken (no padding at training time). Majority ties go to the lower class
index. A backbone whose snippet is not a clip (`Preprocessing.train_offsets`, e.g. DIMOFS's
frame pairs (A, A + delta)) is labelled over `label_frames` frames from the anchor and reads
the anchor plus offsets drawn per example (seeded as the augmentation), mirrored at the ends.

Augmentation (training): every frame is resized to s x s with s drawn uniformly from
`resize_range` (the reference resizes to a square, not preserving the aspect ratio), then one
random `crop` x `crop` window, shared by all frames of the snippet, is cut out. Evaluation
resizes to `resize_range[0]` squared and takes the centre crop. Both then scale to [0, 1] and
normalise with the model's mean/std. Because the resize target is absolute, frames smaller
than the crop (the demo's) work the same way.

Randomness is a pure function of (seed, epoch, sample index), so an epoch's batches do not
depend on worker count or on whether training was resumed. A sample can be asked for as
`(epoch, index)`: loader workers that persist across epochs keep their own copy of the dataset,
so the epoch has to travel with the index (`stages.features.train.EpochOrder`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import zarr

from stages.common.errors import MotionsegError, input_error
from stages.common.manifest import Manifest
from stages.common.stores import open_store
from stages.features.base import Preprocessing

FRAME_ARRAYS = ("frames", "frame_index")
DEFAULT_CACHE_BYTES = 1 << 30  # decoded frames kept in memory per dataset (and loader worker)


@dataclass(frozen=True)
class Window:
    """`length` frames of `video_id` starting at stored frame `start`, labelled `label`."""

    video_id: str
    start: int
    label: int
    purity: float


def label_windows(
    labels: np.ndarray, length: int, stride: int, purity: float, num_classes: int
) -> list[tuple[int, int, float]]:
    """(start, majority label, purity) of every kept window over integer per-frame labels."""
    if length < 1 or stride < 1:
        raise MotionsegError(f"snippet length and stride must be >= 1 (got {length}, {stride})")
    kept = []
    for start in range(0, len(labels) - length + 1, stride):
        counts = np.bincount(labels[start : start + length], minlength=num_classes)
        label = int(np.argmax(counts))
        share = counts[label] / length
        if share >= purity:
            kept.append((start, label, float(share)))
    return kept


def frame_indices(
    anchors: np.ndarray, offsets: np.ndarray, num_frames: int, padding: str
) -> np.ndarray:
    """(len(anchors), len(offsets)) indices `anchor + offset`; past the video's ends either
    clamped ("replicate") or mirrored to `anchor - offset` ("mirror"), then clamped."""
    indices = anchors[:, None] + offsets[None, :]
    if padding == "mirror":
        outside = (indices < 0) | (indices >= num_frames)
        indices = np.where(outside, anchors[:, None] - offsets[None, :], indices)
    elif padding != "replicate":
        raise MotionsegError(f"padding must be 'replicate' or 'mirror', got {padding!r}")
    return np.clip(indices, 0, num_frames - 1)


def frame_store_path(frames_dir: str | Path, video_id: str) -> Path:
    return Path(frames_dir) / f"{video_id}.zarr"


def stored_labels(manifest: Manifest, video_id: str, store: zarr.Group, path: Path) -> np.ndarray:
    """Integer labels of the stored frames: the native-rate labels indexed by `frame_index`."""
    native = manifest.classes.encode(manifest.labels(video_id), manifest.label_path(video_id))
    index = np.asarray(store["frame_index"][:], dtype=np.int64)
    if index.size and (index.min() < 0 or index.max() >= len(native)):
        raise input_error(
            path,
            f"video {video_id!r}: frame index {int(index.max())} but the label file "
            f"{manifest.label_path(video_id)} has only {len(native)} frames",
        )
    return native[index]


def build_windows(
    manifest: Manifest,
    video_ids: Sequence[str],
    frames_dir: str | Path,
    length: int,
    stride: int,
    purity: float,
) -> list[Window]:
    """All kept windows of the given videos, in video then time order."""
    windows: list[Window] = []
    for video_id in video_ids:
        path = frame_store_path(frames_dir, video_id)
        store = open_store(path, FRAME_ARRAYS)
        labels = stored_labels(manifest, video_id, store, path)
        for start, label, share in label_windows(
            labels, length, stride, purity, len(manifest.classes)
        ):
            windows.append(Window(video_id, start, label, share))
    return windows


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, C) -> float (T, 3, H, W) in [0, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise MotionsegError(f"expected frames (time, height, width, 3), got {frames.shape}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


def resize_crop(
    frames: torch.Tensor, size: int, crop: int, top: int | None = None, left: int | None = None
) -> torch.Tensor:
    """Resize (T, 3, H, W) to size x size, then cut crop x crop at (top, left) (default: centre).

    The result is contiguous (T, 3, crop, crop). Frames come from (T, H, W, 3) arrays, so
    without the copy they would keep a channels-last layout; loader workers collate batches
    into contiguous shared memory, and convolutions on the two layouts differ in the last bits.
    """
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True)
    top = (size - crop) // 2 if top is None else top
    left = (size - crop) // 2 if left is None else left
    return frames[:, :, top : top + crop, left : left + crop].contiguous()


def normalise(frames: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    mean = torch.tensor(prep.mean, dtype=frames.dtype).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=frames.dtype).view(1, 3, 1, 1)
    return (frames - mean) / std


def eval_transform(frames: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> normalised (T, 3, crop, crop): square resize, centre crop."""
    return normalise(resize_crop(to_tensor(frames), prep.resize_range[0], prep.crop), prep)


def train_transform(
    frames: np.ndarray, prep: Preprocessing, rng: np.random.Generator
) -> torch.Tensor:
    """Random square resize in `resize_range`, one random crop shared by all frames."""
    lo, hi = prep.resize_range
    size = int(rng.integers(lo, hi + 1))
    top, left = (int(v) for v in rng.integers(0, size - prep.crop + 1, size=2))
    return normalise(resize_crop(to_tensor(frames), size, prep.crop, top, left), prep)


class SnippetDataset(torch.utils.data.Dataset):
    """(snippet (T, 3, crop, crop), label) pairs read from frame stores.

    A video's frames are decoded into memory on first use while they fit in `cache_bytes`
    (all of them, for a small dataset such as the demo: opening a store and decompressing a
    chunk per snippet cost more than the training step itself); the frames of videos past that
    budget are read per snippet from their stores, whose opened arrays are kept in a small LRU,
    so a big dataset never sits in memory. Both caches are dropped when the dataset is pickled
    into a worker process.
    """

    def __init__(
        self,
        windows: Sequence[Window],
        frames_dir: str | Path,
        prep: Preprocessing,
        train: bool,
        seed: int = 0,
        max_open: int = 8,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.windows = list(windows)
        self.frames_dir = Path(frames_dir)
        self.prep = prep
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.max_open = max_open
        self.cache_bytes = cache_bytes
        self._open: OrderedDict[str, zarr.Array] = OrderedDict()
        self._cached: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.windows)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": OrderedDict(), "_cached": {}}

    def _frames(self, video_id: str) -> zarr.Array | np.ndarray:
        if video_id in self._cached:
            return self._cached[video_id]
        if video_id in self._open:
            self._open.move_to_end(video_id)
            return self._open[video_id]
        array = open_store(frame_store_path(self.frames_dir, video_id), FRAME_ARRAYS)["frames"]
        if array.nbytes + sum(a.nbytes for a in self._cached.values()) <= self.cache_bytes:
            self._cached[video_id] = array[:]
            return self._cached[video_id]
        self._open[video_id] = array
        if len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return array

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        """Sample `index` (of epoch `self.epoch`) or `(epoch, index)`."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        window = self.windows[index]
        rng = np.random.default_rng([self.seed, epoch, index]) if self.train else None
        frames = self._read(window, rng)
        if rng is not None:
            snippet = train_transform(frames, self.prep, rng)
        else:
            snippet = eval_transform(frames, self.prep)
        return snippet, window.label

    def _read(self, window: Window, rng: np.random.Generator | None) -> np.ndarray:
        """The window's frames: a contiguous clip, or the anchor plus drawn offsets."""
        array = self._frames(window.video_id)
        if self.prep.consecutive():
            return array[window.start : window.start + self.prep.snippet_length]
        offsets = self.prep.snippet_offsets(rng)
        anchor = np.array([window.start])
        indices = frame_indices(anchor, offsets, array.shape[0], self.prep.padding)[0]
        lo, hi = int(indices.min()), int(indices.max()) + 1
        return array[lo:hi][indices - lo]
