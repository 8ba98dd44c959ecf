"""Build the report folder: metrics.csv, table.md, table.csv, plots/, index.html, provenance.json.

table.md and index.html end with a provenance section (`stages.evaluate.provenance`).

`metrics.csv` holds one row per backbone x head x split x run *and convention*: the columns
`backbone, head, split, run, acc, edit, f1@10, f1@25, f1@50`, then `convention` (`per-video` or
`pooled`), so one file serves both conventions. The whole folder is built under a temporary
name and renamed into place, so a reader never sees a half-written report; an existing report
is replaced, any other non-empty folder is refused.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from stages import __version__
from stages.common.atomic import VERSION_KEY, atomic_path, check_destination
from stages.common.errors import input_error
from stages.common.labels import ClassList, read_label_file
from stages.common.outputs import REPORT
from stages.evaluate import provenance
from stages.evaluate.label_folders import SPAN_NOTES, Span, label_files
from stages.evaluate.metrics import CONVENTIONS
from stages.evaluate.plots import class_colours, class_order, plot_video
from stages.evaluate.runs import Rate, RunScores, find_runs, score_run
from stages.evaluate.summary import (
    CONVENTION_TITLES,
    display_table,
    markdown_table,
    metrics_frame,
    summarise,
)

STD_NOTE = (
    "Cells are mean ± std over runs, where each run's value is its metric averaged over the "
    "splits and std is the sample standard deviation (ddof = 1); with one run only the mean "
    "is shown."
)


def default_dataset_name(predictions_dir: Path) -> str:
    """`results/{dataset}/predictions` -> `{dataset}`; otherwise the folder's own name."""
    resolved = predictions_dir.resolve()
    return resolved.parent.name if resolved.name == "predictions" else resolved.name


def _plot_all(
    plots_dir: Path,
    scored: Sequence[RunScores],
    plot_run: int,
    rate: Rate,
    classes: ClassList | None,
    colours: dict[str, tuple[float, ...]],
) -> list[str]:
    """One PNG per test video of run `plot_run`; returns the video ids in plotting order.

    A video that is a test video of several splits is drawn once per model, from its first split.
    """
    # video -> model -> (ground-truth file, prediction file, accuracy)
    by_video: dict[str, dict[str, tuple[Path, Path, float]]] = {}
    for item in scored:
        if item.run.run != plot_run:
            continue
        gt_files, pred_files = (label_files(d) for d in item.run.label_dirs(rate))
        for video, score in item.videos.items():
            by_video.setdefault(video, {}).setdefault(
                item.run.model, (gt_files[video], pred_files[video], score.acc)
            )
    plots_dir.mkdir()
    for video, models in sorted(by_video.items()):
        first_gt = next(iter(models.values()))[0]
        rows = [
            (model, read_label_file(pred, classes), acc) for model, (_, pred, acc) in models.items()
        ]
        plot_video(
            plots_dir / f"{video}.png",
            f"{video} (run {plot_run})",
            read_label_file(first_gt, classes),
            rows,
            colours,
            xlabel=f"frame ({rate} rate)",
        )
    return sorted(by_video)


def _sections(table: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """(title, rows without the convention column) of each convention's table."""
    for convention in CONVENTIONS:
        rows = table[table["convention"] == convention].drop(columns="convention")
        yield CONVENTION_TITLES[convention], rows


def _markdown(title: str, table: pd.DataFrame, rate: Rate, span: Span, prov: dict) -> str:
    parts = [f"# {title}\n", f"Labels at the {rate} rate. {SPAN_NOTES[span]} {STD_NOTE}\n"]
    for heading, rows in _sections(table):
        parts += [f"## {heading}\n", markdown_table(rows)]
    parts.append(provenance.markdown(prov))
    return "\n".join(parts)


def _html(
    title: str,
    table: pd.DataFrame,
    rate: Rate,
    span: Span,
    videos: Sequence[str],
    run: int,
    prov: dict,
) -> str:
    parts = [
        "<!doctype html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Labels at the {rate} rate. {html.escape(SPAN_NOTES[span])} "
        f"{html.escape(STD_NOTE)} Per-run values: "
        '<a href="metrics.csv">metrics.csv</a>; tables: <a href="table.csv">table.csv</a>, '
        '<a href="table.md">table.md</a>.</p>',
    ]
    for heading, rows in _sections(table):
        parts += [f"<h2>{html.escape(heading)}</h2>", rows.to_html(index=False, border=0)]
    parts.append(provenance.html_section(prov))
    parts.append(f"<h2>Segmentations of the test videos (run {run})</h2>")
    for video in videos:
        parts += [
            f"<h3>{html.escape(video)}</h3>",
            f'<img src="plots/{quote(video)}.png" alt="segmentation of {html.escape(video)}">',
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


REPORT_MARKER = "report.json"  # proves a folder is a report (stages.common.outputs.REPORT)


def build_report(
    predictions_dir: str | Path,
    out_dir: str | Path,
    background: Sequence[str],
    classes: ClassList | None = None,
    dataset: str | None = None,
    rate: Rate = "feature",
    plot_run: int | None = None,
    only: Sequence[str | Path] | None = None,
    span: Span = "video",
    benchmarks_dir: str | Path | None = None,
) -> tuple[int, int]:
    """Evaluate every run (or those in `only`) over `span` and write the report folder;
    returns (runs, plots) written. The tables say which span was scored; plots show whole
    videos. `benchmarks_dir` (Snakemake benchmark tables) gives the wall time per stage in the
    provenance section."""
    started = time.time()
    predictions_dir, out_dir = Path(predictions_dir), Path(out_dir)
    check_destination(out_dir, REPORT, inputs=(predictions_dir,))
    runs = find_runs(predictions_dir, only)
    if plot_run is None:
        plot_run = min(r.run for r in runs)
    elif all(r.run != plot_run for r in runs):
        raise input_error(predictions_dir, f"no run{plot_run} folders to plot")
    scored = [score_run(run, rate, background, classes, span) for run in runs]
    metrics = metrics_frame(scored)
    table = display_table(summarise(metrics))
    labels = set().union(*(item.labels for item in scored))
    colours = class_colours(class_order(labels, background, classes), background)
    title = f"{dataset or default_dataset_name(predictions_dir)}: temporal action segmentation"
    bench = Path(benchmarks_dir) if benchmarks_dir is not None else None
    prov = provenance.collect(runs, rate, span, bench, started)
    with atomic_path(out_dir, REPORT, inputs=(predictions_dir,)) as tmp:
        tmp.mkdir()
        marker = {"predictions": str(predictions_dir.resolve()), "runs": len(runs)}
        (tmp / REPORT_MARKER).write_text(json.dumps({**marker, VERSION_KEY: __version__}) + "\n")
        metrics.to_csv(tmp / "metrics.csv", index=False)
        table.to_csv(tmp / "table.csv", index=False)
        (tmp / "table.md").write_text(_markdown(title, table, rate, span, prov))
        (tmp / "provenance.json").write_text(json.dumps(prov, indent=1, default=str) + "\n")
        videos = _plot_all(tmp / "plots", scored, plot_run, rate, classes, colours)
        (tmp / "index.html").write_text(_html(title, table, rate, span, videos, plot_run, prov))
    return len(runs), len(videos)
