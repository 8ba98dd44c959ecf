"""Decode one video into a frame store: PyAV decode, timestamp sampling, short-side resize.

The frame rate is changed by choosing frames by their timestamps (`TimestampSampler`), never by
re-encoding. Only kept frames are converted to RGB, so sampling 30 -> 6 fps skips 4/5 of the
colour conversion and resizing.
"""

from __future__ import annotations

from pathlib import Path

import av
import av.container
import av.video.stream
import numpy as np

from stages.common.atomic import atomic_path
from stages.common.errors import MotionsegError, input_error
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
    - Damaged input is an error naming the file, and `out` is left as it was: a file that does
      not open, has no video stream, fails to decode part way, or decodes fewer frames than
      its header declares, minus one (a frame of slack for muxers that count one the decoder
      never outputs; packets an mp4 edit list discards count as decoded). When the header
      declares no count (mkv, webm), decoding `ESTIMATE_SHORTFALL` fewer than its duration x
      rate is an error.
    """
    if fps is not None and not fps > 0:
        raise MotionsegError(f"--fps must be positive, got {fps}")
    if size is not None and size < 1:
        raise MotionsegError(f"--size must be a positive number of pixels, got {size}")
    path, out = Path(path), Path(out)
    with (
        open_video(path) as (container, stream),
        atomic_path(out) as tmp,
        FrameStoreWriter(tmp) as writer,
    ):
        source_fps = frame_rate(path, stream)
        stream.thread_type = "AUTO"
        time_base = float(stream.time_base) if stream.time_base else None
        sampler = TimestampSampler(fps, source_fps, time_base)
        indices: list[int] = []
        times: list[float] = []
        target: tuple[int, int] | None = None
        decoded = discarded = 0
        # The header's frame count (0 when absent) is only the progress total.
        with Progress(f"decode {path.name}", stream.frames or 0, "frames") as progress:
            try:
                for packet in container.demux(stream):
                    discarded += bool(packet.size and packet.is_discard)
                    for frame in packet.decode():
                        relative = sampler(frame.time)
                        if relative is not None:
                            target = target or output_size(frame.width, frame.height, size)
                            writer.append(to_rgb(frame, *target))
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
                "frame_indices": indices,
                "timestamps": times,
                "size": size,
                "num_source_frames": decoded,
                "start_time": sampler.start,
            },
        )
    return out


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
