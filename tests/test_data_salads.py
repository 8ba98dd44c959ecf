"""50 Salads: the committed manifest, and the importer on hand-made and on the real annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import REFERENCE, copy_manifest
from typer.testing import CliRunner

from stages.cli import app
from stages.common.errors import MotionsegError
from stages.common.labels import ClassList, read_label_file
from stages.common.manifest import load_manifest
from stages.data.salads import LabelMap, import_50salads, read_annotation, read_timestamps

MANIFEST = Path(__file__).resolve().parents[1] / "data_manifests" / "50salads"
REAL = REFERENCE / "50salads"
needs_real = pytest.mark.reference("50salads")
runner = CliRunner()

SPLIT_1 = ["06-1", "06-2", "03-1", "03-2", "22-1", "22-2", "19-1", "19-2", "14-1", "14-2"]
ACTIONS = [
    *("add_dressing", "add_oil", "add_pepper", "add_salt", "add_vinegar"),
    *("cut_cheese", "cut_cucumber", "cut_lettuce", "cut_tomato"),
    *("mix_dressing", "mix_ingredients", "peel_cucumber", "serve_salad_onto_plate"),
    *("place_cheese_into_bowl", "place_cucumber_into_bowl"),
    *("place_lettuce_into_bowl", "place_tomato_into_bowl"),
]


def eval_of(mid: str) -> str:
    """Lea et al.'s eval level: cut_* -> cut, place_* -> place, salt/vinegar -> background."""
    if mid.startswith(("cut_", "place_")):
        return mid.split("_", 1)[0]
    return "background" if mid in ("add_salt", "add_vinegar") else mid


def test_committed_manifest() -> None:
    mid = load_manifest(MANIFEST, "/data", "mid")
    assert mid.fps == 30 and len(mid.video_ids) == 50
    assert "08-1" not in mid.video_ids and "12-2" not in mid.video_ids
    assert mid.split_names == ["1", "2", "3", "4", "5"]
    assert mid.test_ids(1) == SPLIT_1
    tested = [v for s in mid.split_names for v in mid.test_ids(s)]
    assert sorted(tested) == sorted(mid.video_ids)  # every video tested exactly once
    assert all(len(mid.train_ids(s)) == 40 for s in mid.split_names)
    assert mid.video_path("01-1") == Path("/data/videos/rgb-01-1.avi")
    assert mid.videos["27-2"].group == "27"
    assert set(mid.classes.names) == {"background", *ACTIONS} and len(mid.classes) == 18
    ev = load_manifest(MANIFEST, "/data", "eval")
    assert set(ev.classes.names) == {eval_of(a) for a in ["background", *ACTIONS]}
    assert len(ev.classes) == 10
    assert ev.label_path("01-1") == Path("/data/labels/eval/01-1.txt")
    assert mid.settings == {"backbone_fps": 6, "purity": 0.7, "feature_fps": 3}


def test_label_map_follows_lea_conventions() -> None:
    lm = LabelMap.read(MANIFEST / "label_map.tsv")
    assert lm.ignored == {"cut_and_mix_ingredients", "prepare_dressing", "serve_salad"}
    assert len(lm.granularities["mid"]) == 51  # 17 actions x prep/core/post
    for low, mid in lm.granularities["mid"].items():
        assert low.rsplit("_", 1) == [mid, low.rsplit("_", 1)[1]]
        assert lm.granularities["eval"][low] == eval_of(mid)


def tiny_manifest(tmp_path: Path, ids: list[str]) -> Path:
    """The real manifest's classes and label map with a short video list."""
    return copy_manifest(MANIFEST, tmp_path, ids, "videos/rgb-{video_id}.avi")


def write_download(root: Path, vid: str, stamps: list[int], annotation: str) -> None:
    """A download laid out like the archive: nested folders, CRLF line endings."""
    (root / "data" / "timestamps").mkdir(parents=True, exist_ok=True)
    (root / "data" / "ann-ts").mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{t} {t:016d}-d.pgm\r\n" for t in stamps)
    (root / "data" / "timestamps" / f"timestamps-{vid}.txt").write_text(lines)
    (root / "data" / "ann-ts" / f"{vid}-activityAnnotation.txt").write_text(annotation)


def test_conversion_rules(tmp_path: Path) -> None:
    # frames at t = 0, 10, ..., 110
    ann = (
        "0 110 cut_and_mix_ingredients\r\n"  # high level: ignored
        "10 30 cut_tomato_prep\r\n"  # frames 1..3 (inclusive ends)
        "30 50 cut_tomato_core\r\n"  # shares frame 3 with prep: the later start wins
        "45 70 add_salt_post\r\n"  # frames 5..7
        "60 80 place_tomato_into_bowl_prep\r\n"  # overlaps add_salt_post: wins frames 6..8
        "95 99 mix_dressing_core\r\n"  # between frames: covers none
    )
    write_download(tmp_path / "dl", "01-1", list(range(0, 120, 10)), ann)
    out = tmp_path / "out"
    report = import_50salads(tmp_path / "dl", out, tiny_manifest(tmp_path, ["01-1"]))
    assert report.converted == {"01-1": 12} and report.missing_videos == ["01-1"]
    mid = read_label_file(out / "labels" / "mid" / "01-1.txt")
    expected_mid = (
        ["background"] + ["cut_tomato"] * 4 + ["add_salt"] + ["place_tomato_into_bowl"] * 3
        + ["background"] * 3
    )  # fmt: skip
    assert list(mid) == expected_mid
    # eval: add_salt is background there, so it is removed before painting and frame 5
    # (t = 50, the inclusive end of cut_tomato_core) stays cut_tomato's
    ev = read_label_file(out / "labels" / "eval" / "01-1.txt")
    expected_ev = [eval_of(x) for x in expected_mid]
    expected_ev[5] = eval_of("cut_tomato")
    assert list(ev) == expected_ev
    assert any("line(s) 6 cover no frame" in w and "01-1-activityAnnotation.txt" in w
               for w in report.warnings)  # fmt: skip


def test_overlaps_are_resolved_per_action_not_per_phase(tmp_path: Path) -> None:
    """13-1's pattern: the `_post` of one action overlaps the start of the next action; the
    later-starting *action* wins, so the phases of the earlier one cannot cut it in two."""
    ann = (
        "0 20 place_lettuce_into_bowl_prep\n"
        "20 40 place_lettuce_into_bowl_core\n"
        "40 60 place_lettuce_into_bowl_post\n"  # starts after cut_tomato_prep
        "35 70 cut_tomato_prep\n"
        "70 100 cut_tomato_core\n"
        "100 130 cut_tomato_post\n"  # runs past the last frame (t = 110)
    )
    write_download(tmp_path / "dl", "01-1", list(range(0, 120, 10)), ann)
    out = tmp_path / "out"
    report = import_50salads(tmp_path / "dl", out, tiny_manifest(tmp_path, ["01-1"]))
    mid = read_label_file(out / "labels" / "mid" / "01-1.txt")
    assert list(mid) == ["place_lettuce_into_bowl"] * 4 + ["cut_tomato"] * 8
    assert any("line(s) 6 run past" in w and "clipped" in w for w in report.warnings)


def test_identical_intervals_of_several_actions_warn_and_the_last_wins(tmp_path: Path) -> None:
    ann = (
        "10 30 place_cheese_into_bowl_prep\n"
        "10 30 place_lettuce_into_bowl_prep\n"
        "30 50 place_cheese_into_bowl_core\n"
        "30 50 place_lettuce_into_bowl_core\n"
    )
    write_download(tmp_path / "dl", "01-1", list(range(0, 120, 10)), ann)
    out = tmp_path / "out"
    report = import_50salads(tmp_path / "dl", out, tiny_manifest(tmp_path, ["01-1"]))
    mid = read_label_file(out / "labels" / "mid" / "01-1.txt")
    assert list(mid[1:6]) == ["place_lettuce_into_bowl"] * 5
    assert report.warnings == [
        f"{tmp_path / 'dl/data/ann-ts/01-1-activityAnnotation.txt'}: identical intervals of "
        "place_cheese_into_bowl, place_lettuce_into_bowl; where they overlap, the action "
        "starting later, else the last in the file, is used"
    ]


def test_duplicate_input_copies_warn_naming_the_files(tmp_path: Path) -> None:
    ann = "10 30 cut_tomato_prep\n"
    write_download(tmp_path / "dl", "01-1", list(range(0, 120, 10)), ann)
    copy = tmp_path / "dl" / "backup" / "deeper" / "01-1-activityAnnotation.txt"
    copy.parent.mkdir(parents=True)
    copy.write_text(ann)
    report = import_50salads(tmp_path / "dl", tmp_path / "out", tiny_manifest(tmp_path, ["01-1"]))
    used = tmp_path / "dl" / "data" / "ann-ts" / "01-1-activityAnnotation.txt"
    assert f"01-1: 2 copies of its annotation file; using {used}, not {copy}" in report.warnings


def test_errors_name_file_and_line(tmp_path: Path) -> None:
    manifest = tiny_manifest(tmp_path, ["01-1"])
    lm = LabelMap.read(manifest / "label_map.tsv")
    bad = tmp_path / "01-1-activityAnnotation.txt"
    bad.write_text("0 10 cut_tomato_core\n10 20 juggle_core\n")
    with pytest.raises(MotionsegError, match=r"01-1-activityAnnotation.txt: line 2: .*juggle_core"):
        read_annotation(bad, lm)
    bad.write_text("0 10\n")
    with pytest.raises(MotionsegError, match="line 1: expected"):
        read_annotation(bad, lm)
    ts = tmp_path / "timestamps-01-1.txt"
    ts.write_text("10 a\n20 b\n15 c\n")
    with pytest.raises(MotionsegError, match="line 3: timestamp goes backwards"):
        read_timestamps(ts)


def test_missing_files_are_listed_before_writing(tmp_path: Path) -> None:
    write_download(tmp_path / "dl", "01-1", [0, 10], "0 10 add_oil_core\n")
    out = tmp_path / "out"
    with pytest.raises(MotionsegError, match=r"01-2 \(annotation\), 01-2 \(timestamps\)"):
        import_50salads(tmp_path / "dl", out, tiny_manifest(tmp_path, ["01-1", "01-2"]))
    assert not out.exists()
    write_download(tmp_path / "dl", "01-2", [0, 10], "0 10 add_oil_core\n5 9 add_sugar_core\n")
    with pytest.raises(MotionsegError, match=r"01-2-activityAnnotation.txt: line 2: .*add_sugar"):
        import_50salads(tmp_path / "dl", out, tiny_manifest(tmp_path / "m1", ["01-1", "01-2"]))
    assert not out.exists()  # 01-1 was fine, but nothing is written before all files parse
    with pytest.raises(MotionsegError, match=r"nope: folder not found; .*config/50salads.yaml"):
        import_50salads(tmp_path / "nope", out, tiny_manifest(tmp_path / "m2", ["01-1"]))


def test_videos_are_found_and_linked_idempotently(tmp_path: Path) -> None:
    dl = tmp_path / "dl"
    write_download(dl, "01-1", [0, 10], "0 10 add_oil_core\n")
    (dl / "elsewhere" / "deep").mkdir(parents=True)
    (dl / "elsewhere" / "deep" / "rgb-01-1.avi").write_bytes(b"a copy")
    (dl / "rgb").mkdir()
    (dl / "rgb" / "rgb-01-1.avi").write_bytes(b"video")
    manifest = tiny_manifest(tmp_path, ["01-1"])
    for _ in range(2):  # into the download itself, twice: our own link is never a candidate
        report = import_50salads(dl, dl, manifest)
        link = dl / "videos" / "rgb-01-1.avi"
        assert report.linked == ["01-1"]
        assert link.is_symlink() and link.resolve() == (dl / "rgb" / "rgb-01-1.avi").resolve()
    other = tmp_path / "vids"
    other.mkdir()
    (other / "rgb-01-1.avi").write_bytes(b"override")
    import_50salads(dl, dl, manifest, videos=other)
    assert (dl / "videos" / "rgb-01-1.avi").read_bytes() == b"override"


def test_extra_annotations_are_converted_but_not_in_manifest(tmp_path: Path) -> None:
    dl = tmp_path / "dl"
    write_download(dl, "01-1", [0, 10], "0 10 add_oil_core\n")
    write_download(dl, "08-1", [0, 10, 20], "0 10 add_oil_core\n")
    (dl / "data" / "ann-ts" / "12-1-activityAnnotation.txt").write_text("0 1 add_oil_core\n")
    report = import_50salads(dl, tmp_path / "out", tiny_manifest(tmp_path, ["01-1"]))
    assert report.converted == {"01-1": 2, "08-1": 3}
    assert report.extra == ["08-1"] and report.skipped == ["12-1"]


@pytest.fixture(scope="module")
def real_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("salads")
    result = runner.invoke(app, ["data", "import", "50salads", str(REAL), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


@needs_real
def test_real_annotations_convert(real_import: tuple[Path, str]) -> None:
    out, output = real_import
    manifest = load_manifest(MANIFEST, out, "mid")
    assert "converted 50 annotation files" in output
    # 08 and 12 have annotations but no timestamps file in the reference copy
    assert "skipped (4): 08-1, 08-2, 12-1, 12-2" in output
    seen: set[str] = set()
    for vid in manifest.video_ids:
        labels = manifest.labels(vid)  # validated against the class list
        stamps = read_timestamps(REAL / "timestamps" / f"timestamps-{vid}.txt")
        assert labels.size == stamps.size
        assert labels[0] == "background"  # recording starts before the first action
        seen.update(labels)
    assert seen == set(manifest.classes.names)


@needs_real
def test_real_eval_labels_are_the_mapped_mid_labels(real_import: tuple[Path, str]) -> None:
    """Except where add_salt/add_vinegar (background at eval, so removed before painting)
    overlapped another action: there the eval labels show that action. The review of issue 13
    counted those frames against the TCN authors' labels: 101 frames in 8 videos."""
    out, _ = real_import
    mid = load_manifest(MANIFEST, out, "mid")
    ev = load_manifest(MANIFEST, out, "eval")
    uncovered = {}
    for vid in mid.video_ids:
        m, e = mid.labels(vid), ev.labels(vid)
        assert m.size == e.size
        removed = np.isin(m, ["add_salt", "add_vinegar"])
        assert list(e[~removed]) == [eval_of(x) for x in m[~removed]]
        if (shown := int((e[removed] != "background").sum())) > 0:
            uncovered[vid] = shown
    assert (sum(uncovered.values()), len(uncovered)) == (101, 8)


@needs_real
def test_real_actions_are_not_cut_by_the_phases_of_others(real_import: tuple[Path, str]) -> None:
    """13-1: cut_tomato is performed once and is one segment (per phase, 41 frames of
    place_lettuce_into_bowl_post cut it in two)."""
    out, _ = real_import
    labels = load_manifest(MANIFEST, out, "mid").labels("13-1")
    starts = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    segments = [labels[0], *labels[starts]]
    assert segments.count("cut_tomato") == 1


@needs_real
def test_extra_real_annotations_use_known_labels() -> None:
    lm = LabelMap.read(MANIFEST / "label_map.tsv")
    classes = ClassList.read(MANIFEST / "classes_mid.txt")
    for vid in ("08-1", "08-2", "12-1", "12-2"):
        intervals = read_annotation(REAL / "annotations" / f"{vid}-activityAnnotation.txt", lm)
        assert len(intervals) > 30
        mids = np.array([lm.granularities["mid"][iv.label] for iv in intervals], dtype=object)
        classes.encode(mids)
