"""What the demo generator's deterministic encode costs, next to PyAV's default encode.

    python benchmarks/bench_synth_encode.py [--size 96] [--frames 600] [--repeats 3]

`write_mp4` converts RGB to YUV 4:2:0 in numpy and runs libx264 single-threaded on its C paths,
so a seed gives the same bytes on every run and machine. The baseline lets PyAV convert with
swscale and libx264 pick its own thread count and assembly (PyAV's defaults). Prints frames per
second for both, best of `--repeats` rounds, and whether each one's bytes repeated across the
rounds.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from stages.data.synth import CRF, write_mp4
from stages.data.synth_plan import plan_videos
from stages.data.synth_render import frame_height, render_video, table_palettes


def default_encode(path: Path, frames: np.ndarray, fps: int) -> None:
    """PyAV's defaults: swscale colour conversion, libx264 threads chosen by the encoder."""
    _, height, width, _ = frames.shape
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "veryfast"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def measure(encode: Callable, frames: np.ndarray, repeats: int) -> tuple[float, bool]:
    """Best frames/s over `repeats` rounds, and whether every round wrote the same bytes."""
    best, digests = float("inf"), set()
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(repeats):
            path = Path(tmp) / f"{round_}.mp4"
            start = time.perf_counter()
            encode(path, frames, 15)
            best = min(best, time.perf_counter() - start)
            digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return len(frames) / best, len(digests) == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    plan = plan_videos(np.random.default_rng([0, 0]), 2, 2, 15)[0]
    palette = table_palettes(np.random.default_rng([0, 1]), 1)[0]
    frames = render_video(plan, args.size, 15, palette, np.random.default_rng([0, 2, 0]))
    frames = np.concatenate([frames] * (args.frames // len(frames) + 1))[: args.frames]
    print(f"{len(frames)} frames of {args.size}x{frame_height(args.size)} px")
    rows = {"deterministic (write_mp4)": write_mp4, "PyAV defaults": default_encode}
    results = {name: measure(fn, frames, args.repeats) for name, fn in rows.items()}
    base = results["PyAV defaults"][0]
    for name, (fps, same) in results.items():
        print(f"{name:28s} {fps:8.0f} frames/s  x{fps / base:.2f}  same bytes: {same}")


if __name__ == "__main__":
    main()
