"""Does the input pipeline keep the device busy? Real paths vs pure compute, per backbone.

    python benchmarks/bench_pipeline.py [--backbones lcdc dc ...] [--sizes paper demo]
        [--device auto] [--amp | --no-amp] [--frames 64] [--batches 4] [--workers N]
        [--prefetch 1] [--repeats 1]

For every registered backbone (so new ones join by themselves) and size profile, side by side:

- extraction: frames/s of the model alone (`video_features` on random frames already on the
  device, nothing read) vs frames/s of the real path (`extract_features`: frame store on disk
  -> zarr decompression, resize, normalise -> model -> feature store), `--frames` frames;
- training: snippets/s of forward+backward+step alone (`run_epoch` on random batches already
  on the device) vs snippets/s through the real loader (`SnippetDataset` over the frame store,
  `snippet_loader` with its workers, the same `run_epoch`), `--batches` batches, timed on the
  second epoch so persistent workers are already up.

The ratio real / pure is the share of the device's time the pipeline keeps it busy; targets:
extraction >= 0.9, training >= 0.8. Profiles:

- `paper`: the backbone's options in pipeline/config/50salads.yaml (else its defaults, which
  are the paper's: ResNet-50, 224 px crops, 16-frame snippets), frames stored at the config's
  256 px short side (4:3, as 50 Salads' 640x480), the config's batch size (default 3);
- `demo`: the backbone's options in pipeline/config/demo.yaml (else the demo's shared small
  options that the backbone accepts), frames at the demo's 48 px short side, its batch size.

Weights are random (`weights: none`); the frame store is written with the decode stage's
writer (its chunking and codec) from smooth moving random images plus noise. The model runs
with the project's defaults: bf16 autocast on CUDA only (`--amp/--no-amp` to force), the CUDA
speed settings of `stages.common.runtime.DeviceSettings`, `--workers` default the training
auto choice, `--prefetch` default extraction's. Each figure is the best of `--repeats` timed
runs after one untimed warm-up run (allocator, oneDNN/cuDNN algorithm caches).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from stages.common.runtime import DeviceSettings, apply_device_settings, resolve_device
from stages.common.seeding import seed_everything
from stages.decode.frame_store import FrameStoreWriter
from stages.features.checkpoint import save_checkpoint
from stages.features.extract import (
    PREFETCH_PIECES,
    extract_features,
    load_backbone,
    video_features,
)
from stages.features.registry import build_backbone, list_backbones, options_class
from stages.features.snippets import SnippetDataset, Window
from stages.features.train import EpochOrder, TrainConfig, run_epoch, snippet_loader

CONFIG_DIR = Path(__file__).resolve().parent.parent / "pipeline" / "config"
PROFILE_CONFIGS = {"paper": "50salads.yaml", "demo": "demo.yaml"}
NUM_CLASSES = 18  # 50 Salads mid
EXTRACT_BATCH = 8  # `motionseg features extract --batch-size` default
TRAIN_STRIDE = 4  # windows start every 4 frames, as in training
ASPECT = 4 / 3  # 50 Salads is 640x480


@dataclass(frozen=True)
class Profile:
    """One backbone at one size: builder options, stored frame size, training batch size."""

    name: str
    options: dict[str, Any]
    frame_shape: tuple[int, int]  # (height, width) of stored frames
    batch_size: int
    epochs: int


def backbone_entry(config: dict, backbone: str) -> dict | None:
    """The config's entry for registry name `backbone` (an entry's `backbone:` key renames)."""
    for label, entry in (config.get("backbones") or {}).items():
        if (entry or {}).get("backbone", label) == backbone:
            return entry or {}
    return None


def profile_for(backbone: str, size: str, overrides: dict[str, Any] | None = None) -> Profile:
    """Options and sizes of `backbone` in the workflow config of profile `size` (see module
    docstring); `overrides` (options the backbone accepts) replace config values."""
    config = yaml.safe_load((CONFIG_DIR / PROFILE_CONFIGS[size]).read_text())
    accepted = {f.name for f in dataclasses.fields(options_class(backbone))}
    entry = backbone_entry(config, backbone)
    if entry is None and size == "demo":  # the demo's shared small options, where they fit
        shared = next(iter(config["backbones"].values()))
        entry = {"options": shared.get("options", {}), "train": shared.get("train", {})}
    entry = entry or {}
    options = {k: v for k, v in (entry.get("options") or {}).items() if k in accepted}
    options.update({k: v for k, v in (overrides or {}).items() if k in accepted})
    options["weights"] = "none"
    train = TrainConfig.from_dict(entry.get("train") or {})
    short = int(config.get("decode", {}).get("size") or 256)
    return Profile(size, options, (short, round(short * ASPECT)), train.batch_size, train.epochs)


def write_frame_store(path: Path, num_frames: int, shape: tuple[int, int], seed: int = 0) -> Path:
    """A frame store of smooth random images drifting right, plus noise (so chunks compress
    about as real frames do, not as constant or white-noise ones)."""
    rng = np.random.default_rng(seed)
    height, width = shape
    coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 2, 3), dtype=np.uint8)
    base = np.kron(coarse, np.ones((8, 8, 1), dtype=np.uint8))
    with FrameStoreWriter(path) as writer:
        for t in range(num_frames):
            shift = t % 8
            frame = base[:height, shift : shift + width].astype(np.int16)
            frame += rng.integers(-8, 9, frame.shape, dtype=np.int16)
            writer.append(np.clip(frame, 0, 255).astype(np.uint8))
        index = np.arange(num_frames, dtype=np.int64)
        writer.close(index, {"fps": 6.0, "source_fps": 30.0, "frame_indices": index.tolist()})
    return path


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(run: Callable[[int], object], repeats: int, device: torch.device) -> float:
    """Best of `repeats` timed calls `run(k)` (k = 1, 2, ...) after an untimed `run(0)`."""
    run(0)
    synchronize(device)
    times = []
    for k in range(1, repeats + 1):
        start = time.perf_counter()
        run(k)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


@contextlib.contextmanager
def peak_memory(device: torch.device, into: dict[str, float], key: str):
    """Record the peak allocated CUDA memory (GiB) of the block in `into[key]`."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    yield
    if device.type == "cuda":
        into[key] = max(into.get(key, 0.0), torch.cuda.max_memory_allocated(device) / 2**30)


@dataclass(frozen=True)
class Setup:
    """How to run: device, autocast (None: the project's default), input pipeline knobs."""

    device: torch.device
    amp: bool | None
    frames: int
    batches: int
    workers: int | None
    prefetch: int
    repeats: int
    settings: DeviceSettings = DeviceSettings()


def measure_extraction(
    backbone: str, profile: Profile, setup: Setup, work: Path, figures: dict[str, float]
) -> None:
    """`extract_fps_pure`, `extract_fps_real` (and `extract_peak_gib` on CUDA) into `figures`."""
    device = setup.device
    torch.manual_seed(0)
    model = build_backbone(backbone, NUM_CLASSES, **profile.options).eval()
    checkpoint = save_checkpoint(
        {
            "backbone": backbone,
            "num_classes": NUM_CLASSES,
            "classes": [f"c{i}" for i in range(NUM_CLASSES)],
            "options": profile.options,
            "preprocessing": model.preprocessing.to_dict(),
            "state_dict": model.state_dict(),
            "epoch": 1,
        },
        work / f"{backbone}.pt",
    )
    loaded = load_backbone(checkpoint, str(device), setup.settings)
    prep = loaded.model.preprocessing
    store = work / "frames" / "video.zarr"
    video = torch.randn(setup.frames, 3, prep.crop, prep.crop, device=device)

    def pure(_: int) -> None:
        video_features(
            loaded.model,
            lambda lo, hi: video[lo:hi],
            setup.frames,
            EXTRACT_BATCH,
            device,
            setup.amp,
            prefetch=0,
        )

    def real(k: int) -> None:
        out = work / "features" / f"{backbone}-{k}.zarr"
        extract_features(
            loaded,
            store,
            out,
            batch_size=EXTRACT_BATCH,
            amp=setup.amp,
            echo=str,
            prefetch=setup.prefetch,
        )

    with peak_memory(device, figures, "extract_peak_gib"):
        figures["extract_fps_pure"] = setup.frames / best_seconds(pure, setup.repeats, device)
        figures["extract_fps_real"] = setup.frames / best_seconds(real, setup.repeats, device)


def measure_training(
    backbone: str,
    profile: Profile,
    setup: Setup,
    frames_dir: Path,
    figures: dict[str, float],
    evaluate: bool = False,
) -> None:
    """`train_sps_pure`, `train_sps_real` (snippets/s), with `evaluate` also `eval_sps_real`
    (validation forward through the loader), and `train_peak_gib` on CUDA, into `figures`."""
    device = setup.device
    seed_everything(0)
    model = build_backbone(backbone, NUM_CLASSES, **profile.options).to(device)
    apply_device_settings(model, device, setup.settings)
    prep = model.preprocessing
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
    batch, count = profile.batch_size, setup.batches * profile.batch_size
    shape = (batch, prep.snippet_length, 3, prep.crop, prep.crop)
    batches = [
        (torch.randn(shape, device=device), torch.randint(NUM_CLASSES, (batch,), device=device))
        for _ in range(setup.batches)
    ]
    starts = max(1, setup.frames - prep.snippet_length + 1)
    windows = [
        Window("video", (i * TRAIN_STRIDE) % starts, i % NUM_CLASSES, 1.0) for i in range(count)
    ]
    workers = TrainConfig(num_workers=setup.workers).workers(device)
    order = EpochOrder()
    fit = snippet_loader(
        SnippetDataset(windows, frames_dir, prep, train=True), order, batch, workers, device
    )

    def pure(_: int) -> None:
        run_epoch(model, batches, device, setup.amp, optimizer)

    def real(k: int) -> None:
        order.set(k, range(count))
        run_epoch(model, fit, device, setup.amp, optimizer)

    with peak_memory(device, figures, "train_peak_gib"):
        figures["train_sps_pure"] = count / best_seconds(pure, setup.repeats, device)
        figures["train_sps_real"] = count / best_seconds(real, setup.repeats, device)
    figures["workers"] = workers
    figures["crop"] = prep.crop
    if evaluate:
        val_order = EpochOrder()
        val_order.set(0, range(count))
        val_set = SnippetDataset(windows, frames_dir, prep, train=False)
        val = snippet_loader(val_set, val_order, batch, workers, device)

        def evaluate_once(_: int) -> None:
            run_epoch(model, val, device, setup.amp)

        figures["eval_sps_real"] = count / best_seconds(evaluate_once, setup.repeats, device)


def measure(
    backbone: str, profile: Profile, setup: Setup, evaluate: bool = False
) -> dict[str, float]:
    """All figures of one backbone/profile, on a frame store written for the occasion."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        work = Path(tmp)
        write_frame_store(work / "frames" / "video.zarr", setup.frames, profile.frame_shape)
        measure_extraction(backbone, profile, setup, work, figures)
        measure_training(backbone, profile, setup, work / "frames", figures, evaluate)
    return figures


def machine_line(device: torch.device) -> str:
    """Device, threads and load: figures on a shared machine need their context."""
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return (
        f"device {device} ({name}), {torch.get_num_threads()} torch threads, "
        f"{os.cpu_count()} cores, load average {load}"
    )


def ratio_cell(real: float, pure: float, target: float) -> str:
    ratio = real / pure
    return f"{ratio:.2f}{'' if ratio >= target else ' <'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="*", default=None, help="default: all registered")
    parser.add_argument("--sizes", nargs="*", default=list(PROFILE_CONFIGS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--frames", type=int, default=64, help="video length, extraction")
    parser.add_argument("--batches", type=int, default=4, help="training batches per epoch")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (auto)")
    parser.add_argument("--prefetch", type=int, default=PREFETCH_PIECES)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    device = resolve_device(args.device)
    setup = Setup(
        device, args.amp, args.frames, args.batches, args.workers, args.prefetch, args.repeats
    )
    print(machine_line(device))
    print(
        f"amp {args.amp} (None: bf16 on CUDA only), {args.frames} frames, {args.batches} "
        f"batches, prefetch {args.prefetch}; ratio = real / pure, '<' under target"
    )
    print(
        f"{'backbone':<20}{'size':<7}{'crop':>5}{'workers':>8} | {'extract fps: pure':>18}"
        f"{'real':>8}{'ratio':>8} | {'train snippets/s: pure':>23}{'real':>8}{'ratio':>8}"
    )
    for name in args.backbones or list_backbones():
        for size in args.sizes:
            profile = profile_for(name, size)
            f = measure(name, profile, setup)
            print(
                f"{name:<20}{size:<7}{f['crop']:>5}{f['workers']:>8} | "
                f"{f['extract_fps_pure']:>18.2f}{f['extract_fps_real']:>8.2f}"
                f"{ratio_cell(f['extract_fps_real'], f['extract_fps_pure'], 0.9):>8} | "
                f"{f['train_sps_pure']:>23.2f}{f['train_sps_real']:>8.2f}"
                f"{ratio_cell(f['train_sps_real'], f['train_sps_pure'], 0.8):>8}",
                flush=True,
            )


if __name__ == "__main__":
    main()
