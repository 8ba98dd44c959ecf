"""Head models: shapes, masking, gradients, determinism, parameter counts, k-means state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import zarr

from stages.common.errors import MotionsegError
from stages.common.seeding import seed_everything
from stages.heads.base import IGNORE_INDEX, norm_relu
from stages.heads.registry import build_head, list_heads

IN, CLASSES = 16, 5
HEADS = list_heads()


def _make(name: str, seed: int = 0, **options):
    """A small head; kmeans-mlp gets fitted on random features first."""
    seed_everything(seed)
    if name == "kmeans-mlp":
        options = {"clusters": 12, "pca_dim": 8, "window": 5, **options}
    head = build_head(name, IN, CLASSES, **options)
    if hasattr(head, "fit_unsupervised"):
        rng = np.random.default_rng(seed)
        head.fit_unsupervised([rng.normal(size=(80, IN)).astype(np.float32)] * 2, seed=seed)
    return head


def _batch(lengths: list[int], total: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), IN, total, generator=gen)
    mask = torch.zeros(len(lengths), 1, total)
    for i, n in enumerate(lengths):
        mask[i, :, :n] = 1
    return x * mask, mask


def test_registry_has_all_heads():
    assert HEADS == ["dilated-tcn", "ed-tcn", "kmeans-mlp", "ms-tcn", "st-cnn"]


@pytest.mark.parametrize(
    ("name", "count"), [("st-cnn", 206_034), ("dilated-tcn", 327_186), ("ed-tcn", 743_890)]
)
def test_parameter_counts_match_the_tcn_reference(name, count):
    head = build_head(name, 128, 18)
    assert sum(p.numel() for p in head.parameters()) == count


@pytest.mark.parametrize("name", HEADS)
def test_forward_shape_and_padding_zeroed(name):
    head = _make(name).eval()
    x, mask = _batch([37, 29], 37)
    out = head(x, mask)
    assert out.shape == (2, CLASSES, 37)
    assert torch.all(out[1, :, 29:] == 0)


@pytest.mark.parametrize("name", HEADS)
def test_valid_outputs_do_not_depend_on_padding(name):
    head = _make(name).eval()
    x, mask = _batch([37], 37)
    alone = head(x, mask)
    padded_x, padded_mask = _batch([61, 37], 61, seed=2)
    padded_x[1, :, :37] = x[0]
    padded_x[1, :, 37:] = 5.0  # garbage in padded steps must not leak either
    together = head(padded_x, padded_mask)
    torch.testing.assert_close(together[1, :, :37], alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", HEADS)
def test_loss_backward_reaches_every_parameter(name):
    head = _make(name).train()
    x, mask = _batch([33, 20], 33)
    target = torch.randint(0, CLASSES, (2, 33))
    target[mask[:, 0] == 0] = IGNORE_INDEX
    loss = head.loss(x, mask, target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for pname, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", HEADS)
def test_same_seed_same_model_and_outputs(name):
    x, mask = _batch([30], 30)
    outs = []
    for _ in range(2):
        head = _make(name, seed=3).train()
        torch.manual_seed(7)  # dropout draws
        outs.append(head(x, mask))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    other = _make(name, seed=4).eval()(x, mask)
    assert not torch.equal(other, _make(name, seed=3).eval()(x, mask))


def test_norm_relu_divides_each_step_by_its_max():
    x = torch.tensor([[[1.0, -2.0], [3.0, -1.0], [-4.0, -3.0]]])  # [1, C=3, T=2]
    out = norm_relu(x)
    torch.testing.assert_close(out[0, :, 0], torch.tensor([1 / 3, 1.0, 0.0]), atol=1e-4, rtol=0)
    assert torch.all(out[0, :, 1] == 0)


def test_spatial_dropout_drops_whole_channels():
    head = build_head("st-cnn", IN, CLASSES, dropout=0.5).train()
    torch.manual_seed(0)
    dropped = head.dropout(torch.ones(1, 64, 20))
    per_channel = dropped[0]
    assert torch.all((per_channel == 0).all(1) | (per_channel != 0).all(1))
    assert (per_channel == 0).all(1).any()


def test_ed_tcn_length_not_a_multiple_of_four_is_cropped_back():
    head = build_head("ed-tcn", IN, CLASSES).eval()
    for length in (1, 5, 38):
        x, mask = _batch([length], length)
        assert head(x, mask).shape == (1, CLASSES, length)


def test_ms_tcn_loss_sums_ce_and_truncated_smoothing_over_stages():
    head = _make("ms-tcn").eval()
    x, mask = _batch([25], 25)
    target = torch.randint(0, CLASSES, (1, 25))
    expected = 0.0
    mse = torch.nn.MSELoss(reduction="none")
    stages = head.stage_logits(x, mask)
    assert len(stages) == 4
    for p in stages:
        expected += F.cross_entropy(p.transpose(2, 1).reshape(-1, CLASSES), target.view(-1))
        smooth = mse(F.log_softmax(p[:, :, 1:], dim=1), F.log_softmax(p.detach()[:, :, :-1], 1))
        expected += 0.15 * torch.mean(torch.clamp(smooth, min=0, max=16) * mask[:, :, 1:])
    torch.testing.assert_close(head.loss(x, mask, target), expected)
    torch.testing.assert_close(head(x, mask), stages[-1])


def _blobs(seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Three well separated clusters in 16-d, split over two 'videos'."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=20, size=(3, IN)).astype(np.float32)
    rows = centres[rng.integers(0, 3, 600)] + rng.normal(scale=0.1, size=(600, IN))
    rows = rows.astype(np.float32)
    return [rows[:250], rows[250:]], centres


def _centres_in_input_space(head) -> np.ndarray:
    return (head.centres @ head.pca_components + head.pca_mean).numpy()


@pytest.mark.parametrize("budget_mb", [1024.0, 0.01])
def test_kmeans_fit_in_memory_and_streamed_from_zarr_find_the_clusters(tmp_path, budget_mb):
    videos, centres = _blobs()
    arrays = []
    for i, v in enumerate(videos):
        arr = zarr.create_array(tmp_path / f"{i}.zarr", shape=v.shape, chunks=(64, IN), dtype="f4")
        arr[...] = v
        arrays.append(arr)
    head = build_head("kmeans-mlp", IN, CLASSES, clusters=3, pca_dim=4, memory_budget_mb=budget_mb)
    head.fit_unsupervised(arrays, seed=0)
    found = _centres_in_input_space(head)
    nearest = np.linalg.norm(found[:, None] - centres[None], axis=-1).min(0)
    assert np.all(nearest < 1.0)
    np.testing.assert_allclose(head.pca_mean.numpy(), np.concatenate(videos).mean(0), atol=1e-3)


@pytest.mark.parametrize("assignment", ["hard", "soft"])
def test_kmeans_histograms_are_distributions_over_valid_steps(assignment):
    head = _make("kmeans-mlp", assignment=assignment).eval()
    x, mask = _batch([30, 18], 30)
    hist = head.histograms(x, mask)
    torch.testing.assert_close(hist.sum(1), mask[:, 0])


def test_kmeans_state_roundtrips_through_the_state_dict():
    head = _make("kmeans-mlp", assignment="soft").eval()
    fresh = build_head(
        "kmeans-mlp", IN, CLASSES, clusters=12, pca_dim=8, window=5, assignment="soft"
    ).eval()
    fresh.load_state_dict(head.state_dict())
    x, mask = _batch([30], 30)
    torch.testing.assert_close(fresh(x, mask), head(x, mask), rtol=0, atol=0)
    assert float(fresh.temperature) == float(head.temperature) != 1.0


def test_kmeans_errors():
    head = build_head("kmeans-mlp", IN, CLASSES)
    with pytest.raises(RuntimeError, match="fit_unsupervised"):
        head(*_batch([10], 10))
    with pytest.raises(MotionsegError, match="at least 100"):
        head.fit_unsupervised([np.zeros((50, IN), np.float32)])
    with pytest.raises(ValueError, match="odd"):
        build_head("kmeans-mlp", IN, CLASSES, window=4)
