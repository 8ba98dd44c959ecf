"""`motionseg features extract`: one feature per frame, centred windows, contract attrs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import HOSTILE_OUTPUTS, hostile_output, tree_snapshot
from torch import nn
from typer.testing import CliRunner

from stages.cli import app
from stages.common.errors import MotionsegError
from stages.common.outputs import FRAME_STORE
from stages.common.runtime import DeviceSettings
from stages.common.stores import open_store, write_store
from stages.features import extract
from stages.features.base import Preprocessing
from stages.features.checkpoint import save_checkpoint
from stages.features.extract import extract_features, video_features, window_indices
from stages.features.registry import build_backbone
from stages.features.snippets import eval_transform

NUM_FRAMES = 7
SMALL = {"depth": 18, "crop": 16, "resize_range": [16, 18], "snippet_length": 4}


def write_frames(path: Path, num_frames: int = NUM_FRAMES, seed: int = 1) -> np.ndarray:
    index = np.arange(0, 3 * num_frames, 3, dtype=np.int64)
    frames = np.random.default_rng(seed).integers(0, 256, (num_frames, 20, 24, 3), dtype=np.uint8)
    write_store(
        path,
        {
            "frames": (frames, ("time", "height", "width", "channel"), (4, 20, 24, 3)),
            "frame_index": (index, ("time",), (64,)),
        },
        {"source_fps": 30.0, "fps": 10.0, "size": 20},
        FRAME_STORE,
    )
    return frames


def write_checkpoint(path: Path, backbone: str) -> torch.nn.Module:
    """A checkpoint as training writes it; `weights: imagenet` must not be fetched again."""
    torch.manual_seed(0)
    model = build_backbone(backbone, 3, weights="none", **SMALL).eval()
    save_checkpoint(
        {
            "backbone": backbone,
            "num_classes": 3,
            "classes": ["background", "a", "b"],
            "options": {"weights": "imagenet", **SMALL},
            "preprocessing": model.preprocessing.to_dict(),
            "state_dict": model.state_dict(),
            "epoch": 4,
            "val_acc": 0.5,
        },
        path,
    )
    return model


def window_features(model: nn.Module, frames: torch.Tensor, centres: np.ndarray) -> np.ndarray:
    """The definition: `forward_features` on each centred, edge-replicated window."""
    indices = window_indices(centres, model.preprocessing, len(frames))
    with torch.no_grad():
        return model.forward_features(frames[torch.from_numpy(indices)]).numpy()


def extract_cli(checkpoint: Path, stores: list[Path], out_dir: Path, *extra: str):
    args = ["features", "extract", str(checkpoint), *map(str, stores), "--out-dir", str(out_dir)]
    return CliRunner().invoke(app, [*args, *extra])


def test_window_indices_replicate_edges():
    rows = window_indices(np.array([0, 1, 5, 6]), Preprocessing(feature_window=4), num_frames=7)
    assert rows.tolist() == [[0, 0, 0, 1], [0, 0, 1, 2], [3, 4, 5, 6], [4, 5, 6, 6]]
    assert window_indices(np.array([0, 3]), Preprocessing(feature_window=1), 7).tolist() == [
        [0],
        [3],
    ]


def test_window_indices_mirrored_pairs():
    """DIMOFS-style pairs (t, t + 2): the last two frames pair with t - 2 instead."""
    prep = Preprocessing(feature_window=2, feature_offsets=(0, 2), padding="mirror")
    rows = window_indices(np.arange(6), prep, num_frames=6)
    assert rows.tolist() == [[0, 2], [1, 3], [2, 4], [3, 5], [4, 2], [5, 3]]
    assert window_indices(np.array([0]), prep, num_frames=1).tolist() == [[0, 0]]


@pytest.mark.parametrize("backbone", ["resnet", "naive-temp-appear", "lcdc", "dc", "dem", "dimofs"])
@pytest.mark.parametrize("num_frames", [21, 3])
def test_two_phase_extraction_equals_forward_features_on_every_window(
    monkeypatch, backbone, num_frames
):
    """Each frame is encoded once, yet every feature equals `forward_features` on its window:
    at both edges, in the middle and across block boundaries (blocks of 5 centres; with 21
    frames the last block needs no new frame), and for a video shorter than the window."""
    monkeypatch.setattr(extract, "CENTRES_PER_BLOCK", 5)
    torch.manual_seed(0)
    options = {"depth": 18, "crop": 32, "resize_range": (32, 36)}
    if backbone != "dimofs":  # a frame pair
        options["snippet_length"] = 6
    model = build_backbone(backbone, 4, weights="none", **options).eval()
    for name, param in model.named_parameters():  # non-zero offsets: motion must matter
        if "offset" in name:
            nn.init.normal_(param, std=0.3)
    frames = torch.randn(num_frames, 3, 32, 32)
    encoded_sizes: list[int] = []
    encode = model.encode_frames
    monkeypatch.setattr(model, "encode_frames", lambda x: encoded_sizes.append(len(x)) or encode(x))

    fast = video_features(model, lambda lo, hi: frames[lo:hi], num_frames, 2, torch.device("cpu"))

    assert sum(encoded_sizes) == num_frames
    assert fast.shape == (num_frames, model.feature_dim) and fast.dtype == np.float32
    expected = window_features(model, frames, np.arange(num_frames))
    np.testing.assert_allclose(fast, expected, rtol=1e-4, atol=1e-5)
    if num_frames > 1 and model.preprocessing.feature_window > 1:
        assert not np.allclose(fast[0], fast[num_frames // 2])


@pytest.mark.parametrize(("prefetch", "batch_size"), [(1, 8), (3, 1)])
def test_prefetched_blocks_and_device_settings_give_the_sequential_features(
    tmp_path, monkeypatch, prefetch, batch_size
):
    """Reading frames ahead on a thread (and the CUDA-only speed settings, which must do
    nothing on CPU) gives bit for bit the features of the sequential path, over 5 blocks
    read in one piece each (batch 8) or in pieces of 4 frames (batch 1)."""
    monkeypatch.setattr(extract, "CENTRES_PER_BLOCK", 5)
    write_frames(tmp_path / "v.zarr", num_frames=23)
    write_checkpoint(tmp_path / "best.pt", "naive-temp-appear")
    off = DeviceSettings(channels_last=False, tf32=False, cudnn_benchmark=False)
    runs = {
        "sequential": {"prefetch": 0, "settings": off},
        "overlapped": {"prefetch": prefetch, "settings": DeviceSettings()},
    }
    features = {}
    for name, kwargs in runs.items():
        out = extract_features(
            tmp_path / "best.pt",
            tmp_path / "v.zarr",
            tmp_path / f"{name}.zarr",
            batch_size=batch_size,
            echo=str,
            **kwargs,
        )
        features[name] = open_store(out, ["features"])["features"][:]
    assert features["sequential"].shape == (23, 1024)
    np.testing.assert_array_equal(features["overlapped"], features["sequential"])


def test_block_spans_cover_every_window(monkeypatch):
    monkeypatch.setattr(extract, "CENTRES_PER_BLOCK", 5)
    # window 4: centre t needs t - 2 .. t + 1, clipped to the video
    assert extract.block_spans(12, Preprocessing(feature_window=4)) == [(0, 6), (3, 11), (8, 12)]
    assert extract.block_spans(3, Preprocessing(feature_window=1)) == [(0, 3)]


def test_extract_many_stores_in_one_call(tmp_path):
    videos = {"v7": write_frames(tmp_path / "v7.zarr"), "v2": write_frames(tmp_path / "v2.zarr", 2)}
    model = write_checkpoint(tmp_path / "best.pt", "naive-temp-appear")
    out_dir = tmp_path / "features"
    stores = [tmp_path / "v7.zarr", tmp_path / "v2.zarr"]
    result = extract_cli(tmp_path / "best.pt", stores, out_dir, "--batch-size", "3")
    assert result.exit_code == 0, result.output

    assert sorted(p.name for p in out_dir.iterdir()) == ["v2.zarr", "v7.zarr"]
    for video_id, frames in videos.items():
        store = open_store(out_dir / f"{video_id}.zarr", ["features", "frame_index"])
        features = store["features"][:]
        num_frames = len(frames)
        assert features.shape == (num_frames, model.feature_dim) and features.dtype == np.float32
        assert store["frame_index"][:].tolist() == list(range(0, 3 * num_frames, 3))
        attrs = dict(store.attrs)
        assert attrs["video_id"] == video_id and attrs["backbone"] == "naive-temp-appear"
        assert attrs["weights"] == "imagenet" and attrs["checkpoint"] == str(tmp_path / "best.pt")
        assert attrs["checkpoint_epoch"] == 4
        assert attrs["fps"] == 10.0 and attrs["source_fps"] == 30.0
        assert "frame_indices" not in attrs  # the frame_index array is the one record
        assert attrs["feature_dim"] == model.feature_dim and attrs["padding"] == "replicate"
        assert attrs["preprocessing"]["feature_window"] == model.preprocessing.feature_window
        assert attrs["options"]["crop"] == 16
        centres = np.array(sorted({0, num_frames // 2, num_frames - 1}))
        expected = window_features(model, eval_transform(frames, model.preprocessing), centres)
        np.testing.assert_allclose(features[centres], expected, rtol=1e-4, atol=1e-5)

    data = xr.open_zarr(out_dir / "v7.zarr")
    assert data["features"].dims == ("time", "channel")
    assert data["frame_index"].dims == ("time",)


def test_python_api_takes_a_video_id_and_a_per_frame_model(tmp_path):
    frames = write_frames(tmp_path / "v7.zarr")
    model = write_checkpoint(tmp_path / "best.pt", "resnet")
    out = extract_features(
        tmp_path / "best.pt", tmp_path / "v7.zarr", tmp_path / "o.zarr", "vid-7", echo=str
    )
    store = open_store(out, ["features"])
    assert store.attrs["video_id"] == "vid-7"
    expected = window_features(model, eval_transform(frames, model.preprocessing), np.arange(7))
    np.testing.assert_allclose(store["features"][:], expected, rtol=1e-4, atol=1e-5)


def test_bad_store_is_named_and_leaves_no_partial_output(tmp_path):
    write_checkpoint(tmp_path / "best.pt", "resnet")
    write_frames(tmp_path / "good.zarr")
    write_frames(tmp_path / "bad.zarr", seed=2)
    out_dir = tmp_path / "features"

    missing = extract_cli(
        tmp_path / "best.pt", [tmp_path / "good.zarr", tmp_path / "no.zarr"], out_dir
    )
    assert missing.exit_code == 1 and "no.zarr" in missing.output
    assert not out_dir.exists()  # every store is checked before any work

    twice = [tmp_path / "good.zarr", tmp_path / "sub" / "good.zarr"]
    write_frames(twice[1])
    duplicate = extract_cli(tmp_path / "best.pt", twice, out_dir)
    assert duplicate.exit_code == 1 and "same name" in duplicate.output

    (tmp_path / "bad.zarr" / "frames" / "c" / "1" / "0" / "0" / "0").write_bytes(b"junk" * 10)
    damaged = extract_cli(
        tmp_path / "best.pt", [tmp_path / "good.zarr", tmp_path / "bad.zarr"], out_dir
    )
    assert damaged.exit_code == 1 and "bad.zarr" in damaged.output
    assert "cannot read frames" in damaged.output
    assert [p.name for p in out_dir.iterdir()] == ["good.zarr"]  # complete; no partial bad.zarr
    assert open_store(out_dir / "good.zarr", ["features"])["features"].shape[0] == NUM_FRAMES


def test_extract_bad_checkpoints(tmp_path):
    write_frames(tmp_path / "v.zarr")

    def run(ckpt: Path):
        return extract_cli(ckpt, [tmp_path / "v.zarr"], tmp_path / "o")

    missing = run(tmp_path / "nope.pt")
    assert missing.exit_code == 1 and "checkpoint not found" in missing.output
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert run(tmp_path / "junk.pt").exit_code == 1
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    foreign = run(tmp_path / "foreign.pt")
    assert foreign.exit_code == 1 and "missing" in foreign.output
    write_checkpoint(tmp_path / "best.pt", "resnet")
    blob = torch.load(tmp_path / "best.pt", weights_only=True)
    blob["num_classes"] = 5
    torch.save(blob, tmp_path / "mismatch.pt")
    mismatch = run(tmp_path / "mismatch.pt")
    assert mismatch.exit_code == 1 and "do not fit" in mismatch.output
    assert not (tmp_path / "o").exists()


# --- output safety and non-finite features -----------------------------------------------------


@pytest.mark.parametrize("variant", HOSTILE_OUTPUTS)
def test_never_replaces_what_it_did_not_write(tmp_path, variant, monkeypatch):
    frames = tmp_path / "frames" / "v.zarr"
    write_frames(frames)
    write_checkpoint(tmp_path / "best.pt", "resnet")
    out = hostile_output(variant, tmp_path, frames, monkeypatch)
    before = tree_snapshot(tmp_path)
    with pytest.raises(MotionsegError, match="refusing to replace"):
        extract_features(tmp_path / "best.pt", frames, out, echo=lambda _: None)
    assert tree_snapshot(tmp_path) == before


@pytest.mark.parametrize("out_dir", ["frames", "."])
def test_cli_out_dir_holding_the_input_store_is_refused(tmp_path, out_dir, monkeypatch):
    write_frames(tmp_path / "frames" / "v.zarr")
    write_checkpoint(tmp_path / "best.pt", "resnet")
    monkeypatch.chdir(tmp_path / "frames" if out_dir == "." else tmp_path)
    before = tree_snapshot(tmp_path)
    result = extract_cli(tmp_path / "best.pt", [tmp_path / "frames" / "v.zarr"], Path(out_dir))
    assert result.exit_code == 1 and "is an input of this command" in result.output
    assert tree_snapshot(tmp_path) == before


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_features_are_refused_before_the_store_is_written(tmp_path, bad):
    frames = tmp_path / "v.zarr"
    write_frames(frames)
    model = write_checkpoint(tmp_path / "best.pt", "resnet")
    checkpoint = torch.load(tmp_path / "best.pt", weights_only=False)
    name = next(k for k, v in model.state_dict().items() if v.dtype.is_floating_point)
    checkpoint["state_dict"][name].fill_(bad)  # a diverged fine-tuning run
    save_checkpoint(checkpoint, tmp_path / "best.pt")
    with pytest.raises(
        MotionsegError, match=r"v.zarr: .*non-finite features from frame 0 \(row 0\)"
    ):
        extract_features(tmp_path / "best.pt", frames, tmp_path / "f.zarr", echo=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "v.zarr"]


def test_frozen_extraction_uses_the_given_pretrained_weights(tmp_path):
    """`--backbone` without checkpoint: features from the weights file the test wrote itself
    equal the definition computed on a model those weights were loaded into by hand."""
    import torchvision

    frames = write_frames(tmp_path / "v.zarr", 9)
    torch.manual_seed(3)
    pretrained = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for bn in (m for m in pretrained.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 0.1)  # statistics that differ from a fresh init
    torch.save(pretrained.state_dict(), tmp_path / "pretrained.pt")
    options = {**SMALL, "weights": str(tmp_path / "pretrained.pt")}
    args = ["features", "extract", "--backbone", "resnet", "--options", json.dumps(options)]
    args += [str(tmp_path / "v.zarr"), "--out-dir", str(tmp_path / "frozen")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    by_hand = build_backbone("resnet", 3, weights="none", **SMALL).eval()
    state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("fc.")}
    by_hand.trunk.load_state_dict(state, strict=False)
    centres = np.arange(len(frames))
    expected = window_features(by_hand, eval_transform(frames, by_hand.preprocessing), centres)
    store = open_store(tmp_path / "frozen" / "v.zarr")
    np.testing.assert_allclose(store["features"][:], expected, rtol=1e-4, atol=1e-5)
    attrs = dict(store.attrs)
    assert attrs["frozen"] is True and attrs["checkpoint"] is None
    assert attrs["weights"] == str(tmp_path / "pretrained.pt")
