"""Own videos: a table of videos and labels in, a standard manifest and per-frame labels out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import HOSTILE_OUTPUTS, hostile_output, tree_snapshot
from test_data_checks import make_video
from typer.testing import CliRunner

from stages.cli import app
from stages.common.errors import MotionsegError
from stages.common.labels import write_label_file
from stages.common.manifest import load_manifest
from stages.data.checks import check_dataset
from stages.data.generic import import_generic

EXAMPLE = Path(__file__).resolve().parents[1] / "data_manifests" / "own_example"
runner = CliRunner()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def classes(tmp_path: Path) -> Path:
    return write(tmp_path / "classes.txt", "background\nreach\ngrasp\n")


def test_segments_in_frames_and_seconds_from_real_videos(tmp_path: Path, classes: Path) -> None:
    root = tmp_path / "data"
    make_video(root / "clips" / "a.mp4", 10, fps=10)
    make_video(root / "clips" / "b.mp4", 8, fps=10)
    write(tmp_path / "ann" / "a.tsv", "start\tend\tlabel\n0.25\t0.5\treach\n0.5\t0.8\tgrasp\n")
    write(tmp_path / "ann" / "b.tsv", "label,start,end\nreach,.1,.3\ngrasp,.2,.4\n")  # later wins
    table = write(
        tmp_path / "videos.tsv",
        "video_id\tvideo\tlabels\tsplit\n"
        "a\tclips/a.mp4\tann/a.tsv\ttest\nb\tclips/b.mp4\tann/b.tsv\ttrain\n",
    )
    out = tmp_path / "manifest"
    import_generic(table, classes, out, root=root, segment_units="seconds")
    m = load_manifest(out, root)
    assert m.fps == 10 and m.splits == {"1": ("a",)}
    bg = "background"
    assert list(m.labels("a")) == [bg] * 3 + ["reach"] * 2 + ["grasp"] * 3 + [bg] * 2
    assert list(m.labels("b")) == [bg, "reach", "grasp", "grasp"] + [bg] * 4  # seconds * 10
    assert check_dataset(out, root).aligned == []

    write(tmp_path / "ann" / "a.tsv", "start end label\n3 5 reach\n5 8 grasp\n9 12 reach\n")
    write(tmp_path / "ann" / "b.tsv", "label,start,end\nreach,1,3\ngrasp,2,4\n")
    report = import_generic(table, classes, out, root=root, segment_units="frames")
    assert report.warnings == [f"{tmp_path / 'ann' / 'a.tsv'}: line 4: segment cut at frame 10"]
    assert list(load_manifest(out, root).labels("a"))[-2:] == [bg, "reach"]
    assert list(load_manifest(out, root).labels("b")) == [bg, "reach", "grasp", "grasp"] + [bg] * 4


def test_per_frame_files_and_grouped_folds(tmp_path: Path, classes: Path) -> None:
    labels = tmp_path / "groundTruth"
    rows = []
    for i, subject in enumerate(["s1", "s1", "s1", "s2", "s2", "s3", "s4"]):
        vid = f"v{i}"
        if i == 6:
            np.save(labels / f"{vid}.npy", np.array([0, 2, 2]))
        else:
            write_label_file(labels / f"{vid}.txt", ["background", "reach", "grasp"])
        rows.append(f"{vid}\t/abs/{vid}.mp4\t{subject}\n")
    table = write(tmp_path / "v.tsv", "video_id\tvideo\tsubject\n" + "".join(rows))
    out = tmp_path / "m"
    args = ["data", "import", "generic", str(table), "--classes", str(classes), "--out", str(out)]
    args += ["--labels-dir", str(labels), "--folds", "3", "--group-by", "subject", "--fps", "25"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    m = load_manifest(out)
    assert m.name == "m" and m.fps == 25 and m.root == tmp_path
    # groups largest first to the emptiest fold: s1 (3) -> 1, s2 (2) -> 2, s3 -> 3, s4 -> 3
    assert m.splits == {"1": ("v0", "v1", "v2"), "2": ("v3", "v4"), "3": ("v5", "v6")}
    assert m.videos["v3"].group == "s2" and m.video_path("v3") == Path("/abs/v3.mp4")
    assert list(m.labels("v6")) == ["background", "grasp", "grasp"]
    assert (out / "splits.tsv").read_text() == (
        "split\tvideo_id\n1\tv0\n1\tv1\n1\tv2\n2\tv3\n2\tv4\n3\tv5\n3\tv6\n"
    )


def test_split_column_with_fold_names(tmp_path: Path, classes: Path) -> None:
    for vid in "abc":
        write_label_file(tmp_path / "gt" / f"{vid}.txt", ["reach"])
    table = write(
        tmp_path / "v.tsv", "video_id\tvideo\tsplit\na\ta.mp4\tf1\nb\tb.mp4\tf2\nc\tc.mp4\t\n"
    )
    import_generic(table, classes, tmp_path / "m", labels_dir=tmp_path / "gt", fps=30)
    m = load_manifest(tmp_path / "m")
    assert m.splits == {"f1": ("a",), "f2": ("b",)}
    assert m.train_ids("f1") == ["b", "c"]


@pytest.mark.parametrize(
    ("table", "segments", "options", "problem"),
    [
        ("video_id\tvideo\na\ta.mp4\n", None, {}, "no `split` column: pass --folds K"),
        ("video_id\tvideo\na\ta.mp4\n", None, {"folds": 2}, "--folds 2: need 2 to 1"),
        ("video_id\tvideo\tsplit\na\ta.mp4\ttest\na\tb.mp4\ttrain\n", None, {}, "duplicate"),
        ("video\tsplit\na.mp4\ttest\n", None, {}, r"missing column\(s\) \['video_id'\]"),
        ("", None, {}, r"v.tsv: empty table: expected a header"),
        ("\ufeffvideo_id\tvideo\na\ta.mp4\n", None, {}, "no `split` column"),  # BOM read
        (
            "video_id\tvideo\tsplit\tnum_frames\na\ta.mp4\ttest\t9\n",
            "start\tend\tclass\n0\t2\treach\n",
            {},
            r"a.tsv: the header 'start\\tend\\tclass' names start and end but no 'label' column",
        ),
        (
            "video_id\tvideo\tsplit\tnum_frames\na\ta.mp4\ttest\t9\n",
            "Start,End\n0,2\n",
            {},
            "names start and end but no 'label' column",
        ),
        ("video_id\tvideo\tsplit\na\ta.mp4\ttest\n", None, {"group_by": "who", "folds": 2}, "who"),
        (
            "video_id\tvideo\tsplit\tnum_frames\na\ta.mp4\ttest\t9\n",
            "start\tend\tlabel\n0\t2\treach\n2\t4\tjump\n",
            {},
            r"a.tsv: line 3: unknown class 'jump'",
        ),
        (
            "video_id\tvideo\tsplit\tnum_frames\na\ta.mp4\ttest\t9\n",
            "start\tend\tlabel\n0\t2\treach\n",
            {"segment_units": "seconds"},
            "a.mp4: video file not found; .* add a num_frames column",
        ),
        (
            "video_id\tvideo\tsplit\tnum_frames\na\ta.mp4\ttest\t9\n",
            "start\tend\tlabel\n0\t2.5\treach\n",
            {},
            "a.tsv: line 2: frame numbers must be whole numbers",
        ),
        (
            "video_id\tvideo\tsplit\tnum_frames\na\ta.mp4\ttest\t9\n",
            "start\tend\tlabel\n9\t12\treach\n",
            {},
            "a.tsv: line 2: segment starts at frame 9, the video has 9",
        ),
        (
            "video_id\tvideo\tsplit\na\ta.mp4\ttest\n",
            "start\tend\tlabel\n0\t2\treach\n",
            {},
            "a.mp4: video file not found",
        ),
        (
            "video_id\tvideo\tsplit\na\ta.mp4\ttest\n",
            None,
            {},
            "a.mp4: video file not found; pass --fps",
        ),
    ],
)
def test_bad_input_is_named(
    tmp_path: Path, classes: Path, table: str, segments: str | None, options: dict, problem: str
) -> None:
    if segments:
        write(tmp_path / "gt" / "a.tsv", segments)
    else:
        write_label_file(tmp_path / "gt" / "a.txt", ["reach"])
    path = write(tmp_path / "v.tsv", table)
    with pytest.raises(MotionsegError, match=problem):
        import_generic(path, classes, tmp_path / "m", labels_dir=tmp_path / "gt", **options)
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_class_list_needs_background(tmp_path: Path) -> None:
    table = write(tmp_path / "v.tsv", "video_id\tvideo\tsplit\na\ta.mp4\ttest\n")
    bad = write(tmp_path / "c.txt", "reach\ngrasp\n")
    with pytest.raises(MotionsegError, match=r"background class\(es\) \['background'\]"):
        import_generic(table, bad, tmp_path / "m")


def test_own_example_manifest_is_what_the_importer_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committed example is reproducible from its input tables (docs/own-dataset.md)."""
    monkeypatch.chdir(tmp_path)  # the example's data root is relative: keep it out of the repo
    out = tmp_path / "own_example"
    import_generic(
        EXAMPLE / "input" / "videos.tsv",
        EXAMPLE / "input" / "classes.txt",
        out,
        root=Path("data/own_example"),
        folds=3,
        group_by="subject",
        fps=30,
        segment_units="seconds",
    )
    for name in ("dataset.yaml", "videos.tsv", "splits.tsv", "classes.txt"):
        assert (out / name).read_text() == (EXAMPLE / name).read_text(), name
    m = load_manifest(EXAMPLE)
    assert len(m.video_ids) == 6 and len(m.splits) == 3
    assert [len({m.videos[v].group for v in m.test_ids(s)}) for s in m.split_names] == [1, 1, 1]
    assert m.labels("alice_1").size == 900  # the table's num_frames


@pytest.mark.parametrize("data", [b"reach\ngr\xe4sp\n", b"\xff\xfereach\n"])
def test_a_label_file_that_is_not_utf8_is_named(tmp_path: Path, classes: Path, data: bytes):
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "a.txt").write_bytes(data)
    table = write(tmp_path / "v.tsv", "video_id\tvideo\tsplit\na\ta.mp4\ttest\n")
    with pytest.raises(MotionsegError, match=r"a.txt: not UTF-8 text: byte 0x(e4|ff) at offset"):
        import_generic(table, classes, tmp_path / "m", labels_dir=tmp_path / "gt")


@pytest.mark.parametrize("variant", HOSTILE_OUTPUTS)
def test_never_replaces_what_it_did_not_write(tmp_path, classes, variant, monkeypatch):
    write_label_file(tmp_path / "gt" / "a.txt", ["reach"])
    table = write(tmp_path / "v.tsv", "video_id\tvideo\tsplit\tnum_frames\na\ta.mp4\ttest\t1\n")
    out = hostile_output(variant, tmp_path, table, monkeypatch)
    before = tree_snapshot(tmp_path)
    args = ["data", "import", "generic", str(table), "--classes", str(classes), "--out", out]
    result = runner.invoke(app, [*args, "--labels-dir", str(tmp_path / "gt"), "--fps", "25"])
    assert result.exit_code == 1 and "refusing to replace" in result.output, result.output
    assert tree_snapshot(tmp_path) == before
