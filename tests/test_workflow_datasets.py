"""Real-dataset workflows: import + check a fake 50 Salads download laid out like the real
one, then dry-run `results/50salads` locally and with the SLURM profile."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from conftest import REFERENCE
from test_workflow import REPO, job_resources, planned_jobs, snakemake

SALADS = REFERENCE / "50salads"
pytestmark = [pytest.mark.slow, pytest.mark.reference("50salads")]


def write_still_video(path: Path, num_frames: int, fps: int = 30) -> None:
    """An MJPEG AVI of `num_frames` identical 16x16 frames: one encoded packet muxed
    `num_frames` times, so videos of the real length cost milliseconds."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuvj420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        packet = [*stream.encode(frame), *stream.encode(None)][0]
        for i in range(num_frames):
            packet.pts = packet.dts = i
            packet.stream = stream
            out.mux(packet)


@pytest.fixture(scope="module")
def fake_download(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rgb/, timestamps/ and activityAnnotations/ as in the dataset download."""
    root = tmp_path_factory.mktemp("50salads_download")
    shutil.copytree(SALADS / "timestamps", root / "timestamps")
    shutil.copytree(SALADS / "annotations", root / "activityAnnotations")
    (root / "rgb").mkdir()
    ids = [
        line.split("\t")[0]
        for line in (REPO / "data_manifests/50salads/videos.tsv").read_text().splitlines()[1:]
    ]
    for vid in ids:
        frames = len((root / "timestamps" / f"timestamps-{vid}.txt").read_text().splitlines())
        write_still_video(root / "rgb" / f"rgb-{vid}.avi", frames)
    return root


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, fake_download: Path) -> Path:
    """A working directory where the import and check rules have really run."""
    work = tmp_path_factory.mktemp("work")
    snakemake(*_args(work, fake_download), "--cores", "2", "results/checks/50salads.ok")
    return work


def _args(work: Path, download: Path) -> list[str]:
    # --config takes every word up to the next option, so it goes first.
    return [
        "--config",
        f"roots={{'50salads': '{download}'}}",
        "--directory",
        str(work),
        "-s",
        str(REPO / "Snakefile"),
    ]


def test_import_and_check_ran_on_the_fake_download(workdir: Path) -> None:
    labels = sorted((workdir / "data/50salads/labels/mid").glob("*.txt"))
    assert len(labels) >= 50
    assert (workdir / "results/checks/50salads.ok").is_file()
    assert (workdir / "data/50salads/videos/rgb-01-1.avi").exists()


def test_dry_run_plans_the_paper_protocol(workdir: Path, fake_download: Path) -> None:
    cfg = yaml.safe_load((REPO / "pipeline/config/50salads.yaml").read_text())
    jobs = planned_jobs(snakemake(*_args(workdir, fake_download), "-n", "results/50salads").stdout)
    b, h, splits, runs, videos = len(cfg["backbones"]), len(cfg["heads"]), 5, cfg["runs"], 50
    assert jobs == {
        "decode": videos,
        "train_backbone": b * splits,
        "extract_features_50salads": b * splits,
        "train_head": b * h * splits * runs,
        "report": 1,
    }


def test_dry_run_with_the_slurm_profile(workdir: Path, fake_download: Path) -> None:
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install 'motionseg[slurm]'")
    proc = snakemake(
        *_args(workdir, fake_download),
        "-n",
        "--workflow-profile",
        str(REPO / "pipeline/profiles/slurm"),
        "results/50salads",
    )
    cfg = yaml.safe_load((REPO / "pipeline/config/50salads.yaml").read_text())
    assert planned_jobs(proc.stdout)["train_backbone"] == len(cfg["backbones"]) * 5
    resources = job_resources(proc.stdout)
    for rule in ("train_backbone", "extract_features_50salads"):
        assert resources[rule]["gpu"] == "1"
        assert resources[rule]["slurm_partition"] == "gpu"
    assert resources["decode"]["slurm_partition"] == "cpu"


def test_missing_download_is_one_clear_message(tmp_path: Path) -> None:
    proc = snakemake(
        *_args(tmp_path, tmp_path / "nowhere"),
        "--cores",
        "1",
        "results/checks/50salads.ok",
        check=False,
    )
    assert proc.returncode != 0
    log = (tmp_path / "logs/50salads/prepare.log").read_text()
    assert "nowhere" in log
    assert "Traceback" not in log
