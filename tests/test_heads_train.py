"""Training and prediction of heads on fabricated feature stores and a tiny manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from conftest import HOSTILE_OUTPUTS, hostile_output, tree_snapshot, write_manifest
from typer.testing import CliRunner

from stages.cli import app
from stages.common.manifest import load_manifest
from stages.common.outputs import FEATURE_STORE
from stages.common.scalars import tensorboard_available
from stages.common.stores import write_store
from stages.heads.data import feature_sample_rate, nearest_rows
from stages.heads.predict import load_model
from stages.heads.registry import HEADS, list_heads
from stages.heads.train import TrainSettings, train_run

CLASSES = ["background", "cut", "mix"]
VIDEOS = [f"v{i}" for i in range(6)]
NATIVE_FRAMES, STEP, DIM = 60, 2, 8
FAST = {"epochs": 30, "lr": 0.01, "batch_size": 2}

runner = CliRunner()


def _labels(video: int) -> np.ndarray:
    """Three segments whose boundaries differ per video."""
    cut = 15 + 3 * video
    labels = np.array(["background"] * NATIVE_FRAMES, dtype=object)
    labels[cut : cut + 20] = "cut"
    labels[cut + 20 :] = "mix"
    return labels


@pytest.fixture
def dataset(tmp_path: Path) -> dict[str, Path]:
    """6 videos of 60 native frames, features every 2nd frame = noisy one-hot of the label."""
    root, feats = tmp_path / "data", tmp_path / "features"
    (root / "labels").mkdir(parents=True)
    splits = [("1", "v0"), ("1", "v1"), ("2", "v2"), ("2", "v3")]
    manifest = write_manifest(tmp_path / "manifest", "tiny", CLASSES, VIDEOS, splits)
    rng = np.random.default_rng(0)
    for i, video in enumerate(VIDEOS):
        labels = _labels(i)
        (root / "labels" / f"{video}.txt").write_text("\n".join(labels) + "\n")
        frames = np.arange(0, NATIVE_FRAMES, STEP)
        feats_ = rng.normal(scale=0.3, size=(frames.size, DIM)).astype(np.float32)
        feats_[np.arange(frames.size), [CLASSES.index(c) for c in labels[frames]]] += 3.0
        _write_features(feats / f"{video}.zarr", feats_, frames)
    return {"manifest": manifest, "root": root, "features": feats, "tmp": tmp_path}


def _write_features(path: Path, features: np.ndarray, frames: np.ndarray) -> None:
    write_store(
        path,
        {
            "features": (features, ("time", "channel"), (64, features.shape[1])),
            "frame_index": (frames.astype(np.int64), ("time",), (64,)),
        },
        {"feature_dim": features.shape[1]},
        FEATURE_STORE,
    )


def _train_args(ds: dict[str, Path], head: str, out: Path, train: dict, **extra) -> list[str]:
    args = [
        "heads", "train", "--manifest", str(ds["manifest"]), "--root", str(ds["root"]),
        "--split", "1", "--features", str(ds["features"]), "--head", head, "--run", "0",
        "--out", str(out), "--options", json.dumps(HEADS.get(head).small_options),
        "--train", json.dumps(train),
    ]  # fmt: skip
    for key, value in extra.items():
        args += [f"--{key}", str(value)]
    return args


def _read(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.mark.parametrize("head", list_heads())
def test_train_cli_learns_an_easy_task_and_writes_every_file(dataset, head):
    out = dataset["tmp"] / "run0"
    result = runner.invoke(app, _train_args(dataset, head, out, FAST))
    assert result.exit_code == 0, result.output
    curves = {"tensorboard"} if tensorboard_available() else set()
    assert {p.name for p in out.iterdir()} == {
        "model.pt",
        "run.json",
        "pred",
        "gt",
        "native",
    } | curves
    correct = total = 0
    for video in ("v0", "v1"):
        pred, gt = _read(out / "pred" / f"{video}.txt"), _read(out / "gt" / f"{video}.txt")
        assert len(pred) == len(gt) == NATIVE_FRAMES // STEP
        native_pred = _read(out / "native" / "pred" / f"{video}.txt")
        native_gt = _read(out / "native" / "gt" / f"{video}.txt")
        assert len(native_pred) == len(native_gt) == NATIVE_FRAMES
        assert native_gt == list(_labels(int(video[1:])))
        assert native_pred[::STEP] == pred
        correct += sum(p == g for p, g in zip(pred, gt, strict=True))
        total += len(gt)
    assert correct / total >= 0.9
    info = json.loads((out / "run.json").read_text())
    assert info["head"] == head and info["split"] == "1" and info["seed"] == 0
    assert info["test_videos"] == ["v0", "v1"] and len(info["seconds_per_epoch"]) == 30
    assert info["options"] == HEADS.get(head).small_options and info["train"]["lr"] == 0.01
    assert info["final_train_loss"] == info["train_loss"][-1] < info["train_loss"][0]


def test_predict_cli_reproduces_the_run_from_model_file_alone(dataset):
    run = dataset["tmp"] / "run"
    assert runner.invoke(app, _train_args(dataset, "kmeans-mlp", run, FAST)).exit_code == 0
    out = dataset["tmp"] / "again"
    args = ["heads", "predict", str(run / "model.pt"), "--features", str(dataset["features"]),
            "--manifest", str(dataset["manifest"]), "--root", str(dataset["root"]),
            "--videos", "v0", "--videos", "v1", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for sub in ("pred", "gt", "native/pred", "native/gt"):
        for video in ("v0", "v1"):
            assert _read(out / sub / f"{video}.txt") == _read(run / sub / f"{video}.txt")


def test_same_seed_same_run_on_cpu(dataset):
    manifest = load_manifest(dataset["manifest"], dataset["root"])
    infos, states = [], []
    for name in ("a", "b", "c"):
        out = dataset["tmp"] / name
        seed = 5 if name == "c" else 0
        infos.append(
            train_run(manifest, "1", dataset["features"], "dilated-tcn", 1, out,
                      HEADS.get("dilated-tcn").small_options, {"epochs": 3, "device": "cpu"}, seed)
        )  # fmt: skip
        states.append(torch.load(out / "model.pt", weights_only=True)["state_dict"])
    assert infos[0]["seed"] == 1 and infos[2]["seed"] == 6
    assert infos[0]["train_loss"] == infos[1]["train_loss"] != infos[2]["train_loss"]
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_kmeans_is_fitted_on_training_videos_only(dataset):
    """Test videos are shifted far away: if k-means or PCA saw them, the state would show it."""
    rng = np.random.default_rng(1)
    for video in ("v0", "v1"):
        frames = np.arange(0, NATIVE_FRAMES, STEP)
        _write_features(
            dataset["features"] / f"{video}.zarr",
            rng.normal(loc=100.0, size=(frames.size, DIM)).astype(np.float32),
            frames,
        )
    out = dataset["tmp"] / "run"
    assert runner.invoke(app, _train_args(dataset, "kmeans-mlp", out, FAST)).exit_code == 0
    head, saved = load_model(out / "model.pt")
    train_rows = np.concatenate(
        [zarr.open_group(dataset["features"] / f"v{i}.zarr")["features"][...] for i in range(2, 6)]
    )
    np.testing.assert_allclose(head.pca_mean.numpy(), train_rows.mean(0), atol=1e-4)
    centres = (head.centres @ head.pca_components + head.pca_mean).numpy()
    assert np.abs(centres).max() < 10
    assert saved["classes"] == CLASSES and saved["train"]["sample_rate"] == 1


def test_sample_rate_subsamples_features_but_native_files_cover_every_frame(dataset):
    out = dataset["tmp"] / "run"
    train = {**FAST, "epochs": 2, "sample_rate": 3}
    result = runner.invoke(app, _train_args(dataset, "st-cnn", out, train))
    assert result.exit_code == 0, result.output
    assert len(_read(out / "pred" / "v0.txt")) == 10
    assert len(_read(out / "native" / "pred" / "v0.txt")) == NATIVE_FRAMES


def _with_feature_fps(dataset: dict[str, Path], feature_fps: float, store_fps: float) -> None:
    """The manifest states the heads' rate; every store records its own (15 fps here)."""
    meta = dataset["manifest"] / "dataset.yaml"
    meta.write_text(meta.read_text() + f"settings: {{feature_fps: {feature_fps}}}\n")
    for store in dataset["features"].glob("*.zarr"):
        zarr.open_group(store, mode="r+").attrs["fps"] = store_fps


def test_the_manifests_feature_fps_sets_the_heads_step(dataset):
    _with_feature_fps(dataset, 5, 15.0)
    manifest = load_manifest(dataset["manifest"], dataset["root"])
    assert feature_sample_rate(dataset["features"], manifest, "v0") == 3
    out = dataset["tmp"] / "run"
    result = runner.invoke(app, _train_args(dataset, "st-cnn", out, {**FAST, "epochs": 2}))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["train"]["sample_rate"] == 3
    assert len(_read(out / "pred" / "v0.txt")) == 10  # 30 features at 15 fps -> 10 at 5 fps
    assert len(_read(out / "native" / "pred" / "v0.txt")) == NATIVE_FRAMES


def test_a_feature_fps_no_integer_step_reaches_is_an_error(dataset):
    _with_feature_fps(dataset, 4, 15.0)
    out = dataset["tmp"] / "run"
    result = runner.invoke(app, _train_args(dataset, "st-cnn", out, FAST))
    assert result.exit_code == 1
    assert "features at 15 fps cannot be sampled to the manifest's feature_fps 4" in result.output


@pytest.mark.parametrize("frames", [NATIVE_FRAMES + 10, NATIVE_FRAMES // 2])
def test_features_and_labels_of_different_lengths_are_an_error(dataset, frames):
    indices = np.arange(0, frames, STEP)
    _write_features(dataset["features"] / "v3.zarr", np.zeros((indices.size, DIM), "f4"), indices)
    out = dataset["tmp"] / "run"
    result = runner.invoke(app, _train_args(dataset, "st-cnn", out, FAST))
    assert result.exit_code == 1
    assert "v3.zarr" in result.output and "labels/v3.txt" in result.output
    assert "do not match" in result.output
    assert not out.exists()


def test_missing_store_and_bad_options_are_one_line_errors(dataset):
    (dataset["features"] / "v4.zarr").rename(dataset["tmp"] / "moved.zarr")
    out = dataset["tmp"] / "run"
    result = runner.invoke(app, _train_args(dataset, "st-cnn", out, FAST))
    assert result.exit_code == 1 and "v4.zarr" in result.output
    (dataset["tmp"] / "moved.zarr").rename(dataset["features"] / "v4.zarr")
    bad = _train_args(dataset, "st-cnn", out, FAST)
    bad[bad.index("--options") + 1] = '{"filterz": 3}'
    result = runner.invoke(app, bad)
    assert result.exit_code == 1 and "filterz" in result.output
    bad = _train_args(dataset, "st-cnn", out, {"epochs": 0, "optimiser": "sgd"})
    result = runner.invoke(app, bad)
    assert result.exit_code == 1 and "optimiser" in result.output
    bad = _train_args(dataset, "st-cnn", out, {"epochs": 0})
    result = runner.invoke(app, bad)
    assert result.exit_code == 1 and "epochs must be a positive integer" in result.output
    bad[bad.index("--train") + 1] = '{"lr": "fast"}'
    result = runner.invoke(app, bad)
    assert result.exit_code == 1 and "option 'lr' must be float" in result.output
    bad[bad.index("--train") + 1] = "{epochs: 3"
    result = runner.invoke(app, bad)
    assert result.exit_code == 1 and "not valid JSON" in result.output
    assert not out.exists()


def test_list_prints_parameter_counts():
    result = runner.invoke(app, ["heads", "list", "--in-features", "128", "--num-classes", "18"])
    assert result.exit_code == 0
    rows = dict(line.split("\t") for line in result.output.splitlines())
    assert rows["st-cnn"] == "206034" and rows["ed-tcn"] == "743890"
    assert set(rows) == set(list_heads())


def test_nearest_rows_maps_source_frames_to_nearest_feature_ties_to_earlier():
    rows = nearest_rows(np.array([1, 4, 8]), 11)
    assert rows.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]


@pytest.mark.parametrize(
    ("head", "optimizer", "lr", "epochs", "batch"),
    [
        ("st-cnn", "adam", 1e-3, 200, 8),
        ("dilated-tcn", "adam", 1e-3, 200, 8),
        ("ed-tcn", "rmsprop", 1e-3, 200, 8),
        ("ms-tcn", "adam", 5e-4, 50, 1),
    ],
)
def test_reference_training_defaults(head, optimizer, lr, epochs, batch):
    settings = TrainSettings.resolve(head, {})
    assert (settings.optimizer, settings.lr, settings.epochs, settings.batch_size) == (
        optimizer, lr, epochs, batch,
    )  # fmt: skip
    assert TrainSettings.resolve(head, {"epochs": 3}).epochs == 3


# --- output safety, non-finite values, option ranges -------------------------------------------


def _predict_args(ds: dict[str, Path], model: Path, out: str) -> list[str]:
    return ["heads", "predict", str(model), "--features", str(ds["features"]),
            "--manifest", str(ds["manifest"]), "--root", str(ds["root"]),
            "--videos", "v0", "--out", out]  # fmt: skip


@pytest.mark.parametrize("variant", HOSTILE_OUTPUTS)
@pytest.mark.parametrize("command", ["train", "predict"])
def test_never_replaces_what_it_did_not_write(dataset, command, variant, monkeypatch):
    tmp = dataset["tmp"]
    out = hostile_output(variant, tmp, dataset["features"], monkeypatch)
    before = tree_snapshot(tmp)
    args = (
        _train_args(dataset, "st-cnn", Path(out), FAST)
        if command == "train"
        else _predict_args(dataset, tmp / "run" / "model.pt", out)
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "refusing to replace" in result.output, result.output
    assert tree_snapshot(tmp) == before


def test_rerun_replaces_its_own_run_and_predictions(dataset):
    run, again = dataset["tmp"] / "run", dataset["tmp"] / "again"
    for _ in range(2):
        assert runner.invoke(app, _train_args(dataset, "st-cnn", run, {"epochs": 1})).exit_code == 0
        result = runner.invoke(app, _predict_args(dataset, run / "model.pt", str(again)))
        assert result.exit_code == 0, result.output
    marker = json.loads((again / "predictions.json").read_text())
    assert marker["videos"] == ["v0"] and "motionseg_version" in marker
    assert not [p for p in dataset["tmp"].iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    other = dataset["tmp"] / "other"
    assert runner.invoke(app, _train_args(dataset, "st-cnn", other, {"epochs": 1})).exit_code == 0
    result = runner.invoke(app, _predict_args(dataset, run / "model.pt", str(other)))
    assert result.exit_code == 1 and "not a prediction folder" in result.output  # a run folder


@pytest.mark.parametrize(("row", "value"), [(0, np.nan), (7, np.inf), (29, -np.inf)])
def test_non_finite_features_are_refused_naming_store_and_frame(dataset, row, value):
    frames = np.arange(0, NATIVE_FRAMES, STEP)
    features = np.zeros((frames.size, DIM), np.float32)
    features[row, 1] = value
    _write_features(dataset["features"] / "v2.zarr", features, frames)
    out = dataset["tmp"] / "run"
    result = runner.invoke(app, _train_args(dataset, "st-cnn", out, FAST))
    assert result.exit_code == 1
    assert "v2.zarr" in result.output and f"row {row} (frame {frames[row]})" in result.output
    assert not out.exists()


@pytest.mark.parametrize(("head", "train"), [("st-cnn", {"lr": 1e30}), ("ed-tcn", {"lr": 1e30})])
def test_a_non_finite_training_loss_stops_the_run_without_a_run_folder(dataset, head, train):
    for video in VIDEOS:  # finite but huge: the logits overflow to inf
        frames = np.arange(0, NATIVE_FRAMES, STEP)
        _write_features(dataset["features"] / f"{video}.zarr",
                        np.full((frames.size, DIM), 3e38, np.float32), frames)  # fmt: skip
    out = dataset["tmp"] / "run"
    result = runner.invoke(app, _train_args(dataset, head, out, {**FAST, **train}))
    assert result.exit_code == 1 and "training loss became" in result.output, result.output
    assert "No run folder written" in result.output and not out.exists()
    assert not list(dataset["tmp"].glob(".run.tmp-*"))


@pytest.mark.parametrize(
    ("head", "options", "message"),
    [
        ("ed-tcn", {"filter_length": -5}, "filter_length must be a positive integer, got -5"),
        ("st-cnn", {"filter_length": 0}, "filter_length must be a positive integer, got 0"),
        ("ed-tcn", {"filters": [16, -1]}, "filters entries must be positive integers"),
        ("kmeans-mlp", {"clusters": 0}, "clusters must be a positive integer, got 0"),
        ("kmeans-mlp", {"clusters": 2.5}, "option 'clusters' must be int"),
        ("ms-tcn", {"dropout": 1.0}, "dropout must be in [0, 1)"),
        ("ms-tcn", {"tau": 0}, "tau must be > 0"),
        ("dilated-tcn", {"layers": True}, "option 'layers' must be int"),
        ("kmeans-mlp", {"temperature": float("nan")}, "temperature must be a finite number"),
    ],
)
def test_out_of_range_head_options_are_one_line(dataset, head, options, message):
    args = _train_args(dataset, head, dataset["tmp"] / "run", FAST)
    args[args.index("--options") + 1] = json.dumps(options)
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert f"head {head!r}" in result.output and "Traceback" not in result.output


def test_a_saved_head_whose_shapes_do_not_match_is_named(dataset):
    run = dataset["tmp"] / "run"
    assert runner.invoke(app, _train_args(dataset, "st-cnn", run, {"epochs": 1})).exit_code == 0
    saved = torch.load(run / "model.pt", weights_only=False)
    saved["in_features"] += 1  # the weights were trained on DIM inputs
    torch.save(saved, run / "model.pt")
    result = runner.invoke(app, _predict_args(dataset, run / "model.pt", str(run.parent / "p")))
    assert result.exit_code == 1 and "weights do not fit a 'st-cnn' head" in result.output
    assert "size mismatch" in result.output and not (run.parent / "p").exists()
