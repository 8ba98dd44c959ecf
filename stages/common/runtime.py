"""Device choice, mixed precision and optimisers, shared by backbone training, extraction and
head training (so inference never imports a trainer)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch

from stages.common.errors import MotionsegError

OPTIMIZERS = ("sgd", "adam", "rmsprop")


def resolve_device(device: str) -> torch.device:
    """ "auto" is CUDA when available, else CPU; an unknown or unavailable device is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise MotionsegError(f"unknown device {device!r} ({err})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise MotionsegError(f"device {device!r} requested but CUDA is not available")
    return resolved


def autocast(device: torch.device, amp: bool | None) -> contextlib.AbstractContextManager:
    """bf16 autocast; `amp` None means on for CUDA, off on CPU."""
    enabled = device.type == "cuda" if amp is None else amp
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def make_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """`sgd` (momentum SGD, the LCDC paper), `adam`, or `rmsprop` with Keras' rho 0.9 and
    epsilon 1e-8 (the TCN reference code); all with weight decay."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-8, weight_decay=weight_decay)
    raise MotionsegError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
