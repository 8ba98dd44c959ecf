"""The embedded demo dataset: procedurally rendered "cooking" clips where motion matters.

`synthesize` writes, under a data root OUT::

    OUT/videos/{video_id}.mp4     H.264 (libx264 veryfast, crf 18, yuv420p), one frame per label
    OUT/labels/{video_id}.txt     per-frame class names, one per video frame (MS-TCN groundTruth)
    OUT/synth.json                the generator's parameters (and proof OUT is ours to replace)
    OUT/manifest/                 dataset.yaml, videos.tsv, splits.tsv, classes.txt (or
                                  --manifest-out)

Everything is built under temporary sibling names and renamed at the end, so a killed run never
leaves an OUT that looks complete. Output is a pure function of the options: every random draw
comes from a generator seeded by (seed, purpose, index); the RGB -> YUV 4:2:0 conversion is
integer numpy arithmetic (not swscale, whose SIMD path and slice threads depend on the machine)
and libx264 runs single-threaded on its plain C paths (`X264_EXACT`), so the bytes are identical
from run to run (`benchmarks/synth_encode.py` measures what that encoding costs).

Videos belong to groups ("subjects" `S1`, `S2`, ...; each video its own table colour) and split
k tests group k, so the splits are leave-one-group-out like GTEA's leave-one-subject-out folds.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stages import __version__
from stages.common.atomic import atomic_path, check_destination
from stages.common.errors import MotionsegError
from stages.common.labels import ClassList, write_label_file
from stages.common.manifest import MANIFEST_FILE, load_manifest
from stages.common.outputs import MANIFEST, MANIFEST_PART, SYNTH_ROOT
from stages.data.synth_plan import (
    APPEARANCE_ACTIONS,
    BACKGROUND,
    CLASSES,
    MOTION_ACTIONS,
    VideoPlan,
    plan_videos,
)
from stages.data.synth_render import frame_height, render_video, table_palettes

DATASET_NAME = "demo"
DEFAULT_ROOT = "data/demo"
VIDEO_TEMPLATE = "videos/{video_id}.mp4"
LABEL_TEMPLATE = "labels/{video_id}.txt"
PARAMS_FILE = "synth.json"
CRF = 18  # visually lossless at this size; the noise and 1-px motions survive the encoder
# x264's assembly paths made the bytes (and decoded pixels, by up to 36 grey levels) differ
# between runs of the same input in about one run in three on this machine, single-threaded
# or not; its plain C paths are exact. They cost little at the demo's 64 px.
X264_EXACT = {"x264-params": "asm=0"}
# Backbone snippets keep windows whose majority label covers >= 70% of frames (the 50 Salads
# threshold; actions here last >= 1.5 s).
PURITY = 0.7


@dataclass(frozen=True)
class SynthOptions:
    """What `motionseg data synth` can vary; validated on construction."""

    seed: int = 0
    videos: int = 24
    splits: int = 4
    size: int = 64
    fps: int = 15

    def __post_init__(self) -> None:
        problems = []
        if self.seed < 0:
            problems.append(f"--seed must be >= 0, got {self.seed}")
        if self.videos < 1:
            problems.append(f"--videos must be >= 1, got {self.videos}")
        if self.splits < 2:
            problems.append(
                f"--splits must be >= 2 (each split holds out one group), got {self.splits}"
            )
        elif self.splits > self.videos:
            problems.append(
                f"--splits {self.splits} is more than --videos {self.videos}: each split tests "
                "its own group of videos, so every group needs at least one video"
            )
        if not 32 <= self.size <= 1024 or self.size % 2:
            problems.append(f"--size must be an even width in 32..1024 pixels, got {self.size}")
        if not 1 <= self.fps <= 120:
            problems.append(f"--fps must be in 1..120, got {self.fps}")
        if problems:
            raise MotionsegError("; ".join(problems))

    @property
    def height(self) -> int:
        return frame_height(self.size)


def synthesize(
    out: str | Path, options: SynthOptions, manifest_out: str | Path | None = None
) -> list[VideoPlan]:
    """Render the dataset into OUT (and its manifest into `manifest_out`, default OUT/manifest).

    Returns the plans of the written videos. An existing OUT or manifest folder is replaced
    only if an earlier run wrote it.
    """
    out = Path(out)
    manifest_out = Path(manifest_out) if manifest_out is not None else out / "manifest"
    out_abs, manifest_abs = out.resolve(), manifest_out.resolve()
    if out_abs.is_relative_to(manifest_abs) and out_abs != manifest_abs:
        raise MotionsegError(f"--manifest-out {manifest_out} must not contain OUT {out}")
    inside = manifest_abs.is_relative_to(out_abs)
    check_destination(out, SYNTH_ROOT)
    if not inside:
        check_destination(manifest_out, MANIFEST)

    plans = plan_videos(
        np.random.default_rng([options.seed, 0]), options.videos, options.splits, options.fps
    )
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(atomic_path(out, SYNTH_ROOT))
        root.mkdir()
        manifest_dir = (
            root / manifest_abs.relative_to(out_abs)
            if inside
            else stack.enter_context(atomic_path(manifest_out, MANIFEST))
        )
        palettes = table_palettes(np.random.default_rng([options.seed, 1]), options.videos)
        for plan in plans:
            rng = np.random.default_rng([options.seed, 2, plan.index])
            frames = render_video(plan, options.size, options.fps, palettes[plan.index], rng)
            write_mp4(root / VIDEO_TEMPLATE.format(video_id=plan.video_id), frames, options.fps)
            write_label_file(root / LABEL_TEMPLATE.format(video_id=plan.video_id), plan.labels())
        write_manifest(manifest_dir, plans, options)
        (root / PARAMS_FILE).write_text(
            json.dumps({**asdict(options), "motionseg_version": __version__}, indent=2) + "\n"
        )
        manifest = load_manifest(manifest_dir, root=root)
        manifest.check_files()
    return plans


def write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    """H.264 mp4 with one frame per array row at timestamps i / fps, byte-identical per input."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    _, height, width, _ = frames.shape
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "veryfast", "threads": "1", **X264_EXACT}
        stream.codec_context.thread_count = 1
        stream.codec_context.thread_type = "NONE"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(rgb), format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> PyAV's (3H/2, W) yuv420p layout: BT.601 limited range, chroma
    from each 2x2 block's mean, in exact integer arithmetic (ITU-R BT.601 8-bit coefficients)."""
    height, width, _ = rgb.shape
    r, g, b = (rgb[..., c].astype(np.int32) for c in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    # Sums over 2x2 blocks carry 4x the mean, hence the shift by 10 instead of 8.
    rs, gs, bs = (c.reshape(height // 2, 2, width // 2, 2).sum(axis=(1, 3)) for c in (r, g, b))
    u = ((-38 * rs - 74 * gs + 112 * bs + 512) >> 10) + 128
    v = ((112 * rs - 94 * gs - 18 * bs + 512) >> 10) + 128
    planes = (y.ravel(), u.ravel(), v.ravel())
    return np.concatenate(planes).astype(np.uint8).reshape(height * 3 // 2, width)


def write_manifest(directory: Path, plans: list[VideoPlan], options: SynthOptions) -> None:
    """dataset.yaml, videos.tsv, splits.tsv and classes.txt (see stages.common.manifest)."""
    directory.mkdir(parents=True, exist_ok=True)
    ClassList(CLASSES).write(directory / "classes.txt", MANIFEST_PART)
    (directory / "videos.tsv").write_text(
        "video_id\tvideo\tgroup\n"
        + "".join(
            f"{p.video_id}\t{VIDEO_TEMPLATE.format(video_id=p.video_id)}\t{p.group_name}\n"
            for p in plans
        )
    )
    # Split k tests group S<k>, listed in split order.
    (directory / "splits.tsv").write_text(
        "split\tvideo_id\n" + "".join(f"{p.group + 1}\t{p.video_id}\n" for p in plans)
    )
    (directory / MANIFEST_FILE).write_text(
        f"""\
# The embedded demo dataset, written by `motionseg data synth` with seed {options.seed},
# {options.videos} videos, {options.splits} splits, {options.size}x{options.height} px at \
{options.fps} fps. Regenerate rather than edit:
# tests/test_synth.py checks that the default run reproduces data_manifests/demo/ exactly.
# Motion-only classes (the same tool, moved differently):
#   {", ".join(MOTION_ACTIONS)}.
# Appearance classes (something visible is added): {", ".join(APPEARANCE_ACTIONS)}.
name: {DATASET_NAME}
fps: {options.fps}
background: [{BACKGROUND}]
default_root: {DEFAULT_ROOT}
videos: videos.tsv              # group = subject
splits: splits.tsv              # leave one group out: split k tests the videos of S<k>
default_granularity: default
granularities:
  default: {{classes: classes.txt, labels: "{LABEL_TEMPLATE}"}}
settings:
  backbone_fps: {options.fps / 2:g}   # half the native rate: motions move ~2x further per frame
  purity: {PURITY}         # snippets whose majority label covers < 70% of frames are dropped
motion_only: [{", ".join(MOTION_ACTIONS)}]
"""
    )
