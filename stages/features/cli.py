"""`motionseg features list|train|extract`.

torch is imported inside the commands so that `motionseg --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common.cli_options import json_object

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
    manifest: Annotated[Path, typer.Option(help="Dataset manifest folder.")],
    root: Annotated[Path, typer.Option(help="Data root the manifest's paths are relative to.")],
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
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint, usually CKPT_DIR/best.pt.")],
    frames: Annotated[list[Path], typer.Argument(help="Frame stores FRAMES.zarr ...")],
    out_dir: Annotated[
        Path, typer.Option(help="Folder of feature stores, one per frame store, same names.")
    ],
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
    """Write one feature per frame of every frame store (centred windows, edge replication).

    The model is loaded once. The video id is the store name without `.zarr`.
    """
    from stages.common.runtime import DeviceSettings
    from stages.features.extract import extract_many

    settings = DeviceSettings(channels_last, tf32, cudnn_benchmark)
    extract_many(
        checkpoint, frames, out_dir, batch_size, device, prefetch=prefetch, settings=settings
    )
