"""Snippet datasets over frame stores, and `motionseg features train` end to end (resumable)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_manifest
from typer.testing import CliRunner

from stages.cli import app
from stages.common.errors import MotionsegError
from stages.common.manifest import load_manifest
from stages.common.outputs import FRAME_STORE
from stages.common.stores import write_store
from stages.features import train as train_module
from stages.features.base import Preprocessing
from stages.features.checkpoint import load_checkpoint
from stages.features.snippets import SnippetDataset, build_windows
from stages.features.train import (
    TrainConfig,
    best_epoch,
    choose_validation,
    reestimate_batchnorm,
    without_lone_last,
)

CLASSES = ("background", "cut", "mix")
VIDEOS = [f"v{i}" for i in range(5)]
NATIVE_FRAMES = 48
STEP = 2  # frame stores keep every other native frame (24 frames)
OPTIONS = {
    "depth": 18,
    "weights": "none",
    "crop": 16,
    "resize_range": [16, 20],
    "snippet_length": 4,
    "freeze_bn": False,
}
TRAIN = {"batch_size": 2, "stride": 4, "max_snippets_per_epoch": 4, "val_fraction": 0.25}


def native_labels(video: int) -> list[str]:
    """Blocks of 8 native frames cycling through the classes, shifted per video."""
    return [CLASSES[(i // 8 + video) % 3] for i in range(NATIVE_FRAMES)]


def write_frame_store(path: Path, num_native: int, seed: int, size: int = 24) -> np.ndarray:
    index = np.arange(0, num_native, STEP, dtype=np.int64)
    frames = np.random.default_rng(seed).integers(0, 256, (len(index), size, size, 3), np.uint8)
    write_store(
        path,
        {
            "frames": (frames, ("time", "height", "width", "channel"), (8, size, size, 3)),
            "frame_index": (index, ("time",), (64,)),
        },
        {
            "source_path": f"{path.stem}.mp4",
            "source_fps": 30.0,
            "fps": 15.0,
            "timestamps": (index / 30.0).tolist(),
            "size": size,
            "num_source_frames": num_native,
        },
        FRAME_STORE,
    )
    return frames


@pytest.fixture
def toy(tmp_path) -> dict[str, Path]:
    """A manifest (2 splits: test v0 / test v1), its labels, and frame stores of 24 frames."""
    root, frames = tmp_path / "root", tmp_path / "frames"
    (root / "labels").mkdir(parents=True)
    manifest = write_manifest(
        tmp_path / "manifest",
        "toy",
        CLASSES,
        VIDEOS,
        [("1", "v0"), ("2", "v1")],
        video="videos/{video_id}.mp4",
        settings="{purity: 0.7}",
    )
    for i, video in enumerate(VIDEOS):
        (root / "labels" / f"{video}.txt").write_text("\n".join(native_labels(i)) + "\n")
        write_frame_store(frames / f"{video}.zarr", NATIVE_FRAMES, seed=i)
    return {"manifest": manifest, "root": root, "frames": frames}


def test_windows_read_labels_at_stored_frames(toy):
    manifest = load_manifest(toy["manifest"], toy["root"])
    windows = build_windows(manifest, ["v0", "v2"], toy["frames"], length=4, stride=4, purity=1.0)
    # stored frame t is native frame 2t: blocks of 4 stored frames share a label
    assert [(w.video_id, w.start, w.label) for w in windows[:3]] == [
        ("v0", 0, 0),
        ("v0", 4, 1),
        ("v0", 8, 2),
    ]
    assert windows[6].video_id == "v2" and windows[6].label == 2
    prep = Preprocessing(snippet_length=4, feature_window=1, crop=16, resize_range=(16, 20))
    # cache_bytes 0: every snippet read from its store, through an LRU of one open store
    dataset = SnippetDataset(windows, toy["frames"], prep, True, seed=0, max_open=1, cache_bytes=0)
    in_memory = SnippetDataset(windows, toy["frames"], prep, train=True, seed=0)
    assert all(torch.equal(in_memory[i][0], dataset[i][0]) for i in range(len(windows)))
    assert set(in_memory._cached) == {"v0", "v2"} and not dataset._cached
    snippet, label = dataset[7]
    assert snippet.shape == (4, 3, 16, 16) and snippet.dtype == torch.float32
    assert label == windows[7].label
    assert torch.equal(dataset[7][0], snippet)  # randomness is a function of (seed, epoch, index)
    dataset.epoch = 1
    assert not torch.equal(dataset[7][0], snippet)
    assert torch.equal(dataset[(1, 7)][0], dataset[7][0])  # (epoch, index) keys
    assert torch.equal(dataset[(0, 7)][0], snippet)


def test_label_file_shorter_than_frames_names_the_video(toy):
    (toy["root"] / "labels" / "v3.txt").write_text("cut\n" * 10)
    manifest = load_manifest(toy["manifest"], toy["root"])
    with pytest.raises(MotionsegError, match="v3"):
        build_windows(manifest, ["v3"], toy["frames"], 4, 4, 0.7)


def test_missing_frame_store_is_an_error(toy):
    manifest = load_manifest(toy["manifest"], toy["root"])
    with pytest.raises(MotionsegError, match="store not found"):
        build_windows(manifest, ["v0"], toy["root"], 4, 4, 0.7)


def test_validation_videos_are_training_videos():
    train_ids = [f"t{i}" for i in range(40)]
    for seed in range(5):
        val = choose_validation(train_ids, 0.1, seed)
        assert len(val) == 4 and set(val) <= set(train_ids)
    assert len(choose_validation(train_ids[:9], 0.1, 0)) == 1
    assert choose_validation(train_ids[:1], 0.1, 0) == []
    assert choose_validation(train_ids, 0.0, 0) == []


def test_validation_covers_the_classes_when_told_what_each_video_shows():
    classes_of = {"a": {"bg", "cut"}, "b": {"bg", "cut"}, "c": {"bg", "mix"}, "d": {"bg", "pour"}}
    for seed in range(6):
        # The first pick is any video with 2 classes; the second must add an unseen one.
        val = choose_validation(list(classes_of), 0.5, seed, classes_of)
        assert len(val) == 2 and not {"a", "b"} <= set(val)
    one_new_class = {"a": {"bg"}, "b": {"bg"}, "c": {"bg", "mix"}}
    assert choose_validation(list(one_new_class), 0.3, 0, one_new_class) == ["c"]


def test_best_epoch_prefers_the_later_epoch_on_ties_and_the_last_without_validation():
    rows = [{"epoch": e, "val_acc": v} for e, v in [(1, 0.5), (2, 0.7), (3, 0.7), (4, 0.6)]]
    assert best_epoch(rows) == 3
    assert best_epoch([{"epoch": e, "val_acc": None} for e in (1, 2, 3)]) == 3


def test_an_epoch_never_ends_with_a_batch_of_one_snippet():
    order = np.arange(17)
    assert without_lone_last(order, 8) == list(range(16))  # 2 x 8, the 17th waits an epoch
    assert without_lone_last(order, 4) == list(range(16))
    assert without_lone_last(order, 3) == list(range(17))  # ends with a batch of 2
    assert without_lone_last(order, 1) == list(range(17))


def test_batchnorm_reestimation_makes_eval_mode_match_the_training_batches():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    batch = torch.randn(64, 3) * 5 + 2
    model.train()
    for _ in range(3):  # a few steps leave the running averages near their initial 0 / 1
        model(batch)
    model.eval()
    assert not torch.allclose(model(batch).mean(0), torch.zeros(4), atol=0.1)
    momentum = model[1].momentum
    reestimate_batchnorm(model, [(batch, None)], torch.device("cpu"), False)
    model.eval()
    out = model(batch)  # normalised by the batch's own statistics now
    assert torch.allclose(out.mean(0), torch.zeros(4), atol=1e-4)
    assert torch.allclose(out.std(0), torch.ones(4), atol=1e-2)
    assert model[1].momentum == momentum


@pytest.mark.parametrize(
    "values",
    [
        {"bn_batches": -1},
        {"epochs": 0},
        {"lr": "fast"},
        {"no_such_key": 1},
        {"val_fraction": 1.0},
        {"optimizer": "x"},
    ],
)
def test_bad_train_config(values):
    with pytest.raises(MotionsegError):
        TrainConfig.from_dict(values)


@pytest.mark.parametrize(("name", "kind"), [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam)])
def test_optimizer_choice(name, kind):
    from stages.common.runtime import make_optimizer

    config = TrainConfig.from_dict({"optimizer": name, "lr": 0.01, "weight_decay": 0.001})
    params = torch.nn.Linear(2, 2).parameters()
    optimizer = make_optimizer(params, config.optimizer, config.lr, config.weight_decay)
    assert isinstance(optimizer, kind)
    assert optimizer.param_groups[0]["lr"] == 0.01
    assert optimizer.param_groups[0]["weight_decay"] == 0.001


def _train_args(toy, out: Path, backbone: str = "resnet") -> list[str]:
    """`features train` on split 1 of the toy data set, without options or training settings."""
    return [
        "features",
        "train",
        "--manifest",
        str(toy["manifest"]),
        "--root",
        str(toy["root"]),
        "--split",
        "1",
        "--backbone",
        backbone,
        "--frames",
        str(toy["frames"]),
        "--out",
        str(out),
    ]


def _train(toy, out: Path, epochs: int, extra: dict | None = None, backbone: str = "resnet"):
    settings = json.dumps({**TRAIN, "epochs": epochs, **(extra or {})})
    options = ["--options", json.dumps(OPTIONS), "--train", settings, "--seed", "3"]
    return CliRunner().invoke(app, [*_train_args(toy, out, backbone), *options])


def _log(out: Path) -> list[dict[str, str]]:
    with (out / "train_log.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_train_cli_writes_checkpoints_log_and_best(toy, tmp_path):
    out = tmp_path / "ckpt"
    result = _train(toy, out, epochs=2, extra={"keep_all_epochs": True})
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.pt")) == ["best.pt", "epoch_001.pt", "epoch_002.pt"]
    rows = _log(out)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_acc", "lr", "seconds"]
    assert all(0 <= float(r["val_acc"]) <= 1 for r in rows)

    best = load_checkpoint(out / "best.pt")
    assert best["backbone"] == "resnet" and best["options"] == OPTIONS
    assert best["classes"] == list(CLASSES) and best["num_classes"] == 3
    assert best["preprocessing"]["snippet_length"] == 4
    accs = [float(r["val_acc"]) for r in rows]
    assert best["epoch"] == len(accs) - accs[::-1].index(max(accs))  # the latest on ties
    assert best["val_acc"] == pytest.approx(max(accs))
    for key in ("optimizer", "scheduler", "state_dict", "history"):
        assert key in best
    # validation: training videos of split 1 only (test video v0 never)
    assert len(best["val_videos"]) == 1
    assert "v0" not in best["val_videos"] + best["train_videos"]
    assert sorted(best["val_videos"] + best["train_videos"]) == VIDEOS[1:]


def test_train_resumes_bit_for_bit(toy, tmp_path):
    once, twice = tmp_path / "once", tmp_path / "twice"
    assert _train(toy, once, epochs=2).exit_code == 0
    first = _train(toy, twice, epochs=1)
    assert first.exit_code == 0, first.output
    before = (twice / "epoch_001.pt").stat().st_mtime_ns
    second = _train(toy, twice, epochs=2)
    assert second.exit_code == 0, second.output
    assert "resuming after epoch 1" in second.output
    assert "epoch 1:" not in second.output  # epoch 1 not redone
    epoch1 = twice / "epoch_001.pt"
    assert not epoch1.exists() or epoch1.stat().st_mtime_ns == before

    a = torch.load(once / "epoch_002.pt", weights_only=True)
    b = torch.load(twice / "epoch_002.pt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert len(_log(twice)) == 2


def test_bn_batches_change_only_the_batchnorm_statistics(toy, tmp_path):
    """Re-estimation touches running statistics, never weights or the training randomness."""
    assert _train(toy, tmp_path / "plain", epochs=2).exit_code == 0
    result = _train(toy, tmp_path / "bn", epochs=2, extra={"bn_batches": 2})
    assert result.exit_code == 0, result.output
    plain = torch.load(tmp_path / "plain" / "epoch_002.pt", weights_only=True)["state_dict"]
    bn = torch.load(tmp_path / "bn" / "epoch_002.pt", weights_only=True)["state_dict"]
    stats = [k for k in plain if k.endswith(("running_mean", "running_var"))]
    assert stats and any(not torch.equal(plain[k], bn[k]) for k in stats)
    weights = [k for k in plain if not k.endswith(("running_mean", "running_var", "tracked"))]
    assert all(torch.equal(plain[k], bn[k]) for k in weights)


def test_loader_workers_and_device_settings_do_not_change_the_result(toy, tmp_path):
    """Two persistent workers (the epoch reaches them with the sample keys: epoch 2's
    augmentation differs from epoch 1's) and the CUDA-only speed settings switched off give
    the default run's weights bit for bit on CPU."""
    runs = {
        "default": {},
        "workers": {"num_workers": 2},
        "settings_off": {"channels_last": False, "tf32": False, "cudnn_benchmark": False},
    }
    outputs = {}
    for name, extra in runs.items():
        result = _train(toy, tmp_path / name, epochs=2, extra=extra)
        assert result.exit_code == 0, result.output
        outputs[name] = result.output
    assert "0 loader workers" in outputs["default"] and "2 loader workers" in outputs["workers"]
    base = torch.load(tmp_path / "default" / "epoch_002.pt", weights_only=True)
    for name in ("workers", "settings_off"):
        other = torch.load(tmp_path / name / "epoch_002.pt", weights_only=True)
        assert all(torch.equal(base["state_dict"][k], v) for k, v in other["state_dict"].items())
        assert [r["train_loss"] for r in base["history"]] == [
            r["train_loss"] for r in other["history"]
        ]


def test_auto_loader_workers(monkeypatch):
    """None: no worker on CPU; on CUDA every usable core but one, at most MAX_AUTO_WORKERS."""
    config = TrainConfig()
    assert config.workers(torch.device("cpu")) == 0
    for cores, expected in [(1, 0), (4, 3), (64, train_module.MAX_AUTO_WORKERS)]:
        monkeypatch.setattr(train_module, "usable_cores", lambda cores=cores: cores)
        assert config.workers(torch.device("cuda")) == expected
    assert TrainConfig(num_workers=5).workers(torch.device("cuda")) == 5
    with pytest.raises(MotionsegError, match="num_workers"):
        TrainConfig.from_dict({"num_workers": -1})


def test_train_refuses_to_resume_a_different_run(toy, tmp_path):
    out = tmp_path / "ckpt"
    assert _train(toy, out, epochs=1).exit_code == 0
    result = _train(toy, out, epochs=2, extra={"lr": 0.5})
    assert result.exit_code == 1
    assert "train_config" in result.output and "delete" in result.output


def test_train_cli_bad_json_is_one_line_error(toy, tmp_path):
    args = [*_train_args(toy, tmp_path / "x"), "--options", "{depth: 18"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "--options" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("name", "content"),
    [("best.pt", b"my own notes"), ("train_log.csv", b"a,b\n1,2\n"), ("epoch_002.pt", b"x")],
)
def test_files_in_the_checkpoint_folder_that_are_not_ours_stop_it_before_training(
    toy, tmp_path, name, content
):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / name).write_bytes(content)
    result = _train(toy, out, epochs=1)
    assert result.exit_code == 1 and "refusing to replace" in result.output, result.output
    assert name in result.output and [p.name for p in out.iterdir()] == [name]
    assert (out / name).read_bytes() == content
