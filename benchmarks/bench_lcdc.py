"""CPU cost of the LCDC/DC backbones: forward+backward time per 16-frame snippet, and sizes.

    python benchmarks/bench_lcdc.py [--sizes 224 64] [--depths 50 18] [--repeats 2]

For every depth and input size it builds `lcdc` (both `lcdc_form`s) and `dc` with random
weights, runs one warm-up step, then prints the best of `--repeats` timed steps (forward of one
snippet [1, 16, 3, S, S], logits summed, backward) in training mode, next to the total
parameter count and the parameters of the offset layers (paper Table 3 at depth 50, 18 classes:
LCDC 42.7M / 27,654; DC 45.7M / 995,544). Also times the res5 LCDC conv alone for both forms.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from bench_features import best_time  # this folder is on sys.path when run as a script

from stages.features.models.deform import lcdc_conv2d
from stages.features.models.lcdc import LCDCNet, res5_map_size
from stages.features.registry import build_backbone

NUM_CLASSES = 18
VARIANTS: tuple[tuple[str, str, dict], ...] = (
    ("lcdc warp", "lcdc", {"lcdc_form": "warp"}),
    ("lcdc deform", "lcdc", {"lcdc_form": "deform"}),
    ("dc", "dc", {}),
)


def train_step(model: LCDCNet, snippets: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(snippets).sum().backward()

    return step


def bench_models(depth: int, size: int, frames: int, repeats: int) -> None:
    snippets = torch.randn(1, frames, 3, size, size)
    for label, name, options in VARIANTS:
        model = build_backbone(
            name,
            NUM_CLASSES,
            depth=depth,
            weights="none",
            crop=size,
            resize_range=(size, size),
            snippet_length=frames,
            **options,
        ).train()
        total = sum(p.numel() for p in model.parameters())
        offsets = sum(p.numel() for name, p in model.named_parameters() if "offset" in name)
        seconds = best_time(train_step(model, snippets), repeats)
        print(
            f"depth {depth:>2}  {size:>3}px  {label:<12} {seconds:7.2f} s/snippet  "
            f"params {total / 1e6:5.1f}M ({total:,})  offset params {offsets:,}",
            flush=True,
        )


def bench_res5_conv(size: int, frames: int, repeats: int) -> None:
    side = res5_map_size(size)
    x = torch.randn(frames, 512, side, side, requires_grad=True)
    offset = torch.randn(frames, 2, side, side, requires_grad=True)
    weight = torch.randn(512, 512, 3, 3, requires_grad=True)
    for form in ("warp", "deform"):

        def step(form: str = form) -> None:
            lcdc_conv2d(x, offset, weight, 2, form).sum().backward()

        seconds = best_time(step, repeats)
        print(
            f"res5 LCDC conv {frames}x512x{side}x{side} ({size}px)  {form:<6} "
            f"{seconds:7.3f} s forward+backward",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 64])
    parser.add_argument("--depths", type=int, nargs="+", default=[50, 18])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
    for size in args.sizes:
        bench_res5_conv(size, args.frames, args.repeats)
    for depth in args.depths:
        for size in args.sizes:
            bench_models(depth, size, args.frames, args.repeats)


if __name__ == "__main__":
    main()
