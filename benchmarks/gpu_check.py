"""One-shot GPU check: fp32 vs bf16 speed of every backbone at paper size, and what that means
for a full 50 Salads run. The Python part of `benchmarks/gpu_check.sh` (which checks for CUDA
and bounds the time).

    python benchmarks/gpu_check.py [--device cuda] [--backbones ...] [--frames 768]
        [--batches 8] [--budget-s 400] [--options JSON] [--frame-size H]

For every registered backbone (random weights, no download), with the `paper` profile of
`bench_pipeline.py` (pipeline/config/50salads.yaml options, 224 px crops, frames stored at
256 px), in fp32 and in bf16 autocast: training snippets/s through the real loader and of pure
forward+backward (their ratio, target >= 0.8), validation snippets/s through the loader,
extraction frames/s through the real path and of the model alone (ratio, target >= 0.9), and
the peak CUDA memory of training and of extraction. Extraction runs on a `--frames`-frame
video (768: three blocks); only its first piece is read without overlap, which weighs more
than in a 50 Salads video (~2,300 frames at 6 fps), so that ratio is slightly pessimistic.
Backbones left when `--budget-s` seconds have passed are listed as not measured, so the
check ends in time.

Estimated wall time of `results/50salads` (backbone fine-tuning and extraction, one GPU, one
job after another; decoding and heads not included), for each backbone of
pipeline/config/50salads.yaml, with the precision the pipeline uses (bf16 autocast on CUDA):

    splits x (epochs x (fit snippets / train snippets/s + val snippets / val snippets/s)
              + all videos' frames / extraction frames/s)

Splits, their training videos and the validation share (the config's `val_fraction`, default
10% of a split's training videos) come from data_manifests/50salads and the config; frames per
video are the dataset's ~577k frames at 30 fps (about 5.3 hours; datasets.md) over its 50
videos, sampled at the manifest's `backbone_fps`; snippets are one per `stride` frames, an
upper bound, since windows under the purity threshold are dropped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import yaml
from bench_pipeline import (
    ASPECT,
    CONFIG_DIR,
    Profile,
    Setup,
    machine_line,
    measure,
    profile_for,
)

from stages.common.errors import MotionsegError
from stages.common.manifest import load_manifest
from stages.common.runtime import resolve_device
from stages.features.extract import PREFETCH_PIECES
from stages.features.registry import list_backbones
from stages.features.train import TrainConfig, choose_validation

SALADS_CONFIG = CONFIG_DIR / "50salads.yaml"
SALADS_NATIVE_FRAMES = 577_000  # all 50 videos at 30 fps (../shared/reference/datasets.md)
PRECISIONS = {"fp32": False, "bf16": True}


def salads_workload(backbone_label: str) -> dict[str, float]:
    """Per split (averaged over splits): fit/val snippets per epoch, epochs, frames to extract."""
    config = yaml.safe_load(SALADS_CONFIG.read_text())
    repo = SALADS_CONFIG.parent.parent.parent
    manifest = load_manifest(repo / config["manifest"], granularity=config.get("granularity"))
    entry = config["backbones"][backbone_label] or {}
    train = TrainConfig.from_dict(entry.get("train") or {})
    rate = float(manifest.settings["backbone_fps"]) / manifest.fps
    per_video = SALADS_NATIVE_FRAMES / len(manifest.video_ids) * rate
    splits = manifest.split_names if config.get("splits", "all") == "all" else config["splits"]
    fit = val = 0.0
    for split in splits:
        train_ids = manifest.train_ids(split)
        held_out = len(choose_validation(train_ids, train.val_fraction, config.get("seed", 0)))
        fit_snippets = (len(train_ids) - held_out) * per_video / train.stride
        if train.max_snippets_per_epoch is not None:
            fit_snippets = min(fit_snippets, train.max_snippets_per_epoch)
        fit += fit_snippets / len(splits)
        val += held_out * per_video / train.stride / len(splits)
    return {
        "splits": len(splits),
        "epochs": train.epochs,
        "fit_snippets": fit,
        "val_snippets": val,
        "extract_frames": len(manifest.video_ids) * per_video,
    }


def estimated_hours(work: dict[str, float], figures: dict[str, float]) -> float:
    """The module docstring's formula, in hours."""
    epoch = work["fit_snippets"] / figures["train_sps_real"]
    epoch += work["val_snippets"] / figures["eval_sps_real"]
    per_split = work["epochs"] * epoch + work["extract_frames"] / figures["extract_fps_real"]
    return work["splits"] * per_split / 3600


def paper_profile(backbone: str, overrides: dict, frame_size: int | None) -> Profile:
    """`bench_pipeline`'s paper profile; `overrides`/`frame_size` shrink it (smoke test)."""
    profile = profile_for(backbone, "paper", overrides)
    if frame_size is None:
        return profile
    return dataclasses.replace(profile, frame_shape=(frame_size, round(frame_size * ASPECT)))


def print_header() -> None:
    print(
        f"{'backbone':<20}{'prec':<6}| {'train sps: real':>15}{'pure':>8}{'ratio':>7}"
        f"{'val sps':>9} | {'extract fps: real':>17}{'pure':>8}{'ratio':>7} | "
        f"{'peak GiB: train':>15}{'extract':>8}",
        flush=True,
    )


def print_row(name: str, precision: str, f: dict[str, float]) -> None:
    """One line per measurement as it comes, so a timeout still leaves the rows done."""
    train_ratio = f["train_sps_real"] / f["train_sps_pure"]
    extract_ratio = f["extract_fps_real"] / f["extract_fps_pure"]
    print(
        f"{name:<20}{precision:<6}| {f['train_sps_real']:>15.3g}{f['train_sps_pure']:>8.3g}"
        f"{train_ratio:>7.2f}{f['eval_sps_real']:>9.3g} | {f['extract_fps_real']:>17.4g}"
        f"{f['extract_fps_pure']:>8.4g}{extract_ratio:>7.2f} | "
        f"{f.get('train_peak_gib', float('nan')):>15.2f}"
        f"{f.get('extract_peak_gib', float('nan')):>8.2f}",
        flush=True,
    )


def print_estimate(results: dict[str, dict[str, dict[str, float]]], precision: str) -> None:
    config = yaml.safe_load(SALADS_CONFIG.read_text())
    print(f"\nEstimated results/50salads wall time ({precision}; fine-tuning + extraction):")
    total, missing = 0.0, []
    for label, entry in config["backbones"].items():
        name = (entry or {}).get("backbone", label)
        if name not in results:
            missing.append(label)
            continue
        work = salads_workload(label)
        hours = estimated_hours(work, results[name][precision])
        total += hours
        print(
            f"  {label:<20}{hours:>7.1f} h  ({work['splits']} splits x {work['epochs']} epochs "
            f"of {work['fit_snippets']:.0f} + {work['val_snippets']:.0f} val snippets; "
            f"{work['extract_frames']:.0f} frames extracted per split)"
        )
    print(
        f"  {'all measured':<20}{total:>7.1f} h" + (f"; not measured: {missing}" if missing else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backbones", nargs="*", default=None, help="default: all registered")
    parser.add_argument("--frames", type=int, default=768, help="video length, extraction")
    parser.add_argument("--batches", type=int, default=8, help="training batches timed")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (auto)")
    parser.add_argument("--budget-s", type=float, default=400.0, help="stop starting backbones")
    parser.add_argument("--options", default="{}", help="JSON options for every backbone")
    parser.add_argument("--frame-size", type=int, default=None, help="stored short side")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        device = resolve_device(args.device)
    except MotionsegError as err:
        print(f"gpu_check: {err}")
        return 2
    overrides = json.loads(args.options)
    print(machine_line(device))
    print(f"{args.frames} frames extracted, {args.batches} training batches timed; sps: snippets/s")
    print_header()
    results: dict[str, dict[str, dict[str, float]]] = {}
    skipped: list[str] = []
    for name in args.backbones or list_backbones():
        if time.perf_counter() - started > args.budget_s:
            skipped.append(name)
            continue
        profile = paper_profile(name, overrides, args.frame_size)
        for precision, amp in PRECISIONS.items():
            setup = Setup(device, amp, args.frames, args.batches, args.workers, PREFETCH_PIECES, 1)
            figures = measure(name, profile, setup, evaluate=True)
            results.setdefault(name, {})[precision] = figures
            print_row(name, precision, figures)
    if skipped:
        print(f"not measured (time budget {args.budget_s:.0f} s): {skipped}")
    print_estimate(results, "bf16" if device.type == "cuda" else "fp32")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
