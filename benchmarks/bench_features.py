"""CPU cost of the backbones: fine-tuning step per snippet and extraction throughput.

    python benchmarks/bench_features.py [--backbones resnet lcdc ...] [--depths 18 50]
        [--size 224] [--windows 4] [--frames 32] [--repeats 2] [--extract-only]

For every backbone (random weights, 18 classes; `--depths` if given, else `resnet` at depth 18
and 50 and the others at their default depth) it prints:

- the time of one forward+backward pass on one 16-frame snippet (training mode; a model whose
  training example is shorter, like `naive-appear`, gets its own `snippet_length`, shown in
  the table), unless `--extract-only`;
- the extraction rate in frames (= features) per second, two ways: "per window", the
  definition, `forward_features` on `--windows` centred windows of `feature_window` frames
  (every frame goes through the trunk once per window it is in), and "two-phase", what
  `stages.features.extract.video_features` does on a `--frames`-frame video (each frame
  encoded once, then only the per-window part per feature; batch size 8).

Best of `--repeats` timed runs after one warm-up, in inference mode for extraction.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable

import torch

from stages.features.extract import video_features
from stages.features.registry import build_backbone, list_backbones, options_class

NUM_CLASSES = 18
SNIPPET = 16
EXTRACT_BATCH = 8


def best_time(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: allocator, oneDNN primitive caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def train_seconds(model: torch.nn.Module, size: int, repeats: int) -> float:
    length = min(SNIPPET, model.preprocessing.snippet_length)
    snippet = torch.randn(1, length, 3, size, size)
    labels = torch.zeros(1, dtype=torch.long)

    def step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(snippet), labels).backward()

    return best_time(step, repeats)


def extraction_fps(model: torch.nn.Module, size: int, windows: int, frames: int, repeats: int):
    """(per-window fps, two-phase fps)."""
    model.eval()
    batch = torch.randn(windows, model.preprocessing.feature_window, 3, size, size)

    def per_window() -> None:
        with torch.inference_mode():
            model.forward_features(batch)

    video = torch.randn(frames, 3, size, size)

    def two_phase() -> None:
        video_features(
            model, lambda lo, hi: video[lo:hi], frames, EXTRACT_BATCH, torch.device("cpu")
        )

    return windows / best_time(per_window, repeats), frames / best_time(two_phase, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="*", default=None, help="default: all registered")
    parser.add_argument("--depths", type=int, nargs="*", default=None, help="ResNet depths")
    parser.add_argument("--size", type=int, default=224, help="crop side in pixels")
    parser.add_argument("--windows", type=int, default=4, help="windows, per-window extraction")
    parser.add_argument("--frames", type=int, default=32, help="video length, two-phase")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--extract-only", action="store_true", help="skip the training step")
    args = parser.parse_args()

    configs = []
    for name in args.backbones or list_backbones():
        has_depth = "depth" in {f.name for f in dataclasses.fields(options_class(name))}
        depths = (
            (args.depths or ([18, 50] if name == "resnet" else [None])) if has_depth else [None]
        )
        configs += [(name, {} if depth is None else {"depth": depth}) for depth in depths]
    print(f"CPU, {torch.get_num_threads()} threads, {args.size} px, {NUM_CLASSES} classes")
    print(
        f"{'backbone':<28}{'frames':>7}{'window':>7}{'fwd+bwd s/snippet':>19}"
        f"{'per-window fps':>16}{'two-phase fps':>15}{'speed-up':>10}"
    )
    for name, options in configs:
        model = build_backbone(name, NUM_CLASSES, weights="none", crop=args.size, **options)
        prep = model.preprocessing
        train_s = (
            "-" if args.extract_only else f"{train_seconds(model, args.size, args.repeats):.2f}"
        )
        old_fps, new_fps = extraction_fps(model, args.size, args.windows, args.frames, args.repeats)
        label = name + (f" (depth {options['depth']})" if options else "")
        print(
            f"{label:<28}{min(SNIPPET, prep.snippet_length):>7}{prep.feature_window:>7}"
            f"{train_s:>19}{old_fps:>16.2f}{new_fps:>15.2f}{new_fps / old_fps:>9.1f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
