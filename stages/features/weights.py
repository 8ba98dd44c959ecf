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


IMAGENET_WIDTH = 64  # base channels of every torchvision ResNet (res2..res5: 64, 128, 256, 512)


def resnet_trunk(
    depth: int, weights: str = "none", width: int = IMAGENET_WIDTH, **kwargs
) -> torchvision.models.ResNet:
    """A torchvision ResNet of `depth` with the requested initial weights.

    `width` (not in any paper; CPU demos and tests) scales the base channels: the stem and
    res2..res5 get width, 2, 4 and 8 x width channels instead of 64..512, so a ResNet-18 of
    width 16 has 1/16 of the multiply-adds. Pretrained weights exist for width 64 only.
    Extra kwargs go to the torchvision constructor (e.g. `replace_stride_with_dilation`).
    """
    if depth not in _RESNETS:
        raise MotionsegError(f"unsupported ResNet depth {depth} (choose {sorted(_RESNETS)})")
    if width != IMAGENET_WIDTH:
        if weights not in ("none", None, ""):
            raise MotionsegError(
                f"ResNet width {width}: pretrained weights exist only for width "
                f"{IMAGENET_WIDTH}; use `weights: none`"
            )
        return _narrow_resnet(depth, width, **kwargs)
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


def _narrow_resnet(depth: int, width: int, **kwargs) -> torchvision.models.ResNet:
    """torchvision's ResNet of `depth` rebuilt with `width` base channels.

    torchvision hard-codes 64, so the stem, the four stages and `fc` are built again the way
    `ResNet.__init__` builds them (same blocks, strides, dilation and initialisation).
    """
    model = _RESNETS[depth][0](weights=None, **kwargs)
    block = type(model.layer1[0])
    layers = [len(model.layer1), len(model.layer2), len(model.layer3), len(model.layer4)]
    dilate = kwargs.get("replace_stride_with_dilation") or [False, False, False]
    model.inplanes, model.dilation = width, 1
    model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = model._norm_layer(width)  # the norm_layer kwarg, as in ResNet.__init__
    model.layer1 = model._make_layer(block, width, layers[0])
    for i, stage in enumerate(("layer2", "layer3", "layer4")):
        planes = width * 2 ** (i + 1)
        setattr(model, stage, model._make_layer(block, planes, layers[i + 1], 2, dilate[i]))
    model.fc = nn.Linear(8 * width * block.expansion, model.fc.out_features)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
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
