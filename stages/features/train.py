"""Fine-tune a backbone on snippets of one split's training videos; resumable per epoch.

Defaults follow the LCDC paper (seed 000, section 4.1) and ../reference/backbones.md: momentum
SGD 0.9, lr 1e-4 decayed x0.96 every 10 epochs (stepped per epoch), 30 epochs, batches of 3
snippets, cross-entropy. Choices the paper leaves open:

- `optimizer: adam` (Adam, same lr/weight decay/schedule; momentum unused) exists for training
  from random init on a CPU budget, as the demo does: momentum SGD at the paper's rate assumes
  ImageNet initialisation and barely moves a random network in a few hundred steps;
- weight decay 5e-4 ("weight regularization" without a value; 5e-4 is the value of the
  deformable-ConvNets code the authors started from);
- validation: a fraction (`val_fraction`, 10%, at least one video when there are two or more)
  of the split's *training* videos, whole videos; test videos are never used. The videos are
  picked to cover as many classes as possible (greedily, the one adding most unseen classes
  first, ties in a seeded random order), since a held-out video missing whole classes cannot
  rank epochs on a small dataset. `best.pt` is the epoch with the best validation snippet
  accuracy (the latest on ties: more training), or the last epoch without validation
  (`val_fraction: 0`);
- `bn_batches` (default 0, off): before validation and before an epoch is saved, the running
  statistics of every BatchNorm layer that trains (not those `freeze_bn` freezes) are
  recomputed as plain averages over that many training batches (seeded, augmented as in
  training), so eval mode (validation, extraction) matches what the weights were trained
  with. From random init, a few dozen optimiser steps leave the exponential running averages
  far from the current statistics (the demo needs this);
- other papers' recipes are general options: `nesterov` (Nesterov momentum, SGD only),
  `grad_clip` (clip the total gradient norm of each step to this value; MotionSqueeze 200,
  disentangled dynamics 20) and `lr_milestones` (multiply the lr by `lr_decay` after each
  listed epoch instead of every `lr_decay_every` epochs; MotionSqueeze: 0.1 at 20 and 30);
- `max_snippets_per_epoch` (for demos) trains on a seeded random subset each epoch and caps
  the validation windows at the same number (evenly spaced, fixed across epochs);
- disk: each epoch writes `epoch_NNN.pt`; older ones are deleted except the best so far
  (`keep_all_epochs: true` keeps them all), since a ResNet-50 checkpoint with its momentum
  buffers is ~200 MB;
- input: `num_workers` None (auto) gives loader worker processes only on CUDA, where the CPU
  is otherwise idle (all usable cores but one, at most `MAX_AUTO_WORKERS`); on CPU the model's
  own threads use the cores and reading a snippet is a small share of a step (measured in
  `benchmarks/bench_pipeline.py`), so it loads in the training process. Workers persist
  across epochs and pin memory on CUDA. Worker count never changes the result (tested);
- CUDA speed settings `channels_last`, `tf32`, `cudnn_benchmark`
  (`stages.common.runtime.DeviceSettings`), none of which acts on CPU.

A rerun resumes after the newest epoch checkpoint. All randomness is a function of the seed
and the epoch, so an interrupted and resumed run gives the same weights as an uninterrupted one
(bit for bit on CPU).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from stages.common.atomic import atomic_path, check_destination
from stages.common.errors import MotionsegError
from stages.common.manifest import Manifest
from stages.common.options import check_options
from stages.common.outputs import CHECKPOINT, TRAINING_LOG
from stages.common.progress import Progress
from stages.common.runtime import (
    DeviceSettings,
    apply_device_settings,
    autocast,
    make_optimizer,
    resolve_device,
    usable_cores,
)
from stages.common.scalars import ScalarLog
from stages.common.seeding import seed_everything
from stages.features.base import Backbone
from stages.features.checkpoint import link_atomically, load_checkpoint, save_checkpoint
from stages.features.registry import build_backbone
from stages.features.snippets import SnippetDataset, build_windows

EPOCH_FILE = re.compile(r"epoch_(\d{3,})\.pt")
LOG_COLUMNS = ("epoch", "train_loss", "train_acc", "val_acc", "lr", "seconds")
DEFAULT_PURITY = 0.7
MAX_AUTO_WORKERS = 8  # cap of the auto choice; gpu_check.sh shows whether they keep up


@dataclass(frozen=True)
class TrainConfig:
    """Keys of `--train JSON`. `purity` None: the manifest's `settings.purity`, else 0.7."""

    epochs: int = 30
    batch_size: int = 3
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_decay: float = 0.96
    lr_decay_every: int = 10
    lr_milestones: tuple[int, ...] | None = None
    nesterov: bool = False
    grad_clip: float | None = None
    stride: int = 4
    purity: float | None = None
    val_fraction: float = 0.1
    max_snippets_per_epoch: int | None = None
    num_workers: int | None = None
    device: str = "auto"
    amp: bool | None = None
    channels_last: bool = True
    tf32: bool = True
    cudnn_benchmark: bool = True
    keep_all_epochs: bool = False
    bn_batches: int = 0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        config = cls(**check_options(cls, values, "training"))
        if config.epochs < 1 or config.batch_size < 1 or config.stride < 1:
            raise MotionsegError("training options epochs, batch_size and stride must be >= 1")
        if config.bn_batches < 0:
            raise MotionsegError(f"bn_batches must be >= 0, got {config.bn_batches}")
        if not 0 <= config.val_fraction < 1:
            raise MotionsegError(f"val_fraction must be in [0, 1), got {config.val_fraction}")
        if config.nesterov and (config.optimizer != "sgd" or config.momentum <= 0):
            raise MotionsegError("nesterov needs optimizer sgd with momentum > 0")
        if config.grad_clip is not None and config.grad_clip <= 0:
            raise MotionsegError(f"grad_clip must be > 0, got {config.grad_clip}")
        milestones = config.lr_milestones or ()
        if any(m < 1 for m in milestones) or list(milestones) != sorted(set(milestones)):
            raise MotionsegError(
                f"lr_milestones must be increasing epochs >= 1, got {list(milestones)}"
            )
        if config.num_workers is not None and config.num_workers < 0:
            raise MotionsegError(f"num_workers must be >= 0, got {config.num_workers}")
        return config

    def scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        """x `lr_decay` after each of `lr_milestones`, else every `lr_decay_every` epochs."""
        if self.lr_milestones:
            return torch.optim.lr_scheduler.MultiStepLR(
                optimizer, milestones=list(self.lr_milestones), gamma=self.lr_decay
            )
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=self.lr_decay_every, gamma=self.lr_decay
        )

    def affects_result(self) -> dict[str, Any]:
        """The options a resumed run must share with the run it continues."""
        ignored = {"epochs", "num_workers", "device", "amp", "keep_all_epochs"}
        ignored |= {f.name for f in dataclasses.fields(DeviceSettings)}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ignored}

    def device_settings(self) -> DeviceSettings:
        return DeviceSettings(self.channels_last, self.tf32, self.cudnn_benchmark)

    def workers(self, device: torch.device) -> int:
        """Loader worker processes: `num_workers`, or the auto choice (module docstring)."""
        if self.num_workers is not None:
            return self.num_workers
        if device.type != "cuda":
            return 0
        return max(0, min(MAX_AUTO_WORKERS, usable_cores() - 1))


def choose_validation(
    train_ids: Sequence[str],
    fraction: float,
    seed: int,
    classes_of: Mapping[str, Set[str]] | None = None,
) -> list[str]:
    """Whole training videos held out for model selection (never a test video).

    With `classes_of` (the classes each video shows) the videos are picked greedily to cover
    the most classes, ties in a seeded random order; without it, at random with the seed.
    """
    if len(train_ids) < 2 or fraction <= 0:
        return []
    count = min(len(train_ids) - 1, max(1, round(fraction * len(train_ids))))
    order = np.random.default_rng(seed).permutation(len(train_ids)).tolist()
    if classes_of is None:
        return [train_ids[i] for i in sorted(order[:count])]
    picked: list[int] = []
    covered: set[str] = set()
    for _ in range(count):
        best = max(
            (i for i in order if i not in picked),
            key=lambda i: len(set(classes_of[train_ids[i]]) - covered),
        )  # max keeps the first of equals, i.e. the seeded order breaks ties
        picked.append(best)
        covered |= set(classes_of[train_ids[best]])
    return [train_ids[i] for i in sorted(picked)]


def epoch_path(out_dir: Path, epoch: int) -> Path:
    return out_dir / f"epoch_{epoch:03d}.pt"


def existing_epochs(out_dir: Path) -> list[int]:
    return sorted(
        int(m.group(1)) for p in out_dir.glob("epoch_*.pt") if (m := EPOCH_FILE.fullmatch(p.name))
    )


def best_epoch(history: Sequence[Mapping[str, Any]]) -> int:
    """Best validation accuracy (latest on ties); the last epoch without validation."""
    scored = [row for row in history if row["val_acc"] is not None]
    if not scored:
        return int(history[-1]["epoch"])
    return int(max(scored, key=lambda row: (row["val_acc"], row["epoch"]))["epoch"])


def write_log(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    with atomic_path(path, TRAINING_LOG) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: "" if row[k] is None else row[k] for k in LOG_COLUMNS})


def _evenly_spaced(count: int, cap: int | None) -> list[int]:
    if cap is None or count <= cap:
        return list(range(count))
    return np.linspace(0, count - 1, cap).round().astype(int).tolist()


def without_lone_last(order: np.ndarray, batch_size: int) -> list[int]:
    """The epoch's order less its last sample when that one would be a batch of its own: one
    snippet gives BatchNorm a single value per channel at small maps (an error in training)
    and one noisy step. Orders are reshuffled every epoch, so no snippet is always left out."""
    lone = batch_size > 1 and len(order) % batch_size == 1
    return order[: len(order) - lone].tolist()


class EpochOrder(torch.utils.data.Sampler):
    """The samples of the current epoch as `(epoch, index)` keys, in the order last set.

    The loader asks its sampler for a fresh iterator in the main process every epoch, so
    persistent workers get each epoch's order and epoch number with the keys.
    """

    def __init__(self) -> None:
        self.epoch = 0
        self.order: list[int] = []

    def set(self, epoch: int, order: Sequence[int]) -> None:
        self.epoch, self.order = epoch, list(order)

    def __iter__(self):
        return ((self.epoch, index) for index in self.order)

    def __len__(self) -> int:
        return len(self.order)


def snippet_loader(
    dataset: SnippetDataset,
    sampler: EpochOrder,
    batch_size: int,
    workers: int,
    device: torch.device,
    seed: int = 0,
) -> torch.utils.data.DataLoader:
    """The training/validation loader: `workers` persistent processes, pinned memory on CUDA.

    Samples depend only on (seed, epoch, index) (`stages.features.snippets`), so batches are
    the same with any number of workers; the loader's own generator (it seeds the workers'
    torch RNG) is seeded and does not draw from the global one the model's training uses.
    """
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def run_epoch(
    model: Backbone,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    amp: bool | None,
    optimizer: torch.optim.Optimizer | None = None,
    on_step: Callable[[float], None] | None = None,
    grad_clip: float | None = None,
) -> tuple[float, float]:
    """One pass; trains when an optimizer is given (clipping the gradient norm to
    `grad_clip` if set). Returns (mean loss, accuracy).

    `on_step` gets each batch's mean loss (progress, TensorBoard)."""
    training = optimizer is not None
    model.train(training)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total_loss, correct, seen = 0.0, 0, 0
    grad = contextlib.nullcontext() if training else torch.inference_mode()
    with grad:
        for snippets, labels in loader:
            snippets = snippets.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with autocast(device, amp):
                logits = model(snippets)
            loss = loss_fn(logits.float(), labels)
            if training:
                optimizer.zero_grad(set_to_none=True)
                (loss / len(labels)).backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
            total_loss += float(loss.detach())
            correct += int((logits.argmax(dim=1) == labels).sum())
            seen += len(labels)
            if on_step is not None:
                on_step(float(loss.detach()) / len(labels))
    return total_loss / max(seen, 1), correct / max(seen, 1)


def reestimate_batchnorm(
    model: nn.Module, loader: Iterable, device: torch.device, amp: bool | None
) -> None:
    """Recompute the running statistics of every BatchNorm layer that trains (in train mode)
    as the plain average over `loader`'s batches; weights and frozen layers are untouched."""
    model.train()
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    layers = [m for m in layers if m.training]
    momenta = [m.momentum for m in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average
    with torch.no_grad():
        for snippets, _ in loader:
            with autocast(device, amp):
                model(snippets.to(device, non_blocking=True))
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum


def train_backbone(
    manifest: Manifest,
    split: str,
    backbone: str,
    frames_dir: str | Path,
    out_dir: str | Path,
    options: Mapping[str, Any] | None = None,
    config: TrainConfig | None = None,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> Path:
    """Fine-tune `backbone` on split `split`, write checkpoints to `out_dir`, return best.pt."""
    options = dict(options or {})
    config = config or TrainConfig()
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)

    train_ids = manifest.train_ids(split)
    classes_of = {v: set(manifest.labels(v)) for v in train_ids}
    val_ids = choose_validation(train_ids, config.val_fraction, seed, classes_of)
    fit_ids = [v for v in train_ids if v not in val_ids]
    purity = config.purity
    if purity is None:
        purity = float(manifest.settings.get("purity", DEFAULT_PURITY))

    seed_everything(seed)
    model = build_backbone(backbone, len(manifest.classes), **options)
    prep = model.preprocessing
    length = prep.label_length()
    fit_windows = build_windows(manifest, fit_ids, frames_dir, length, config.stride, purity)
    val_windows = build_windows(manifest, val_ids, frames_dir, length, config.stride, purity)
    if not fit_windows:
        raise MotionsegError(
            f"split {split}: no training snippet of {length} frames with purity >= {purity} "
            f"in {len(fit_ids)} video(s) under {frames_dir}"
        )
    cap = config.max_snippets_per_epoch
    val_windows = [val_windows[i] for i in _evenly_spaced(len(val_windows), cap)]
    fit_set = SnippetDataset(fit_windows, frames_dir, prep, train=True, seed=seed)
    val_set = SnippetDataset(val_windows, frames_dir, prep, train=False)

    model.to(device)
    apply_device_settings(model, device, config.device_settings())
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(
        params, config.optimizer, config.lr, config.weight_decay, config.momentum, config.nesterov
    )
    scheduler = config.scheduler(optimizer)
    identity = {
        "backbone": backbone,
        "num_classes": len(manifest.classes),
        "classes": list(manifest.classes.names),
        "options": options,
        "preprocessing": prep.to_dict(),
        "dataset": manifest.name,
        "granularity": manifest.granularity,
        "split": str(split),
        "seed": seed,
        "train_videos": fit_ids,
        "val_videos": val_ids,
        "train_config": config.affects_result(),
    }

    history: list[dict[str, Any]] = []
    done = [e for e in existing_epochs(out_dir) if e <= config.epochs]
    if done:
        history = _resume(epoch_path(out_dir, done[-1]), identity, model, optimizer, scheduler)
        echo(f"resuming after epoch {done[-1]} from {epoch_path(out_dir, done[-1])}")
    workers = config.workers(device)
    echo(
        f"{backbone}: {len(fit_windows)} training snippets ({len(fit_ids)} videos), "
        f"{len(val_windows)} validation snippets ({len(val_ids)} videos), device {device}, "
        f"{workers} loader workers"
    )

    fit_order, val_order = EpochOrder(), EpochOrder()
    val_order.set(0, range(len(val_set)))
    fit_loader = snippet_loader(fit_set, fit_order, config.batch_size, workers, device, seed)
    val_loader = snippet_loader(val_set, val_order, config.batch_size, workers, device, seed)
    scalars = ScalarLog(out_dir / "tensorboard")
    for epoch in range(len(history) + 1, config.epochs + 1):
        started = time.perf_counter()
        order = np.random.default_rng([seed, epoch]).permutation(len(fit_set))[:cap]
        fit_order.set(epoch, without_lone_last(order, config.batch_size))
        lr = optimizer.param_groups[0]["lr"]
        label = f"{backbone} split {split} epoch {epoch}/{config.epochs}"
        with Progress(label, len(fit_loader), "steps") as progress:

            def step(batch_loss: float, progress: Progress = progress, before: int = epoch - 1):
                """Per batch: the bar, and the loss at the global step (steps of all epochs)."""
                progress.update(loss=batch_loss)
                scalars.add("train/step_loss", batch_loss, before * progress.total + progress.done)

            loss, acc = run_epoch(
                model, fit_loader, device, config.amp, optimizer, step, config.grad_clip
            )
        if config.bn_batches:
            bn_order = np.random.default_rng([seed, epoch, 1]).permutation(len(fit_set))
            fit_order.set(epoch, bn_order[: config.bn_batches * config.batch_size].tolist())
            reestimate_batchnorm(model, fit_loader, device, config.amp)
        val_acc = None
        if len(val_set):
            val_acc = run_epoch(model, val_loader, device, config.amp)[1]
        scheduler.step()
        for tag, value in (("train/loss", loss), ("train/acc", acc), ("val/acc", val_acc)):
            scalars.add(tag, value, epoch)
        scalars.add("lr", lr, epoch)
        row = {
            "epoch": epoch,
            "train_loss": loss,
            "train_acc": acc,
            "val_acc": val_acc,
            "lr": lr,
            "seconds": round(time.perf_counter() - started, 3),
        }
        history.append(row)
        save_checkpoint(
            {
                **identity,
                "state_dict": model.state_dict(),
                "epoch": epoch,
                "val_acc": val_acc,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "history": history,
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
            },
            epoch_path(out_dir, epoch),
        )
        write_log(out_dir / "train_log.csv", history)
        if not config.keep_all_epochs:
            _prune(out_dir, keep={epoch, best_epoch(history)})
        shown = "-" if val_acc is None else f"{val_acc:.4f}"
        echo(f"epoch {epoch}: loss {loss:.4f} acc {acc:.4f} val_acc {shown} lr {lr:.3g}")

    scalars.close()
    chosen = best_epoch(history[: config.epochs])
    echo(f"best epoch {chosen} -> {out_dir / 'best.pt'}")
    return link_atomically(epoch_path(out_dir, chosen), out_dir / "best.pt")


def _resume(
    path: Path,
    identity: Mapping[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> list[dict[str, Any]]:
    """Load the state of `path` into model/optimizer/scheduler; refuse a different setup."""
    checkpoint = load_checkpoint(path)
    differs = sorted(k for k, v in identity.items() if checkpoint.get(k) != v)
    if differs:
        raise MotionsegError(
            f"{path}: written by a run with different {differs}; delete {path.parent} to "
            "start over or use another output folder"
        )
    model.load_state_dict(checkpoint["state_dict"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    random.setstate(checkpoint["rng"]["python"])
    return [dict(row) for row in checkpoint["history"]][: checkpoint["epoch"]]


def _check_out_dir(out_dir: Path) -> None:
    """Before any training: every file this run may replace or prune is one of ours."""
    check_destination(out_dir / "best.pt", CHECKPOINT)
    check_destination(out_dir / "train_log.csv", TRAINING_LOG)
    for epoch in existing_epochs(out_dir) if out_dir.is_dir() else []:
        check_destination(epoch_path(out_dir, epoch), CHECKPOINT)


def _prune(out_dir: Path, keep: set[int]) -> None:
    for epoch in existing_epochs(out_dir):
        if epoch not in keep:
            epoch_path(out_dir, epoch).unlink(missing_ok=True)
