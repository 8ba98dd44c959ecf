"""`motionseg features extract`: one feature per frame, centred windows, contract attrs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from stages.cli import app
from stages.common.stores import open_store, write_store
from stages.features.checkpoint import save_checkpoint
from stages.features.extract import window_indices
from stages.features.registry import build_backbone
from stages.features.snippets import eval_transform

NUM_FRAMES = 7
SMALL = {"depth": 18, "crop": 16, "resize_range": [16, 18], "snippet_length": 4}


def write_frames(path: Path) -> np.ndarray:
    index = np.arange(0, 3 * NUM_FRAMES, 3, dtype=np.int64)
    frames = np.random.default_rng(1).integers(0, 256, (NUM_FRAMES, 20, 24, 3), dtype=np.uint8)
    write_store(
        path,
        {
            "frames": (frames, ("time", "height", "width", "channel"), (4, 20, 24, 3)),
            "frame_index": (index, ("time",), (64,)),
        },
        {"source_fps": 30.0, "fps": 10.0, "frame_indices": index.tolist(), "size": 20},
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


def test_window_indices_replicate_edges():
    rows = window_indices(np.array([0, 1, 5, 6]), window=4, num_frames=7)
    assert rows.tolist() == [[0, 0, 0, 1], [0, 0, 1, 2], [3, 4, 5, 6], [4, 5, 6, 6]]
    assert window_indices(np.array([0, 3]), 1, 7).tolist() == [[0], [3]]


@pytest.mark.parametrize("backbone", ["naive-temp-appear", "resnet"])
def test_extract_one_feature_per_frame(tmp_path, backbone):
    frames = write_frames(tmp_path / "v7.zarr")
    model = write_checkpoint(tmp_path / "best.pt", backbone)
    out = tmp_path / "features" / "v7.zarr"
    result = CliRunner().invoke(
        app,
        ["features", "extract", str(tmp_path / "best.pt"), str(tmp_path / "v7.zarr"), str(out)]
        + ["--video-id", "vid-7", "--batch-size", "3"],
    )
    assert result.exit_code == 0, result.output

    store = open_store(out, ["features", "frame_index"])
    features = store["features"][:]
    assert features.shape == (NUM_FRAMES, model.feature_dim) and features.dtype == np.float32
    assert store["frame_index"][:].tolist() == list(range(0, 3 * NUM_FRAMES, 3))
    attrs = dict(store.attrs)
    assert attrs["video_id"] == "vid-7" and attrs["backbone"] == backbone
    assert attrs["weights"] == "imagenet" and attrs["checkpoint"] == str(tmp_path / "best.pt")
    assert attrs["fps"] == 10.0 and attrs["source_fps"] == 30.0
    assert attrs["frame_indices"] == list(range(0, 3 * NUM_FRAMES, 3))
    assert attrs["feature_dim"] == model.feature_dim and attrs["padding"] == "replicate"
    assert attrs["preprocessing"]["feature_window"] == model.preprocessing.feature_window
    assert attrs["options"]["crop"] == 16

    window = model.preprocessing.feature_window
    with torch.no_grad():
        for t in (0, 3, NUM_FRAMES - 1):
            idx = window_indices(np.array([t]), window, NUM_FRAMES)[0]
            snippet = eval_transform(frames[idx], model.preprocessing)[None]
            expected = model.forward_features(snippet)[0].numpy()
            np.testing.assert_allclose(features[t], expected, rtol=1e-4, atol=1e-5)

    data = xr.open_zarr(out)
    assert data["features"].dims == ("time", "channel")
    assert data["frame_index"].dims == ("time",)


def test_extract_bad_checkpoints(tmp_path):
    write_frames(tmp_path / "v.zarr")
    runner = CliRunner()

    def run(ckpt: Path):
        return runner.invoke(
            app, ["features", "extract", str(ckpt), str(tmp_path / "v.zarr"), str(tmp_path / "o")]
        )

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
