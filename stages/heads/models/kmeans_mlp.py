"""Cluster-histogram head: seed 002's k-means histograms + 2-layer MLP, made per-frame.

Bertasius et al. (DIMOFS, section 5.2) reduce per-frame features with PCA, cluster them with
k-means (K = 100) and classify a whole video from the histogram of its frames' cluster IDs
with a shallow 2-layer MLP. For segmentation each frame is described by the histogram over a
temporal window centred on it. Choices the paper leaves open, made here:

- PCA to `pca_dim` = 64 dimensions over the whole feature vector (the paper's 15 per body part
  has no counterpart for a generic feature), K = `clusters` = 100.
- `window` = 25 feature steps (the reach of one ST-CNN/ED-TCN filter); odd, centred; the
  histogram is normalised by its total, i.e. by the number of valid frames in the window, so
  windows cut by the sequence ends or padding are still distributions.
- `assignment`: "hard" (one-hot nearest centre, the paper's counts) or "soft" (softmax of
  negative squared distances / `temperature`, the paper's summed soft assignments). The default
  temperature is the mean squared distance of the training features to their nearest centre.
- MLP: 1x1 conv K -> `hidden` = 128 -> ReLU -> classes (applied to every frame's histogram).

PCA and k-means are fitted by `fit_unsupervised` on the TRAINING features only, before the MLP
is trained, and live in buffers, so the saved state dict alone predicts. When the stacked
features would exceed `memory_budget_mb`, they are streamed in chunks of about that size
(the arrays may be Zarr arrays read chunk by chunk): IncrementalPCA.partial_fit, then
MiniBatchKMeans.partial_fit over the chunks for `stream_passes` shuffled passes. Only the MLP
has trainable parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stages.common.errors import MotionsegError
from stages.heads.base import SegmentationHead
from stages.heads.registry import register_head


@register_head("kmeans-mlp")
class KMeansHistogramMLP(SegmentationHead):
    """PCA -> k-means assignments -> windowed histogram per frame -> 2-layer MLP."""

    small_options: ClassVar[dict[str, Any]] = {"clusters": 32, "pca_dim": 8, "window": 9}

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        clusters: int = 100,
        pca_dim: int = 64,
        window: int = 25,
        assignment: str = "hard",
        temperature: float | None = None,
        hidden: int = 128,
        memory_budget_mb: float = 1024.0,
        stream_passes: int = 5,
    ) -> None:
        super().__init__()
        if assignment not in ("hard", "soft"):
            raise ValueError(f"assignment must be 'hard' or 'soft', got {assignment!r}")
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be a positive odd number of steps, got {window}")
        if temperature is not None and temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.clusters = clusters
        self.pca_dim = min(pca_dim, in_features)
        self.window = window
        self.assignment = assignment
        self.user_temperature = temperature
        self.memory_budget_mb = memory_budget_mb
        self.stream_passes = stream_passes
        self.register_buffer("pca_mean", torch.zeros(in_features))
        self.register_buffer("pca_components", torch.zeros(self.pca_dim, in_features))
        self.register_buffer("centres", torch.zeros(clusters, self.pca_dim))
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.mlp = nn.Sequential(
            nn.Conv1d(clusters, hidden, 1), nn.ReLU(), nn.Conv1d(hidden, num_classes, 1)
        )

    def fit_unsupervised(self, features: Sequence[Any], seed: int = 0) -> None:
        """Fit PCA and k-means on training features: arrays `[T, C]` (numpy or Zarr)."""
        from sklearn.cluster import MiniBatchKMeans
        from sklearn.decomposition import PCA, IncrementalPCA

        total = sum(int(f.shape[0]) for f in features)
        needed = max(self.clusters, self.pca_dim)
        if total < needed:
            raise MotionsegError(
                f"kmeans-mlp: the training videos have {total} feature steps; PCA to "
                f"{self.pca_dim} dims and {self.clusters} clusters need at least {needed}"
            )
        row_bytes = self.pca_mean.numel() * 4
        rows = max(int(self.memory_budget_mb * 2**20) // row_bytes, needed)
        bounds = _chunk_bounds(total, rows)
        data = _read_rows(features, 0, total) if len(bounds) == 1 else None
        if data is not None:
            pca = PCA(self.pca_dim, random_state=seed).fit(data)
            kmeans = MiniBatchKMeans(self.clusters, random_state=seed).fit(pca.transform(data))
        else:
            pca = IncrementalPCA(self.pca_dim)
            for start, stop in bounds:
                pca.partial_fit(_read_rows(features, start, stop))
            kmeans = MiniBatchKMeans(self.clusters, random_state=seed)
            order = np.random.default_rng(seed)
            for _ in range(self.stream_passes):
                for i in order.permutation(len(bounds)):
                    kmeans.partial_fit(pca.transform(_read_rows(features, *bounds[i])))
        self.pca_mean.copy_(torch.as_tensor(pca.mean_, dtype=torch.float32))
        self.pca_components.copy_(torch.as_tensor(pca.components_, dtype=torch.float32))
        self.centres.copy_(torch.as_tensor(kmeans.cluster_centers_, dtype=torch.float32))
        if self.user_temperature is not None:
            self.temperature.fill_(self.user_temperature)
        else:
            chunks = [data] if data is not None else (_read_rows(features, *b) for b in bounds)
            sq = sum(float(self._squared_distances(_as_batch(c)).amin(1).sum()) for c in chunks)
            self.temperature.fill_(max(sq / total, 1e-6))
        self.fitted.fill_(True)

    def _squared_distances(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T] features -> [B, K, T] squared distances to the centres in PCA space."""
        z = torch.einsum("bct,pc->bpt", x - self.pca_mean[None, :, None], self.pca_components)
        cross = torch.einsum("bpt,kp->bkt", z, self.centres)
        d2 = (z**2).sum(1, keepdim=True) - 2 * cross + (self.centres**2).sum(1)[None, :, None]
        return d2.clamp_min(0)

    def histograms(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalised cluster histogram of the window around every valid step: [B, K, T]."""
        if not bool(self.fitted):
            raise RuntimeError("kmeans-mlp: call fit_unsupervised before using the head")
        d2 = self._squared_distances(x)
        if self.assignment == "hard":
            assign = F.one_hot(d2.argmin(1), self.clusters).permute(0, 2, 1).to(x.dtype)
        else:
            assign = F.softmax(-d2 / self.temperature, dim=1)
        assign = assign * mask
        counts = F.avg_pool1d(
            assign, self.window, stride=1, padding=self.window // 2, count_include_pad=True
        )
        return counts / counts.sum(1, keepdim=True).clamp_min(1e-12) * mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.histograms(x, mask)) * mask


def _chunk_bounds(total: int, rows: int) -> list[tuple[int, int]]:
    """Split `total` rows into `total // rows` (at least 1) near-equal chunks of >= rows rows."""
    edges = np.linspace(0, total, max(1, total // rows) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _read_rows(features: Sequence[Any], start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of the videos' features stacked in order, read slice by slice."""
    return np.concatenate(list(_slices(features, start, stop))).astype(np.float32, copy=False)


def _slices(features: Sequence[Any], start: int, stop: int) -> Iterator[np.ndarray]:
    offset = 0
    for f in features:
        n = int(f.shape[0])
        lo, hi = max(start - offset, 0), min(stop - offset, n)
        if lo < hi:
            yield np.asarray(f[lo:hi])
        offset += n


def _as_batch(rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rows.T))[None]
