"""Device choice, mixed precision, device speed settings and optimisers, shared by backbone
training, extraction and head training (so inference never imports a trainer)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

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


@dataclass(frozen=True)
class DeviceSettings:
    """Speed settings that act on CUDA only; on any other device they change nothing, so CPU
    results stay bit-for-bit those of the plain model.

    - `channels_last`: the weights of every `nn.Conv2d` (the 2-D trunks; 3-D convs and
      deformable-conv weights keep their layout) in NHWC, the layout Tensor Core convolutions
      want, so cuDNN does not transpose activations around each conv;
    - `tf32`: TF32 for fp32 matmuls and convolutions (Ampere and later; bf16 autocast regions
      are unaffected);
    - `cudnn_benchmark`: cuDNN times its algorithms once per input shape and keeps the fastest;
      training and extraction feed fixed shapes, so the search is paid once.

    All default on: the usual choice for convolutional networks on Ampere/Hopper (NVIDIA's
    performance guide); `benchmarks/gpu_check.sh` measures the resulting throughput.
    """

    channels_last: bool = True
    tf32: bool = True
    cudnn_benchmark: bool = True


def apply_device_settings(model: nn.Module, device: torch.device, settings: DeviceSettings) -> None:
    """Apply `settings` for running `model` on `device` (a no-op off CUDA). The TF32 and
    cuDNN switches are process-wide, as torch has them."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = settings.tf32
    torch.backends.cudnn.allow_tf32 = settings.tf32
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    if settings.channels_last:
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.to(memory_format=torch.channels_last)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a SLURM allocation)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
