"""Smoke tests of the benchmark scripts' code paths at a tiny size on CPU (no timing asserts:
figures only have to exist and be positive), and the 50 Salads workload arithmetic."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import gpu_check  # noqa: E402

TINY = '{"depth": 18, "crop": 16, "resize_range": [16, 18], "snippet_length": 2}'


def test_salads_workload_from_the_config_and_manifest():
    """50 Salads: 577k frames at 30 fps over 50 videos, sampled at 6 fps: 2308 per video;
    5 splits of 40 training videos, all trained on (the config's val_fraction 0, as the
    paper); one snippet per 4 frames; 30 epochs."""
    work = gpu_check.salads_workload("lcdc")
    assert work["splits"] == 5 and work["epochs"] == 30
    assert work["fit_snippets"] == pytest.approx(40 * 2308 / 4)
    assert work["val_snippets"] == 0
    assert work["extract_frames"] == pytest.approx(50 * 2308)
    figures = {"train_sps_real": 30.0, "eval_sps_real": 100.0, "extract_fps_real": 1000.0}
    per_split = 30 * 23080 / 30 + 115400 / 1000
    assert gpu_check.estimated_hours(work, figures) == pytest.approx(5 * per_split / 3600)
    held_out = {**work, "val_snippets": 2308.0}
    per_split += 30 * 2308 / 100
    assert gpu_check.estimated_hours(held_out, figures) == pytest.approx(5 * per_split / 3600)


@pytest.mark.slow
def test_gpu_check_python_part_runs_on_cpu_at_a_tiny_size(capsys, one_torch_thread):
    args = ["--device", "cpu", "--backbones", "naive-appear", "--frames", "4", "--batches", "1"]
    args += ["--options", TINY, "--frame-size", "20", "--workers", "0"]
    assert gpu_check.main(args) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("naive-appear ")]
    assert [row[:2] for row in rows] == [["naive-appear", "fp32"], ["naive-appear", "bf16"]]
    # 7 figures a row: train real, pure, ratio, val, extract real, pure, ratio (peak GiB: nan)
    figures = [float(cell) for row in rows for cell in row[2:] if cell not in ("|", "nan")]
    assert len(figures) == 2 * 7 and all(value > 0 for value in figures)
    estimate = out.split("Estimated results/50salads wall time (fp32")[1]
    config = yaml.safe_load(gpu_check.SALADS_CONFIG.read_text())
    unmeasured = [label for label in config["backbones"] if label != "naive-appear"]
    assert "naive-appear" in estimate and f"not measured: {unmeasured}" in estimate


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_gpu_check_without_cuda_says_so(capsys):
    assert gpu_check.main(["--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().out
