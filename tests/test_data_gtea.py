"""GTEA: the committed manifest, the label-file parser and the importer."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_manifest
from test_data_checks import make_video
from typer.testing import CliRunner

from stages.cli import app
from stages.common.errors import MotionsegError
from stages.common.labels import ClassList, read_label_file, write_label_file
from stages.common.manifest import load_manifest
from stages.data.gtea import Action, frame_labels, import_gtea, parse_label_file

MANIFEST = Path(__file__).resolve().parents[1] / "data_manifests" / "gtea"
CLASSES = ClassList.read(MANIFEST / "classes.txt")
runner = CliRunner()


def test_committed_manifest() -> None:
    m = load_manifest(MANIFEST, "/data")
    assert m.fps == 15 and len(m.video_ids) == 28
    assert m.classes.names == (
        "background", "take", "open", "pour", "close", "shake", "scoop", "stir", "put", "fold",
        "spread",
    )  # fmt: skip
    assert m.split_names == ["1", "2", "3", "4"]
    for k in range(1, 5):
        test = m.test_ids(k)
        assert len(test) == 7 and all(v.startswith(f"S{k}_") and v.endswith("_C1") for v in test)
        others = {f"S{j}" for j in range(1, 5) if j != k}
        assert {m.videos[v].group for v in m.train_ids(k)} == others
    assert "S3_CofHoney_C1" in m.video_ids and "S2_Pealate_C1" in m.video_ids
    assert m.settings == {"backbone_fps": 15, "purity": 0.6, "feature_fps": 3}


def test_parser_accepts_the_documented_variations(tmp_path: Path) -> None:
    path = tmp_path / "S1_Coffee_C1.txt"
    text = (
        "\ufeff<take><bread> (38-77) [1]\r\n"
        "\r\n"
        "# a comment\r\n"
        "// another\r\n"
        "  < Open > < jam > ( 80 - 90 )  [1]  \r\n"
        "<Spread><peanut,knife,bread> (91-100)\r\n"
        "<x> (101-110) [0.5]\r\n"
        "<stir> (111-120) []\r\n"
        "<put><knife><plate>(121-121)[2]\r\n"
    )
    path.write_bytes(text.encode())
    assert parse_label_file(path, CLASSES) == [
        Action(37, 76, "take", 1),
        Action(79, 89, "open", 5),
        Action(90, 99, "spread", 6),
        Action(100, 109, "background", 7),
        Action(110, 119, "stir", 8),
        Action(120, 120, "put", 9),
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("<juggle><ball> (1-5) [1]", "line 2: unknown verb 'juggle'"),
        ("<take><bread> 1-5 [1]", r"line 2: expected '<verb><objects> \(start-end\)"),
        ("<take><bread> (0-5)", r"line 2: bad frame range 0-5 \(1-based\)"),
        ("<take><bread> (9-5)", "line 2: bad frame range 9-5"),
    ],
)
def test_parser_errors_name_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "S1_Tea_C1.txt"
    path.write_text(f"<take><cup> (1-3) [1]\n{line}\n")
    with pytest.raises(MotionsegError, match=f"S1_Tea_C1.txt: {problem}"):
        parse_label_file(path, CLASSES)


def test_frame_labels_fill_gaps_and_clip_the_end(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    actions = [Action(1, 3, "take", 1), Action(3, 4, "open", 2), Action(8, 11, "pour", 3)]
    labels, warnings = frame_labels(path, actions, 10)
    assert list(labels) == (
        ["background", "take", "take", "open", "open"] + ["background"] * 3 + ["pour"] * 2
    )
    assert warnings == [f"{path}: line 3: range ends at 12, cut at 10"]
    with pytest.raises(MotionsegError, match="line 1: range starts at frame 11, after"):
        frame_labels(path, [Action(10, 12, "take", 1)], 10)


def tiny_manifest(tmp_path: Path, ids: list[str]) -> Path:
    return copy_manifest(MANIFEST, tmp_path, ids, "videos/{video_id}.mp4")


def test_import_with_videos_and_frame_table(tmp_path: Path) -> None:
    dl = tmp_path / "gtea"
    (dl / "labels").mkdir(parents=True)
    (dl / "labels" / "S1_Tea_C1.txt").write_text("<take><cup> (2-4) [1]\n<pour><water> (6-7)\n")
    (dl / "labels" / "S2_Tea_C1.txt").write_text("<close><lid> (1-2) [1]\n")
    make_video(dl / "raw" / "S1_Tea_C1.avi", 9)
    (dl / "counts.tsv").write_text("video_id\tnum_frames\nS2_Tea_C1\t5\n")
    manifest = tiny_manifest(tmp_path, ["S1_Tea_C1", "S2_Tea_C1"])
    out = tmp_path / "data"
    args = ["data", "import", "gtea", str(dl), "--out", str(out), "--manifest", str(manifest)]
    result = runner.invoke(app, [*args, "--num-frames", str(dl / "counts.tsv")])
    assert result.exit_code == 0, result.output
    assert "converted 2 label files (14 frames); linked 1 videos" in result.output
    assert "video not found below ROOT (1): S2_Tea_C1" in result.output
    m = load_manifest(manifest, out)
    assert list(m.labels("S1_Tea_C1")) == (
        ["background", "take", "take", "take", "background", "pour", "pour"] + ["background"] * 2
    )
    assert list(m.labels("S2_Tea_C1")) == ["close", "close"] + ["background"] * 3
    assert m.video_path("S1_Tea_C1").resolve() == (dl / "raw" / "S1_Tea_C1.avi").resolve()

    (dl / "counts.tsv").unlink()
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "S2_Tea_C1: frame count unknown" in result.output


def test_import_never_reads_its_own_output(tmp_path: Path) -> None:
    dl = tmp_path / "gtea"
    (dl / "labels").mkdir(parents=True)
    (dl / "labels" / "S1_Tea_C1.txt").write_text("<take><cup> (1-2) [1]\n")
    manifest = tiny_manifest(tmp_path, ["S1_Tea_C1"])
    counts = tmp_path / "counts.tsv"
    counts.write_text("video_id\tnum_frames\nS1_Tea_C1\t4\n")
    for _ in range(2):  # into the download itself: labels/verbs/ is output, never input
        import_gtea(dl, dl, manifest, counts)
        labels = read_label_file(dl / "labels" / "verbs" / "S1_Tea_C1.txt")
        assert list(labels) == ["take", "take", "background", "background"]
    (dl / "labels" / "S1_Tea_C1.txt").unlink()
    with pytest.raises(MotionsegError, match="no GTEA label file for 1 video"):
        import_gtea(dl, dl, manifest, counts)


def test_import_from_groundtruth(tmp_path: Path) -> None:
    gt = tmp_path / "groundTruth"
    write_label_file(gt / "S1_Tea_C1.txt", ["background", "take", "take"])
    manifest = tiny_manifest(tmp_path, ["S1_Tea_C1"])
    report = import_gtea(tmp_path, tmp_path / "out", manifest, groundtruth=gt)
    assert report.converted == {"S1_Tea_C1": 3}
    labels = read_label_file(tmp_path / "out" / "labels" / "verbs" / "S1_Tea_C1.txt")
    assert list(labels) == ["background", "take", "take"]
    write_label_file(gt / "S1_Tea_C1.txt", ["background", "dance"])
    with pytest.raises(MotionsegError, match="S1_Tea_C1.txt: unknown class 'dance'"):
        import_gtea(tmp_path, tmp_path / "out", manifest, groundtruth=gt)
