"""Local-window correlation (cost volume) between two feature maps, and what is read from it.

Both MotionSqueeze (seed 001) and the disentangled-dynamics model (seed 004) estimate motion
from the correlation of frame t's features with frame t+1's over a (2r+1) x (2r+1) window:

    C[n, i * (2r+1) + j, y, x] = sum_c f1[n, c, y, x] * f2[n, c, y + i - r, x + j - r]

(dy-major layout, zero outside the map). `local_correlation` computes it in pure PyTorch with
an explicit backward, so that neither pass materialises more than it needs: for each of the
2r+1 window rows (dy) one batched matrix product of f1's rows with f2's shifted rows gives all
2r+1 dx at once (the band of a W x (W+2r) product), so the temporaries stay within a few
times one input ((W+2r)/C of it per product), and autograd saves only the two inputs; an
`unfold` would build a (2r+1)^2 x C x H x W patch tensor and a loop under autograd would save
(2r+1)^2 slices and allocate a padded-size gradient for each
(`benchmarks/bench_correlation.py` measures the three at 224 px).

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


def _band(products: torch.Tensor, size: int) -> torch.Tensor:
    """View `[M, W, size]` of the entries [m, x, x + j] of contiguous `[M, W, W + size - 1]`."""
    rows, width, padded_width = products.shape
    return products.as_strided((rows, width, size), (width * padded_width, padded_width + 1, 1))


def _shifted_rows(padded: torch.Tensor, i: int, height: int) -> torch.Tensor:
    """Rows y + i of the padded map as `[N*H, C, W + 2r]` (one copy of one input's size)."""
    rows = padded[:, :, i : i + height, :].permute(0, 2, 1, 3)
    return rows.reshape(-1, padded.shape[1], padded.shape[3])


class _LocalCorrelation(torch.autograd.Function):
    """Row by row of the window (fixed dy): one batched matrix product of f1's rows `[W, C]`
    with f2's shifted rows `[C, W + 2r]` holds every dx on the band x' - x = dx + r."""

    @staticmethod
    def forward(ctx, f1: torch.Tensor, f2: torch.Tensor, radius: int) -> torch.Tensor:
        ctx.save_for_backward(f1, f2)
        ctx.radius = radius
        batch, channels, height, width = f1.shape
        size = 2 * radius + 1
        padded = F.pad(f2, (radius, radius, radius, radius))
        rows = f1.permute(0, 2, 3, 1).reshape(batch * height, width, channels)
        out = f1.new_empty(batch, size, size, height, width)
        for i in range(size):
            band = _band(torch.bmm(rows, _shifted_rows(padded, i, height)), size)
            out[:, i] = band.reshape(batch, height, width, size).permute(0, 3, 1, 2)
        return out.flatten(1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        f1, f2 = ctx.saved_tensors
        radius = ctx.radius
        batch, channels, height, width = f1.shape
        size = 2 * radius + 1
        padded = F.pad(f2, (radius, radius, radius, radius))
        rows = f1.permute(0, 2, 3, 1).reshape(batch * height, width, channels)
        grad_rows = torch.zeros_like(rows)
        grad_padded = torch.zeros_like(padded)
        grad = grad.unflatten(1, (size, size))
        products = rows.new_zeros(batch * height, width, width + 2 * radius)
        for i in range(size):
            shifted = _shifted_rows(padded, i, height)
            _band(products, size).copy_(grad[:, i].permute(0, 2, 3, 1).reshape(-1, width, size))
            grad_rows.baddbmm_(products, shifted.transpose(1, 2))
            grad_shifted = torch.bmm(rows.transpose(1, 2), products)  # [N*H, C, W + 2r]
            grad_padded[:, :, i : i + height, :] += grad_shifted.reshape(
                batch, height, channels, -1
            ).permute(0, 2, 1, 3)
        grad_f1 = grad_rows.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        grad_f2 = grad_padded[:, :, radius : radius + height, radius : radius + width]
        needs_f1, needs_f2 = ctx.needs_input_grad[:2]
        return (grad_f1 if needs_f1 else None), (grad_f2 if needs_f2 else None), None


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
