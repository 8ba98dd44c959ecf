"""Write a frame store chunk by chunk while decoding, and read one back.

Layout (docs/contracts.md): array `frames` uint8 (time, height, width, channel) chunked along
time, array `frame_index` int64 (time,), the sampling record in the group attrs. A 50 Salads
video is 18,000 frames of 640x480 (16 GB as RGB), so frames are never all held in memory: they
fill one chunk-sized buffer at a time, and each full buffer is compressed and written on a
background thread while the next one is decoded (Blosc and file I/O release the GIL).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from stages import __version__
from stages.common.stores import consolidate, create_array, open_store

CHUNK_FRAMES = 32
"""Frames per chunk: 32 x 224x298 RGB is ~6 MB, 32 x 640x480 is ~30 MB; a 16-frame snippet
read touches at most two chunks."""

FRAME_COMPRESSOR = zarr.codecs.BloscCodec(cname="lz4", clevel=9, shuffle="noshuffle")
"""Blosc lz4: compressing frames with the default zstd costs several times the decode itself
(measured in benchmarks/bench_decode.py); lz4 keeps decoding the bottleneck. Byte shuffling
does nothing for uint8, and clevel 9 only means larger Blosc blocks (better ratio, as fast)."""

FRAME_DIMS = ("time", "height", "width", "channel")


class FrameStoreWriter:
    """Append RGB frames to a new store at `path`; `close` writes the index and attrs.

    Use as a context manager: leaving it (also on an error) waits for the background write, so
    no thread still writes into a store that `atomic_path` is about to delete.
    """

    def __init__(self, path: Path, chunk: int = CHUNK_FRAMES) -> None:
        self.path = path
        self.group = zarr.open_group(path, mode="w")
        self.chunk = chunk
        self.count = 0
        self._frames: zarr.Array | None = None
        self._buffer: np.ndarray | None = None
        self._filled = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-store")
        self._pending: Future[None] | None = None

    def __enter__(self) -> FrameStoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.shutdown(wait=True)

    def append(self, image: np.ndarray) -> None:
        """Add one (height, width, 3) uint8 frame; all frames must have the first one's shape."""
        if self._buffer is None:
            self._buffer = np.empty((self.chunk, *image.shape), dtype=np.uint8)
        self._buffer[self._filled] = image
        self._filled += 1
        self.count += 1
        if self._filled == self.chunk:
            self._flush()

    def close(self, frame_index: np.ndarray, attrs: Mapping[str, Any]) -> None:
        """Write the last partial chunk, `frame_index` and the group attrs; consolidate."""
        if len(frame_index) != self.count:
            raise ValueError(f"{len(frame_index)} frame indices for {self.count} frames")
        self._flush()
        self._wait()
        if self._frames is None:
            raise ValueError("a frame store needs at least one frame")
        self._frames.resize((self.count, *self._frames.shape[1:]))
        index = create_array(self.group, "frame_index", (self.count,), np.int64, ("time",), (4096,))
        index[:] = frame_index
        self.group.update_attributes({**dict(attrs), "motionseg_version": __version__})
        consolidate(self.path)

    def _flush(self) -> None:
        if not self._filled or self._buffer is None:
            return
        block, start = self._buffer[: self._filled], self.count - self._filled
        self._wait()
        self._pending = self._executor.submit(self._write, block, start)
        self._buffer, self._filled = None, 0

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def _write(self, block: np.ndarray, start: int) -> None:
        """Runs on the writer thread; grows `frames` by doubling (trimmed in `close`).

        Chunks are written without zarr's "is it all fill value?" scan (write_empty_chunks):
        a frame chunk is never empty, and the scan cost more than compressing it.
        """
        end = start + len(block)
        if self._frames is None:
            self._frames = create_array(
                self.group,
                "frames",
                (max(end, self.chunk), *block.shape[1:]),
                np.uint8,
                FRAME_DIMS,
                (self.chunk, *block.shape[1:]),
                compressor=FRAME_COMPRESSOR,
            ).with_config({"write_empty_chunks": True})
        elif end > self._frames.shape[0]:
            self._frames.resize((max(end, 2 * self._frames.shape[0]), *block.shape[1:]))
        self._frames[start:end] = block


def read_frames(store_path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """All frames of a frame store (time, height, width, 3) uint8, and its attrs.

    A convenience for tests and notebooks: it loads the whole array; stream with
    `zarr.open_group(path)["frames"][a:b]` (or `xarray.open_zarr`) for long videos.
    """
    group = open_store(store_path, required=("frames", "frame_index"))
    return np.asarray(group["frames"][...]), dict(group.attrs)
