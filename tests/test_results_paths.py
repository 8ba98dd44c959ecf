"""The results tree's paths: built and parsed by one module, for any split name."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REFERENCE_ENV, reference_dir, require_reference
from test_workflow import REPO, SNAKEMAKE
from typer.testing import CliRunner

from stages.cli import app
from stages.common import results_paths as paths
from stages.common.checkout import CHECKOUT_ENV


def test_paths_round_trip_any_split_name() -> None:
    for split in ("1", "10", "A", "fold-x"):
        path = paths.run_dir("gtea", "lcdc", "ed-tcn", split, 3)
        assert path == f"results/predictions/gtea/lcdc/ed-tcn/split{split}/run3"
        key = paths.parse_run_dir(Path(path).relative_to(paths.predictions_dir("gtea")))
        assert key == paths.RunKey("lcdc", "ed-tcn", split, 3)
    assert paths.feature_store("d", "b", "A", "v") == "results/features/d/b/splitA/v.zarr"
    assert paths.checkpoint("d", "b", "A") == "results/models/d/b/splitA/best.pt"


def test_folders_that_are_not_runs_parse_to_none() -> None:
    for relative in ("b/h/split/run1", "b/h/splitA/runX", "b/h/fold1/run1", "b/h/splitA"):
        assert paths.parse_run_dir(relative) is None


def test_numeric_splits_sort_numerically_before_named_ones() -> None:
    assert sorted(["10", "B", "2", "A", "1"], key=paths.split_sort_key) == [
        "1",
        "2",
        "10",
        "A",
        "B",
    ]


def test_cli_refuses_another_checkouts_code(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["heads", "list"], env={CHECKOUT_ENV: str(tmp_path)})
    assert result.exit_code == 1
    assert f"the workflow of {tmp_path} runs motionseg" in result.output
    assert str(REPO) in result.output
    same = CliRunner().invoke(app, ["heads", "list"], env={CHECKOUT_ENV: str(REPO)})
    assert same.exit_code == 0, same.output


def test_snakefile_refuses_when_stages_is_another_checkout(tmp_path: Path) -> None:
    """A copy of the workflow (another 'clone') run with this checkout's package installed."""
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(REPO / "Snakefile", clone / "Snakefile")
    shutil.copytree(REPO / "pipeline", clone / "pipeline")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [str(SNAKEMAKE), "--list-rules", "-s", str(clone / "Snakefile"), "-d", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert f"this workflow is {clone}, but the installed motionseg is the code in {REPO}" in (
        proc.stdout + proc.stderr
    )


def test_missing_reference_data_skips_locally_and_fails_in_ci(tmp_path: Path) -> None:
    env = {REFERENCE_ENV: str(tmp_path)}
    with pytest.raises(pytest.skip.Exception, match="absent"):
        require_reference(["50salads"], env)
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        require_reference(["50salads"], {**env, "CI": "true"})
    (tmp_path / "50salads").mkdir()
    require_reference(["50salads"], {**env, "CI": "true"})
    assert reference_dir({}) == REPO.parent / "shared" / "reference"
