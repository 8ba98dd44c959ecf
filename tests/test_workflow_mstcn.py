"""Precomputed MS-TCN-layout features through the workflow: import -> heads -> report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import REPO, planned_jobs, snakemake

from stages.data.mstcn_synth import write_mstcn_folder


def write_config(tmp_path: Path, root: Path) -> list[str]:
    cfg = {
        "dataset": "tinyi3d",
        "root": str(root),
        "precomputed": {"format": "mstcn", "features": "i3d", "background": ["SIL"]},
        "runs": 2,
        "threads": 1,
        "heads": {
            "ed-tcn": {"options": {"filter_length": 5}, "train": {"epochs": 15, "batch_size": 2}},
            "ms-tcn": {"options": {"stages": 2, "layers": 4}, "train": {"epochs": 10}},
        },
    }
    config_file = tmp_path / "tinyi3d.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    # --config takes every word up to the next option, so it goes first.
    return [
        "--config",
        f"dataset_configs=[{config_file}]",
        "--directory",
        str(tmp_path / "work"),
        "-s",
        str(REPO / "Snakefile"),
    ]


def test_dry_run_plans_heads_on_the_precomputed_features(tmp_path: Path) -> None:
    root = tmp_path / "files"
    write_mstcn_folder(root, videos=4, splits=2, dim=64)
    jobs = planned_jobs(snakemake(*write_config(tmp_path, root), "-n", "results/tinyi3d").stdout)
    assert jobs == {"prepare_dataset": 1, "train_head": 2 * 2 * 2, "report": 1}


@pytest.mark.slow
def test_import_heads_and_report_on_generated_i3d_files(tmp_path: Path) -> None:
    root = tmp_path / "files"
    write_mstcn_folder(root, videos=4, splits=2, dim=2048)
    common = write_config(tmp_path, root)
    snakemake(*common, "--cores", "2", "results/tinyi3d")
    out = tmp_path / "work" / "results" / "tinyi3d"
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["backbone"]) == {"i3d"} and set(metrics["head"]) == {"ed-tcn", "ms-tcn"}
    assert set(metrics["convention"]) == {"per-video", "pooled"}
    assert len(metrics) == 2 * 2 * 2 * 2  # heads x splits x runs x conventions
    # The features carry the class: every head beats the 1-in-4 chance of a constant guess.
    assert (metrics.groupby("head")["acc"].mean() > 50).all(), metrics
    assert "±" in (out / "table.md").read_text()
    assert len(list((out / "plots").glob("*.png"))) == 4
    again = snakemake(*common, "-n", "results/tinyi3d")
    assert "Nothing to be done" in again.stdout + again.stderr
