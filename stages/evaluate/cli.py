"""`motionseg evaluate` and `motionseg report`.

Heavy imports (pandas, matplotlib) happen inside the commands so `motionseg --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from stages.common.labels import ClassList

BackgroundOption = Annotated[
    list[str] | None,
    typer.Option(
        "--background", metavar="NAME", help="A background class (repeatable); default: background."
    ),
]
ClassesOption = Annotated[
    Path | None,
    typer.Option(
        "--classes",
        metavar="FILE",
        help="Mapping file of 'index name' lines: names for .npy label indices; "
        "for report also the class order and colours of the plots.",
    ),
]


SpanOption = Annotated[
    Literal["video", "annotated"],
    typer.Option(
        help="Frames scored: every frame (video), or each video from its first to its last "
        "non-background ground-truth frame (annotated: the span of the TCN authors' 50 Salads "
        "labels, needed to compare with their Table 1)."
    ),
]


def _classes(path: Path | None, background: list[str]) -> ClassList | None:
    from stages.common.labels import ClassList

    return None if path is None else ClassList.read(path, background)


def evaluate(
    gt: Annotated[Path, typer.Argument(help="Ground-truth folder: one label file per video.")],
    pred: Annotated[Path, typer.Argument(help="Prediction folder, files named as in GT.")],
    background: BackgroundOption = None,
    convention: Annotated[
        Literal["per-video", "pooled"],
        typer.Option(
            help="per-video: mean of per-video metrics; pooled: accuracy and F1 "
            "from counts summed over videos (edit stays a per-video mean)."
        ),
    ] = "per-video",
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json",
            metavar="FILE|-",
            help="Also write the metrics as JSON to FILE; '-' prints only the JSON.",
        ),
    ] = None,
    classes: ClassesOption = None,
    span: SpanOption = "video",
) -> None:
    """Frame accuracy, segmental edit score and F1@{10,25,50} of a folder of predictions."""
    from stages import __version__
    from stages.common.atomic import VERSION_KEY, check_destination, write_text
    from stages.common.outputs import EVALUATION_JSON
    from stages.evaluate.label_folders import score_folders
    from stages.evaluate.metrics import DEFAULT_BACKGROUND, combine

    inputs = (gt, pred, *([classes] if classes else []))
    if json_out not in (None, "-"):
        check_destination(json_out, EVALUATION_JSON, inputs)
    warn = (lambda line: typer.echo(f"warning: {line}", err=True)) if background else None
    background = list(background or DEFAULT_BACKGROUND)
    scores = score_folders(
        gt, pred, background, _classes(classes, background), warn=warn, span=span
    )
    result = {
        **combine(list(scores.values()), convention),
        "videos": len(scores),
        "convention": convention,
        "span": span,
    }
    text = json.dumps(result, indent=2) + "\n"
    if json_out == "-":
        sys.stdout.write(text)
        return
    if json_out is not None:
        file_text = json.dumps({**result, VERSION_KEY: __version__}, indent=2) + "\n"
        write_text(json_out, file_text, EVALUATION_JSON, inputs)
    typer.echo(
        f"{len(scores)} videos, {convention} convention, {span} span, "
        f"background: {', '.join(background)}"
    )
    for key, value in result.items():
        if key not in ("videos", "convention", "span"):
            typer.echo(f"  {key:<6} {value:6.2f}")


def report(
    predictions_dir: Annotated[
        Path, typer.Argument(help="Tree of {backbone}/{head}/split{split}/run{r}/ folders.")
    ],
    out_dir: Annotated[Path, typer.Argument(help="Report folder (replaced as a whole).")],
    background: BackgroundOption = None,
    classes: ClassesOption = None,
    dataset: Annotated[
        str | None, typer.Option(help="Title; default: the folder above 'predictions'.")
    ] = None,
    rate: Annotated[
        Literal["feature", "native"],
        typer.Option(help="Evaluate the feature-rate labels or those mapped to every frame."),
    ] = "feature",
    plot_run: Annotated[
        int | None, typer.Option(help="Run whose predictions are plotted; default: the first.")
    ] = None,
    run: Annotated[
        list[Path] | None,
        typer.Option(help="Only these run folders (repeatable); default: every run found."),
    ] = None,
    span: SpanOption = "video",
    benchmarks: Annotated[
        Path | None,
        typer.Option(help="Snakemake benchmark tables for the wall time per stage (provenance)."),
    ] = None,
    motion_only: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="A class that differs from others only in motion (repeatable); marked in the "
            "per-class tables.",
        ),
    ] = None,
) -> None:
    """Evaluate every run into metrics.csv, paper-style tables, segmentation plots and HTML,
    with a provenance section (code version, settings, manifest, device, wall times)."""
    from stages.evaluate.metrics import DEFAULT_BACKGROUND
    from stages.evaluate.report import build_report

    background = list(background or DEFAULT_BACKGROUND)
    runs, plots = build_report(
        predictions_dir,
        out_dir,
        background,
        _classes(classes, background),
        dataset,
        rate,
        plot_run,
        only=run,
        span=span,
        benchmarks_dir=benchmarks,
        motion_only=list(motion_only or []),
    )
    typer.echo(f"{out_dir}: {runs} runs evaluated, {plots} plots")
