"""`dem` (16-frame clips) and `dimofs` (frame pairs) trained and extracted through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_manifest
from typer.testing import CliRunner

from stages.cli import app
from stages.common.outputs import FRAME_STORE
from stages.common.stores import open_store, write_store
from stages.features.checkpoint import load_checkpoint

CLASSES = ("background", "stir")
VIDEOS = ("v0", "v1", "v2")
NUM_FRAMES = 14
OPTIONS = {
    "dem": {"crop": 32, "resize_range": [32, 34], "snippet_length": 8},
    "dimofs": {"depth": 18, "weights": "none", "crop": 32, "resize_range": [32, 34]},
}


@pytest.fixture
def toy(tmp_path) -> dict[str, Path]:
    root, frames = tmp_path / "root", tmp_path / "frames"
    (root / "labels").mkdir(parents=True)
    manifest = write_manifest(
        tmp_path / "manifest", "toy", CLASSES, VIDEOS, [("1", "v0")], settings="{purity: 0.7}"
    )
    for i, video in enumerate(VIDEOS):
        labels = [CLASSES[(t // 6 + i) % 2] for t in range(NUM_FRAMES)]
        (root / "labels" / f"{video}.txt").write_text("\n".join(labels) + "\n")
        pixels = np.random.default_rng(i).integers(0, 256, (NUM_FRAMES, 20, 20, 3), np.uint8)
        index = np.arange(NUM_FRAMES, dtype=np.int64)
        write_store(
            frames / f"{video}.zarr",
            {
                "frames": (pixels, ("time", "height", "width", "channel"), (8, 20, 20, 3)),
                "frame_index": (index, ("time",), (64,)),
            },
            {"source_fps": 30.0, "fps": 30.0, "size": 20},
            FRAME_STORE,
        )
    return {"manifest": manifest, "root": root, "frames": frames}


@pytest.mark.parametrize("backbone", [pytest.param("dem", marks=pytest.mark.slow), "dimofs"])
def test_train_then_extract(toy, tmp_path, backbone):
    out, features = tmp_path / "ckpt", tmp_path / "features"
    train = {"epochs": 1, "batch_size": 2, "stride": 2, "max_snippets_per_epoch": 4}
    args = ["features", "train", "--manifest", str(toy["manifest"]), "--root", str(toy["root"])]
    args += ["--split", "1", "--backbone", backbone, "--frames", str(toy["frames"])]
    args += ["--out", str(out), "--options", json.dumps(OPTIONS[backbone])]
    result = CliRunner().invoke(app, [*args, "--train", json.dumps(train)])
    assert result.exit_code == 0, result.output
    checkpoint = load_checkpoint(out / "best.pt")
    assert checkpoint["backbone"] == backbone and checkpoint["train_videos"]

    store = toy["frames"] / "v0.zarr"
    extract = ["features", "extract", str(out / "best.pt"), str(store), "--out-dir", str(features)]
    result = CliRunner().invoke(app, [*extract, "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    written = open_store(features / "v0.zarr", ("features", "frame_index"))
    dim = {"dem": 512, "dimofs": 2048}[backbone]
    assert written["features"].shape == (NUM_FRAMES, dim)
    assert np.isfinite(written["features"][:]).all()
    assert written.attrs["padding"] == {"dem": "replicate", "dimofs": "mirror"}[backbone]
