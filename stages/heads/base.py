"""What every segmentation head offers the trainer, and the pieces the TCN family shares.

A head maps `(x[B, C, T], mask[B, 1, T])` to logits `[B, num_classes, T]`. Padded steps
(mask 0) are multiplied out after every layer that could make them non-zero (a bias, a
normalisation), so a valid step's output does not depend on how much padding its batch has:
to a convolution the padded steps look exactly like the zero "same" padding at the end of an
unpadded sequence.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100  # target value of padded steps (PyTorch's cross-entropy default)


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the valid steps (`target != IGNORE_INDEX`).

    The Keras reference weights the per-step loss by the mask and divides by the share of
    non-zero weights, which is the same mean over valid steps.
    """
    return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)


def norm_relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU, then divide each time step by its largest activation over channels (+1e-5)."""
    x = F.relu(x)
    return x / (x.abs().amax(dim=1, keepdim=True) + 1e-5)


def same_conv(in_channels: int, out_channels: int, length: int, dilation: int = 1) -> nn.Conv1d:
    """A temporal convolution with Keras' `border_mode='same'` (zero padding, output length T).

    For an even `length` PyTorch puts the extra padding step on the right, as Keras does.
    """
    return nn.Conv1d(in_channels, out_channels, length, padding="same", dilation=dilation)


class SegmentationHead(nn.Module):
    """Base class of all heads.

    `default_train` holds the reference training settings (optimizer, lr, epochs, batch size)
    that `--train` JSON overrides. `loss` is what the trainer minimises; heads with extra
    terms (MS-TCN's stages and smoothing) override it. Heads that need an unsupervised fit on
    the training features before training (k-means) define
    `fit_unsupervised(features: list of [T, C] arrays, seed: int)`; the trainer calls it with
    the training videos' features only.

    `small_options` build a small, fast instance of the head (a few thousand parameters): the
    CPU tests train it with `default_train` to check that the head learns
    (tests/test_learning_heads.py), so every registered head must declare them.
    """

    small_options: ClassVar[dict[str, Any]] = {}

    default_train: ClassVar[dict[str, Any]] = {
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 200,
        "batch_size": 8,
    }

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, x: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Masked cross-entropy of the logits; `target[B, T]` holds IGNORE_INDEX on padding."""
        return masked_cross_entropy(self(x, mask), target)
