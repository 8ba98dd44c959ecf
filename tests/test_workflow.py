"""The Snakemake workflow: configs validate, the DAG plans the right jobs, the demo runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(
        [str(SNAKEMAKE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the job-stats table of a dry run."""
    table = output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


TINY_EPOCHS = 7


def manifest_videos(cfg: dict) -> int:
    """How many videos a dataset config's (committed) manifest lists."""
    return len((REPO / cfg["manifest"] / "videos.tsv").read_text().splitlines()) - 1


def test_every_dataset_config_validates() -> None:
    import jsonschema

    schema = yaml.safe_load((REPO / "pipeline/schemas/dataset.schema.yaml").read_text())
    configs = [p for p in (REPO / "pipeline/config").glob("*.yaml") if p.name != "default.yaml"]
    assert {p.stem for p in configs} >= {"demo"}
    for path in configs:
        cfg = yaml.safe_load(path.read_text())
        jsonschema.validate(cfg, schema)
        assert cfg["dataset"] == path.stem


# Registered motion backbones not in the motion comparison, and why.
NOT_COMPARED = {"dem": "R(2+1)D-18 has no narrow option: 1.3 s per step at 32 px on a CPU"}


def test_motion_comparison_is_fair_and_complete() -> None:
    """demo-motion trains every motion backbone (but those named above) and both appearance
    baselines at their registered small options and at exactly the demo's recipe and data."""
    from stages.features.registry import BACKBONES, list_backbones, sees_motion

    demo, motion = (
        yaml.safe_load((REPO / f"pipeline/config/{name}.yaml").read_text())
        for name in ("demo", "demo-motion")
    )
    for key in ("manifest", "synthesize", "decode", "heads", "seed", "runs", "evaluate"):
        assert motion[key] == demo[key], key
    compared = set(motion["backbones"])
    assert compared >= {"resnet", "naive-temp-appear"}
    assert {b for b in list_backbones() if sees_motion(b)} - compared == set(NOT_COMPARED)
    for name, entry in motion["backbones"].items():
        assert entry["train"] == demo["backbones"]["resnet"]["train"], name
        assert entry["options"] == BACKBONES.traits(name)["small_options"], name
        assert demo["backbones"].get(name, entry)["options"] == entry["options"], name


def test_demo_dry_run_plans_every_stage(tmp_path: Path) -> None:
    proc = snakemake(
        "-n", "--directory", str(tmp_path), "-s", str(REPO / "Snakefile"), "results/demo"
    )
    jobs = planned_jobs(proc.stdout)
    cfg = yaml.safe_load((REPO / "pipeline/config/demo.yaml").read_text())
    n_backbones, n_heads = len(cfg["backbones"]), len(cfg["heads"])
    n_splits, n_videos = len(cfg["splits"]), manifest_videos(cfg)
    n_runs = cfg["runs"]
    assert jobs["prepare_dataset"] == 1
    assert jobs["decode"] == n_videos
    assert jobs["train_backbone"] == n_backbones * n_splits
    assert jobs["extract_features_demo"] == n_backbones * n_splits
    assert jobs["train_head"] == n_backbones * n_heads * n_splits * n_runs
    assert jobs["report"] == 1


def test_every_rule_a_profile_names_exists(tmp_path: Path) -> None:
    proc = snakemake("--list-rules", "--directory", str(tmp_path), "-s", str(REPO / "Snakefile"))
    rules = set(proc.stdout.split())
    assert {"decode", "train_backbone", "extract_features_demo", "report"} <= rules
    for profile in (REPO / "pipeline/profiles").glob("*/config.yaml"):
        settings = yaml.safe_load(profile.read_text())
        named = {*settings.get("set-threads", {}), *settings.get("set-resources", {})}
        assert named <= rules, f"{profile} names unknown rules {sorted(named - rules)}"


def test_rules_declare_their_resources(tmp_path: Path) -> None:
    """Resources live in the rules (profiles only override): a dry run without any profile
    shows the GPU on backbone training and extraction, and memory and runtime on every job."""
    cfg = yaml.safe_load((REPO / "pipeline/config/demo.yaml").read_text())
    cfg.update(dataset="gpudemo", gpu=True)
    config_file = tmp_path / "gpudemo.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    proc = snakemake(
        "--config",
        f"dataset_configs=[{config_file}]",
        "-n",
        "--workflow-profile",
        "none",
        "--directory",
        str(tmp_path),
        "-s",
        str(REPO / "Snakefile"),
        "results/gpudemo",
    )
    resources = job_resources(proc.stdout)
    for rule in ("train_backbone", "extract_features_gpudemo"):
        assert resources[rule]["gpu"] == "1"
    for rule in ("decode", "train_head", "report"):
        assert resources[rule].get("gpu", "0") == "0"
    for rule in ("decode", "train_backbone", "extract_features_gpudemo", "train_head", "report"):
        assert int(resources[rule]["mem_mb"]) >= 4000 and int(resources[rule]["runtime"]) >= 30


def job_resources(output: str) -> dict[str, dict[str, str]]:
    """Rule -> resources of its last job, from a dry run's job listing."""
    found: dict[str, dict[str, str]] = {}
    rule = None
    for line in output.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif rule and line.strip().startswith("resources:"):
            items = line.split(":", 1)[1].split(", ")
            found[rule] = dict(item.strip().split("=", 1) for item in items if "=" in item)
    return found


def test_bad_dataset_config_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("dataset: broken\nmanifest: x\n")
    proc = snakemake(
        "--config",
        f"dataset_configs=[{bad}]",
        "-n",
        "--directory",
        str(tmp_path),
        "-s",
        str(REPO / "Snakefile"),
        "results/demo",
        check=False,
    )
    assert proc.returncode != 0
    assert "broken.yaml" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_demo_end_to_end_on_tiny_config(tmp_path: Path) -> None:
    """The whole chain on a small config whose splits have non-numeric names (`A`, `B`: the
    demo's splits renamed): its best model learns (far above predicting background for every
    frame); a second run does nothing; a deleted feature store, named next to the target
    (Snakemake >= 7.7 does not rebuild deleted intermediates of up-to-date results on its
    own), re-runs only what depends on it."""
    cfg = yaml.safe_load((REPO / "pipeline/config/demo.yaml").read_text())
    manifest = tmp_path / "manifest"
    shutil.copytree(REPO / cfg["manifest"], manifest)
    splits = (manifest / "splits.tsv").read_text().splitlines()
    renamed = [splits[0]] + [
        f"{'ABCD'[int(s) - 1]}\t{v}" for s, v in (r.split() for r in splits[1:])
    ]
    (manifest / "splits.tsv").write_text("\n".join(renamed) + "\n")
    cfg["dataset"] = "tiny"
    cfg["manifest"] = str(manifest)
    cfg["splits"] = ["A"]
    cfg["backbones"] = {"resnet": cfg["backbones"]["resnet"], "lcdc": cfg["backbones"]["lcdc"]}
    for entry in cfg["backbones"].values():  # half the demo's budget
        entry["train"] = {**entry["train"], "epochs": TINY_EPOCHS}
    cfg["heads"]["ed-tcn"]["train"] = {**cfg["heads"]["ed-tcn"]["train"], "epochs": 100}
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    # --config takes every word up to the next option, so it goes first.
    common = [
        "--config",
        f"dataset_configs=[{config_file}]",
        "--directory",
        str(tmp_path),
        "-s",
        str(REPO / "Snakefile"),
        "--cores",
        "2",
    ]

    snakemake(*common, "results/tiny")
    out = tmp_path / "results/tiny"
    import pandas as pd

    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns[:9]) == [
        "backbone",
        "head",
        "split",
        "run",
        "acc",
        "edit",
        "f1@10",
        "f1@25",
        "f1@50",
    ]
    assert set(metrics["backbone"]) == {"resnet", "lcdc"}
    assert set(metrics["split"]) == {"A"}
    assert metrics[["acc", "edit", "f1@10"]].apply(lambda c: c.between(0, 100)).all().all()
    assert "±" in (out / "table.md").read_text()
    gt = tmp_path / "results/predictions/tiny/lcdc/ed-tcn/splitA/run1/gt"
    labels = [line for f in sorted(gt.glob("*.txt")) for line in f.read_text().split()]
    background_only = 100 * labels.count("background") / len(labels)
    per_video = metrics[metrics["convention"] == "per-video"]
    assert per_video["acc"].max() > background_only + 20, (background_only, per_video)
    assert per_video["f1@10"].max() > 40, per_video

    again = snakemake(*common, "-n", "results/tiny")
    assert "Nothing to be done" in again.stdout + again.stderr

    store = next((tmp_path / "results/features/tiny/lcdc/splitA").glob("*.zarr"))
    shutil.rmtree(store)
    target = str(store.relative_to(tmp_path))
    redo = planned_jobs(snakemake(*common, "-n", "results/tiny", target).stdout)
    assert redo == {"extract_features_tiny": 1, "train_head": 1, "report": 1}


def test_frozen_backbone_is_extracted_once_per_video_for_all_splits(tmp_path: Path) -> None:
    cfg = yaml.safe_load((REPO / "pipeline/config/demo.yaml").read_text())
    cfg["dataset"] = "frozen"
    cfg["backbones"] = {"resnet": {**cfg["backbones"]["resnet"], "train": False}}
    config_file = tmp_path / "frozen.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    args = ["--config", f"dataset_configs=[{config_file}]", "--directory", str(tmp_path)]
    proc = snakemake(*args, "-s", str(REPO / "Snakefile"), "-n", "results/frozen")
    jobs = planned_jobs(proc.stdout)
    n_videos, n_splits = manifest_videos(cfg), len(cfg["splits"])
    assert jobs["extract_frozen"] == n_videos
    assert "train_backbone" not in jobs and "extract_features_frozen" not in jobs
    assert jobs["train_head"] == len(cfg["heads"]) * n_splits * cfg["runs"]
