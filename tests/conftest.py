"""Shared fixtures: small synthetic videos written with PyAV, with the frames they contain.

`make_video` writes a *lossless* RGB H.264 mp4 (libx264rgb, qp=0), so decoding it gives back
exactly the frames that were written: tests can compare decoded pixels with `expected.frames`.
`truncate_video` makes a cut copy of a file to test error handling on damaged inputs.

Reference data (real clips, 50 Salads annotations, the TCN authors' predictions) lives in
`../shared/reference` next to the repository, or wherever `MOTIONSEG_REFERENCE` points. A test
that needs some is marked `@pytest.mark.reference("50salads")`: it is skipped when the data is
absent, except in CI (`CI=true`), where it fails, so missing data cannot pass unnoticed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

Pattern = Callable[[int, int, int], np.ndarray]
"""(frame index, height, width) -> uint8 RGB image of shape (height, width, 3)."""

REPO = Path(__file__).resolve().parents[1]
REFERENCE_ENV = "MOTIONSEG_REFERENCE"


def reference_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """`$MOTIONSEG_REFERENCE`, else `../shared/reference` relative to the repository."""
    return Path(environ.get(REFERENCE_ENV) or REPO.parent / "shared" / "reference")


REFERENCE = reference_dir()
REAL_CLIP = REFERENCE / "media" / "activitynet_v_ZNVhz7ctTq0.mp4"
"""A real 480x360 H.264 clip, 420 frames at 30 fps (mark its tests `reference("media")`)."""


def require_reference(parts: Sequence[str], environ: Mapping[str, str] = os.environ) -> None:
    """Skip when the reference path is absent; fail instead when `CI` is set to true."""
    path = reference_dir(environ).joinpath(*parts)
    if path.exists():
        return
    message = f"reference data {path} is absent (set {REFERENCE_ENV} to the folder holding it)"
    if environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("reference"):
        require_reference(mark.args)


def moving_shapes(index: int, height: int, width: int) -> np.ndarray:
    """A gradient background, a red square moving right and a green bar moving down.

    Every frame is different (the blue channel of the top-left 4x4 block is 8 * index mod 256),
    so a test can tell which source frame a decoded frame came from.
    """
    y, x = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[..., 0] = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    img[..., 2] = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    side = max(height // 4, 2)
    left = (3 * index) % max(width - side, 1)
    img[side : 2 * side, left : left + side] = (255, 0, 0)
    top = (2 * index) % max(height - 2, 1)
    img[top : top + 2, width // 2 :] = (0, 255, 0)
    img[:4, :4] = (0, 0, (8 * index) % 256)
    return img


@dataclass(frozen=True)
class SyntheticVideo:
    """A video written by `make_video` and what it contains."""

    path: Path
    frames: np.ndarray
    """(time, height, width, 3) uint8 RGB: exactly what a decoder returns (lossless codec)."""
    timestamps: np.ndarray
    """Presentation time of every frame in seconds, starting at 0."""
    fps: float
    """The nominal rate given to the encoder."""


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., SyntheticVideo]:
    """Factory: `make_video(path, num_frames=30, fps=30, size=(64, 48), pattern=moving_shapes,
    timestamps=None, faststart=False, rotation=0) -> SyntheticVideo`.

    - `path`: file name (relative names go under the test's `tmp_path`); mp4 or mkv.
    - `size`: (width, height) in pixels.
    - `pattern`: `(index, height, width) -> uint8 RGB` image for frame `index`.
    - `timestamps`: seconds per frame for a variable-frame-rate video (strictly increasing,
      millisecond resolution); default `index / fps`.
    - `faststart`: put the mp4 index (moov) before the data, as web videos do; a truncated
      copy of such a file still opens, while a cut default mp4 (moov at the end) does not.
    - `rotation`: display rotation in degrees counter-clockwise (a phone's portrait video);
      `frames` stay as encoded.
    """

    def make(
        path: str | Path,
        num_frames: int = 30,
        fps: float = 30,
        size: tuple[int, int] = (64, 48),
        pattern: Pattern = moving_shapes,
        timestamps: Sequence[float] | None = None,
        faststart: bool = False,
        rotation: int = 0,
    ) -> SyntheticVideo:
        path = tmp_path / path
        width, height = size
        rate = Fraction(fps).limit_denominator(1001)
        if timestamps is None:
            time_base = 1 / rate
            pts = list(range(num_frames))
        else:
            time_base = Fraction(1, 1000)
            pts = [round(t * 1000) for t in timestamps]
            if len(pts) != num_frames or any(np.diff(pts) <= 0):
                raise ValueError("need one strictly increasing timestamp per frame")
        frames = np.stack([pattern(i, height, width) for i in range(num_frames)])
        options = {"movflags": "faststart"} if faststart else {}
        with av.open(str(path), mode="w", options=options) as container:
            stream = container.add_stream("libx264rgb", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
            stream.time_base = stream.codec_context.time_base = time_base
            if rotation:
                stream.set_display_rotation(rotation)
            # qp=0 is lossless; no B-frames keeps packets in presentation order.
            stream.options = {"qp": "0", "preset": "ultrafast", "bf": "0"}
            for image, frame_pts in zip(frames, pts, strict=True):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = frame_pts, time_base
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        times = np.array([float(p * time_base) for p in pts])
        return SyntheticVideo(path=path, frames=frames, timestamps=times, fps=float(rate))

    return make


@pytest.fixture
def synthetic_video(make_video: Callable[..., SyntheticVideo]) -> SyntheticVideo:
    """The default 30-frame, 30 fps, 64x48 moving-shapes mp4."""
    return make_video("synthetic.mp4")


@pytest.fixture
def truncate_video(tmp_path: Path) -> Callable[..., Path]:
    """Factory: `truncate_video(src, keep=0.5, name=None) -> Path`, a copy of `src` cut to the
    first `keep` fraction of its bytes (a download or copy that stopped half way)."""

    def truncate(src: str | Path, keep: float = 0.5, name: str | None = None) -> Path:
        src = Path(src)
        dst = tmp_path / (name or f"cut-{src.name}")
        shutil.copyfile(src, dst)
        with dst.open("r+b") as fh:
            fh.truncate(int(dst.stat().st_size * keep))
        return dst

    return truncate


def write_manifest(
    manifest: Path,
    name: str,
    classes: Sequence[str],
    videos: Sequence[str],
    test_splits: Sequence[tuple[str, str]],
    video: str = "{video_id}.mp4",
    settings: str | None = None,
) -> Path:
    """A hand-made manifest folder: labels at `labels/{video_id}.txt`, `test_splits` as
    (split, video_id) rows, `video` the path template of a video; returns `manifest`."""
    manifest.mkdir(parents=True)
    (manifest / "dataset.yaml").write_text(
        f"name: {name}\nfps: 30\nbackground: [background]\nvideos: videos.tsv\n"
        "splits: splits.tsv\ngranularities:\n"
        "  default: {classes: classes.txt, labels: 'labels/{video_id}.txt'}\n"
        + (f"settings: {settings}\n" if settings else "")
    )
    (manifest / "classes.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(classes)))
    (manifest / "videos.tsv").write_text(
        "video_id\tvideo\n" + "".join(f"{v}\t{video.format(video_id=v)}\n" for v in videos)
    )
    (manifest / "splits.tsv").write_text(
        "split\tvideo_id\n" + "".join(f"{s}\t{v}\n" for s, v in test_splits)
    )
    return manifest


def copy_manifest(source: Path, dest: Path, ids: list[str], video: str) -> Path:
    """`dest`/manifest: a copy of the manifest folder `source` listing only `ids` (split 1 tests
    the first); `video` is the path template of a video, e.g. "videos/{video_id}.mp4"."""
    manifest = dest / "manifest"
    shutil.copytree(source, manifest)
    (manifest / "videos.tsv").write_text(
        "video_id\tvideo\n" + "".join(f"{v}\t{video.format(video_id=v)}\n" for v in ids)
    )
    (manifest / "splits.tsv").write_text(f"split\tvideo_id\n1\t{ids[0]}\n")
    return manifest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread_per_test_process():
    """Every test runs torch on one intra-op thread. The tests' tensors are small, and on a 2-core
    machine shared with other work (CI runners, a colleague's jobs) a second OpenMP thread
    that waits for a busy core made tests up to 10x slower (the 13-frame dynamics extraction
    test: 7 s alone, 90 s in a loaded full run). Subprocesses (the `motionseg` CLI,
    Snakemake rules) keep their own settings."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_torch_thread():
    """One thread again after a test whose code under test sets torch's thread count itself
    (the session-wide fixture restores its setting only at the end of the session)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


HOSTILE_OUTPUTS = ("user_folder", "user_file", "own_input", "dotdot")
"""Destinations no writer may replace: a user's folder (with a file in it), a user's file, the
command's own input, and `..` from a nested working folder."""


def hostile_output(
    variant: str, tmp_path: Path, own_input: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Set up the `variant` destination under `tmp_path` and return it as a CLI argument."""
    if variant == "user_folder":
        folder = tmp_path / "user_folder"
        folder.mkdir()
        (folder / "thesis.tex").write_text("three years of work\n")
        return str(folder)
    if variant == "user_file":
        (tmp_path / "notes.txt").write_text("keep me\n")
        return str(tmp_path / "notes.txt")
    if variant == "own_input":
        return str(own_input)
    if variant == "dotdot":
        nested = tmp_path / "work" / "nested"
        nested.mkdir(parents=True)
        (nested / "draft.txt").write_text("current folder\n")
        monkeypatch.chdir(nested)
        return ".."
    raise ValueError(variant)


def tree_snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` (files with their bytes, folders as None), to prove nothing
    was touched."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }
