"""Open a video with PyAV and describe its video stream without decoding it.

Every PyAV failure on opening (missing file, garbage bytes, an mp4 cut before its index) becomes
one `MotionsegError` naming the file, so callers never see FFmpeg's error types.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.container
import av.video.stream

from stages.common.errors import input_error


@dataclass(frozen=True)
class VideoInfo:
    """What a video's first video stream holds."""

    num_frames: int
    """Frames a full decode yields: counted packets (exact), or the header's count if
    `probe_video(..., count_packets=False)`."""
    fps: float
    """Average frame rate of the stream."""
    width: int
    height: int
    duration: float | None
    """Seconds, from the stream or container header (None when neither states it)."""
    declared_frames: int | None
    """The frame count the container header states (None when it states none, e.g. mkv)."""


@contextlib.contextmanager
def open_video(
    path: str | Path,
) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Yield the opened container and its first video stream; closes the container after."""
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "video file not found")
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise input_error(path, f"cannot open as a video ({ffmpeg_message(err)})") from None
    with container:
        if not container.streams.video:
            raise input_error(path, "file has no video stream")
        yield container, container.streams.video[0]


def frame_rate(path: str | Path, stream: av.video.stream.VideoStream) -> float:
    """The stream's average rate, or FFmpeg's guess from the first frames."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise input_error(path, "video stream states no frame rate")
    return float(rate)


def header_duration(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    """Duration in seconds stated by the stream header, else by the container header."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def probe_video(path: str | Path, count_packets: bool = True) -> VideoInfo:
    """Describe `path`'s first video stream.

    With `count_packets` (default) the frames are counted by demuxing packets without decoding
    them: it reads the file once (I/O bound, no decode cost) and gives the count a full decode
    yields, even when the header is wrong or absent. Empty packets (decoder flush, AVI drop
    markers) and packets the container marks as discarded (outside an mp4 edit list) are not
    frames. Without it the header's count is trusted and nothing past the header is read.
    """
    with open_video(path) as (container, stream):
        declared = stream.frames or None
        if count_packets or declared is None:
            try:
                num_frames = sum(
                    1 for packet in container.demux(stream) if packet.size and not packet.is_discard
                )
            except av.FFmpegError as err:
                raise input_error(path, f"corrupt video ({ffmpeg_message(err)})") from None
        else:
            num_frames = declared
        return VideoInfo(
            num_frames=num_frames,
            fps=frame_rate(path, stream),
            width=stream.width,
            height=stream.height,
            duration=header_duration(container, stream),
            declared_frames=declared,
        )


def ffmpeg_message(err: av.FFmpegError) -> str:
    """FFmpeg's own wording ('Invalid data found when processing input'), without errno noise."""
    return err.strerror or str(err)
