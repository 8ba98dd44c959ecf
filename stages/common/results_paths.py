"""The results tree's paths, built and parsed in one place.

The workflow rules, the stages and the report all name the same folders
(`results/models/{dataset}/{backbone}/split{split}/`, ...). They are built here, with the
wildcard names as placeholders for rule patterns, and parsed here, so a split may be any name
a manifest allows (`1`, `A`, `fold-x`): the folder is `split` + the split name, nothing else.
Imports nothing heavy, so the Snakefile can use it while building the DAG.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SPLIT_PREFIX = "split"
RUN_PREFIX = "run"
_RUN = re.compile(rf"{RUN_PREFIX}(\d+)")


def split_folder(split: str) -> str:
    """`1` -> `split1`, `A` -> `splitA`."""
    return f"{SPLIT_PREFIX}{split}"


def run_folder(run: int | str) -> str:
    return f"{RUN_PREFIX}{run}"


def frame_store(dataset: str, video: str) -> str:
    return f"results/frames/{dataset}/{video}.zarr"


def frames_dir(dataset: str) -> str:
    return f"results/frames/{dataset}"


def model_dir(dataset: str, backbone: str, split: str) -> str:
    return f"results/models/{dataset}/{backbone}/{split_folder(split)}"


def checkpoint(dataset: str, backbone: str, split: str) -> str:
    return f"{model_dir(dataset, backbone, split)}/best.pt"


def feature_dir(dataset: str, backbone: str, split: str) -> str:
    return f"results/features/{dataset}/{backbone}/{split_folder(split)}"


def feature_store(dataset: str, backbone: str, split: str, video: str) -> str:
    return f"{feature_dir(dataset, backbone, split)}/{video}.zarr"


def frozen_feature_dir(dataset: str, backbone: str) -> str:
    """A frozen backbone's stores: one per video, shared by every split (`frozen` is not a
    split folder, which always starts with `split`)."""
    return f"results/features/{dataset}/{backbone}/frozen"


def predictions_dir(dataset: str) -> str:
    return f"results/predictions/{dataset}"


def run_dir(dataset: str, backbone: str, head: str, split: str, run: int | str) -> str:
    """`results/predictions/{dataset}/{backbone}/{head}/split{split}/run{run}`."""
    return f"{predictions_dir(dataset)}/{backbone}/{head}/{split_folder(split)}/{run_folder(run)}"


def report_dir(dataset: str) -> str:
    return f"results/{dataset}"


def parse_split_folder(name: str) -> str | None:
    """`split1` -> `1`, `splitA` -> `A`; None for a folder that is not a split's."""
    split = name.removeprefix(SPLIT_PREFIX)
    return split if name.startswith(SPLIT_PREFIX) and split else None


def parse_run_folder(name: str) -> int | None:
    """`run3` -> 3; None for a folder that is not a run's."""
    match = _RUN.fullmatch(name)
    return int(match[1]) if match else None


@dataclass(frozen=True)
class RunKey:
    """Where a run folder sits under a predictions folder."""

    backbone: str
    head: str
    split: str
    run: int


def parse_run_dir(relative: str | Path) -> RunKey | None:
    """`{backbone}/{head}/split{split}/run{run}` (relative to a predictions folder) -> its
    parts; None when the path does not have that shape."""
    parts = Path(relative).parts
    if len(parts) != 4:
        return None
    backbone, head, split_name, run_name = parts
    split, run = parse_split_folder(split_name), parse_run_folder(run_name)
    if split is None or run is None:
        return None
    return RunKey(backbone, head, split, run)


def split_sort_key(split: str) -> tuple[int, int | str]:
    """Numeric split names in numeric order (2 before 10), then the others by name."""
    return (0, int(split)) if split.isdigit() else (1, split)
