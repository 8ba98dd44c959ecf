"""A synthetic folder in the MS-TCN layout, for tests and the import/export benchmark.

Features carry the class: every frame is Gaussian noise (sd 1) plus `signal` on a block of
channels owned by its class, so a head that learns anything scores well above chance, and
random labels would not. Labels are runs of classes (background first and last, as in
Breakfast); split k tests every `splits`-th video starting at k-1, trains on the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stages.common.labels import ClassList, write_label_file
from stages.common.outputs import LAYOUT_FILE

CLASSES = ("SIL", "pour", "stir", "cut")


def write_mstcn_folder(
    root: Path,
    videos: int = 4,
    splits: int = 2,
    dim: int = 2048,
    frames: tuple[int, int] = (60, 90),
    classes: Sequence[str] = CLASSES,
    seed: int = 0,
    signal: float = 3.0,
) -> list[str]:
    """Write features/, groundTruth/, splits/ and mapping.txt under `root`; returns video ids."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "features").mkdir(parents=True, exist_ok=True)
    block = dim // len(classes)
    ids = [f"P{i:02d}_cam01_P{i:02d}_task" for i in range(videos)]
    for video in ids:
        num = int(rng.integers(frames[0], frames[1] + 1))
        cuts = np.sort(rng.choice(np.arange(1, num), size=4, replace=False))
        actions = rng.integers(1, len(classes), size=3)
        index = np.zeros(num, dtype=np.int64)
        for action, lo, hi in zip(actions, cuts[:-1], cuts[1:], strict=True):
            index[lo:hi] = action
        features = rng.normal(size=(dim, num)).astype(np.float32)
        for t, c in enumerate(index):
            features[c * block : (c + 1) * block, t] += signal
        np.save(root / "features" / f"{video}.npy", features)
        write_label_file(root / "groundTruth" / f"{video}.txt", [classes[c] for c in index])
    (root / "splits").mkdir(exist_ok=True)
    for k in range(1, splits + 1):
        test = ids[k - 1 :: splits]
        train = [v for v in ids if v not in test]
        for kind, chosen in (("train", train), ("test", test)):
            text = "".join(f"{v}.txt\n" for v in chosen)
            (root / "splits" / f"{kind}.split{k}.bundle").write_text(text)
    ClassList(tuple(classes), ()).write(root / "mapping.txt", LAYOUT_FILE)
    return ids
