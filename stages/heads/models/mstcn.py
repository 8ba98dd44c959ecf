"""MS-TCN (Abu Farha and Gall, CVPR 2019), as in the authors' PyTorch code.

Stage: 1x1 conv (in->64) -> 10 dilated residual layers (dilation 2**i: conv(64, 3) -> ReLU ->
1x1 conv -> dropout 0.5 -> + input, times mask) -> 1x1 conv (64->classes), times mask. Later
stages take the softmax of the previous stage's logits (times mask). Loss per stage:
cross-entropy + 0.15 * mean(clamp((log_softmax(p_t) - log_softmax(p_{t-1}).detach())**2, max
tau**2 = 16) * mask), summed over stages; the mean runs over all classes and steps, as in the
authors' `train.py`.

One deviation, for exact mask invariance: the stage's input 1x1 conv output is also multiplied
by the mask (the original leaves its bias on padded steps, where the first dilated layer sees it).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from stages.heads.base import SegmentationHead, masked_cross_entropy, same_conv
from stages.heads.registry import register_head


class _DilatedResidualLayer(nn.Module):
    def __init__(self, filters: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.dilated = same_conv(filters, filters, 3, dilation=dilation)
        self.pointwise = nn.Conv1d(filters, filters, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.pointwise(F.relu(self.dilated(x))))
        return (x + out) * mask


class _SingleStage(nn.Module):
    def __init__(
        self, in_features: int, num_classes: int, filters: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.inp = nn.Conv1d(in_features, filters, 1)
        self.layers = nn.ModuleList(
            _DilatedResidualLayer(filters, 2**i, dropout) for i in range(layers)
        )
        self.out = nn.Conv1d(filters, num_classes, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) * mask
        for layer in self.layers:
            h = layer(h, mask)
        return self.out(h) * mask


@register_head("ms-tcn")
class MSTCN(SegmentationHead):
    """4 stages x 10 layers x 64 filters; `loss` applies CE + smoothing to every stage."""

    small_options: ClassVar[dict[str, Any]] = {"stages": 2, "layers": 3, "filters": 16}

    default_train: ClassVar[dict[str, Any]] = {
        "optimizer": "adam",
        "lr": 5e-4,
        "epochs": 50,
        "batch_size": 1,
    }

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        stages: int = 4,
        layers: int = 10,
        filters: int = 64,
        dropout: float = 0.5,
        smoothing_weight: float = 0.15,
        tau: float = 4.0,
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            _SingleStage(
                in_features if s == 0 else num_classes, num_classes, filters, layers, dropout
            )
            for s in range(stages)
        )
        self.smoothing_weight = smoothing_weight
        self.tau = tau

    def stage_logits(self, x: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every stage, first to last."""
        outputs = [self.stages[0](x * mask, mask)]
        for stage in self.stages[1:]:
            outputs.append(stage(F.softmax(outputs[-1], dim=1) * mask, mask))
        return outputs

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.stage_logits(x, mask)[-1]

    def loss(self, x: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(())
        for logits in self.stage_logits(x, mask):
            total = total + masked_cross_entropy(logits, target)
            diff = F.log_softmax(logits[:, :, 1:], dim=1) - F.log_softmax(
                logits.detach()[:, :, :-1], dim=1
            )
            smooth = torch.clamp(diff**2, min=0, max=self.tau**2) * mask[:, :, 1:]
            total = total + self.smoothing_weight * smooth.mean()
        return total
