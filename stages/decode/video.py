"""Decode one video into a frame store: PyAV decode, timestamp sampling, short-side resize.

The frame rate is changed by choosing frames by their timestamps (`TimestampSampler`), never by
re-encoding. Only kept frames are converted to RGB, so sampling 30 -> 6 fps skips 4/5 of the
colour conversion and resizing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import av.container
import av.video.stream
import numpy as np

from stages.common.atomic import atomic_path, check_destination
from stages.common.errors import MotionsegError, input_error
from stages.common.outputs import FRAME_STORE
from stages.common.progress import Progress
from stages.decode.frame_store import FrameStoreWriter, read_frames
from stages.decode.probe import (
    VideoInfo,
    ffmpeg_message,
    frame_rate,
    header_duration,
    open_video,
    probe_video,
)
from stages.decode.sampling import TimestampSampler

__all__ = ["VideoInfo", "decode_video", "output_size", "probe_video", "read_frames"]

ESTIMATE_SHORTFALL = 0.1
"""Without a declared frame count, decoding more than 10% fewer frames than header duration x
rate is an error: enough slack for a variable rate or a rounded duration, while a file cut
anywhere before its last tenth is caught."""


MAX_FPS = 1000.0  # beyond any camera; larger values are typos
MAX_SIZE = 8192  # short side in pixels: 8K video's short side is 4320


@dataclass(frozen=True)
class DecodeOptions:
    """What `motionseg decode` can vary, validated on construction (one clear line)."""

    fps: float | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.fps is not None and not (math.isfinite(self.fps) and 0 < self.fps <= MAX_FPS):
            raise MotionsegError(f"--fps must be a number in (0, {MAX_FPS:g}], got {self.fps}")
        if self.size is not None and not 1 <= self.size <= MAX_SIZE:
            raise MotionsegError(
                f"--size must be a short side of 1..{MAX_SIZE} pixels, got {self.size}"
            )


def output_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """(width, height) with the short side scaled to `size` and the aspect ratio kept.

    The long side is rounded to the nearest pixel, not to an even number (RGB needs no chroma
    subsampling). Pixels are taken as square (true for 50 Salads, GTEA and web videos).
    """
    if size is None:
        return width, height
    if width <= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


def to_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """The frame as (height, width, 3) uint8 RGB, resized with swscale's area filter.

    Area averaging is the anti-aliased choice for shrinking. Scaling in the decoder's own
    pixel format first, then converting at the small size, is about twice as fast as one
    combined swscale call (which leaves its fast unscaled YUV->RGB path); the results differ
    by about one grey level. swscale runs single-threaded: its automatic threading costs more
    than it saves on one small frame (measured 2.1 vs 0.4 ms per 480x360 frame on a busy
    2-core machine), and the decoder and the store writer already use the other cores.
    """
    if (frame.width, frame.height) != (width, height):
        frame = frame.reformat(width, height, interpolation="AREA", threads=1)
    return frame.to_ndarray(format="rgb24", threads=1)


def decode_video(
    path: str | Path, out: str | Path, fps: float | None = None, size: int | None = None
) -> Path:
    """Decode `path` into the frame store `out` (docs/contracts.md) and return `out`.

    - Sampling: with `fps` F, for k = 0, 1, 2, ... keep the first frame whose timestamp
      (pts x time_base, relative to the first frame) is >= k / F, never the same frame twice
      (details in `TimestampSampler`). Without `fps` every frame is kept. The store's `fps` is
      min(F, source rate): asking for more than the source has keeps every frame, never
      duplicates. `frame_index` counts decoded frames from 0 (frame i is line i of a per-frame
      label or timestamp file); `timestamps` are seconds since the first frame, whose absolute
      time is in the `start_time` attr.
    - Resize: short side to `size` keeping the aspect ratio (`output_size`); see `to_rgb`.
    - Rotation: a display matrix rotating by a multiple of 90 degrees (phone videos) is
      applied, so frames are stored upright, and recorded in the `rotation` attr; other angles
      are refused.
    - Damaged input is an error naming the file, and `out` is left as it was: a file that does
      not open, has no video stream, fails to decode part way, or decodes fewer frames than
      its header declares, minus one (a frame of slack for muxers that count one the decoder
      never outputs; packets an mp4 edit list discards count as decoded). When the header
      declares no count (mkv, webm), decoding `ESTIMATE_SHORTFALL` fewer than its duration x
      rate is an error.
    """
    DecodeOptions(fps, size)
    path, out = Path(path), Path(out)
    check_destination(out, FRAME_STORE, inputs=(path,))
    with (
        open_video(path) as (container, stream),
        atomic_path(out, FRAME_STORE, inputs=(path,)) as tmp,
        FrameStoreWriter(tmp) as writer,
    ):
        source_fps = frame_rate(path, stream)
        stream.thread_type = "AUTO"
        time_base = float(stream.time_base) if stream.time_base else None
        sampler = TimestampSampler(fps, source_fps, time_base)
        indices: list[int] = []
        times: list[float] = []
        target: tuple[int, int] | None = None
        rotation: int | None = None
        decoded = discarded = 0
        # The header's frame count (0 when absent) is only the progress total.
        with Progress(f"decode {path.name}", stream.frames or 0, "frames") as progress:
            try:
                for packet in container.demux(stream):
                    discarded += bool(packet.size and packet.is_discard)
                    for frame in packet.decode():
                        relative = sampler(frame.time)
                        if relative is not None:
                            rotation = check_rotation(path, frame, rotation)
                            upright = rotated_size(frame.width, frame.height, rotation)
                            target = target or output_size(*upright, size)
                            writer.append(upright_rgb(frame, target, rotation))
                            indices.append(decoded)
                            times.append(relative)
                        decoded += 1
                        progress.update(kept=len(indices))
            except av.FFmpegError as err:
                raise input_error(
                    path,
                    f"corrupt or truncated video: decoding failed after {decoded} frames "
                    f"({ffmpeg_message(err)})",
                ) from None
            _check_complete(path, decoded + discarded, container, stream, source_fps)
        writer.close(
            np.asarray(indices, dtype=np.int64),
            {
                "source_path": str(path),
                "source_fps": source_fps,
                "fps": min(fps, source_fps) if fps else source_fps,
                "timestamps": times,
                "size": size,
                "num_source_frames": decoded,
                "start_time": sampler.start,
                "rotation": rotation or 0,
            },
        )
    return out


def check_rotation(path: Path, frame: av.VideoFrame, previous: int | None) -> int:
    """The display rotation (degrees counter-clockwise) of `frame`: a multiple of 90 that stays
    the same through the video; anything else is refused rather than stored sideways."""
    rotation = round(frame.rotation) % 360
    if rotation % 90:
        raise input_error(path, f"display rotation of {frame.rotation} degrees is not supported")
    if previous is not None and rotation != previous:
        raise input_error(path, f"display rotation changes from {previous} to {rotation} degrees")
    return rotation


def rotated_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """(width, height) as displayed after rotating by `rotation` degrees."""
    return (height, width) if rotation in (90, 270) else (width, height)


def upright_rgb(frame: av.VideoFrame, target: tuple[int, int], rotation: int) -> np.ndarray:
    """The frame as a player shows it: rotated by its display matrix, resized to `target`
    (width, height as displayed); resizing before the rotation keeps it cheap."""
    width, height = rotated_size(*target, rotation)
    return np.ascontiguousarray(np.rot90(to_rgb(frame, width, height), k=rotation // 90))


def _check_complete(
    path: Path,
    decoded: int,
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    source_fps: float,
) -> None:
    """The completeness policy of `decode_video`: a truncated file must not pass as a video."""
    if decoded == 0:
        raise input_error(path, "corrupt or truncated video: no frame could be decoded")
    if stream.frames:
        if decoded < stream.frames - 1:
            raise input_error(
                path,
                f"truncated or corrupt video: decoded {decoded} of the {stream.frames} frames "
                "its header declares",
            )
        return
    duration = header_duration(container, stream)
    if duration and decoded < (1 - ESTIMATE_SHORTFALL) * duration * source_fps:
        raise input_error(
            path,
            f"truncated or corrupt video: decoded {decoded} frames, but its {duration:.2f} s at "
            f"{source_fps:g} fps should give about {round(duration * source_fps)}",
        )
