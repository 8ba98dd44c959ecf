"""Initial weights for the ResNet parts of backbones.

`weights` is `"imagenet"` (torchvision's IMAGENET1K_V1 enum, downloaded to the torch hub cache
on first use), a path to a local checkpoint (a state dict, or a dict holding one under
`state_dict`/`model`), or `"none"` (random init). Failures name what was tried and how to fix it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from stages.common.errors import MotionsegError, input_error
from stages.common.torch_files import load_torch_file

_RESNETS = {
    18: (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1),
    34: (torchvision.models.resnet34, torchvision.models.ResNet34_Weights.IMAGENET1K_V1),
    50: (torchvision.models.resnet50, torchvision.models.ResNet50_Weights.IMAGENET1K_V1),
    101: (torchvision.models.resnet101, torchvision.models.ResNet101_Weights.IMAGENET1K_V1),
}


def resnet_trunk(depth: int, weights: str = "none", **kwargs) -> torchvision.models.ResNet:
    """A torchvision ResNet of `depth` with the requested initial weights.

    Extra kwargs go to the torchvision constructor (e.g. `replace_stride_with_dilation`).
    """
    if depth not in _RESNETS:
        raise MotionsegError(f"unsupported ResNet depth {depth} (choose {sorted(_RESNETS)})")
    builder, enum = _RESNETS[depth]
    if weights == "imagenet":
        try:
            return builder(weights=enum, **kwargs)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise MotionsegError(
                f"could not load ImageNet weights {enum} for ResNet-{depth} ({err}). "
                "Without internet, download them elsewhere into the torch hub cache "
                f"({torch.hub.get_dir()}/checkpoints), pass a local checkpoint path as "
                "`weights`, or use `weights: none`."
            ) from None
    model = builder(weights=None, **kwargs)
    if weights in ("none", None, ""):
        return model
    load_checkpoint_into(model, Path(weights), strict=False)
    return model


def load_checkpoint_into(model: nn.Module, path: Path, strict: bool = True) -> None:
    """Load a local checkpoint; shape mismatches and missing files name the file."""
    blob = load_torch_file(
        path,
        "torch checkpoint",
        missing="weights file not found (weights must be 'imagenet', 'none' or a file path)",
    )
    state = blob
    if isinstance(blob, dict):
        for key in ("state_dict", "model"):
            if isinstance(blob.get(key), dict):
                state = blob[key]
                break
    if not isinstance(state, dict):
        raise input_error(path, "checkpoint holds no state dict")
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if strict and len(matched) != len(own):
        missing = sorted(set(own) - set(matched))[:5]
        raise input_error(path, f"checkpoint does not fit the model (e.g. {missing})")
    if not matched:
        raise input_error(path, "no parameter of the checkpoint matches the model")
    model.load_state_dict(matched, strict=False)
