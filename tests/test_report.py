"""`motionseg report` on a small fabricated predictions tree (2 backbones x 2 heads x 2 splits
x 2 runs): metrics.csv rows, mean ± std tables, plots and the HTML page."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import HOSTILE_OUTPUTS, hostile_output, tree_snapshot
from typer.testing import CliRunner

from stages.cli import app
from stages.common.labels import write_label_file

CLASSES = ["background", "cut", "peel", "mix"]
BACKBONES = ["lcdc", "resnet"]
HEADS = ["ed-tcn", "st-cnn"]
SPLIT_VIDEOS = {1: ["vid_a", "vid_b"], 2: ["vid_c", "vid_d"]}
RUNS = [1, 2]
METRICS_COLUMNS = [
    "backbone", "head", "split", "run", "acc", "edit", "f1@10", "f1@25", "f1@50", "convention",
]  # fmt: skip

runner = CliRunner()


def _ground_truth(rng: np.random.Generator) -> np.ndarray:
    labels = rng.choice(CLASSES, 8)
    return np.repeat(labels, rng.integers(3, 9, labels.size))


def _noisy(gt: np.ndarray, rng: np.random.Generator, rate: float) -> np.ndarray:
    pred = gt.copy()
    flips = rng.random(gt.size) < rate
    pred[flips] = rng.choice(CLASSES, int(flips.sum()))
    return pred


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """results/demo/predictions/{backbone}/{head}/split{k}/run{r}/ with feature-rate labels and
    native labels (every feature label repeated twice)."""
    rng = np.random.default_rng(0)
    gts = {v: _ground_truth(rng) for videos in SPLIT_VIDEOS.values() for v in videos}
    root = tmp_path / "results" / "demo" / "predictions"
    for b, backbone in enumerate(BACKBONES):
        for h, head in enumerate(HEADS):
            for split, videos in SPLIT_VIDEOS.items():
                for run in RUNS:
                    run_dir = root / backbone / head / f"split{split}" / f"run{run}"
                    for video in videos:
                        pred = _noisy(gts[video], rng, 0.1 + 0.1 * b + 0.05 * h)
                        write_label_file(run_dir / "gt" / f"{video}.txt", gts[video])
                        write_label_file(run_dir / "pred" / f"{video}.txt", pred)
                        write_label_file(
                            run_dir / "native" / "gt" / f"{video}.txt", np.repeat(gts[video], 2)
                        )
                        write_label_file(
                            run_dir / "native" / "pred" / f"{video}.txt", np.repeat(pred, 2)
                        )
                    (run_dir / "run.json").write_text(json.dumps({"head": head}))
    return root


def _read(path: Path) -> np.ndarray:
    return np.array(path.read_text().split())


def _acc(run_dir: Path) -> float:
    """Per-video mean frame accuracy, computed here without the package's metrics."""
    accs = [
        100 * np.mean(_read(gt) == _read(run_dir / "pred" / gt.name))
        for gt in sorted((run_dir / "gt").iterdir())
    ]
    return float(np.mean(accs))


def test_report_writes_metrics_tables_plots_and_html(tree: Path, tmp_path: Path):
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(tree), str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion", "index.html", "metrics.csv", "plots", "provenance.json", "report.json",
        "table.csv",
        "table.md",
    ]  # fmt: skip
    assert not list(tmp_path.glob(".report*")), "temporary folder left behind"

    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == METRICS_COLUMNS
    assert len(metrics) == 2 * len(BACKBONES) * len(HEADS) * len(SPLIT_VIDEOS) * len(RUNS)
    assert sorted(metrics["convention"].unique()) == ["per-video", "pooled"]
    per_video = metrics[metrics["convention"] == "per-video"]
    assert not per_video.duplicated(["backbone", "head", "split", "run"]).any()
    for row in per_video.itertuples():
        run_dir = tree / row.backbone / row.head / f"split{row.split}" / f"run{row.run}"
        assert row.acc == pytest.approx(_acc(run_dir))

    table = pd.read_csv(out / "table.csv")
    assert list(table.columns) == [
        "convention", "model", "runs", "splits", "F1@10", "F1@25", "F1@50", "Edit", "Acc",
        "acc:background", "acc:cut", "acc:mix", "acc:peel",
    ]  # fmt: skip
    assert len(table) == 2 * len(BACKBONES) * len(HEADS)
    for _, row in table.iterrows():
        backbone, head = row["model"].split(" + ")
        rows = metrics[
            (metrics["convention"] == row["convention"])
            & (metrics["backbone"] == backbone)
            & (metrics["head"] == head)
        ]
        for column, key in [("Acc", "acc"), ("Edit", "edit"), ("F1@25", "f1@25")]:
            per_run = [rows[rows["run"] == r][key].mean() for r in RUNS]
            expected = f"{statistics.mean(per_run):.2f} ± {statistics.stdev(per_run):.2f}"
            assert row[column] == expected
    assert (table["runs"] == len(RUNS)).all()

    markdown = (out / "table.md").read_text()
    assert "Per-video mean" in markdown
    assert "Pooled" in markdown
    assert "| lcdc + ed-tcn | 2 | 2 |" in markdown

    videos = [v for vs in SPLIT_VIDEOS.values() for v in vs]
    plots = sorted((out / "plots").iterdir())
    assert [p.stem for p in plots] == sorted(videos)
    from matplotlib.image import imread

    for plot in plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert imread(plot).shape[0] > 100  # ground truth + 4 model bars + legend

    page = (out / "index.html").read_text()
    for video in videos:
        assert f'src="plots/{video}.png"' in page
    assert page.count("<table") == 4  # per-video, pooled, per-class, provenance
    assert "lcdc + st-cnn" in page
    assert "demo" in page  # dataset name taken from results/demo/predictions


def test_native_rate_and_class_file(tree: Path, tmp_path: Path):
    classes = tmp_path / "mapping.txt"
    classes.write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES)))
    out = tmp_path / "native_report"
    args = ["report", str(tree), str(out), "--rate", "native", "--classes", str(classes)]
    result = runner.invoke(app, [*args, "--dataset", "Demo set", "--plot-run", "2"])
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv")
    feature = tree / "lcdc" / "ed-tcn" / "split1" / "run1"
    row = metrics[
        (metrics["convention"] == "per-video")
        & (metrics["backbone"] == "lcdc")
        & (metrics["head"] == "ed-tcn")
        & (metrics["split"] == 1)
        & (metrics["run"] == 1)
    ]
    # labels repeated twice: accuracy unchanged, read from the native folders
    assert row["acc"].item() == pytest.approx(_acc(feature))
    assert "Demo set" in (out / "index.html").read_text()
    assert "(run 2)" in (out / "index.html").read_text()


def test_rerun_replaces_previous_report(tree: Path, tmp_path: Path):
    out = tmp_path / "report"
    assert runner.invoke(app, ["report", str(tree), str(out)]).exit_code == 0
    (out / "plots" / "stale.png").write_bytes(b"old")
    assert runner.invoke(app, ["report", str(tree), str(out)]).exit_code == 0
    assert not (out / "plots" / "stale.png").exists()


def test_refuses_to_replace_a_folder_that_is_not_a_report(tree: Path, tmp_path: Path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["report", str(tree), str(out)])
    assert result.exit_code == 1
    assert "refusing" in result.output
    assert (out / "notes.txt").read_text() == "keep me"
    result = runner.invoke(app, ["report", str(tree), str(tree.parent)])
    assert result.exit_code == 1
    assert "holds an input" in result.output


@pytest.mark.parametrize("variant", HOSTILE_OUTPUTS)
def test_never_replaces_what_it_did_not_write(tree: Path, tmp_path: Path, variant, monkeypatch):
    out = hostile_output(variant, tmp_path, tree, monkeypatch)
    before = tree_snapshot(tmp_path)
    result = runner.invoke(app, ["report", str(tree), out])
    assert result.exit_code == 1 and "refusing to replace" in result.output, result.output
    assert tree_snapshot(tmp_path) == before


def test_a_folder_of_metrics_without_the_marker_is_not_a_report(tree: Path, tmp_path: Path):
    out = tmp_path / "report"
    assert runner.invoke(app, ["report", str(tree), str(out)]).exit_code == 0
    assert json.loads((out / "report.json").read_text())["runs"] > 0
    (out / "report.json").unlink()  # metrics.csv alone no longer proves anything
    result = runner.invoke(app, ["report", str(tree), str(out)])
    assert result.exit_code == 1 and "not a report folder this project wrote" in result.output


def test_runs_covering_different_splits_are_an_error(tree: Path, tmp_path: Path):
    import shutil

    shutil.rmtree(tree / "resnet" / "st-cnn" / "split2" / "run2")
    result = runner.invoke(app, ["report", str(tree), str(tmp_path / "report")])
    assert result.exit_code == 1
    assert "resnet/st-cnn" in result.output
    assert "different splits" in result.output
    assert not (tmp_path / "report").exists()


def test_missing_label_folder_and_empty_tree_are_errors(tree: Path, tmp_path: Path):
    import shutil

    shutil.rmtree(tree / "lcdc" / "st-cnn" / "split1" / "run1" / "native")
    result = runner.invoke(app, ["report", str(tree), str(tmp_path / "r"), "--rate", "native"])
    assert result.exit_code == 1
    assert "lcdc/st-cnn/split1/run1/native/gt" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["report", str(empty), str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "no run folders" in result.output
    result = runner.invoke(app, ["report", str(tree), str(tmp_path / "r"), "--plot-run", "7"])
    assert result.exit_code == 1
    assert "run7" in result.output


def test_single_run_shows_the_mean_without_std(tree: Path, tmp_path: Path):
    import shutil

    for run2 in tree.glob("*/*/split*/run2"):
        shutil.rmtree(run2)
    out = tmp_path / "report"
    assert runner.invoke(app, ["report", str(tree), str(out)]).exit_code == 0
    table = pd.read_csv(out / "table.csv", dtype=str)
    assert (table["runs"] == "1").all()
    metrics = pd.read_csv(out / "metrics.csv")
    first = metrics[(metrics["convention"] == "per-video") & (metrics["backbone"] == "lcdc")]
    first = first[first["head"] == "ed-tcn"]
    assert table["Acc"].iloc[0] == f"{first['acc'].mean():.2f}"  # no "± nan"


def test_class_order_puts_background_first_and_grey():
    from stages.evaluate.plots import BACKGROUND_COLOUR, class_colours, class_order

    order = class_order({"peel", "end", "cut", "start"}, background=["start", "end", "bg"])
    assert order == ["start", "end", "cut", "peel"]
    colours = class_colours(order, ["start", "end"])
    assert list(colours) == order
    assert colours["start"] == colours["end"] == BACKGROUND_COLOUR
    assert len({colours["cut"], colours["peel"], BACKGROUND_COLOUR}) == 3


def test_report_only_given_runs(tree: Path, tmp_path: Path):
    """Runs left by an earlier config are ignored when the workflow names the runs it wants."""
    keep = sorted(tree.glob("*/*/split*/run1"))
    args = [a for r in keep for a in ("--run", str(r))]
    result = CliRunner().invoke(app, ["report", str(tree), str(tmp_path / "out"), *args])
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert set(metrics["run"]) == {1}
    assert len(metrics) == 2 * len(keep)  # both conventions
    missing = CliRunner().invoke(
        app, ["report", str(tree), str(tmp_path / "out2"), "--run", str(tmp_path / "nope")]
    )
    assert missing.exit_code == 1
    assert "nope" in missing.output


def test_provenance_names_settings_features_and_wall_times(tree: Path, tmp_path: Path):
    """Settings from run.json, the backbone from its feature store, the final epoch from the
    checkpoint's log, and wall seconds summed per stage from the benchmark tables."""
    from stages import __version__
    from stages.common.outputs import FEATURE_STORE
    from stages.common.stores import write_store

    checkpoint = tmp_path / "models" / "split1" / "best.pt"
    checkpoint.parent.mkdir(parents=True)
    (checkpoint.parent / "train_log.csv").write_text(
        "epoch,train_loss,train_acc,val_acc,lr,seconds\n1,2.0,0.1,0.2,0.001,9\n2,1.25,0.4,0.5,0.001,9\n"
    )
    features = tmp_path / "features" / "lcdc" / "split1"
    attrs = {"backbone": "lcdc", "weights": "imagenet", "checkpoint": str(checkpoint)}
    arrays = {"features": (np.zeros((2, 3)), ("t", "c"), (2, 3))}
    write_store(features / "vid_a.zarr", arrays, attrs, FEATURE_STORE)
    run_json = {"head": "ed-tcn", "options": {"filter_length": 9}, "train": {"lr": 0.01},
                "seed": 1, "device": "cpu", "manifest": "data_manifests/demo", "split": "1",
                "features": str(features), "final_train_loss": 0.123456}  # fmt: skip
    (tree / "lcdc/ed-tcn/split1/run1/run.json").write_text(json.dumps(run_json))
    bench = tmp_path / "benchmarks"
    for stage, seconds in (("decode/a", 1.5), ("decode/b", 2.5), ("train_head/x", 7.0)):
        (bench / stage).parent.mkdir(parents=True, exist_ok=True)
        (bench / f"{stage}.tsv").write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t10\n")
    out = tmp_path / "report"
    args = ["report", str(tree), str(out), "--benchmarks", str(bench), "--rate", "native"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["code_version"].startswith(("git ", f"motionseg {__version__}"))
    assert prov["label_rate"] == "native"
    model = prov["models"]["lcdc + ed-tcn"]
    assert model["head_options"] == {"filter_length": 9} and model["train"] == {"lr": 0.01}
    assert model["manifest"] == "data_manifests/demo" and 0.1235 in model["final_train_loss"]
    backbone = model["backbone_by_split"]["1"]
    assert backbone["weights"] == "imagenet" and backbone["checkpoint"] == str(checkpoint)
    assert backbone["final_epoch"] == {"epoch": "2", "train_loss": "1.25", "val_acc": "0.5"}
    times = {t["stage"]: (t["jobs"], t["total_s"]) for t in prov["stage_times"]}
    assert times == {"decode": (2, 4.0), "train_head": (1, 7.0)}
    page = (out / "index.html").read_text()
    assert "<h2>Provenance</h2>" in page and "train_log.csv</a>" in page
    assert "## Provenance" in (out / "table.md").read_text()


def test_splits_with_any_name_are_reported(tree: Path, tmp_path: Path):
    """A generic import passes split names through: `splitA`, `split10` are splits too."""
    for head_dir in tree.glob("*/*"):
        (head_dir / "split1").rename(head_dir / "splitA")
        (head_dir / "split2").rename(head_dir / "split10")
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(tree), str(out)])
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv", dtype={"split": str})
    assert sorted(metrics["split"].unique()) == ["10", "A"]
    per_video = metrics[metrics["convention"] == "per-video"]
    for row in per_video.itertuples():
        run_dir = tree / row.backbone / row.head / f"split{row.split}" / f"run{row.run}"
        assert row.acc == pytest.approx(_acc(run_dir))
    assert (pd.read_csv(out / "table.csv")["splits"] == 2).all()


def test_report_says_which_span_was_scored(tree: Path, tmp_path: Path):
    out = tmp_path / "report"
    assert runner.invoke(app, ["report", str(tree), str(out), "--span", "annotated"]).exit_code == 0
    assert "from its first to its last annotated" in (out / "table.md").read_text()
    assert "from its first to its last annotated" in (out / "index.html").read_text()
    whole = tmp_path / "whole"
    assert runner.invoke(app, ["report", str(tree), str(whole)]).exit_code == 0
    assert "Every frame of each video is scored." in (whole / "table.md").read_text()


def _class_acc(run_dir: Path, name: str) -> float:
    """A class's frames predicted as it, pooled over the run's videos (NaN when absent)."""
    gt = np.concatenate([_read(p) for p in sorted((run_dir / "gt").iterdir())])
    pred = np.concatenate(
        [_read(run_dir / "pred" / p.name) for p in sorted((run_dir / "gt").iterdir())]
    )
    return 100 * float(np.mean(pred[gt == name] == name)) if (gt == name).any() else float("nan")


def test_per_class_accuracy_marks_motion_only_classes_and_draws_confusions(tree, tmp_path):
    out = tmp_path / "report"
    args = ["report", str(tree), str(out), "--motion-only", "cut", "--motion-only", "peel"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "table.csv")
    for backbone in BACKBONES:
        for head in HEADS:
            model = f"{backbone} + {head}"
            expected = {}
            for name in CLASSES:
                per_run = [
                    np.nanmean(
                        [
                            _class_acc(tree / backbone / head / f"split{s}" / f"run{r}", name)
                            for s in SPLIT_VIDEOS
                        ]
                    )
                    for r in RUNS
                ]
                expected[name] = float(np.mean(per_run))
            rows = table[table["model"] == model]
            assert len(rows) == 2  # one per convention, same class columns
            for name, value in expected.items():
                assert rows[f"acc:{name}"].tolist() == pytest.approx([round(value, 2)] * 2)
            motion = (expected["cut"] + expected["peel"]) / 2
            assert rows["acc:motion-only mean"].iloc[0] == pytest.approx(motion, abs=0.01)
            assert (out / "confusion" / f"{backbone}__{head}.png").stat().st_size > 0
    markdown = (out / "table.md").read_text()
    assert "| model | background | cut* | mix | peel* | motion-only mean |" in markdown
    page = (out / "index.html").read_text()
    assert "confusion/lcdc__ed-tcn.png" in page and "Per-class frame accuracy" in page
