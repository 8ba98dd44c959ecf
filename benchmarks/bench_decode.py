"""Decode throughput of `decode_video` next to PyAV's bare decode, on the real clip.

    python benchmarks/bench_decode.py [VIDEO] [--repeats 5]

Prints source frames per second (frames of the video consumed per second of wall time) for
PyAV alone (decode only; decode + RGB conversion) and for `decode_video` at native rate and
at 6 fps, with and without `--size 224`, and each one's ratio to bare decode + RGB. The last
rows write the native full-size store with create_array's default codec (Blosc zstd level 3,
bitshuffle) instead of the frame codec, to show why frames use lz4. Best of `--repeats` rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import av
import zarr

from stages.decode import frame_store
from stages.decode.video import decode_video, probe_video

_NEXT_TO_REPO = Path(__file__).resolve().parents[2] / "shared" / "reference"
REFERENCE = Path(os.environ.get("MOTIONSEG_REFERENCE") or _NEXT_TO_REPO)
REAL_CLIP = REFERENCE / "media" / "activitynet_v_ZNVhz7ctTq0.mp4"
DEFAULT_CODEC = zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


def bare_decode(video: Path, to_rgb: bool) -> None:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if to_rgb:
                frame.to_ndarray(format="rgb24")


def best_times(
    runs: dict[str, Callable[[], object]], repeats: int, cleanup: Callable[[], object]
) -> dict[str, float]:
    """Best wall time of each run; runs take turns, so a busy spell of a shared machine
    slows all of them rather than one. `cleanup` (untimed) runs after each, so every
    decode writes a new store instead of also deleting the previous one."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for label, run in runs.items():
            start = time.perf_counter()
            run()
            best[label] = min(best[label], time.perf_counter() - start)
            cleanup()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=REAL_CLIP)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    info = probe_video(args.video)
    n = info.num_frames
    print(f"{args.video}: {n} frames, {info.width}x{info.height} at {info.fps:g} fps\n")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.zarr"
        rows = {
            "PyAV decode only": lambda: bare_decode(args.video, to_rgb=False),
            "PyAV decode + rgb24": lambda: bare_decode(args.video, to_rgb=True),
        }
        for fps in (None, 6.0):
            for size in (None, 224):
                label = f"decode_video fps={fps or 'native'} size={size or 'full'}"
                rows[label] = lambda fps=fps, size=size: decode_video(args.video, out, fps, size)

        def default_codec_run() -> None:
            with mock.patch.object(frame_store, "FRAME_COMPRESSOR", DEFAULT_CODEC):
                decode_video(args.video, out)

        rows["decode_video native full, zstd3 codec"] = default_codec_run
        speeds = {
            label: n / seconds
            for label, seconds in best_times(
                rows, args.repeats, lambda: shutil.rmtree(out, ignore_errors=True)
            ).items()
        }

    reference = speeds["PyAV decode + rgb24"]
    print(f"{'':44s} {'frames/s':>9s} {'ratio':>6s}")
    for label, speed in speeds.items():
        print(f"{label:44s} {speed:9.0f} {speed / reference:6.2f}")


if __name__ == "__main__":
    main()
