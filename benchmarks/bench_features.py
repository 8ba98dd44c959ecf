"""CPU cost of the backbones: fine-tuning step per snippet and extraction throughput.

    python benchmarks/bench_features.py [--backbones resnet lcdc ...] [--size 224] [--repeats 2]

For `resnet` at depth 18 and 50 and every other registered backbone at its default options
(random weights, 18 classes), prints the time of one forward+backward pass on one 16-frame
snippet (training mode; a model whose training example is shorter, like `naive-appear`, gets
its own `snippet_length`, shown in the table) and the extraction rate in frames per second
(`forward_features` in inference mode on `--windows` centred windows of `feature_window` frames
each, one feature per frame). Best of `--repeats` timed runs after one warm-up.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from stages.features.registry import build_backbone, list_backbones

NUM_CLASSES = 18
SNIPPET = 16


def best_time(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(name: str, options: dict, size: int, windows: int, repeats: int) -> tuple:
    model = build_backbone(name, NUM_CLASSES, weights="none", crop=size, **options)
    prep = model.preprocessing
    length = min(SNIPPET, prep.snippet_length)
    snippet = torch.randn(1, length, 3, size, size)
    labels = torch.zeros(1, dtype=torch.long)

    def step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(snippet), labels).backward()

    train_s = best_time(step, repeats)
    batch = torch.randn(windows, prep.feature_window, 3, size, size)

    def extract() -> None:
        model.eval()
        with torch.inference_mode():
            model.forward_features(batch)

    extract_s = best_time(extract, repeats)
    return length, prep.feature_window, train_s, windows / extract_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="*", default=None, help="default: all registered")
    parser.add_argument("--size", type=int, default=224, help="crop side in pixels")
    parser.add_argument("--windows", type=int, default=4, help="features per extraction batch")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    names = args.backbones or list_backbones()
    configs = []
    for name in names:
        if name == "resnet":
            configs += [("resnet", {"depth": 18}), ("resnet", {"depth": 50})]
        else:
            configs.append((name, {}))
    print(f"CPU, {torch.get_num_threads()} threads, {args.size} px, {NUM_CLASSES} classes")
    print(f"{'backbone':<24}{'frames':>7}{'window':>7}{'fwd+bwd s/snippet':>19}{'extract fps':>13}")
    for name, options in configs:
        length, window, train_s, fps = measure(name, options, args.size, args.windows, args.repeats)
        label = name + (f" (depth {options['depth']})" if options else "")
        print(f"{label:<24}{length:>7}{window:>7}{train_s:>19.2f}{fps:>13.1f}", flush=True)


if __name__ == "__main__":
    main()
