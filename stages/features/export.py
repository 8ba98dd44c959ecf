"""Our feature stores in the MS-TCN layout, so MS-TCN, ASFormer or DiffAct run on them unchanged.

Writes, under OUT (the layout `stages.data.mstcn` reads back)::

    features/<video>.npy      float32 (D, T): one column per feature store row
    groundTruth/<video>.txt   one line per feature: the label of the feature's source frame
    splits/train.split<k>.bundle, test.split<k>.bundle   `<video>.txt` per line
    mapping.txt               `index name` lines of the manifest's class list

The labels are taken at the stores' rate (a feature's label is its source frame's, as the heads
train on, `stages.heads.data`), so `T` matches line for line. Features of a fine-tuned backbone
depend on the split (its checkpoint was trained on that split's training videos, and testing
on them with another split's bundles would leak): such stores are exported one split at a
time (`--split K`), each into its own OUT, with only that split's bundles. Frozen, imported and
other split-independent stores (no `checkpoint` attribute) export all splits at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stages.common.atomic import atomic_path, check_destination, write_text
from stages.common.errors import MotionsegError
from stages.common.labels import write_label_file
from stages.common.manifest import Manifest
from stages.common.outputs import EXPORTED_ARRAY, LAYOUT_FILE
from stages.common.progress import Progress
from stages.common.stores import open_store
from stages.heads.data import feature_store_path, load_video

FORMATS = ("mstcn",)


def split_dependent(features_dir: Path, video: str) -> bool:
    """Whether a store comes from a fine-tuned checkpoint (its features depend on the split)."""
    attrs = open_store(feature_store_path(features_dir, video)).attrs
    return bool(attrs.get("checkpoint")) and not attrs.get("frozen", False)


def export_mstcn(
    manifest: Manifest, features_dir: Path, out: Path, splits: Sequence[str] = ()
) -> dict[str, int]:
    """Write every manifest video and the chosen splits' bundles (all by default) into OUT.

    Returns frames per video. Every file is written atomically; the mapping is written last.
    """
    features_dir, out = Path(features_dir), Path(out)
    chosen = [str(s) for s in splits] or manifest.split_names
    for split in chosen:
        manifest.test_ids(split)  # unknown split: error naming the manifest
    first = manifest.video_ids[0]
    if split_dependent(features_dir, first) and len(chosen) != 1:
        raise MotionsegError(
            f"{feature_store_path(features_dir, first)}: features of a fine-tuned checkpoint "
            "depend on the split; export one split at a time (--split K) into its own folder"
        )
    inputs = (features_dir, manifest.directory, manifest.root)
    for video in manifest.video_ids:  # before any work: nothing exported over foreign files
        check_destination(out / "features" / f"{video}.npy", EXPORTED_ARRAY, inputs)
    frames: dict[str, int] = {}
    with Progress(f"export {features_dir}", len(manifest.video_ids), "videos") as progress:
        for video in manifest.video_ids:
            loaded = load_video(features_dir, manifest, video)
            npy = out / "features" / f"{video}.npy"
            with atomic_path(npy, EXPORTED_ARRAY, inputs) as tmp, tmp.open("wb") as handle:
                np.save(handle, np.ascontiguousarray(loaded.features.T, dtype=np.float32))
            labels = manifest.classes.decode(loaded.targets)
            write_label_file(out / "groundTruth" / f"{video}.txt", labels)
            frames[video] = int(loaded.targets.size)
            progress.update()
    for split in chosen:
        for kind, ids in (("train", manifest.train_ids(split)), ("test", manifest.test_ids(split))):
            bundle = "".join(f"{v}.txt\n" for v in ids)
            write_text(out / "splits" / f"{kind}.split{split}.bundle", bundle, LAYOUT_FILE, inputs)
    manifest.classes.write(out / "mapping.txt", LAYOUT_FILE)
    return frames
