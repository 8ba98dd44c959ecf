"""`motionseg evaluate GT PRED`: folder pairing, output formats and errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import HOSTILE_OUTPUTS, hostile_output, tree_snapshot
from typer.testing import CliRunner

from stages.cli import app

runner = CliRunner()


def _write(folder: Path, video: str, labels: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{video}.txt").write_text("".join(f"{label}\n" for label in labels))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two videos: v1 with one wrong frame (4 frames, 2 of 3 segments right), v2 all wrong."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _write(gt, "v1", ["background", "a", "a", "b"])
    _write(pred, "v1", ["background", "a", "b", "b"])
    _write(gt, "v2", ["c", "c"])
    _write(pred, "v2", ["d", "d"])
    return gt, pred


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, ["evaluate", *args, "--json", "-"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_to_stdout_is_one_object_with_the_documented_keys(folders):
    gt, pred = folders
    out = _json([str(gt), str(pred)])
    assert set(out) == {
        "acc", "edit", "f1@10", "f1@25", "f1@50", "videos", "convention", "span",
    }  # fmt: skip
    assert out["span"] == "video"
    assert out["videos"] == 2
    assert out["convention"] == "per-video"
    # v1: acc 75, segments a,b vs a,b -> edit 100; a[1,3) vs a[1,2) IoU .5 TP, b IoU .5 TP
    # v2: acc 0, edit 0, F1 0
    assert out["acc"] == pytest.approx(37.5)
    assert out["edit"] == pytest.approx(50)
    assert out["f1@50"] == pytest.approx(50)


def test_annotated_span_scores_first_to_last_annotated_frame(tmp_path: Path):
    """Background before the first and after the last annotation is not scored with
    `--span annotated`; background between annotations is."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _write(gt, "v", ["background", "background", "a", "background", "b", "background"])
    _write(pred, "v", ["a", "a", "a", "a", "b", "a"])
    whole = _json([str(gt), str(pred)])
    cropped = _json([str(gt), str(pred), "--span", "annotated"])
    assert whole["acc"] == pytest.approx(100 * 2 / 6)
    assert cropped["acc"] == pytest.approx(100 * 2 / 3)  # frames 2..4: a, background, b
    assert cropped["span"] == "annotated"
    # segments a, b vs a, b once cropped: edit 100 (the whole video: a, b, a vs a, b)
    assert cropped["edit"] == pytest.approx(100)
    assert whole["edit"] == pytest.approx(100 * (1 - 1 / 3))


def test_pooled_convention(folders):
    gt, pred = folders
    out = _json([str(gt), str(pred), "--convention", "pooled"])
    assert out["convention"] == "pooled"
    assert out["acc"] == pytest.approx(100 * 3 / 6)
    assert out["f1@10"] == pytest.approx(100 * 2 / 3)  # TP 2, FP 1, FN 1
    assert out["edit"] == pytest.approx(50)


def test_table_and_json_file(folders, tmp_path: Path):
    gt, pred = folders
    target = tmp_path / "out" / "metrics.json"
    result = runner.invoke(app, ["evaluate", str(gt), str(pred), "--json", str(target)])
    assert result.exit_code == 0, result.output
    assert "2 videos" in result.stdout
    assert "37.50" in result.stdout
    assert json.loads(target.read_text())["acc"] == pytest.approx(37.5)


def test_several_background_names(tmp_path: Path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _write(gt, "v", ["start", "a", "a", "end"])
    _write(pred, "v", ["end", "a", "a", "start"])
    both = _json([str(gt), str(pred), "--background", "start", "--background", "end"])
    assert (both["edit"], both["f1@50"], both["acc"]) == pytest.approx((100, 100, 50))
    default = _json([str(gt), str(pred)])
    assert default["edit"] < 100


def test_npy_labels_as_integers_or_through_a_class_file(tmp_path: Path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    np.save(gt / "v.npy", np.array([0, 1, 1, 2]))
    np.save(pred / "v.npy", np.array([0, 1, 2, 2]))
    as_ints = _json([str(gt), str(pred), "--background", "0"])
    assert as_ints["acc"] == pytest.approx(75)
    assert as_ints["edit"] == pytest.approx(100)
    mapping = tmp_path / "mapping.txt"
    mapping.write_text("0 background\n1 cut\n2 peel\n")
    (pred / "v.npy").unlink()
    _write(pred, "v", ["background", "cut", "cut", "cut"])  # text names vs .npy indices
    named = _json([str(gt), str(pred), "--classes", str(mapping)])
    assert named["acc"] == pytest.approx(75)


def _error(args: list[str]) -> str:
    result = runner.invoke(app, ["evaluate", *args])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    return result.output


def test_video_missing_from_predictions_is_named(folders):
    gt, pred = folders
    (pred / "v2.txt").unlink()
    assert "no prediction for video(s) v2" in _error([str(gt), str(pred)])


def test_video_missing_from_ground_truth_is_named(folders):
    gt, pred = folders
    _write(pred, "v3", ["a"])
    assert "no ground truth for video(s) v3" in _error([str(gt), str(pred)])


def test_length_mismatch_names_video_and_both_lengths(folders):
    gt, pred = folders
    _write(pred, "v2", ["d", "d", "d"])
    message = _error([str(gt), str(pred)])
    assert "'v2'" in message
    assert "3 frames" in message
    assert "has 2" in message


def test_other_bad_inputs(folders, tmp_path: Path):
    gt, pred = folders
    assert "label folder not found" in _error([str(tmp_path / "nope"), str(pred)])
    _write(pred, "v1", ["background", "a", "", "b"])
    assert "blank label" in _error([str(gt), str(pred)])
    _write(pred, "v1", ["background", "a", "x", "b"])
    mapping = tmp_path / "mapping.txt"
    mapping.write_text("0 background\n1 a\n2 b\n3 c\n4 d\n")
    assert "unknown class 'x'" in _error([str(gt), str(pred), "--classes", str(mapping)])
    (gt / "v1.npy").write_bytes(b"")
    assert "two label files for video 'v1'" in _error([str(gt), str(pred)])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no label files" in _error([str(empty), str(pred)])


# --- output safety, label kinds, background names, encodings -----------------------------------


@pytest.mark.parametrize("variant", HOSTILE_OUTPUTS)
def test_json_never_replaces_what_it_did_not_write(folders, variant, tmp_path, monkeypatch):
    gt, pred = folders
    out = hostile_output(variant, tmp_path, gt, monkeypatch)
    before = tree_snapshot(tmp_path)
    message = _error([str(gt), str(pred), "--json", out])
    assert "refusing to replace" in message and tree_snapshot(tmp_path) == before


def test_json_replaces_its_own_file(folders, tmp_path):
    gt, pred = folders
    out = tmp_path / "scores.json"
    for _ in range(2):
        assert (
            runner.invoke(app, ["evaluate", str(gt), str(pred), "--json", str(out)]).exit_code == 0
        )
    assert json.loads(out.read_text())["videos"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt", "pred", "scores.json"]


@pytest.mark.parametrize(("gt_kind", "pred_kind"), [(".npy", ".txt"), (".txt", ".npy")])
def test_mixed_label_kinds_need_a_mapping(tmp_path, gt_kind, pred_kind):
    for folder, kind in (("gt", gt_kind), ("pred", pred_kind)):
        (tmp_path / folder).mkdir()
        if kind == ".npy":
            np.save(tmp_path / folder / "v.npy", np.array([0, 1, 1]))
        else:
            _write(tmp_path / folder, "v", ["background", "cut", "cut"])
    message = _error([str(tmp_path / "gt"), str(tmp_path / "pred")])
    assert "video 'v'" in message and "pass --classes" in message
    mapping = tmp_path / "mapping.txt"
    mapping.write_text("0 background\n1 cut\n")
    scores = _json([str(tmp_path / "gt"), str(tmp_path / "pred"), "--classes", str(mapping)])
    assert scores["acc"] == pytest.approx(100)


@pytest.mark.parametrize(
    ("names", "unseen"), [(["backgrund"], ["backgrund"]), (["background", "SIL"], ["SIL"])]
)
def test_a_background_name_found_in_no_file_is_a_warning(folders, names, unseen):
    gt, pred = folders
    args = ["evaluate", str(gt), str(pred), *[a for n in names for a in ("--background", n)]]
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert f"warning: background class(es) {unseen} occur in no label file" in result.stderr


def test_no_warning_when_every_background_name_occurs(folders):
    gt, pred = folders
    result = runner.invoke(app, ["evaluate", str(gt), str(pred), "--background", "background"])
    assert result.exit_code == 0 and "warning" not in result.stderr


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8"),
        lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"),  # UTF-8 byte-order mark
        lambda text: text.replace("\n", "\r\n").encode("utf-8"),  # Windows line ends
        lambda text: b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"),
    ],
)
def test_byte_order_mark_and_line_ends_change_no_label(tmp_path, encode):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _write(pred, "v", ["background", "a", "a"])
    gt.mkdir()
    (gt / "v.txt").write_bytes(encode("background\na\na\n"))
    assert _json([str(gt), str(pred)])["acc"] == pytest.approx(100)


@pytest.mark.parametrize("data", [b"caf\xe9\n", b"a\n\xff\xfe\n", b"\x80"])
def test_a_file_that_is_not_utf8_is_named_with_its_byte(tmp_path, folders, data):
    gt, pred = folders
    (gt / "v1.txt").write_bytes(data)
    message = _error([str(gt), str(pred)])
    assert "v1.txt: not UTF-8 text: byte 0x" in message and "save it as UTF-8" in message
