"""The MS-TCN layout both ways: import into stores + manifest, export back, malformed input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from stages.cli import app
from stages.common.errors import MotionsegError
from stages.common.labels import read_label_file, write_label_file
from stages.common.manifest import load_manifest
from stages.common.stores import open_store
from stages.data.mstcn import import_mstcn
from stages.data.mstcn_synth import CLASSES, write_mstcn_folder
from stages.features.export import export_mstcn

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "breakfast_files"
    write_mstcn_folder(root, videos=4, splits=2, dim=2048)
    return root


def stores_and_labels(out: Path) -> dict[str, tuple[np.ndarray, list[str]]]:
    found = {}
    for store in sorted((out / "features").glob("*.zarr")):
        video = store.name.removesuffix(".zarr")
        features = np.asarray(open_store(store)["features"][...])
        labels = list(read_label_file(out / "groundTruth" / f"{video}.txt"))
        found[video] = (features, labels)
    return found


def test_import_writes_stores_labels_and_manifest(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "data" / "breakfast"
    args = ["data", "import", "mstcn", str(folder), "--out", str(out), "--expect-videos", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "imported 4 videos" in result.output and "['SIL']" in result.output

    m = load_manifest(out / "manifest", out)
    assert m.name == "breakfast" and m.fps == 15 and m.classes.names == CLASSES
    assert m.classes.background == ("SIL",)
    ids = sorted(p.stem for p in (folder / "features").glob("*.npy"))
    assert m.test_ids("1") == [ids[0], ids[2]] and m.test_ids("2") == [ids[1], ids[3]]
    assert sorted(m.train_ids("1")) == [ids[1], ids[3]]
    for video in ids:
        store = open_store(out / "features" / f"{video}.zarr")
        source = np.load(folder / "features" / f"{video}.npy")
        np.testing.assert_array_equal(store["features"][...], source.T)
        assert store["frame_index"][...].tolist() == list(range(source.shape[1]))
        assert store.attrs["frozen"] is True and store.attrs["backbone"] == "i3d"
        assert list(m.labels(video)) == list(read_label_file(folder / f"groundTruth/{video}.txt"))


def test_export_then_import_round_trips_exactly(folder: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    import_mstcn(folder, first)
    m = load_manifest(first / "manifest", first)
    exported = tmp_path / "exported"
    args = ["features", "export", "--format", "mstcn", "--manifest", str(first / "manifest")]
    args += ["--root", str(first), "--features", str(first / "features"), "--out", str(exported)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output

    for video in m.video_ids:
        a = np.load(folder / "features" / f"{video}.npy")
        b = np.load(exported / "features" / f"{video}.npy")
        assert b.dtype == np.float32 and b.shape == a.shape
        np.testing.assert_array_equal(a, b)
        gt = f"groundTruth/{video}.txt"
        assert (exported / gt).read_text() == (folder / gt).read_text()
    for bundle in (folder / "splits").iterdir():
        assert (exported / "splits" / bundle.name).read_text() == bundle.read_text()
    assert (exported / "mapping.txt").read_text() == (folder / "mapping.txt").read_text()

    second = tmp_path / "second"
    import_mstcn(exported, second)
    again, before = stores_and_labels(second), stores_and_labels(first)
    assert again.keys() == before.keys()
    for video, (features, labels) in before.items():
        np.testing.assert_array_equal(again[video][0], features)
        assert again[video][1] == labels


def test_fine_tuned_stores_export_one_split_at_a_time(folder: Path, tmp_path: Path) -> None:
    import zarr

    out = tmp_path / "imported"
    import_mstcn(folder, out)
    for store in (out / "features").glob("*.zarr"):
        group = zarr.open_group(store, mode="r+")
        group.attrs.update({"checkpoint": "/models/split1/best.pt", "frozen": False})
    m = load_manifest(out / "manifest", out)
    with pytest.raises(MotionsegError, match="depend on the split.*--split K"):
        export_mstcn(m, out / "features", tmp_path / "all")
    export_mstcn(m, out / "features", tmp_path / "split1", ["1"])
    bundles = sorted(p.name for p in (tmp_path / "split1" / "splits").iterdir())
    assert bundles == ["test.split1.bundle", "train.split1.bundle"]


def test_hdf5_features_import_like_npy(folder: Path, tmp_path: Path) -> None:
    h5 = tmp_path / "features.h5"
    with h5py.File(h5, "w") as f:
        for npy in (folder / "features").glob("*.npy"):
            f.create_dataset(npy.stem, data=np.load(npy))
    from_npy, from_h5 = tmp_path / "a", tmp_path / "b"
    import_mstcn(folder, from_npy)
    shutil.rmtree(folder / "features")
    import_mstcn(folder, from_h5, h5=h5)
    a, b = stores_and_labels(from_npy), stores_and_labels(from_h5)
    assert a.keys() == b.keys()
    for video in a:
        np.testing.assert_array_equal(a[video][0], b[video][0])

    with h5py.File(h5, "a") as f:
        del f[sorted(f.keys())[0]]
    missing = r"test\.split1\.bundle: names missing .*features\.h5\["
    with pytest.raises(MotionsegError, match=missing):
        import_mstcn(folder, tmp_path / "c", h5=h5)


def test_length_within_tolerance_aligns_labels_loudly(folder: Path, tmp_path: Path) -> None:
    video = sorted(p.stem for p in (folder / "features").glob("*.npy"))[0]
    gt = folder / "groundTruth" / f"{video}.txt"
    labels = list(read_label_file(gt))
    write_label_file(gt, labels + [labels[-1]] * 2)  # 2 frames: the tolerance max(2, 0.1%)
    report = import_mstcn(folder, tmp_path / "out")
    assert any(video in w and "labels cut" in w for w in report.warnings)
    assert list(read_label_file(tmp_path / "out" / "groundTruth" / f"{video}.txt")) == labels

    write_label_file(gt, labels + [labels[-1]] * 3)
    with pytest.raises(MotionsegError, match=f"{video}.npy: .* tolerated 2 frames"):
        import_mstcn(folder, tmp_path / "out2")


def first_video(folder: Path) -> str:
    return sorted(p.stem for p in (folder / "features").glob("*.npy"))[0]


def break_bundle(folder: Path) -> str:
    bundle = folder / "splits" / "test.split1.bundle"
    bundle.write_text(bundle.read_text() + "P99_missing.txt\n")
    return r"test\.split1\.bundle: names missing file\(s\): .*P99_missing\.txt"


def break_mapping(folder: Path) -> str:
    lines = (folder / "mapping.txt").read_text().splitlines()
    (folder / "mapping.txt").write_text("\n".join(lines[:2] + ["3 " + lines[2].split()[1]]) + "\n")
    return r"mapping\.txt: line 3: index 3 out of order"


def break_transposed(folder: Path) -> str:
    path = folder / "features" / f"{first_video(folder)}.npy"
    np.save(path, np.load(path).T)
    return rf"{first_video(folder)}\.npy: shape .* looks like \(T, D\)"


def break_nan(folder: Path) -> str:
    path = folder / "features" / f"{first_video(folder)}.npy"
    data = np.load(path)
    data[5, 7] = np.nan
    np.save(path, data)
    return rf"{first_video(folder)}\.npy: 1 non-finite value"


@pytest.mark.parametrize("damage", [break_bundle, break_mapping, break_transposed, break_nan])
def test_malformed_input_is_one_line_naming_the_file(folder: Path, tmp_path: Path, damage) -> None:
    pattern = damage(folder)
    out = tmp_path / "out"
    result = runner.invoke(app, ["data", "import", "mstcn", str(folder), "--out", str(out)])
    assert result.exit_code == 1
    message = result.output.strip()
    assert len(message.splitlines()) == 1, message
    assert re.search(pattern, message), message
    assert not (out / "manifest").exists()
