"""Commands for real datasets: `data import {50salads,gtea,mstcn,generic}` and `data check`.

Mounted on the data stage's app by `stages/data/cli.py`. Warnings go to stderr, one line each;
problems with the input raise `MotionsegError` (one line, exit 1).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from stages.common.cli_options import RootOption

MANIFESTS = Path(__file__).resolve().parents[2] / "data_manifests"

import_app = typer.Typer(
    no_args_is_help=True,
    help="Convert a dataset as distributed into per-frame labels for its manifest.",
)


OutRoot = Annotated[
    Path | None, typer.Option(help="Data root to write labels/ and videos/ to (default: ROOT).")
]


def _warn(lines: list[str], what: str, limit: int = 10) -> None:
    if lines:
        shown = ", ".join(lines[:limit]) + (" ..." if len(lines) > limit else "")
        typer.echo(f"warning: {what} ({len(lines)}): {shown}", err=True)


@import_app.command("50salads")
def import_50salads_command(
    root: Annotated[Path, typer.Argument(help="The 50 Salads download (any layout below it).")],
    out: OutRoot = None,
    annotations: Annotated[
        Path | None, typer.Option(help="Folder of SS-N-activityAnnotation.txt (default: ROOT).")
    ] = None,
    timestamps: Annotated[
        Path | None, typer.Option(help="Folder of timestamps-SS-N.txt (default: ROOT).")
    ] = None,
    videos: Annotated[
        Path | None, typer.Option(help="Folder of rgb-SS-N.avi (default: ROOT).")
    ] = None,
    manifest: Annotated[Path, typer.Option(help="The 50 Salads manifest folder.")] = MANIFESTS
    / "50salads",
) -> None:
    """Per-frame mid/eval labels from the timestamped annotations; links the videos."""
    from stages.data.salads import import_50salads

    out = out or root
    start = time.perf_counter()
    report = import_50salads(root, out, manifest, annotations, timestamps, videos)
    seconds = time.perf_counter() - start
    frames = sum(report.converted.values())
    typer.echo(
        f"converted {len(report.converted)} annotation files ({frames} frames) in {seconds:.1f} s; "
        f"linked {len(report.linked)} videos into {out / 'videos'}"
    )
    for line in report.warnings:
        typer.echo(f"warning: {line}", err=True)
    _warn(report.extra, "converted but in no split")
    _warn(report.skipped, "annotation without timestamps file, skipped")
    _warn(report.missing_videos, "video rgb-SS-N.avi not found (pass --videos)")


@import_app.command("gtea")
def import_gtea_command(
    root: Annotated[Path, typer.Argument(help="The GTEA download (label files, videos).")],
    out: OutRoot = None,
    num_frames: Annotated[
        Path | None,
        typer.Option(help="TSV video_id, num_frames: frame counts instead of reading the videos."),
    ] = None,
    from_groundtruth: Annotated[
        Path | None,
        typer.Option(help="Folder of MS-TCN per-frame groundTruth/<video_id>.txt files instead."),
    ] = None,
    manifest: Annotated[Path, typer.Option(help="The GTEA manifest folder.")] = MANIFESTS / "gtea",
) -> None:
    """Per-frame verb labels from the '<verb><objects> (start-end)' files; links the videos."""
    from stages.data.gtea import import_gtea

    out = out or root
    report = import_gtea(root, out, manifest, num_frames, from_groundtruth)
    frames = sum(report.converted.values())
    typer.echo(
        f"converted {len(report.converted)} label files ({frames} frames); "
        f"linked {len(report.linked)} videos into {out / 'videos'}"
    )
    for line in report.warnings:
        typer.echo(f"warning: {line}", err=True)
    _warn(report.missing_videos, "video not found below ROOT")


@import_app.command("mstcn")
def import_mstcn_command(
    root: Annotated[
        Path, typer.Argument(help="MS-TCN folder: features/, groundTruth/, splits/, mapping.txt.")
    ],
    out: Annotated[
        Path, typer.Option(help="Data root to write (features/, groundTruth/, manifest/).")
    ],
    name: Annotated[str | None, typer.Option(help="Dataset name (default: OUT's name).")] = None,
    background: Annotated[
        list[str] | None,
        typer.Option(
            help="Background class (repeatable) (default: SIL/background/action_start/"
            "action_end, those in the mapping)."
        ),
    ] = None,
    fps: Annotated[float, typer.Option(help="Rate of the features (I3D files: 15).")] = 15,
    h5: Annotated[
        Path | None, typer.Option(help="One HDF5 file with a (D, T) dataset per video instead.")
    ] = None,
    features_name: Annotated[str, typer.Option(help="Name of the features in results.")] = "i3d",
    expect_videos: Annotated[int | None, typer.Option(help="Warn unless this many videos.")] = None,
    expect_classes: Annotated[
        int | None, typer.Option(help="Warn unless this many classes.")
    ] = None,
    expect_splits: Annotated[int | None, typer.Option(help="Warn unless this many splits.")] = None,
) -> None:
    """Precomputed features (MS-TCN layout) -> feature stores, aligned labels and a manifest."""
    from stages.data.mstcn import import_mstcn

    start = time.perf_counter()
    expect = {"videos": expect_videos, "classes": expect_classes, "splits": expect_splits}
    report = import_mstcn(
        root,
        out,
        name,
        background or (),
        fps,
        h5,
        features_name,
        {k: v for k, v in expect.items() if v is not None},
    )
    meta = report.manifest
    typer.echo(
        f"imported {len(report.frames)} videos ({sum(report.frames.values())} frames, "
        f"{len(meta.classes)} classes, {len(meta.splits)} splits, background "
        f"{list(meta.classes.background)}) in {time.perf_counter() - start:.1f} s; manifest "
        f"{meta.directory}"
    )
    for line in report.warnings:
        typer.echo(f"warning: {line}", err=True)


@import_app.command("generic")
def import_generic_command(
    table: Annotated[
        Path, typer.Argument(help="TSV: video_id, video[, labels, split, num_frames, group...].")
    ],
    classes: Annotated[Path, typer.Option(help="Class list: 'index name' or one name a line.")],
    out: Annotated[Path, typer.Option(help="Manifest folder to write.")],
    root: Annotated[
        Path | None, typer.Option(help="Data root (videos, labels) (default: the TSV's folder).")
    ] = None,
    labels_dir: Annotated[
        Path | None, typer.Option(help="Folder of <video_id>.txt/.tsv/.csv/.npy label files.")
    ] = None,
    folds: Annotated[
        int | None, typer.Option(help="Make K folds (when the TSV has no split column).")
    ] = None,
    group_by: Annotated[
        str | None, typer.Option(help="Column whose values stay together in one fold.")
    ] = None,
    fps: Annotated[
        float | None, typer.Option(help="Native frame rate (default: read from the videos).")
    ] = None,
    segment_units: Annotated[
        str, typer.Option(help="Units of segment tables: frames or seconds.")
    ] = "frames",
    name: Annotated[str | None, typer.Option(help="Dataset name (default: OUT's name).")] = None,
    background: Annotated[str, typer.Option(help="Class of unlabelled frames.")] = "background",
    backbone_fps: Annotated[float, typer.Option(help="settings.backbone_fps.")] = 6,
    purity: Annotated[float, typer.Option(help="settings.purity.")] = 0.7,
    feature_fps: Annotated[float, typer.Option(help="settings.feature_fps.")] = 3,
) -> None:
    """Write a standard manifest and per-frame labels for your own videos."""
    from stages.data.generic import Settings, import_generic

    report = import_generic(
        table,
        classes,
        out,
        root=root,
        labels_dir=labels_dir,
        folds=folds,
        group_by=group_by,
        fps=fps,
        segment_units=segment_units,
        name=name,
        background=background,
        settings=Settings(backbone_fps, purity, feature_fps),
    )
    meta = report.manifest
    typer.echo(
        f"wrote manifest {out} (dataset {meta['name']!r}, {len(report.frames)} videos, "
        f"{sum(report.frames.values())} frames at {meta['fps']:g} fps); labels under "
        f"{meta['default_root']}/frame_labels"
    )
    for line in report.warnings:
        typer.echo(f"warning: {line}", err=True)


def check(
    manifest: Annotated[Path, typer.Option(help="Manifest folder (dataset.yaml).")],
    root: RootOption,
    granularity: Annotated[
        list[str] | None, typer.Option(help="Granularity to check (repeatable) (default: all).")
    ] = None,
    tolerance: Annotated[
        int | None,
        typer.Option(help="Frames a label file may differ from its video (default: max(2, 0.1%))."),
    ] = None,
    align: Annotated[
        bool, typer.Option(help="Rewrite tolerated label files to the video's length.")
    ] = True,
    report: Annotated[
        Path | None, typer.Option(help="Write frame counts and findings as JSON here.")
    ] = None,
) -> None:
    """Before heavy work: every video exists, decodes, and matches its label files' length."""
    from stages import __version__
    from stages.common.atomic import VERSION_KEY, check_destination, write_text
    from stages.common.outputs import CHECK_REPORT
    from stages.data.checks import check_dataset

    if report is not None:
        check_destination(report, CHECK_REPORT, (manifest, root))

    result = check_dataset(manifest, root, granularity or None, tolerance, align)
    frames = [c.num_frames for c in result.videos.values()]
    typer.echo(
        f"ok: {len(frames)} videos decode ({sum(frames)} frames, {min(frames)}-{max(frames)} "
        f"per video) and match their labels"
    )
    _warn(result.aligned, "labels " + ("aligned to" if align else "differ from") + " video length")
    _warn(result.fps_mismatch, "frame rate differs from the manifest's fps")
    if report is not None:
        content = {**result.as_dict(), VERSION_KEY: __version__}
        write_text(report, json.dumps(content, indent=1), CHECK_REPORT, (manifest, root))
