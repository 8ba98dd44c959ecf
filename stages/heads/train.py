"""Train a head on a split's training videos, then predict its test videos into a run folder.

Settings follow the TCN reference (Keras defaults): Adam lr 1e-3 for st-cnn, dilated-tcn and
kmeans-mlp, RMSprop lr 1e-3 (rho 0.9, eps 1e-8 as Keras) for ed-tcn, 200 epochs, batch 8;
MS-TCN uses Adam lr 5e-4, 50 epochs, batch 1 as its authors did. Each epoch shuffles the
training videos with a generator seeded by the run's seed (base seed + run), and a batch is
padded to its longest video with a mask, so on CPU the same seed gives the same model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from stages import __version__
from stages.common.atomic import VERSION_KEY, atomic_path, check_destination
from stages.common.errors import MotionsegError
from stages.common.labels import ClassList
from stages.common.manifest import Manifest
from stages.common.options import check_options
from stages.common.outputs import HEAD_RUN
from stages.common.runtime import make_optimizer, resolve_device
from stages.common.scalars import ScalarLog
from stages.common.seeding import seed_everything
from stages.heads.base import IGNORE_INDEX, SegmentationHead
from stages.heads.data import VideoFeatures, feature_sample_rate, load_videos
from stages.heads.predict import make_head, predict_into, save_model
from stages.heads.registry import HEADS

OPTIMIZERS = ("adam", "rmsprop")


@dataclass(frozen=True)
class TrainSettings:
    """Resolved training settings: the head's reference defaults overridden by `--train`."""

    optimizer: str
    lr: float
    epochs: int
    batch_size: int
    sample_rate: int | None = None  # None: the step to the manifest's feature_fps
    weight_decay: float = 0.0
    device: str = "auto"

    @classmethod
    def resolve(cls, head: str, overrides: Mapping[str, Any]) -> TrainSettings:
        values = {**HEADS.get(head).default_train, **check_options(cls, overrides, "--train")}
        try:
            settings = cls(**values)
        except TypeError as err:
            raise MotionsegError(f"--train: {err}") from None
        settings.validate()
        return settings

    def validate(self) -> None:
        problems = []
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0 or (name == "lr" and value == 0):
                problems.append(f"{name} must be a positive number, got {value!r}")
        for name in ("epochs", "batch_size", "sample_rate"):
            value = getattr(self, name)
            if name == "sample_rate" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        device = str(self.device)
        if device not in ("auto", "cpu") and not device.startswith("cuda"):
            problems.append(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        if problems:
            raise MotionsegError("--train: " + "; ".join(problems))

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class TrainLog:
    losses: list[float]
    seconds_per_epoch: list[float]
    unsupervised_fit_seconds: float


def pad_batch(videos: Sequence[VideoFeatures]) -> tuple[torch.Tensor, ...]:
    """Features `[B, C, T]`, mask `[B, 1, T]` and targets `[B, T]` (IGNORE_INDEX on padding)."""
    length = max(v.features.shape[0] for v in videos)
    channels = videos[0].features.shape[1]
    x = torch.zeros(len(videos), channels, length)
    mask = torch.zeros(len(videos), 1, length)
    target = torch.full((len(videos), length), IGNORE_INDEX, dtype=torch.long)
    for i, v in enumerate(videos):
        n = v.features.shape[0]
        x[i, :, :n] = torch.from_numpy(v.features.T)
        mask[i, :, :n] = 1
        target[i, :n] = torch.from_numpy(v.targets)
    return x, mask, target


def fit_head(
    head: SegmentationHead,
    videos: Sequence[VideoFeatures],
    settings: TrainSettings,
    seed: int,
    progress: Callable[[int, float, float], None] | None = None,
) -> TrainLog:
    """Unsupervised fit (if the head has one) on these videos only, then supervised epochs."""
    start = time.perf_counter()
    fit_unsupervised = getattr(head, "fit_unsupervised", None)
    if fit_unsupervised is not None:
        fit_unsupervised([v.features for v in videos], seed=seed)
    log = TrainLog([], [], time.perf_counter() - start)
    device = settings.torch_device()
    head.to(device)
    optimizer = make_optimizer(
        head.parameters(), settings.optimizer, settings.lr, settings.weight_decay
    )
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(settings.epochs):
        start = time.perf_counter()
        head.train()
        total = 0.0
        order = torch.randperm(len(videos), generator=generator).tolist()
        for b in range(0, len(order), settings.batch_size):
            batch = [videos[i] for i in order[b : b + settings.batch_size]]
            x, mask, target = (t.to(device) for t in pad_batch(batch))
            loss = head.loss(x, mask, target)
            if not torch.isfinite(loss):
                raise MotionsegError(
                    f"{type(head).__name__}: training loss became {loss.item()} in epoch "
                    f"{epoch + 1} (videos {[v.video_id for v in batch]}); features too large "
                    "or learning rate too high? No run folder written"
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        log.losses.append(total / len(videos))
        log.seconds_per_epoch.append(time.perf_counter() - start)
        if progress is not None:
            progress(epoch + 1, log.losses[-1], log.seconds_per_epoch[-1])
    head.eval()
    return log


def train_run(
    manifest: Manifest,
    split: str,
    features_dir: Path,
    head_name: str,
    run: int,
    out: Path,
    options: Mapping[str, Any],
    train_overrides: Mapping[str, Any],
    base_seed: int = 0,
    progress: Callable[[int, float, float], None] | None = None,
) -> dict[str, Any]:
    """Train on the split's training videos, predict its test videos, write RUN_DIR atomically.

    RUN_DIR gets `model.pt`, `pred/`, `gt/`, `native/pred/`, `native/gt/`, `run.json` and,
    with tensorboard installed, the loss curve under `tensorboard/`; returns what `run.json`
    holds.
    """
    check_destination(out, HEAD_RUN, inputs=(features_dir,))
    settings = TrainSettings.resolve(head_name, train_overrides)
    train_ids, test_ids = manifest.train_ids(split), manifest.test_ids(split)
    if not train_ids or not test_ids:
        raise MotionsegError(f"{manifest.directory}: split {split} has no training or test videos")
    if settings.sample_rate is None:
        step = feature_sample_rate(features_dir, manifest, train_ids[0])
        settings = replace(settings, sample_rate=step)
    train_videos = load_videos(features_dir, manifest, train_ids, settings.sample_rate)
    test_videos = load_videos(features_dir, manifest, test_ids, settings.sample_rate)
    in_features = train_videos[0].features.shape[1]
    if test_videos[0].features.shape[1] != in_features:
        raise MotionsegError(f"{features_dir}: training and test features differ in width")

    seed = base_seed + run
    seed_everything(seed)
    head = make_head(head_name, in_features, len(manifest.classes), options)
    log = fit_head(head, train_videos, settings, seed, progress)

    info: dict[str, Any] = {
        "head": head_name,
        "options": dict(options),
        "train": asdict(settings),
        "seed": seed,
        "base_seed": base_seed,
        "run": run,
        "dataset": manifest.name,
        "manifest": str(manifest.directory),
        "granularity": manifest.granularity,
        "split": str(split),
        "features": str(features_dir),
        "train_videos": train_ids,
        "test_videos": test_ids,
        "in_features": in_features,
        "num_classes": len(manifest.classes),
        "parameters": sum(p.numel() for p in head.parameters()),
        "device": str(settings.torch_device()),
        "epochs": settings.epochs,
        "unsupervised_fit_seconds": log.unsupervised_fit_seconds,
        "seconds_per_epoch": log.seconds_per_epoch,
        "train_seconds": log.unsupervised_fit_seconds + sum(log.seconds_per_epoch),
        "train_loss": log.losses,
        "final_train_loss": log.losses[-1],
        VERSION_KEY: __version__,
    }
    with atomic_path(out, HEAD_RUN, inputs=(features_dir,)) as tmp:
        tmp.mkdir(parents=True)
        predict_into(head, test_videos, manifest.classes, tmp)
        save_model(tmp / "model.pt", head.cpu(), _model_meta(info, manifest.classes))
        (tmp / "run.json").write_text(json.dumps(info, indent=2) + "\n")
        with ScalarLog(tmp / "tensorboard") as scalars:
            for epoch, loss in enumerate(log.losses, 1):
                scalars.add("train/loss", loss, epoch)
    return info


def _model_meta(info: Mapping[str, Any], classes: ClassList) -> dict[str, Any]:
    return {
        "head": info["head"],
        "in_features": info["in_features"],
        "classes": list(classes.names),
        "background": list(classes.background),
        "granularity": info["granularity"],
        "options": info["options"],
        "train": info["train"],
        "seed": info["seed"],
    }
