"""Local-window correlation (cost volume) between two feature maps, and what is read from it.

Both MotionSqueeze (seed 001) and the disentangled-dynamics model (seed 004) estimate motion
from the correlation of frame t's features with frame t+1's over a (2r+1) x (2r+1) window:

    C[n, i * (2r+1) + j, y, x] = sum_c f1[n, c, y, x] * f2[n, c, y + i - r, x + j - r]

(dy-major layout, zero outside the map). `local_correlation` computes it in pure PyTorch with
an explicit backward, so that neither pass materialises more than it needs: the forward keeps
one feature-sized product at a time (for each of the (2r+1)^2 displacements, multiply, sum over
channels, write one output channel) and autograd saves only the two inputs, instead of the
(2r+1)^2 x C x H x W patch tensor an `unfold` would build or the (2r+1)^2 saved views of a
loop under autograd (`benchmarks/bench_correlation.py` measures both at 224 px).

What is read from the volume differs between the papers, hence two functions:

- `motion_squeeze_flow`: MotionSqueeze's kernel soft-argmax (argmax, unnormalised Gaussian
  around it, temperature, softmax over the window, marginals) giving (dx, dy) / r and the
  confidence (max of the volume), in the authors' channel order (dx, dy, confidence);
- `soft_displacement`: the dynamics paper's eq. 2, displacement in pixels (dy, dx) as the
  expectation under one joint softmax of the volume / tau over the window;

and `backward_warp` samples a map at p - V(p) (bilinear, zeros outside) for the
appearance-change input F_{t+1} - warp(F_t).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

L2_EPS = 1e-6  # MotionSqueeze's x / sqrt(sum x^2 + eps)


def l2_normalise(x: torch.Tensor, eps: float = L2_EPS) -> torch.Tensor:
    """Unit vectors over the channel dimension (dim 1): x / sqrt(sum_c x^2 + eps)."""
    return x / torch.sqrt(x.pow(2).sum(dim=1, keepdim=True) + eps)


def _window_offsets(radius: int) -> list[tuple[int, int]]:
    """(i, j) = (dy + r, dx + r) of every displacement, dy-major."""
    size = 2 * radius + 1
    return [(i, j) for i in range(size) for j in range(size)]


class _LocalCorrelation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, f1: torch.Tensor, f2: torch.Tensor, radius: int) -> torch.Tensor:
        ctx.save_for_backward(f1, f2)
        ctx.radius = radius
        height, width = f1.shape[-2:]
        padded = F.pad(f2, (radius, radius, radius, radius))
        out = f1.new_empty(f1.shape[0], (2 * radius + 1) ** 2, height, width)
        for k, (i, j) in enumerate(_window_offsets(radius)):
            out[:, k] = (f1 * padded[:, :, i : i + height, j : j + width]).sum(dim=1)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        f1, f2 = ctx.saved_tensors
        radius = ctx.radius
        height, width = f1.shape[-2:]
        padded = F.pad(f2, (radius, radius, radius, radius))
        grad_f1 = torch.zeros_like(f1) if ctx.needs_input_grad[0] else None
        grad_padded = torch.zeros_like(padded) if ctx.needs_input_grad[1] else None
        for k, (i, j) in enumerate(_window_offsets(radius)):
            g = grad[:, k : k + 1]
            if grad_f1 is not None:
                grad_f1.addcmul_(g, padded[:, :, i : i + height, j : j + width])
            if grad_padded is not None:
                grad_padded[:, :, i : i + height, j : j + width].addcmul_(g, f1)
        grad_f2 = None
        if grad_padded is not None:
            grad_f2 = grad_padded[:, :, radius : radius + height, radius : radius + width]
        return grad_f1, grad_f2, None


def local_correlation(f1: torch.Tensor, f2: torch.Tensor, radius: int) -> torch.Tensor:
    """`[N, C, H, W]` x2 -> `[N, (2r+1)^2, H, W]`: channel sums of f1(p) * f2(p + d), dy-major,
    zero where p + d falls outside (see the module docstring)."""
    if f1.shape != f2.shape or f1.ndim != 4:
        raise ValueError(f"correlation needs two [N, C, H, W] maps, got {f1.shape}, {f2.shape}")
    if f1.dtype != f2.dtype:
        f2 = f2.to(f1.dtype)
    return _LocalCorrelation.apply(f1, f2, radius)


def _window_grid(radius: int, like: torch.Tensor) -> torch.Tensor:
    """Displacements -r..r as a float vector on `like`'s device and dtype."""
    return torch.arange(-radius, radius + 1, device=like.device, dtype=like.dtype)


def _marginal_expectations(probs: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(E[dy], E[dx]) `[N, 1, H, W]` under `probs` `[N, (2r+1)^2, H, W]` (dy-major)."""
    size = 2 * radius + 1
    grid = _window_grid(radius, probs).view(1, size, 1, 1)
    joint = probs.unflatten(1, (size, size))  # [N, dy, dx, H, W]
    dy = (joint.sum(dim=2) * grid).sum(dim=1, keepdim=True)
    dx = (joint.sum(dim=1) * grid).sum(dim=1, keepdim=True)
    return dy, dx


def motion_squeeze_flow(
    corr: torch.Tensor, radius: int, sigma: float = 5.0, temperature: float = 100.0
) -> torch.Tensor:
    """MotionSqueeze's (dx / r, dy / r, confidence) `[N, 3, H, W]` from a (ReLU'd) volume.

    Kernel soft-argmax as in the authors' code: confidence = max of the volume; an
    unnormalised Gaussian of `sigma` (in window cells) centred on the argmax multiplies the
    volume, which is scaled by `temperature` and soft-maxed over the window; the displacement
    is the expectation of the marginals, divided by r so that it lies in [-1, 1]. The argmax
    (hence the Gaussian) carries no gradient.
    """
    size = 2 * radius + 1
    confidence, best = corr.max(dim=1, keepdim=True)
    grid = _window_grid(radius, corr) + radius
    best_y = torch.div(best, size, rounding_mode="floor").to(corr.dtype)
    best_x = (best % size).to(corr.dtype)
    gauss_y = torch.exp(-((grid.view(1, size, 1, 1) - best_y) ** 2) / (2 * sigma**2))
    gauss_x = torch.exp(-((grid.view(1, size, 1, 1) - best_x) ** 2) / (2 * sigma**2))
    kernel = (gauss_y.unsqueeze(2) * gauss_x.unsqueeze(1)).flatten(1, 2)  # [N, size^2, H, W]
    probs = torch.softmax(kernel * corr * temperature, dim=1)
    dy, dx = _marginal_expectations(probs, radius)
    return torch.cat([dx / radius, dy / radius, confidence], dim=1)


def soft_displacement(corr: torch.Tensor, radius: int, tau: float) -> torch.Tensor:
    """Displacement (dy, dx) in pixels `[N, 2, H, W]`: the expectation of the window offsets
    under one joint softmax of `corr / tau` (dynamics paper, eq. 2)."""
    dy, dx = _marginal_expectations(torch.softmax(corr / tau, dim=1), radius)
    return torch.cat([dy, dx], dim=1)


def backward_warp(features: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """`features` `[N, C, H, W]` sampled at p - V(p) for V = `displacement` `[N, 2, H, W]`
    (dy, dx in pixels): bilinear, zero outside the map."""
    height, width = features.shape[-2:]
    ys = torch.arange(height, device=features.device, dtype=displacement.dtype)
    xs = torch.arange(width, device=features.device, dtype=displacement.dtype)
    y = ys.view(1, height, 1) - displacement[:, 0]
    x = xs.view(1, 1, width) - displacement[:, 1]
    grid = torch.stack(
        [2 * x / max(width - 1, 1) - 1, 2 * y / max(height - 1, 1) - 1], dim=-1
    )  # [N, H, W, 2] in grid_sample's (x, y) order
    return F.grid_sample(
        features,
        grid.to(features.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )
