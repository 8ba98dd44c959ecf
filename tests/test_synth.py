"""`motionseg data synth`: layout, determinism, the committed demo manifest, and the property the
demo exists for: its motion classes look alike in a single frame and differ only in motion."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import HOSTILE_OUTPUTS, hostile_output, tree_snapshot
from typer.testing import CliRunner

import stages.data.synth as synth_module
from stages.cli import app
from stages.common.errors import MotionsegError
from stages.common.labels import ClassList, segments
from stages.common.manifest import load_manifest
from stages.data.synth import SynthOptions, synthesize
from stages.data.synth_plan import APPEARANCE_ACTIONS, CLASSES, MOTION_ACTIONS

COMMITTED = Path(__file__).resolve().parents[1] / "data_manifests" / "demo"
MANIFEST_FILES = ("dataset.yaml", "videos.tsv", "splits.tsv", "classes.txt")
TINY = SynthOptions(videos=2, splits=2, size=64)


def decode(path: Path) -> tuple[np.ndarray, list[float]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return np.stack([f.to_ndarray(format="rgb24") for f in frames]), [float(f.time) for f in frames]


def tree_digests(root: Path) -> dict[str, str]:
    """File -> SHA-256 of its bytes: a failed comparison prints two short dicts, not a diff of
    video files (pytest's diff of two ~100 KB byte strings runs for many minutes)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default dataset, as `motionseg data synth OUT` writes it."""
    root = tmp_path_factory.mktemp("synth") / "demo"
    synthesize(root, SynthOptions())
    return root


@pytest.fixture(scope="module")
def decoded(demo: Path) -> dict[str, tuple[np.ndarray, np.ndarray, list[float]]]:
    """video id -> (decoded frames, per-frame labels, frame timestamps)."""
    manifest = load_manifest(demo / "manifest", root=demo)
    out = {}
    for video_id in manifest.video_ids:
        frames, times = decode(manifest.video_path(video_id))
        out[video_id] = (frames, manifest.labels(video_id), times)
    return out


def test_default_run_reproduces_the_committed_manifest(demo: Path) -> None:
    for name in MANIFEST_FILES:
        assert (demo / "manifest" / name).read_text() == (COMMITTED / name).read_text(), name
    committed = load_manifest(COMMITTED)
    assert committed.name == "demo"
    assert committed.root == Path("data/demo")
    assert committed.settings == {"backbone_fps": 7.5, "purity": 0.7}


def test_layout_and_manifest(demo: Path) -> None:
    manifest = load_manifest(demo / "manifest", root=demo)
    manifest.check_files()
    assert manifest.fps == 15
    assert manifest.classes == ClassList(CLASSES)
    assert 8 <= len(CLASSES) <= 10 and CLASSES[0] == "background"
    assert len(manifest.video_ids) == 24
    for video_id in manifest.video_ids:
        assert manifest.video_path(video_id) == demo / "videos" / f"{video_id}.mp4"
        assert manifest.label_path(video_id) == demo / "labels" / f"{video_id}.txt"
    assert (demo / "synth.json").is_file()


def test_videos_are_h264_with_one_frame_per_label_line(
    demo: Path, decoded: dict[str, tuple[np.ndarray, np.ndarray, list[float]]]
) -> None:
    for video_id, (frames, labels, times) in decoded.items():
        assert frames.shape == (len(labels), 48, 64, 3), video_id
        assert np.allclose(times, np.arange(len(labels)) / 15), video_id
        with av.open(str(demo / "videos" / f"{video_id}.mp4")) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.format.name) == ("h264", "yuv420p")


def test_timelines_look_like_short_cooking_clips(
    decoded: dict[str, tuple[np.ndarray, np.ndarray, list[float]]],
) -> None:
    seen: set[str] = set()
    durations, counts = [], []
    for video_id, (_, labels, _) in decoded.items():
        segs = segments(labels)
        actions = [s for s in segs if s.label != "background"]
        assert segs[0].label == segs[-1].label == "background", video_id
        assert len({s.label for s in actions}) == len(actions), f"{video_id}: repeated action"
        for s in actions:
            assert 1.5 * 15 - 1 <= s.end - s.start <= 3 * 15 + 1, (video_id, s)
        # actions never touch: a background gap separates them
        assert [s.label for s in segs[1::2]] == [s.label for s in actions], video_id
        seen.update(s.label for s in actions)
        durations.append(len(labels) / 15)
        counts.append(len(actions))
    assert seen == set(CLASSES) - {"background"}
    assert 20 <= np.mean(durations) <= 27
    assert 6 <= np.mean(counts) <= 8


def test_splits_are_leave_one_group_out(demo: Path) -> None:
    manifest = load_manifest(demo / "manifest", root=demo)
    assert manifest.split_names == ["1", "2", "3", "4"]
    tested = [v for split in manifest.split_names for v in manifest.test_ids(split)]
    assert sorted(tested) == sorted(manifest.video_ids)  # a partition: each video tested once
    for split in manifest.split_names:
        test = manifest.test_ids(split)
        assert len(test) == 6
        assert {manifest.videos[v].group for v in test} == {f"S{split}"}
        assert not {manifest.videos[v].group for v in manifest.train_ids(split)} & {f"S{split}"}


def object_hues(frames: np.ndarray) -> np.ndarray:
    """Per pixel, the hue bin (0..11) of strongly saturated pixels, -1 for all others.

    The tables are pale (HSV saturation <= 0.45), so this keeps the coloured objects only: the
    blue tool and its brown handle, the yellow liquid, the red ingredient.
    """
    hi, lo = frames.max(-1).astype(np.float32), frames.min(-1).astype(np.float32)
    keep = hi - lo > 0.6 * np.maximum(hi, 1)
    r, g, b = frames[keep].astype(np.float32).T
    hi, span = hi[keep], (hi - lo)[keep]
    hue = np.where(
        hi == r, ((g - b) / span) % 6, np.where(hi == g, (b - r) / span + 2, (r - g) / span + 4)
    )
    out = np.full(keep.shape, -1, dtype=np.int8)
    out[keep] = np.clip((hue * 2).astype(np.int8), 0, 11)
    return out


def hue_histogram(hues: np.ndarray) -> np.ndarray:
    """(T, 12): share of each frame's pixels that are saturated and in each hue bin."""
    t = np.broadcast_to(np.arange(len(hues))[:, None, None], hues.shape)
    keep = hues >= 0
    counts = np.bincount(t[keep] * 12 + hues[keep], minlength=len(hues) * 12)
    return counts.reshape(len(hues), 12) / hues[0].size


def centroid_steps(hues: np.ndarray) -> np.ndarray:
    """(T - 1, 2): (dx, dy) of the centroid of the object pixels between consecutive frames."""
    mask = hues >= 0
    n = np.maximum(mask.sum((1, 2)), 1)
    cx = mask.sum(1) @ np.arange(hues.shape[2]) / n
    cy = mask.sum(2) @ np.arange(hues.shape[1]) / n
    return np.diff(np.stack([cx, cy], 1), axis=0)


@pytest.fixture(scope="module")
def hues(
    decoded: dict[str, tuple[np.ndarray, np.ndarray, list[float]]],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per video: (object hue bins per pixel, labels)."""
    return [(object_hues(frames), labels) for frames, labels, _ in decoded.values()]


def per_class(
    hues: list[tuple[np.ndarray, np.ndarray]], feature, shift: int = 0
) -> dict[str, np.ndarray]:
    """Pool a per-frame feature over all videos by class (`shift` 1: label of the later frame)."""
    pooled: dict[str, list[np.ndarray]] = {}
    for video_hues, labels in hues:
        values, labels = feature(video_hues), labels[shift:]
        for name in set(labels):
            pooled.setdefault(name, []).append(values[labels == name])
    return {name: np.concatenate(v) for name, v in pooled.items()}


def test_motion_classes_look_alike_in_a_single_frame(
    hues: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    """Standardised differences of the object colour histograms: small between any two motion
    classes (a per-frame colour classifier cannot separate them), large for appearance classes."""
    hist = per_class(hues, hue_histogram)

    def effect(a: str, b: str) -> float:
        spread = np.sqrt((hist[a].var(0) + hist[b].var(0)) / 2) + 1e-4
        return float((np.abs(hist[a].mean(0) - hist[b].mean(0)) / spread).max())

    assert max(effect(a, b) for a, b in itertools.combinations(MOTION_ACTIONS, 2)) < 0.8
    for action in APPEARANCE_ACTIONS:
        assert min(effect(action, m) for m in (*MOTION_ACTIONS, "background")) > 1.2, action


def test_motion_classes_differ_in_motion(hues: list[tuple[np.ndarray, np.ndarray]]) -> None:
    steps = per_class(hues, centroid_steps, shift=1)
    dx = {name: float(np.median(s[:, 0])) for name, s in steps.items()}
    speed = {name: float(np.median(np.hypot(*s.T))) for name, s in steps.items()}
    assert dx["slide_left"] < -0.8 and dx["slide_right"] > 0.8
    assert speed["stir_fast"] > 1.8 * speed["stir_slow"]
    assert speed["background"] < 0.5
    for action in MOTION_ACTIONS:
        assert speed[action] > 2 * speed["background"], action


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    # Several runs in one test: a non-deterministic encoder fails here, not at random in CI.
    for run in "abc":
        synthesize(tmp_path / run, TINY)
    a, b, c = (tree_digests(tmp_path / run) for run in "abc")
    assert a == b == c and any(name.endswith(".mp4") for name in a)
    synthesize(tmp_path / "other", SynthOptions(seed=1, videos=2, splits=2, size=64))
    other = tree_digests(tmp_path / "other")
    assert other["labels/S1_01.txt"] != a["labels/S1_01.txt"]
    assert other["videos/S1_01.mp4"] != a["videos/S1_01.mp4"]


def bt601(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """ITU-R BT.601 limited range Y'CbCr of an 8-bit RGB colour (the standard's real formula)."""
    r, g, b = (c / 255 for c in rgb)
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    return y, 128 - 37.797 * r - 74.203 * g + 112.0 * b, 128 + 112.0 * r - 93.786 * g - 18.214 * b


@pytest.mark.parametrize(
    "colour", [(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (90, 160, 30)]
)
def test_colour_conversion_is_bt601(colour: tuple[int, int, int]) -> None:
    rgb = np.broadcast_to(np.array(colour, dtype=np.uint8), (4, 6, 3))
    yuv = synth_module.rgb_to_yuv420p(rgb)
    assert yuv.shape == (6, 6) and yuv.dtype == np.uint8
    y, u, v = yuv[:4].ravel(), yuv[4:].ravel()[:6], yuv[4:].ravel()[6:]
    for plane, expected in zip((y, u, v), bt601(colour), strict=True):
        assert np.all(np.abs(plane.astype(float) - expected) <= 1), (colour, plane, expected)


def test_chroma_is_the_mean_of_each_2x2_block() -> None:
    rgb = np.zeros((2, 4, 3), dtype=np.uint8)
    rgb[0, 0] = rgb[1, 1] = (255, 0, 0)  # left block half red, right block black
    yuv = synth_module.rgb_to_yuv420p(rgb)
    u, v = yuv[2:].ravel()[:2], yuv[2:].ravel()[2:]
    assert abs(int(v[0]) - bt601((128, 0, 0))[2]) <= 1 and v[1] == 128 and u[1] == 128


def test_other_size_and_frame_rate(tmp_path: Path) -> None:
    synthesize(tmp_path / "d", SynthOptions(videos=2, splits=2, size=64, fps=10))
    manifest = load_manifest(tmp_path / "d" / "manifest", root=tmp_path / "d")
    assert manifest.fps == 10 and manifest.settings["backbone_fps"] == 5
    for video_id in manifest.video_ids:
        frames, times = decode(manifest.video_path(video_id))
        assert frames.shape == (len(manifest.labels(video_id)), 48, 64, 3)
        assert np.allclose(times, np.arange(len(frames)) / 10)


def test_separate_manifest_folder(tmp_path: Path) -> None:
    synthesize(tmp_path / "root", TINY, tmp_path / "meta")
    assert not (tmp_path / "root" / "manifest").exists()
    load_manifest(tmp_path / "meta", root=tmp_path / "root").check_files()
    synthesize(tmp_path / "root", TINY, tmp_path / "meta")  # its own outputs may be replaced


def test_killed_run_leaves_nothing_that_looks_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "demo"
    calls = []

    def failing_write(*args: object) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_write(*args)

    real_write = synth_module.write_mp4
    monkeypatch.setattr(synth_module, "write_mp4", failing_write)
    with pytest.raises(KeyboardInterrupt):
        synthesize(out, TINY)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.undo()
    synthesize(out, TINY)
    before = tree_digests(out)
    calls.clear()
    monkeypatch.setattr(synth_module, "write_mp4", failing_write)
    with pytest.raises(KeyboardInterrupt):
        synthesize(out, SynthOptions(seed=3, videos=2, splits=2, size=64))
    assert tree_digests(out) == before  # the earlier, complete output is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(MotionsegError, match="refusing to replace"):
        synthesize(mine, TINY)
    with pytest.raises(MotionsegError, match="refusing to replace"):
        synthesize(tmp_path / "demo", TINY, manifest_out=mine)
    with pytest.raises(MotionsegError, match="must not contain OUT"):
        synthesize(tmp_path / "demo", TINY, manifest_out=tmp_path)
    assert (mine / "thesis.tex").read_text() == "precious"
    assert not (tmp_path / "demo").exists()


def test_cli_writes_the_dataset(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["data", "synth", str(out), "--videos", "2", "--splits", "2", "--size", "64"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 videos" in result.output
    synthesize(tmp_path / "api", TINY)
    assert tree_digests(out) == tree_digests(tmp_path / "api")  # the CLI passes its options through


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--videos", "0"], "--videos must be >= 1"),
        (["--videos", "3", "--splits", "4"], "--splits 4 is more than --videos 3"),
        (["--splits", "1"], "--splits must be >= 2"),
        (["--size", "63"], "--size must be an even width"),
        (["--fps", "0"], "--fps must be in 1..120"),
        (["--seed", "-1"], "--seed must be >= 0"),
    ],
)
def test_cli_rejects_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "demo"), *args])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("variant", [v for v in HOSTILE_OUTPUTS if v != "own_input"])
@pytest.mark.parametrize("which", ["out", "manifest_out"])
def test_cli_never_replaces_what_it_did_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str, which: str
) -> None:
    target = hostile_output(variant, tmp_path, tmp_path, monkeypatch)
    out, manifest_out = (target, None) if which == "out" else (str(tmp_path / "demo"), target)
    before = tree_snapshot(tmp_path)
    args = ["data", "synth", out, "--videos", "2", "--splits", "2", "--size", "32"]
    args += ["--manifest-out", manifest_out] if manifest_out else []
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "refusing" in result.output or "must not contain OUT" in result.output
    assert tree_snapshot(tmp_path) == before
