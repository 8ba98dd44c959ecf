"""`motionseg features list|train|extract`.

torch is imported inside the commands so that `motionseg --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common.cli_options import ManifestOption, RootOption, json_object

app = typer.Typer(no_args_is_help=True, add_completion=False)

LIST_CLASSES = 18  # 50 Salads mid, the setting of the LCDC paper's Table 3


@app.command("list")
def list_command() -> None:
    """Registered backbones with their parameter counts (18 classes, default options)."""
    from stages.features.registry import build_backbone, list_backbones

    rows = [("backbone", "params", "offset params", "feature dim", "snippet", "window")]
    for name in list_backbones():
        model = build_backbone(name, LIST_CLASSES, weights="none")
        named = list(model.named_parameters())
        total = sum(p.numel() for _, p in named)
        offset = sum(p.numel() for n, p in named if "offset" in n)
        prep = model.preprocessing
        rows.append(
            (
                name,
                f"{total / 1e6:.1f}M ({total:,})",
                f"{offset:,}" if offset else "-",
                str(model.feature_dim),
                str(prep.snippet_length),
                str(prep.feature_window),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())


@app.command("train")
def train_command(
    manifest: ManifestOption,
    root: RootOption,
    split: Annotated[str, typer.Option(help="Split whose training videos to fine-tune on.")],
    backbone: Annotated[str, typer.Option(help="Registered backbone name (see `list`).")],
    frames: Annotated[Path, typer.Option(help="Folder of frame stores {video_id}.zarr.")],
    out: Annotated[Path, typer.Option(help="Checkpoint folder (epoch_NNN.pt, best.pt).")],
    options: Annotated[str, typer.Option(help="Backbone options as a JSON object.")] = "",
    train: Annotated[str, typer.Option(help="Training options as a JSON object.")] = "",
    granularity: Annotated[str | None, typer.Option(help="Label granularity.")] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of initialisation, sampling, validation.")
    ] = 0,
) -> None:
    """Fine-tune a backbone on snippets; resumes after the newest epoch checkpoint."""
    from stages.common.manifest import load_manifest
    from stages.features.train import TrainConfig, train_backbone

    backbone_options = json_object(options, "--options")
    config = TrainConfig.from_dict(json_object(train, "--train"))
    loaded = load_manifest(manifest, root, granularity)
    train_backbone(loaded, split, backbone, frames, out, backbone_options, config, seed)


@app.command("extract")
def extract_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="CHECKPOINT FRAMES.zarr ...; with --backbone (frozen), only FRAMES.zarr ..."
        ),
    ],
    out_dir: Annotated[
        Path, typer.Option(help="Folder of feature stores, one per frame store, same names.")
    ],
    backbone: Annotated[
        str | None,
        typer.Option(
            help="Frozen: this registered backbone with its initial weights, no checkpoint."
        ),
    ] = None,
    options: Annotated[
        str, typer.Option(help="Frozen backbone's options as JSON (e.g. weights, depth).")
    ] = "",
    batch_size: Annotated[
        int, typer.Option(min=1, help="Windows per forward pass (frames encoded N x window).")
    ] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    prefetch: Annotated[
        int, typer.Option(min=0, help="Pieces of frames read ahead of the model (0: none).")
    ] = 2,
    channels_last: Annotated[bool, typer.Option(help="CUDA: NHWC 2-D conv weights.")] = True,
    tf32: Annotated[bool, typer.Option(help="CUDA: TF32 fp32 matmuls and convs.")] = True,
    cudnn_benchmark: Annotated[bool, typer.Option(help="CUDA: cuDNN autotuning.")] = True,
) -> None:
    """Write one feature per frame of every frame store (centred, edge-replicated windows
    unless the backbone defines others, e.g. dimofs pairs).

    The model is loaded once: from CHECKPOINT (fine-tuned), or, with --backbone, built with its
    initial weights (frozen; the stores record `frozen: true`). The video id is the store name
    without `.zarr`.
    """
    from stages.common.errors import MotionsegError
    from stages.common.runtime import DeviceSettings
    from stages.features.extract import extract_many, frozen_backbone

    settings = DeviceSettings(channels_last, tf32, cudnn_benchmark)

    if backbone is None:
        if options:
            raise MotionsegError("--options needs --backbone (a checkpoint holds its options)")
        if len(paths) < 2:
            raise MotionsegError("give CHECKPOINT and at least one FRAMES.zarr (or --backbone)")
        extract_many(
            paths[0], paths[1:], out_dir, batch_size, device, prefetch=prefetch, settings=settings
        )
        return
    parsed = json_object(options, "--options")
    extract_many(
        lambda: frozen_backbone(backbone, parsed, device, settings),
        paths,
        out_dir,
        batch_size,
        prefetch=prefetch,
    )


@app.command("export")
def export_command(
    manifest: ManifestOption,
    root: RootOption,
    features: Annotated[Path, typer.Option(help="Folder of {video_id}.zarr feature stores.")],
    out: Annotated[Path, typer.Option(help="Folder to write the layout into.")],
    format: Annotated[str, typer.Option(help="Layout: mstcn (features/, groundTruth/, ...).")],
    split: Annotated[
        list[str] | None,
        typer.Option(
            help="Split whose bundles to write (repeatable) (default: all; required "
            "once for a fine-tuned backbone's per-split features)."
        ),
    ] = None,
    granularity: Annotated[str | None, typer.Option(help="Label granularity.")] = None,
) -> None:
    """Feature stores, labels, splits and mapping in the MS-TCN layout (float32 (D, T) .npy)."""
    import time

    from stages.common.errors import MotionsegError
    from stages.common.manifest import load_manifest
    from stages.features.export import FORMATS, export_mstcn

    if format not in FORMATS:
        raise MotionsegError(f"--format must be one of {list(FORMATS)}, got {format!r}")
    start = time.perf_counter()
    frames = export_mstcn(load_manifest(manifest, root, granularity), features, out, split or ())
    typer.echo(
        f"exported {len(frames)} videos ({sum(frames.values())} frames) to {out} in "
        f"{time.perf_counter() - start:.1f} s"
    )
