"""`ms` and `dynamics` through `motionseg features train/extract`, with their papers' recipe
options (Nesterov, gradient clipping, multistep schedule) as general training settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_features_train import TRAIN, _log, _train_args, toy  # noqa: F401 (fixture)
from typer.testing import CliRunner

from stages.cli import app
from stages.common.errors import MotionsegError
from stages.common.runtime import make_optimizer
from stages.common.stores import open_store
from stages.features.checkpoint import load_checkpoint
from stages.features.train import TrainConfig, run_epoch

TINY = {"weights": "none", "crop": 32, "resize_range": [32, 36], "snippet_length": 4}
RECIPES = {
    # MotionSqueeze: Nesterov SGD, /10 at milestones, clip 200 (scaled down: 2 epochs)
    "ms": (
        {**TINY, "depth": 18},
        {"nesterov": True, "lr": 0.01, "lr_decay": 0.1, "lr_milestones": [1], "grad_clip": 200.0},
    ),
    # disentangled dynamics: momentum SGD 0.9, clip 20
    "dynamics": (TINY, {"lr": 0.005, "grad_clip": 20.0}),
}


def test_multistep_schedule_divides_at_the_milestones():
    config = TrainConfig.from_dict({"lr": 0.01, "lr_decay": 0.1, "lr_milestones": [20, 30]})
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=config.lr)
    scheduler = config.scheduler(optimizer)
    rates = []
    for _ in range(40):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(rates, [0.01] * 20 + [0.001] * 10 + [0.0001] * 10)


def test_nesterov_reaches_the_optimizer_and_needs_momentum_sgd():
    config = TrainConfig.from_dict({"nesterov": True, "lr": 0.01})
    params = torch.nn.Linear(2, 2).parameters()
    optimizer = make_optimizer(params, config.optimizer, config.lr, 0.0, 0.9, config.nesterov)
    assert optimizer.param_groups[0]["nesterov"] is True
    for bad in (
        {"nesterov": True, "optimizer": "adam"},
        {"nesterov": True, "momentum": 0.0},
        {"grad_clip": 0.0},
        {"lr_milestones": [30, 20]},
    ):
        with pytest.raises(MotionsegError):
            TrainConfig.from_dict(bad)


def test_grad_clip_bounds_the_step():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    before = [p.detach().clone() for p in model.parameters()]
    batch = [(torch.randn(6, 4) * 100, torch.tensor([0, 1, 2, 0, 1, 2]))]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # step = -gradient
    run_epoch(model, batch, torch.device("cpu"), False, optimizer, grad_clip=0.01)
    step = torch.cat(
        [(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)]
    )
    assert step.norm() == pytest.approx(0.01, rel=1e-4)


@pytest.mark.parametrize(
    "backbone",
    ["ms", pytest.param("dynamics", marks=pytest.mark.slow)],  # dynamics ~40 s
)
def test_train_and_extract_through_the_cli(toy, tmp_path, backbone):  # noqa: F811
    options, recipe = RECIPES[backbone]
    out = tmp_path / "ckpt"
    settings = json.dumps({**TRAIN, "epochs": 2, **recipe})
    args = [*_train_args(toy, out, backbone), "--options", json.dumps(options), "--train", settings]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    best = load_checkpoint(out / "best.pt")
    assert best["backbone"] == backbone and best["options"] == options
    if backbone == "ms":  # /10 after epoch 1
        assert [float(row["lr"]) for row in _log(out)] == pytest.approx([0.01, 0.001])

    stores = [toy["frames"] / "v0.zarr", toy["frames"] / "v1.zarr"]
    features_dir = tmp_path / "features"
    result = CliRunner().invoke(
        app,
        [
            "features",
            "extract",
            str(out / "best.pt"),
            *map(str, stores),
            "--out-dir",
            str(features_dir),
            "--batch-size",
            "3",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    store = open_store(features_dir / "v0.zarr", ("features", "frame_index"))
    features = store["features"][:]
    assert features.shape == (24, {"ms": 512, "dynamics": 3072}[backbone])
    assert np.isfinite(features).all() and features.std(axis=0).max() > 0
    assert store.attrs["backbone"] == backbone
    assert store.attrs["preprocessing"]["feature_window"] == 4
