"""ST-CNN, DilatedTCN and ED-TCN, layer for layer as in Lea et al.'s Keras code (`tf_models.py`).

Layouts (checked against the parameter counts for 128-d input and 18 classes: 206,034 /
327,186 / 743,890):

- st-cnn (`temporal_convs_linear`): conv(C->64, 25, bias) -> ReLU -> spatial dropout 0.3 ->
  per-frame linear (64->classes, bias).
- dilated-tcn (`Dilated_TCN`, acausal, "wavenet" activation): initial conv(C->64, 3, bias);
  `stacks` x (`layers` + 1) residual blocks, block i: dilated conv(64->64, 3, dilation 2**i,
  bias) -> spatial dropout 0.3 -> tanh(h) * sigmoid(h) -> 1x1 conv(64->64, bias); the block
  returns input + that output as residual and the output itself as skip. Skips summed -> ReLU
  -> 1x1 conv(64->64, bias) -> ReLU -> 1x1 conv(64->classes, bias). All convolutions have
  biases (Keras' default); there are no separate skip/residual 1x1 convolutions (commented out
  in the reference) and the kernel length is 3, not `filter_length`.
- ed-tcn (`ED_TCN`, "norm_relu"): per encoder level conv(25, bias) -> spatial dropout 0.3 ->
  norm_relu -> max-pool 2 with 64 then 96 filters; decoder: upsample x2 -> conv(25, bias) ->
  spatial dropout -> norm_relu with 96 then 64 filters; per-frame linear (64->classes).

Softmax is left to the loss (logits out). Padding: the sequence is padded internally to a
multiple of 2**levels (4 by default) as the reference's `max_len` is, and cropped back. Each
level keeps its own mask (max-pooled from the one above), so a pooled step that covers one
valid frame stays valid and everything beyond is zeroed, also right after upsampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from stages.heads.base import SegmentationHead, norm_relu, same_conv
from stages.heads.registry import register_head


@register_head("st-cnn")
class STCNN(SegmentationHead):
    """The temporal part of Lea et al.'s Spatiotemporal CNN (ECCV 2016): one long conv."""

    small_options: ClassVar[dict[str, Any]] = {"filters": 16, "filter_length": 5}

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        filters: int = 64,
        filter_length: int = 25,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.conv = same_conv(in_features, filters, filter_length)
        self.dropout = nn.Dropout1d(dropout)
        self.classifier = nn.Conv1d(filters, num_classes, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv(x * mask)) * mask
        return self.classifier(self.dropout(h)) * mask


class _GatedResidualBlock(nn.Module):
    """WaveNet-style block of the DilatedTCN: returns (residual output, skip output)."""

    def __init__(self, filters: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.dilated = same_conv(filters, filters, 3, dilation=dilation)
        self.dropout = nn.Dropout1d(dropout)
        self.pointwise = nn.Conv1d(filters, filters, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.dropout(self.dilated(x))
        out = self.pointwise(torch.tanh(h) * torch.sigmoid(h)) * mask
        return x + out, out


@register_head("dilated-tcn")
class DilatedTCN(SegmentationHead):
    """Lea et al.'s DilatedTCN; defaults are the 50 Salads mid setting (B=3 stacks, L=5)."""

    small_options: ClassVar[dict[str, Any]] = {"filters": 16, "stacks": 1, "layers": 2}

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        filters: int = 64,
        stacks: int = 3,
        layers: int = 5,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.initial = same_conv(in_features, filters, 3)
        self.blocks = nn.ModuleList(
            _GatedResidualBlock(filters, 2**i, dropout)
            for _ in range(stacks)
            for i in range(layers + 1)
        )
        self.tail = nn.Conv1d(filters, filters, 1)
        self.classifier = nn.Conv1d(filters, num_classes, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.initial(x * mask) * mask
        skip_sum = torch.zeros_like(h)
        for block in self.blocks:
            h, skip = block(h, mask)
            skip_sum = skip_sum + skip
        h = F.relu(self.tail(F.relu(skip_sum))) * mask
        return self.classifier(h) * mask


@register_head("ed-tcn")
class EDTCN(SegmentationHead):
    """Lea et al.'s encoder-decoder TCN; defaults are the 50 Salads setting (64, 96 filters)."""

    small_options: ClassVar[dict[str, Any]] = {"filters": [32, 32], "filter_length": 9}

    default_train: ClassVar[dict[str, Any]] = {
        **SegmentationHead.default_train,
        "optimizer": "rmsprop",
    }

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        filters: Sequence[int] = (64, 96),
        filter_length: int = 25,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        filters = tuple(int(f) for f in filters)
        widths = (in_features, *filters)
        self.encoder = nn.ModuleList(
            same_conv(widths[i], widths[i + 1], filter_length) for i in range(len(filters))
        )
        reversed_widths = (filters[-1], *filters[::-1])
        self.decoder = nn.ModuleList(
            same_conv(reversed_widths[i], reversed_widths[i + 1], filter_length)
            for i in range(len(filters))
        )
        self.dropout = nn.Dropout1d(dropout)
        self.classifier = nn.Conv1d(filters[0], num_classes, 1)
        self.multiple = 2 ** len(filters)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        extra = -length % self.multiple
        h = F.pad(x * mask, (0, extra))
        masks = [F.pad(mask, (0, extra))]
        for conv in self.encoder:
            h = norm_relu(self.dropout(conv(h))) * masks[-1]
            h = F.max_pool1d(h, 2)
            masks.append(F.max_pool1d(masks[-1], 2))
        for conv, level_mask in zip(self.decoder, masks[-2::-1], strict=True):
            h = F.interpolate(h, scale_factor=2, mode="nearest") * level_mask
            h = norm_relu(self.dropout(conv(h))) * level_mask
        return self.classifier(h)[..., :length] * mask
