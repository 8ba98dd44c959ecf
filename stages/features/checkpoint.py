"""Fine-tuning checkpoints: atomic saving, validated loading, and rebuilding the model.

A checkpoint is a dict (docs/contracts.md): `backbone`, `num_classes`, `classes`, `options`
(builder kwargs), `preprocessing`, `state_dict`, `epoch`, `val_acc`, `optimizer`, `scheduler`,
plus what resuming needs (`history`, `rng`, `train_config`, `seed`, `split`, videos used).
Only plain containers and tensors go in, so it loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from stages.common.atomic import atomic_path
from stages.common.errors import input_error
from stages.common.outputs import CHECKPOINT
from stages.common.torch_files import load_torch_file
from stages.features.base import Backbone
from stages.features.registry import build_backbone

REQUIRED_KEYS = ("backbone", "num_classes", "classes", "options", "preprocessing", "state_dict")


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Write under a temporary name and rename, so a killed job never leaves a partial file."""
    path = Path(path)
    with atomic_path(path, CHECKPOINT) as tmp:
        torch.save(checkpoint, tmp)
    return path


def link_atomically(source: str | Path, dest: str | Path) -> Path:
    """Make `dest` the same file as `source` (hard link, or a copy across file systems)."""
    dest = Path(dest)
    with atomic_path(dest, CHECKPOINT, inputs=(source,)) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            tmp.write_bytes(Path(source).read_bytes())
    return dest


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load on CPU; a missing, foreign or incomplete file is an error naming it."""
    checkpoint = load_torch_file(path, "checkpoint")
    if not isinstance(checkpoint, dict):
        raise input_error(path, "not a motionseg checkpoint (expected a dict)")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise input_error(path, f"not a motionseg backbone checkpoint (missing {missing})")
    return checkpoint


def model_from_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Backbone:
    """Rebuild the fine-tuned model; `weights='none'` so no ImageNet download is triggered."""
    options = {**checkpoint["options"], "weights": "none"}
    model = build_backbone(checkpoint["backbone"], int(checkpoint["num_classes"]), **options)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise input_error(
            path, f"weights do not fit backbone {checkpoint['backbone']!r} ({err})"
        ) from None
    return model
