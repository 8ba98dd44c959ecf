"""Memory and CPU time of the 15x15 local correlation at 224 px input, three ways.

    python benchmarks/bench_correlation.py [--methods explicit loop unfold] [--repeats 2]

Cases (one 8-frame snippet, 7 consecutive-frame pairs, 64 channels, radius 7):
- `ms`: MotionSqueeze after layer2 of a TSM-ResNet, 28 x 28 maps;
- `dynamics`: after BN-Inception's conv1, 112 x 112 maps.

Methods:
- `explicit`: `stages.features.models.correlation.local_correlation` (one product at a time,
  explicit backward; autograd saves only the two inputs);
- `loop`: the same loop under plain autograd (225 saved slices; each slice's backward
  allocates a padded-size gradient);
- `unfold`: the reference definition through `F.unfold` (a 225 x C x H x W patch tensor).

Each (case, method) runs in a fresh process: forward, sum of the output, backward; the figure
is the peak resident memory above what the inputs already held (ru_maxrss minus the resident
size before the call), next to the output's own size. `unfold` at 112 x 112 would need
~5 GB for the patches alone and is skipped unless `--big-unfold`.

Measured on the shared 2-core machine (load 6-9; peak extra MB, then forward+backward s):
`ms` 28x28: explicit 20 MB, loop 314 MB, unfold 915 MB; `dynamics` 112x112 (output 75 MB):
explicit 200 MB, loop 4,890 MB (71 s), unfold skipped (patches 4,823 MB). Those explicit
figures are from a 225-product version; the batched-row version that replaced it (4-5x faster
side by side) measures `ms` 39 MB (2.3 s) and `dynamics` 513 MB (11.5 s): its per-row
W x (W+2r) products and copies of shifted rows cost about 2.5x the memory, still a tenth of
the autograd loop's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from stages.features.models.correlation import local_correlation

CASES = {"ms": 28, "dynamics": 112}
PAIRS, CHANNELS, RADIUS = 7, 64, 7


def loop_correlation(f1: torch.Tensor, f2: torch.Tensor, radius: int) -> torch.Tensor:
    height, width = f1.shape[-2:]
    padded = F.pad(f2, (radius,) * 4)
    size = 2 * radius + 1
    rows = [
        (f1 * padded[:, :, i : i + height, j : j + width]).sum(dim=1)
        for i in range(size)
        for j in range(size)
    ]
    return torch.stack(rows, dim=1)


def unfold_correlation(f1: torch.Tensor, f2: torch.Tensor, radius: int) -> torch.Tensor:
    n, c, h, w = f1.shape
    size = 2 * radius + 1
    patches = F.unfold(f2, size, padding=radius).view(n, c, size * size, h, w)
    return (f1.unsqueeze(2) * patches).sum(dim=1)


METHODS = {"explicit": local_correlation, "loop": loop_correlation, "unfold": unfold_correlation}


def resident_kb() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() // 1024


def child(case: str, method: str) -> dict:
    side = CASES[case]
    METHODS[method](torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4), 1)  # warm-up, no memory
    torch.manual_seed(0)
    f1 = torch.randn(PAIRS, CHANNELS, side, side, requires_grad=True)
    f2 = torch.randn(PAIRS, CHANNELS, side, side, requires_grad=True)
    before = resident_kb()
    start = time.perf_counter()
    out = METHODS[method](f1, f2, RADIUS)
    forward = time.perf_counter() - start
    out.sum().backward()
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    return {
        "peak_mb": (peak - before) / 1024,
        "output_mb": out.numel() * 4 / 2**20,
        "input_mb": 2 * f1.numel() * 4 / 2**20,
        "forward_s": forward,
        "total_s": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--big-unfold", action="store_true", help="also unfold at 112 x 112")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    print(f"CPU, {torch.get_num_threads()} threads; {PAIRS} pairs x {CHANNELS} ch, 15x15 window")
    print(
        f"{'case':<10}{'method':<10}{'map':>8}{'inputs MB':>11}{'output MB':>11}"
        f"{'peak extra MB':>15}{'fwd s':>8}{'fwd+bwd s':>11}"
    )
    for case, side in CASES.items():
        for method in args.methods:
            if method == "unfold" and side > 28 and not args.big_unfold:
                patches = PAIRS * CHANNELS * 225 * side * side * 4 / 2**20
                print(f"{case:<10}{method:<10}{side:>8}  skipped (patches alone {patches:,.0f} MB)")
                continue
            cmd = [sys.executable, __file__, "--child", case, method]
            result = json.loads(subprocess.run(cmd, capture_output=True, check=True).stdout)
            print(
                f"{case:<10}{method:<10}{side:>8}{result['input_mb']:>11.1f}"
                f"{result['output_mb']:>11.1f}{result['peak_mb']:>15.1f}"
                f"{result['forward_s']:>8.2f}{result['total_s']:>11.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
