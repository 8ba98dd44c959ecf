"""Temporal Shift Module (Lin et al., ICCV 2019) as used by MotionSqueeze (seed 001).

TSM-ResNet runs a snippet's T frames as a batch `[B*T, C, H, W]` through a torchvision ResNet
in which every residual block shifts part of its input's channels along time before its first
conv ("residual shift"): channels [0, C/8) take frame t+1's values, [C/8, 2C/8) frame t-1's,
the rest stay; frames past the snippet's ends contribute zeros. The identity path is not
shifted. No parameter is added, so ImageNet ResNet weights load as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

FOLD_DIV = 8  # 1/8 of the channels from t+1, 1/8 from t-1 (TSM's default)


def temporal_shift(x: torch.Tensor, time: int, fold_div: int = FOLD_DIV) -> torch.Tensor:
    """`[B*T, C, H, W]` -> same shape, channels [0, C/fold_div) from t+1, the next C/fold_div
    from t-1, zeros at the snippet's ends (TSM's `shift`, not in place)."""
    frames = x.unflatten(0, (-1, time))
    fold = frames.shape[2] // fold_div
    out = torch.zeros_like(frames)
    out[:, :-1, :fold] = frames[:, 1:, :fold]
    out[:, 1:, fold : 2 * fold] = frames[:, :-1, fold : 2 * fold]
    out[:, :, 2 * fold :] = frames[:, :, 2 * fold :]
    return out.flatten(0, 1)


def shifted_block(block: nn.Module, x: torch.Tensor, time: int) -> torch.Tensor:
    """A torchvision Bottleneck/BasicBlock whose residual branch sees the time-shifted input."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(temporal_shift(x, time))))
    out = block.bn2(block.conv2(out))
    if isinstance(block, Bottleneck):
        out = block.bn3(block.conv3(block.relu(out)))
    elif not isinstance(block, BasicBlock):
        raise TypeError(f"unsupported residual block {type(block).__name__}")
    return block.relu(out + identity)


def shifted_layer(layer: nn.Sequential, x: torch.Tensor, time: int) -> torch.Tensor:
    """One ResNet stage (`layer1` ... `layer4`) with the residual shift in every block."""
    for block in layer:
        x = shifted_block(block, x, time)
    return x


def stem(trunk: ResNet, frames: torch.Tensor) -> torch.Tensor:
    """conv1, BN, ReLU, max-pool: the per-frame part of a (TSM-)ResNet."""
    return trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(frames))))
