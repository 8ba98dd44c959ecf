"""Decode stage: timestamp sampling, resize, frame store layout, damaged inputs, CLI."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import av
import numpy as np
import pytest
import xarray as xr
from conftest import HOSTILE_OUTPUTS, REAL_CLIP, REFERENCE, hostile_output, tree_snapshot
from typer.testing import CliRunner

from stages.cli import app
from stages.common.errors import MotionsegError
from stages.common.outputs import FEATURE_STORE
from stages.common.stores import open_store, write_store
from stages.decode.sampling import TimestampSampler
from stages.decode.video import decode_video, output_size, probe_video, read_frames

runner = CliRunner()


def kept(times: list[float | None], fps: float | None, source_fps: float = 30, time_base=None):
    """Indices the sampler keeps from a sequence of frame times."""
    sampler = TimestampSampler(fps, source_fps, time_base)
    return [i for i, t in enumerate(times) if sampler(t) is not None]


# --- sampling rule ---------------------------------------------------------------------------


def stored_index(store: Path) -> list[int]:
    """The `frame_index` array: the one record of which source frames a store holds."""
    return open_store(store, required=("frame_index",))["frame_index"][:].tolist()


def test_sampler_divisor_and_non_divisor_rates() -> None:
    times = [i / 30 for i in range(60)]
    assert kept(times, 6) == list(range(0, 60, 5))
    assert kept(times, 7)[:5] == [0, 5, 9, 13, 18]
    assert kept(times, 15) == list(range(0, 60, 2))
    assert kept(times, None) == list(range(60))


def test_sampler_is_relative_to_first_frame_and_never_duplicates() -> None:
    assert kept([5 + i / 30 for i in range(30)], 6) == [0, 5, 10, 15, 20, 25]
    # A gap in a variable-rate video: one frame covers ticks 0.1 and 0.2, kept once.
    assert kept([0, 0.05, 0.06, 0.2, 0.21, 0.5], 10) == [0, 3, 5]
    # A target above the source rate keeps every frame, once.
    assert kept([i / 30 for i in range(10)], 100) == list(range(10))


def test_sampler_tolerates_millisecond_rounding_and_missing_pts() -> None:
    rounded = [round(i / 30, 3) for i in range(60)]  # how mkv stores a 30 fps stream
    assert kept(rounded, 6, time_base=1e-3) == list(range(0, 60, 5))
    # Without a tolerance 0.333 < 1/3 would push tick 2 to frame 11.
    assert kept(rounded, 6, time_base=None)[2] == 11
    sampler = TimestampSampler(None, 30)
    assert [sampler(t) for t in (0.0, None, None)] == pytest.approx([0, 1 / 30, 2 / 30])


def test_output_size_scales_short_side_and_keeps_aspect() -> None:
    assert output_size(640, 480, 224) == (299, 224)
    assert output_size(480, 640, 224) == (224, 299)
    assert output_size(64, 48, None) == (64, 48)


# --- decoding synthetic videos ---------------------------------------------------------------


def test_native_decode_returns_the_written_frames(synthetic_video, tmp_path: Path) -> None:
    out = decode_video(synthetic_video.path, tmp_path / "v.zarr")
    frames, attrs = read_frames(out)
    np.testing.assert_array_equal(frames, synthetic_video.frames)  # lossless source
    assert stored_index(tmp_path / "v.zarr") == list(range(30))
    assert attrs["timestamps"] == pytest.approx(synthetic_video.timestamps)
    assert attrs["fps"] == attrs["source_fps"] == 30
    assert attrs["num_source_frames"] == 30
    assert attrs["size"] is None
    assert attrs["source_path"] == str(synthetic_video.path)


def test_lower_fps_samples_by_timestamp(make_video, tmp_path: Path) -> None:
    video = make_video("v.mp4", num_frames=45, fps=30)
    frames, attrs = read_frames(decode_video(video.path, tmp_path / "v.zarr", fps=10))
    assert stored_index(tmp_path / "v.zarr") == list(range(0, 45, 3))
    assert attrs["fps"] == 10
    assert attrs["timestamps"] == pytest.approx(video.timestamps[::3])
    np.testing.assert_array_equal(frames, video.frames[::3])


def test_fps_above_source_keeps_every_frame_once(synthetic_video, tmp_path: Path) -> None:
    frames, attrs = read_frames(decode_video(synthetic_video.path, tmp_path / "v.zarr", fps=100))
    assert stored_index(tmp_path / "v.zarr") == list(range(30))
    assert attrs["fps"] == 30  # the rate actually stored, not the one asked for
    np.testing.assert_array_equal(frames, synthetic_video.frames)


def test_variable_frame_rate_video(make_video, tmp_path: Path) -> None:
    times = [0, 0.05, 0.06, 0.2, 0.21, 0.5, 0.52]
    video = make_video("vfr.mp4", num_frames=7, timestamps=times)
    frames, attrs = read_frames(decode_video(video.path, tmp_path / "v.zarr", fps=10))
    assert stored_index(tmp_path / "v.zarr") == [0, 3, 5]
    np.testing.assert_array_equal(frames, video.frames[[0, 3, 5]])


def test_resize_keeps_aspect_and_content(make_video, tmp_path: Path) -> None:
    video = make_video("v.mp4", num_frames=4, size=(64, 48))
    frames, attrs = read_frames(decode_video(video.path, tmp_path / "v.zarr", size=24))
    assert frames.shape == (4, 24, 32, 3)
    assert attrs["size"] == 24
    halved = video.frames.reshape(4, 24, 2, 32, 2, 3).mean(axis=(2, 4))
    assert np.abs(frames - halved).mean() < 6
    portrait = make_video("p.mp4", num_frames=2, size=(48, 64))
    frames, _ = read_frames(decode_video(portrait.path, tmp_path / "p.zarr", size=24))
    assert frames.shape == (2, 32, 24, 3)


def test_store_layout_opens_in_xarray(make_video, tmp_path: Path) -> None:
    video = make_video("v.mp4", num_frames=40)  # more than one 32-frame chunk
    out = decode_video(video.path, tmp_path / "v.zarr", fps=15)
    ds = xr.open_zarr(out)
    assert ds["frames"].dims == ("time", "height", "width", "channel")
    assert ds["frames"].dtype == np.uint8
    assert ds["frames"].shape == (20, 48, 64, 3)
    assert ds["frame_index"].dims == ("time",)
    np.testing.assert_array_equal(ds["frame_index"].values, np.arange(0, 40, 2))
    assert ds["frame_index"].values.tolist() == list(range(0, 40, 2))
    np.testing.assert_array_equal(ds["frames"].values, video.frames[::2])


def test_mkv_without_declared_frame_count(make_video, tmp_path: Path) -> None:
    video = make_video("v.mkv", num_frames=30)
    info = probe_video(video.path)
    assert (info.num_frames, info.declared_frames) == (30, None)
    frames, attrs = read_frames(decode_video(video.path, tmp_path / "v.zarr", fps=6))
    assert stored_index(tmp_path / "v.zarr") == [0, 5, 10, 15, 20, 25]
    np.testing.assert_array_equal(frames, video.frames[::5])


def test_probe_video(synthetic_video) -> None:
    info = probe_video(synthetic_video.path)
    assert (info.num_frames, info.fps, info.width, info.height) == (30, 30, 64, 48)
    assert info.declared_frames == 30
    assert info.duration == pytest.approx(1.0)
    assert probe_video(synthetic_video.path, count_packets=False).num_frames == 30


# --- damaged inputs and atomicity ------------------------------------------------------------


def audio_only(path: Path) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture
def damaged(make_video, truncate_video, tmp_path: Path):
    """name -> a damaged input file, built on demand."""
    builders = {
        "missing": lambda: tmp_path / "missing.mp4",
        "garbage": lambda: _write(tmp_path / "garbage.mp4", np.random.default_rng(0).bytes(4096)),
        "empty": lambda: _write(tmp_path / "empty.mp4", b""),
        "no video stream": lambda: audio_only(tmp_path / "audio.wav"),
        "cut, index at end": lambda: truncate_video(make_video("a.mp4", num_frames=60).path),
        "cut, index in front": lambda: truncate_video(
            make_video("b.mp4", num_frames=60, faststart=True).path, keep=0.6
        ),
        "cut mkv": lambda: truncate_video(make_video("c.mkv", num_frames=60).path, keep=0.6),
    }
    return lambda name: builders[name]()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


DAMAGED = [
    "missing",
    "garbage",
    "empty",
    "no video stream",
    "cut, index at end",
    "cut, index in front",
    "cut mkv",
]


@pytest.mark.parametrize("kind", DAMAGED)
def test_damaged_input_is_one_clear_error_and_leaves_no_store(
    kind: str, damaged, tmp_path: Path
) -> None:
    video = damaged(kind)
    out = tmp_path / "out" / "v.zarr"
    out.parent.mkdir()
    result = runner.invoke(app, ["decode", str(video), str(out)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {video}:"), result.output
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temporary store either


def test_faststart_cut_near_the_end_is_caught(make_video, truncate_video, tmp_path) -> None:
    """The header still declares every frame; only the count reveals the missing tail."""
    video = make_video("v.mp4", num_frames=60, faststart=True)
    cut = truncate_video(video.path, keep=0.95)
    assert probe_video(cut).num_frames < probe_video(cut).declared_frames == 60
    with pytest.raises(MotionsegError, match=f"{cut}: .*(truncated|corrupt)"):
        decode_video(cut, tmp_path / "v.zarr", fps=6)


def test_existing_store_is_replaced_only_on_success(
    make_video, truncate_video, tmp_path: Path
) -> None:
    good = make_video("good.mp4", num_frames=10)
    out = decode_video(good.path, tmp_path / "v.zarr")
    cut = truncate_video(make_video("bad.mp4", num_frames=60).path, keep=0.5)
    with pytest.raises(MotionsegError):
        decode_video(cut, out)
    frames, _ = read_frames(out)
    np.testing.assert_array_equal(frames, good.frames)
    other = make_video("other.mp4", num_frames=6)
    frames, _ = read_frames(decode_video(other.path, out))
    np.testing.assert_array_equal(frames, other.frames)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".zarr") == ["v.zarr"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("option", [["--fps", "0"], ["--fps", "-6"], ["--size", "0"]])
def test_bad_options_are_errors(option: list[str], synthetic_video, tmp_path: Path) -> None:
    out = tmp_path / "v.zarr"
    result = runner.invoke(app, ["decode", str(synthetic_video.path), str(out), *option])
    assert result.exit_code == 1
    assert option[0] in result.output
    assert not out.exists()


def test_cli_decodes(synthetic_video, tmp_path: Path) -> None:
    out = tmp_path / "v.zarr"
    result = runner.invoke(
        app, ["decode", str(synthetic_video.path), str(out), "--fps", "6", "--size", "24"]
    )
    assert result.exit_code == 0, result.output
    assert "6 of 30 frames at 6 fps" in result.output
    frames, attrs = read_frames(out)
    assert frames.shape == (6, 24, 32, 3)
    assert stored_index(tmp_path / "v.zarr") == [0, 5, 10, 15, 20, 25]


# --- the real clip ---------------------------------------------------------------------------

needs_clip = pytest.mark.reference(*REAL_CLIP.relative_to(REFERENCE).parts)


@needs_clip
def test_real_clip_probe() -> None:
    info = probe_video(REAL_CLIP)
    assert (info.num_frames, info.declared_frames, info.fps) == (420, 420, 30)
    assert (info.width, info.height) == (480, 360)


@needs_clip
@pytest.mark.parametrize(("fps", "count", "step"), [(None, 420, 1), (6, 84, 5)])
def test_real_clip_decode(fps, count: int, step: int, tmp_path: Path) -> None:
    frames, attrs = read_frames(decode_video(REAL_CLIP, tmp_path / "v.zarr", fps=fps, size=32))
    assert frames.shape == (count, 32, 43, 3)
    assert stored_index(tmp_path / "v.zarr") == list(range(0, 420, step))
    assert attrs["num_source_frames"] == 420
    assert attrs["fps"] == (fps or 30)
    assert frames.std() > 10  # real picture content, not a blank frame


# --- bad options, output safety, rotation ------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--fps", "inf"], "--fps must be a number"),
        (["--fps", "nan"], "--fps must be a number"),
        (["--fps", "1e9"], "--fps must be a number"),
        (["--size", "100000"], "--size must be a short side of 1..8192"),
        (["--size", "-3"], "--size must be a short side"),
    ],
)
def test_out_of_range_options_are_named(
    option: list[str], message: str, synthetic_video, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["decode", str(synthetic_video.path), "v.zarr", *option])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "corrupt" not in result.output and not (tmp_path / "v.zarr").exists()


@pytest.mark.parametrize("variant", HOSTILE_OUTPUTS)
def test_never_replaces_what_it_did_not_write(
    variant: str, synthetic_video, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = hostile_output(variant, tmp_path, synthetic_video.path, monkeypatch)
    before = tree_snapshot(tmp_path)
    result = runner.invoke(app, ["decode", str(synthetic_video.path), out])
    assert result.exit_code == 1, result.output
    assert "refusing to replace" in result.output and out in result.output
    assert tree_snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "is the current folder or one above it"),  # typer reads "" as "."
        (".", "is the current folder or one above it"),
        ("../..", "is the current folder or one above it"),
        ("notes.txt/v.zarr", "is a file, not a folder"),
        ("notes.txt/deeper/v.zarr", "is a file, not a folder"),
    ],
)
def test_unusable_output_paths_are_one_line(
    out: str, message: str, synthetic_video, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "notes.txt").write_text("keep me\n")
    monkeypatch.chdir(nested)
    before = tree_snapshot(tmp_path)
    result = runner.invoke(app, ["decode", str(synthetic_video.path), out])
    assert result.exit_code == 1 and message in result.output, result.output
    assert tree_snapshot(tmp_path) == before


def test_replaces_its_own_store_but_not_a_feature_store(synthetic_video, tmp_path: Path) -> None:
    out = decode_video(synthetic_video.path, tmp_path / "v.zarr", fps=10)
    assert read_frames(decode_video(synthetic_video.path, out))[0].shape[0] == 30
    features = tmp_path / "f.zarr"
    write_store(features, {"features": (np.zeros((3, 2)), ("time", "channel"), (3, 2))}, {},
                FEATURE_STORE)  # fmt: skip
    with pytest.raises(MotionsegError, match="not a frame store this project wrote"):
        decode_video(synthetic_video.path, features)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270, -90])
def test_display_rotation_is_applied_and_recorded(rotation: int, make_video) -> None:
    video = make_video("phone.mp4", num_frames=4, size=(32, 16), rotation=rotation)
    frames, attrs = read_frames(decode_video(video.path, video.path.with_suffix(".zarr")))
    # np.rot90 turns counter-clockwise, the display matrix's sense (FFmpeg's -display_rotation)
    expected = np.stack([np.rot90(f, k=rotation // 90) for f in video.frames])
    np.testing.assert_array_equal(frames, expected)
    assert attrs["rotation"] == rotation % 360


def test_rotation_with_resize_keeps_the_displayed_aspect(make_video) -> None:
    video = make_video("phone.mp4", num_frames=2, size=(64, 32), rotation=90)
    frames, _ = read_frames(decode_video(video.path, video.path.with_suffix(".zarr"), size=16))
    assert frames.shape == (2, 32, 16, 3)  # portrait: 16 wide (short side), 32 high


# warnings.catch_warnings (zarr's consolidate) is not thread-safe: a racing thread may see it
@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_racing_decodes_of_one_store_leave_one_store_and_no_temporary(
    synthetic_video, tmp_path: Path
) -> None:
    out = tmp_path / "v.zarr"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(decode_video, synthetic_video.path, out) for _ in range(4)]
        outcomes = [job.exception() for job in jobs]
    assert all(err is None or isinstance(err, MotionsegError) for err in outcomes), outcomes
    np.testing.assert_array_equal(read_frames(out)[0], synthetic_video.frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic.mp4", "v.zarr"]
