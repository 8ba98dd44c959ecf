"""Build the report folder: metrics.csv, table.md, table.csv, plots/, index.html, provenance.json.

table.md and index.html end with a provenance section (`stages.evaluate.provenance`).

table.md, table.csv and index.html also hold every model's per-class frame accuracy (in
table.csv as `acc:{class}` columns, the same in both conventions' rows) with motion-only
classes marked, and confusion/ one confusion-matrix figure per model
(`stages.evaluate.per_class`).

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
from stages.evaluate.per_class import (
    MOTION_MARK,
    MOTION_MEAN,
    format_per_class,
    model_confusions,
    per_class_table,
    plot_confusion,
)
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


PER_CLASS_TITLE = "Per-class frame accuracy (%)"
PER_CLASS_NOTE = (
    "Share of each class's ground-truth frames predicted as that class, pooled over a split's "
    "test videos, then averaged over splits and runs; '-': the class is not in any test video."
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


def _per_class_note(motion_only: Sequence[str]) -> str:
    note = PER_CLASS_NOTE
    if motion_only:
        note += f" {MOTION_MARK} marks the motion-only classes ({', '.join(motion_only)})."
    return note


def _markdown(
    title: str,
    table: pd.DataFrame,
    rate: Rate,
    span: Span,
    per_class: pd.DataFrame,
    motion_only: Sequence[str],
    prov: dict,
) -> str:
    parts = [f"# {title}\n", f"Labels at the {rate} rate. {SPAN_NOTES[span]} {STD_NOTE}\n"]
    for heading, rows in _sections(table):
        parts += [f"## {heading}\n", markdown_table(rows)]
    parts += [f"## {PER_CLASS_TITLE}\n", _per_class_note(motion_only) + "\n"]
    parts.append(markdown_table(format_per_class(per_class)))
    parts.append(provenance.markdown(prov))
    return "\n".join(parts)


def _confusion_file(model: str) -> str:
    """'lcdc + ed-tcn' -> 'lcdc__ed-tcn.png'."""
    return model.replace(" + ", "__") + ".png"


def _plot_confusions(
    folder: Path, scored: Sequence[RunScores], order: Sequence[str], motion_only: Sequence[str]
) -> list[str]:
    """One confusion-matrix PNG per model; returns the models in table order."""
    folder.mkdir(parents=True)
    confusions = model_confusions(scored, order)
    for model, counts in confusions.items():
        title = f"{model}: frames of all splits and runs"
        plot_confusion(folder / _confusion_file(model), title, counts, order, motion_only)
    return list(confusions)


def _with_class_columns(table: pd.DataFrame, per_class: pd.DataFrame) -> pd.DataFrame:
    """table.csv: the summary rows joined with `acc:{class}` columns per model."""
    columns = {c: f"acc:{c.removesuffix(MOTION_MARK)}" for c in per_class.columns[1:]}
    columns[MOTION_MEAN] = f"acc:{MOTION_MEAN}"
    return table.merge(per_class.rename(columns=columns).round(2), on="model", how="left")


def _html(
    title: str,
    table: pd.DataFrame,
    rate: Rate,
    span: Span,
    videos: Sequence[str],
    run: int,
    per_class: pd.DataFrame,
    motion_only: Sequence[str],
    confusion_models: Sequence[str],
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
    parts += [
        f"<h2>{PER_CLASS_TITLE}</h2>",
        f"<p>{html.escape(_per_class_note(motion_only))}</p>",
        format_per_class(per_class).to_html(index=False, border=0),
        "<h2>Confusion matrices</h2>",
    ]
    for model in confusion_models:
        src = f"confusion/{quote(_confusion_file(model))}"
        parts.append(f'<img src="{src}" alt="confusion matrix of {html.escape(model)}">')
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
    motion_only: Sequence[str] = (),
    benchmarks_dir: str | Path | None = None,
) -> tuple[int, int]:
    """Evaluate every run (or those in `only`) over `span` and write the report folder;
    returns (runs, plots) written. The tables say which span was scored; plots show whole
    videos. `motion_only` classes are marked in the per-class tables. `benchmarks_dir`
    (Snakemake benchmark tables) gives the wall time per stage in the provenance section."""
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
    order = class_order(labels, background, classes)
    colours = class_colours(order, background)
    per_class = per_class_table(scored, order, motion_only)
    title = f"{dataset or default_dataset_name(predictions_dir)}: temporal action segmentation"
    bench = Path(benchmarks_dir) if benchmarks_dir is not None else None
    prov = provenance.collect(runs, rate, span, bench, started)
    with atomic_path(out_dir, REPORT, inputs=(predictions_dir,)) as tmp:
        tmp.mkdir()
        marker = {"predictions": str(predictions_dir.resolve()), "runs": len(runs)}
        (tmp / REPORT_MARKER).write_text(json.dumps({**marker, VERSION_KEY: __version__}) + "\n")
        metrics.to_csv(tmp / "metrics.csv", index=False)
        _with_class_columns(table, per_class).to_csv(tmp / "table.csv", index=False)
        markdown = _markdown(title, table, rate, span, per_class, motion_only, prov)
        (tmp / "table.md").write_text(markdown)
        (tmp / "provenance.json").write_text(json.dumps(prov, indent=1, default=str) + "\n")
        videos = _plot_all(tmp / "plots", scored, plot_run, rate, classes, colours)
        models = _plot_confusions(tmp / "confusion", scored, order, motion_only)
        page = _html(
            title, table, rate, span, videos, plot_run, per_class, motion_only, models, prov
        )
        (tmp / "index.html").write_text(page)
    return len(runs), len(videos)
