"""Training time per epoch of every head on demo-sized and 50 Salads-sized random data.

Sizes: demo = 9 videos x 300 steps x 512-d, 9 classes; salads = 40 videos x ~1,800 steps
(1,700-1,900) x 1024-d, 18 classes (50 Salads at 10 fps after the reference's rate-3
sampling). Each head runs with its reference training settings (batch size, optimizer) for
`--epochs` epochs; the table gives the mean seconds per epoch and, for kmeans-mlp, the PCA +
k-means fit time, which happens once before training.

    python benchmarks/bench_heads.py [--sizes demo salads] [--heads ...] [--epochs 2] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from stages.common.seeding import seed_everything
from stages.heads.data import VideoFeatures
from stages.heads.predict import make_head
from stages.heads.registry import list_heads
from stages.heads.train import TrainSettings, fit_head

SIZES = {
    "demo": {"videos": 9, "steps": (300, 300), "dim": 512, "classes": 9},
    "salads": {"videos": 40, "steps": (1700, 1900), "dim": 1024, "classes": 18},
}


def random_videos(videos: int, steps: tuple[int, int], dim: int, classes: int) -> list:
    rng = np.random.default_rng(0)
    out = []
    for i in range(videos):
        n = int(rng.integers(steps[0], steps[1] + 1))
        targets = np.sort(rng.integers(0, classes, n))
        features = rng.normal(size=(n, dim)).astype(np.float32)
        frames = np.arange(n, dtype=np.int64)
        out.append(VideoFeatures(f"v{i}", features, frames, targets, np.array([], dtype=object)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--heads", nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    heads = args.heads or list_heads()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"{'size':8} {'head':12} {'params':>9} {'batch':>5} {'s/epoch':>9} {'fit s':>7}")
    for size in args.sizes:
        spec = SIZES[size]
        videos = random_videos(**spec)
        for name in heads:
            settings = TrainSettings.resolve(name, {"epochs": args.epochs, "device": args.device})
            seed_everything(0)
            head = make_head(name, spec["dim"], spec["classes"], {})
            log = fit_head(head, videos, settings, seed=0)
            params = sum(p.numel() for p in head.parameters())
            per_epoch = statistics.mean(log.seconds_per_epoch)
            print(
                f"{size:8} {name:12} {params:9d} {settings.batch_size:5d} {per_epoch:9.2f} "
                f"{log.unsupervised_fit_seconds:7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
