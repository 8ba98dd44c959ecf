"""Every registered backbone: shapes, gradients, determinism, options; ResNet-family specifics."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from stages.common.errors import MotionsegError
from stages.features.registry import build_backbone, list_backbones, options_class

SMALL = {"depth": 18, "weights": "none", "crop": 32, "resize_range": [32, 36]}
NUM_CLASSES = 5


def small(name: str) -> dict:
    """SMALL without the options backbone `name` does not have (`dynamics` has no depth)."""
    accepted = {field.name for field in dataclasses.fields(options_class(name))}
    return {key: value for key, value in SMALL.items() if key in accepted}


def _snippets(model, batch: int = 2, seed: int = 0) -> torch.Tensor:
    prep = model.preprocessing
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, prep.snippet_length, 3, prep.crop, prep.crop, generator=gen)


@pytest.fixture(params=list_backbones())
def name(request) -> str:
    return request.param


def test_core_backbones_registered():
    assert {"resnet", "naive-appear", "naive-temp-appear"} <= set(list_backbones())


def test_shapes_and_backward(name):
    torch.manual_seed(0)
    model = build_backbone(name, NUM_CLASSES, **small(name))
    x = _snippets(model)
    model.train()
    logits = model(x)
    assert logits.shape == (2, NUM_CLASSES)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
    assert feats.shape == (2, model.feature_dim)
    prep = model.preprocessing
    assert prep.feature_window >= 1 and prep.snippet_length >= 1
    assert (prep.crop, tuple(prep.resize_range)) == (32, (32, 36))


def test_same_seed_same_model_and_output(name):
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = build_backbone(name, NUM_CLASSES, **small(name)).eval()
        with torch.no_grad():
            outputs.append(model(_snippets(model, seed=1)))
    assert torch.equal(outputs[0], outputs[1])


def test_unknown_option_lists_accepted(name):
    with pytest.raises(MotionsegError, match="crop"):
        build_backbone(name, NUM_CLASSES, **small(name), no_such_option=1)


@pytest.mark.parametrize("bad", [{"crop": "32"}, {"freeze_bn": 1}, {"resize_range": 32}])
def test_ill_typed_option_names_it(name, bad):
    option = next(iter(bad))
    with pytest.raises(MotionsegError, match=f"backbone {name!r}: option {option!r} must be"):
        build_backbone(name, NUM_CLASSES, **{**small(name), **bad})


@pytest.mark.parametrize(
    ("name", "depth", "feature_dim", "params"),
    [
        # torchvision ResNet-50 trunk 23,508,032 + linear 2048 -> 18
        ("resnet", 50, 2048, 23_544_914),
        ("resnet", 18, 512, 11_185_746),
        # + fc 2048 -> 1024 -> 1024 (ReLU) + linear 1024 -> 18; same count for both (paper)
        ("naive-appear", 50, 1024, 26_674_258),
        ("naive-temp-appear", 50, 1024, 26_674_258),
    ],
)
def test_resnet_family_sizes(name, depth, feature_dim, params):
    model = build_backbone(name, 18, depth=depth, weights="none")
    assert model.feature_dim == feature_dim
    assert sum(p.numel() for p in model.parameters()) == params


def test_resnet_family_windows():
    resnet = build_backbone("resnet", 3, **SMALL).preprocessing
    naive = build_backbone("naive-appear", 3, **SMALL).preprocessing
    temp = build_backbone("naive-temp-appear", 3, **SMALL, snippet_length=8).preprocessing
    assert (resnet.snippet_length, resnet.feature_window) == (16, 1)
    assert (naive.snippet_length, naive.feature_window) == (1, 1)
    assert (temp.snippet_length, temp.feature_window) == (8, 8)


def test_resnet_logits_are_mean_of_frame_logits():
    torch.manual_seed(0)
    model = build_backbone("resnet", NUM_CLASSES, **SMALL, snippet_length=4).eval()
    x = _snippets(model)
    with torch.no_grad():
        per_frame = torch.stack([model(x[:, t : t + 1]) for t in range(4)], dim=1).mean(dim=1)
        torch.testing.assert_close(model(x), per_frame, rtol=1e-4, atol=1e-5)


def test_freeze_bn_keeps_running_stats():
    model = build_backbone("resnet", NUM_CLASSES, **SMALL, snippet_length=2).train()
    bn = model.trunk.bn1
    before = bn.running_mean.clone()
    model(_snippets(model) * 3 + 1)
    assert not bn.training
    assert torch.equal(bn.running_mean, before)
    assert bn.weight.requires_grad

    unfrozen = build_backbone("resnet", NUM_CLASSES, **SMALL, snippet_length=2, freeze_bn=False)
    unfrozen.train()(_snippets(unfrozen) * 3 + 1)
    assert not torch.equal(unfrozen.trunk.bn1.running_mean, before)

    affine = build_backbone("resnet", NUM_CLASSES, **SMALL, freeze_bn_affine=True)
    assert not affine.trunk.bn1.weight.requires_grad
    assert affine.classifier.weight.requires_grad


@pytest.mark.parametrize(
    "options",
    [{"depth": 34 + 1}, {"resize_range": [30, 40]}, {"snippet_length": 0}],
)
def test_bad_options(options):
    with pytest.raises(MotionsegError):
        build_backbone("resnet", NUM_CLASSES, **{**SMALL, **options})


@pytest.mark.parametrize("name", ["dc", "lcdc", "naive-appear", "naive-temp-appear", "resnet"])
def test_narrow_trunk_scales_the_resnet_channels(name):
    """`width` 16: the trunk's last stage has 8 x 16 channels (ResNet-18) instead of 512."""
    options = {"depth": 18, "weights": "none", "crop": 32, "resize_range": [32, 32]}
    snippet = 1 if name == "naive-appear" else 8
    narrow = build_backbone(name, 3, **options, snippet_length=snippet, width=16)
    full = build_backbone(name, 3, **options, snippet_length=snippet)
    stage = narrow.trunk.layer4[-1]
    assert stage.bn2.num_features == 128 and narrow.trunk.conv1.out_channels == 16
    assert full.trunk.layer4[-1].bn2.num_features == 512
    params = sum(p.numel() for p in narrow.trunk.parameters())
    assert params < sum(p.numel() for p in full.trunk.parameters()) / 10
    logits = narrow(torch.randn(2, snippet, 3, 32, 32))
    assert logits.shape == (2, 3)


def test_narrow_trunk_refuses_pretrained_weights():
    with pytest.raises(MotionsegError, match="width 64"):
        build_backbone("resnet", 3, depth=18, weights="imagenet", width=16)
