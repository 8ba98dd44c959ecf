"""Pre-flight checks: videos exist, decode, and match their label files' length."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import HOSTILE_OUTPUTS, hostile_output, tree_snapshot
from typer.testing import CliRunner

from stages.cli import app
from stages.common.errors import MotionsegError
from stages.common.labels import read_label_file, write_label_file
from stages.data.checks import align_labels, check_dataset, check_video, default_tolerance

runner = CliRunner()


def make_video(path: Path, num_frames: int, fps: int = 15, codec: str = "mpeg4") -> Path:
    """A tiny 32x32 video whose frames differ, so every frame is a real packet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(num_frames):
            img = np.full((32, 32, 3), (i * 37) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_dataset(tmp_path: Path, lengths: dict[str, tuple[int, int]]) -> tuple[Path, Path]:
    """Manifest + root with videos of the given (video frames, label frames) per id."""
    manifest, root = tmp_path / "manifest", tmp_path / "root"
    manifest.mkdir()
    (manifest / "dataset.yaml").write_text(
        "name: tiny\nfps: 15\nvideos: videos.tsv\nsplits: splits.tsv\n"
        "granularities:\n  g: {classes: classes.txt, labels: 'labels/{video_id}.txt'}\n"
    )
    (manifest / "classes.txt").write_text("0 background\n1 act\n")
    rows = "".join(f"{v}\tvideos/{v}.mp4\n" for v in lengths)
    (manifest / "videos.tsv").write_text("video_id\tvideo\n" + rows)
    (manifest / "splits.tsv").write_text(f"split\tvideo_id\n1\t{next(iter(lengths))}\n")
    for vid, (video_frames, label_frames) in lengths.items():
        make_video(root / "videos" / f"{vid}.mp4", video_frames)
        labels = ["background"] * (label_frames - 1) + ["act"]
        write_label_file(root / "labels" / f"{vid}.txt", labels)
    return manifest, root


@pytest.mark.parametrize("codec", ["mpeg4", "libx264"])
def test_check_video_counts_every_frame(tmp_path: Path, codec: str) -> None:
    count = check_video(make_video(tmp_path / "v.mp4", 23, fps=15, codec=codec))
    assert count.num_frames == 23
    assert count.fps == pytest.approx(15)


def test_check_video_rejects_a_non_video(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MotionsegError, match="bad.mp4"):
        check_video(bad)


def test_tolerance_policy() -> None:
    assert default_tolerance(100) == 2
    assert default_tolerance(20_000) == 20
    labels = np.array(["a", "b"], dtype=object)
    assert list(align_labels(labels, 4)) == ["a", "b", "b", "b"]
    assert list(align_labels(labels, 1)) == ["a"]


def test_matching_dataset_passes(tmp_path: Path) -> None:
    manifest, root = make_dataset(tmp_path, {"a": (12, 12), "b": (9, 9)})
    report = check_dataset(manifest, root)
    assert {v: c.num_frames for v, c in report.videos.items()} == {"a": 12, "b": 9}
    assert report.aligned == []


def test_small_difference_is_aligned_and_reported(tmp_path: Path) -> None:
    manifest, root = make_dataset(tmp_path, {"short": (12, 11), "long": (10, 12), "ok": (8, 8)})
    report = check_dataset(manifest, root)
    assert sorted(report.aligned) == ["long (g)", "short (g)"]
    short = read_label_file(root / "labels" / "short.txt")
    assert short.size == 12 and list(short[-2:]) == ["act", "act"]  # padded with the last label
    assert read_label_file(root / "labels" / "long.txt").size == 10


def test_no_align_leaves_files_alone(tmp_path: Path) -> None:
    manifest, root = make_dataset(tmp_path, {"short": (12, 11)})
    report = check_dataset(manifest, root, align=False)
    assert report.aligned == ["short (g)"]
    assert read_label_file(root / "labels" / "short.txt").size == 11


def test_large_difference_names_video_and_counts(tmp_path: Path) -> None:
    manifest, root = make_dataset(tmp_path, {"fine": (10, 10), "bad": (20, 12)})
    with pytest.raises(MotionsegError, match=r"bad: video 20 frames, .*bad.txt 12 \(allowed"):
        check_dataset(manifest, root)
    with pytest.raises(MotionsegError, match="allowed difference 1"):
        check_dataset(manifest, root, tolerance=1)
    assert check_dataset(manifest, root, tolerance=8).aligned == ["bad (g)"]


def test_missing_root_is_one_clear_message(tmp_path: Path) -> None:
    manifest, _ = make_dataset(tmp_path, {"a": (5, 5)})
    result = runner.invoke(
        app, ["data", "check", "--manifest", str(manifest), "--root", str(tmp_path / "nowhere")]
    )
    assert result.exit_code == 1
    assert "data root" in result.output and "nowhere" in result.output
    assert "`root:`" in result.output and "pipeline/config/tiny.yaml" in result.output
    assert "Traceback" not in result.output


def test_missing_and_broken_videos_are_listed(tmp_path: Path) -> None:
    manifest, root = make_dataset(tmp_path, {"a": (5, 5), "b": (5, 5), "c": (5, 5)})
    (root / "videos" / "a.mp4").unlink()
    with pytest.raises(MotionsegError, match=r"1 file\(s\) missing"):
        check_dataset(manifest, root)
    make_video(root / "videos" / "a.mp4", 5)
    (root / "videos" / "b.mp4").write_bytes(b"\0" * 1000)
    (root / "videos" / "c.mp4").write_bytes(b"garbage" * 100)
    with pytest.raises(MotionsegError, match=r"2 video\(s\) cannot be decoded") as err:
        check_dataset(manifest, root)
    assert "b.mp4" in str(err.value) and "c.mp4" in str(err.value)


def test_check_command_writes_report(tmp_path: Path) -> None:
    manifest, root = make_dataset(tmp_path, {"a": (12, 11), "b": (7, 7)})
    out = tmp_path / "check.json"
    args = ["data", "check", "--manifest", str(manifest), "--root", str(root), "--report", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ok: 2 videos" in result.output and "7-12 per video" in result.output
    assert "warning: labels aligned to video length (1): a (g)" in result.output
    report = json.loads(out.read_text())
    assert report["videos"]["a"] == {"frames": 12, "fps": 15.0, "labels": {"g": 11}}
    assert report["aligned"] == ["a (g)"]


# --- paths that leave the data root; the report's destination ----------------------------------


def _leave_root(manifest: Path, root: Path, video: str | None, labels: str | None) -> None:
    """Point video `a` (or the label template) outside `root`, moving the files there."""
    if video is not None:
        target = root / video
        target.parent.mkdir(parents=True, exist_ok=True)
        (root / "videos" / "a.mp4").rename(target)
        (manifest / "videos.tsv").write_text(f"video_id\tvideo\na\t{video}\n")
    if labels is not None:
        target = root / labels.format(video_id="a")
        target.parent.mkdir(parents=True, exist_ok=True)
        (root / "labels" / "a.txt").rename(target)
        yaml = (manifest / "dataset.yaml").read_text()
        (manifest / "dataset.yaml").write_text(yaml.replace("labels/{video_id}.txt", labels))


def _allow_outside(manifest: Path) -> None:
    with (manifest / "dataset.yaml").open("a") as handle:
        handle.write("allow_paths_outside_root: true\n")


@pytest.mark.parametrize(
    "video", ["../outside.mp4", "videos/../../outside.mp4", "../elsewhere/a.mp4"]
)
def test_a_video_outside_the_root_is_an_error_unless_allowed(tmp_path: Path, video: str):
    manifest, root = make_dataset(tmp_path, {"a": (12, 12)})
    _leave_root(manifest, root, video, None)
    with pytest.raises(
        MotionsegError, match=f"videos.tsv: video 'a': {video} leaves the data root"
    ):
        check_dataset(manifest, root)
    _allow_outside(manifest)
    assert check_dataset(manifest, root).videos["a"].num_frames == 12


@pytest.mark.parametrize("template", ["../outside/{video_id}.txt", "labels/../../{video_id}.txt"])
def test_labels_outside_the_root_are_an_error_and_never_rewritten(tmp_path: Path, template):
    manifest, root = make_dataset(tmp_path, {"a": (12, 11)})
    _leave_root(manifest, root, None, template)
    outside = root / template.format(video_id="a")
    before = outside.read_bytes()
    with pytest.raises(MotionsegError, match="outside the data root; set `allow_paths_outside"):
        check_dataset(manifest, root)
    _allow_outside(manifest)
    with pytest.raises(MotionsegError, match="refusing to align label files outside the data"):
        check_dataset(manifest, root)
    assert outside.read_bytes() == before
    assert check_dataset(manifest, root, align=False).aligned == ["a (g)"]
    assert outside.read_bytes() == before


def test_paths_inside_the_root_with_dots_are_fine(tmp_path: Path):
    manifest, root = make_dataset(tmp_path, {"a": (12, 12)})
    (manifest / "videos.tsv").write_text("video_id\tvideo\na\tvideos/../videos/./a.mp4\n")
    assert check_dataset(manifest, root).videos["a"].num_frames == 12


@pytest.mark.parametrize("variant", HOSTILE_OUTPUTS)
def test_report_never_replaces_what_it_did_not_write(tmp_path: Path, variant, monkeypatch):
    manifest, root = make_dataset(tmp_path, {"a": (12, 12)})
    out = hostile_output(variant, tmp_path, manifest, monkeypatch)
    before = tree_snapshot(tmp_path)
    args = ["data", "check", "--manifest", str(manifest), "--root", str(root), "--report", out]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "refusing to replace" in result.output, result.output
    assert tree_snapshot(tmp_path) == before
