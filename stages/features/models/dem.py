"""`dem`: R(2+1)D-18 with Dynamic Equilibrium Modules in conv2_x (seed 003, thesis ch. 3-4).

The thesis's Table 3.1 network (`stages.features.models.r2plus1d`) with a DEM in all four
(2+1)D units of conv2_x, its best single insertion (Table 4.3); `dem_stages` moves or adds
them (`["conv2", "conv3", "conv4", "conv5"]` for the ablation, `"stem"` too for Table 3.1's
"DEM everywhere"; `[]` for the plain R(2+1)D-18 baseline). Input: 16 consecutive frames at
112 px (the thesis subsamples at rate 1); conv5_x gives 512 x 2 x 7 x 7, global average pooled
to the **512-d** feature of the window's centre frame; `fc` = Linear(512, K) for fine-tuning.
Counts (tested): 33,174,865 without fc, 33,184,099 with 18 classes; plain Table 3.1 network
33,178,597; `layout: torchvision` without DEMs is torchvision's `r2plus1d_18`, 31,300,125.

Weights: `none` (the thesis trains from scratch, Kaiming init), `kinetics400` (torchvision's
`R2Plus1D_18_Weights.KINETICS400_V1`, torch hub cache; `layout: torchvision` only), or a local
checkpoint path (a state dict of torchvision's `VideoResNet` names; tensors whose name and
shape fit are loaded). A DEM in the torchvision layout keeps torchvision's widths, so every
pretrained conv fits and only the DEMs start from scratch.

Choices where the thesis is silent or the project differs:
- Normalisation: torchvision's Kinetics mean/std (what its weights expect; from scratch any
  fixed normalisation is equivalent).
- Augmentation: the project's square resize in `resize_range` (default 128..154, the thesis's
  short side 128 x U[1, 1.2]) and a random 112 crop shared by the frames; the thesis's
  flips and +-15 degree rotations are not applied (the shared snippet transform has neither).
- BatchNorm trains (`freeze_bn` false): from scratch there are no statistics to keep.

Extraction cost: only the stem's 1x7x7 spatial conv (with its BN/ReLU) sees one frame at a
time, so it is `encode_frames`; everything after it is per window by necessity, because every
temporal conv and the DEM zero-pad at the window's ends and conv3_x..conv5_x stride by 2 in
time, so a frame's activations depend on where its window starts (no sliding computation over
the video gives the per-window numbers).

`benchmarks/bench_features.py --backbones dem --size 112` (2 CPU threads, random weights, one
timed run on a machine at load ~15 on 2 cores, so absolute figures are inflated; `lcdc` depth
18 at 64 px measured alongside took 11.5 s per step and 0.49 -> 1.93 frames/s, about 9x and
20x slower than its figures on a quieter machine in `stages.features.models.lcdc` and
`stages.features.extract`): forward+backward of one 16 x 112 x 112 clip 104.9 s; extraction
0.03 frames/s per window -> 0.05 two-phase.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torchvision
from torch import nn

from stages.common.errors import MotionsegError
from stages.features.base import Backbone, BackboneOptions, Encoded, Preprocessing
from stages.features.models.r2plus1d import STAGES, Fusion, Layout, R2Plus1D18
from stages.features.registry import register_backbone
from stages.features.weights import load_checkpoint_into

FEATURE_DIM = 512
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)  # torchvision's video classification presets
KINETICS_STD = (0.22803, 0.22145, 0.216989)
KINETICS_WEIGHTS = torchvision.models.video.R2Plus1D_18_Weights.KINETICS400_V1
MIN_CROP = 16  # four spatial halvings leave at least 1 pixel


@dataclass(frozen=True)
class DEMOptions(BackboneOptions):
    """Options of `dem` (see the module docstring); `depth` is 18 only."""

    depth: Literal[18] = 18
    weights: str = "none"
    freeze_bn: bool = False
    crop: int = 112
    resize_range: tuple[int, int] | None = (128, 154)
    layout: Layout = "table3.1"
    dem_stages: tuple[str, ...] = ("conv2",)
    fusion: Fusion = "mul"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.dem_stages) - set(STAGES))
        if unknown:
            raise ValueError(f"dem_stages must be among {list(STAGES)}, got {unknown}")
        if self.crop < MIN_CROP:
            raise ValueError(f"crop must be >= {MIN_CROP} px, got {self.crop}")
        if self.weights == "imagenet":
            raise ValueError("weights must be 'none', 'kinetics400' or a file path (no ImageNet)")
        if self.weights == "kinetics400" and self.layout != "torchvision":
            raise ValueError("weights 'kinetics400' need layout 'torchvision'")
        super().__post_init__()

    def preprocessing(self, feature_window: int) -> Preprocessing:
        """The base conventions with Kinetics' mean/std (the video weights' normalisation)."""
        base = super().preprocessing(feature_window)
        return dataclasses.replace(base, mean=KINETICS_MEAN, std=KINETICS_STD)


def load_r2plus1d_weights(trunk: R2Plus1D18, weights: str) -> None:
    """Initial weights into the trunk: torchvision's Kinetics-400 enum or a local file."""
    if weights in ("none", ""):
        return
    if weights == "kinetics400":
        try:
            state = KINETICS_WEIGHTS.get_state_dict(progress=False)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise MotionsegError(
                f"could not load Kinetics-400 weights {KINETICS_WEIGHTS} ({err}). Without "
                "internet, download them elsewhere into the torch hub cache "
                f"({torch.hub.get_dir()}/checkpoints), pass a local checkpoint path as "
                "`weights`, or use `weights: none`."
            ) from None
        trunk.load_state_dict(
            {k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False
        )
        return
    load_checkpoint_into(trunk, Path(weights), strict=False)


class DEMNet(Backbone):
    """R(2+1)D-18 (+ DEMs) -> global average pool (512) -> fc; see the module docstring."""

    def __init__(self, num_classes: int, options: DEMOptions) -> None:
        super().__init__()
        self.trunk = R2Plus1D18(options.layout, options.dem_stages, options.fusion)
        load_r2plus1d_weights(self.trunk, options.weights)
        self.freeze_bn = options.freeze_bn
        self.fc = nn.Linear(FEATURE_DIM, num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.01)  # torchvision's VideoResNet init
        nn.init.zeros_(self.fc.bias)
        self.feature_dim = FEATURE_DIM
        self.preprocessing = options.preprocessing(feature_window=options.snippet_length)

    def encode_frames(self, frames: torch.Tensor) -> Encoded:
        """The stem's frame-wise spatial conv, BN, ReLU: `[N, 3, H, W]` -> `([N, mid, h, w],)`."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise MotionsegError(f"dem: frames must be [N, 3, H, W], got {list(frames.shape)}")
        return (self.trunk.stem.spatial(frames.unsqueeze(2)).squeeze(2),)

    def features_from_encoded(self, windows: Encoded) -> torch.Tensor:
        """The rest of the network on `[B, T, mid, h, w]`, global average pooled -> `[B, 512]`."""
        (stem,) = windows
        x = self.trunk.forward_from_stem_spatial(stem.transpose(1, 2))
        return x.mean(dim=(2, 3, 4))

    def forward(self, snippets: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(snippets))


# A small random-init instance for the learning tests (tests/test_learning_backbones.py).
SMALL_OPTIONS = {"weights": "none", "crop": 32, "snippet_length": 4}


@register_backbone("dem", sees_motion=True, small_options=SMALL_OPTIONS)
def build_dem(num_classes: int, options: DEMOptions) -> DEMNet:
    """R(2+1)D-18 with a DEM in every unit of conv2_x (thesis Tables 3.1 and 4.3)."""
    return DEMNet(num_classes, options)
