"""`motionseg heads list|train|predict`: long-temporal heads on feature stores.

torch and the models are imported inside the commands so `motionseg --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common.cli_options import ManifestOption, RootOption, json_object

app = typer.Typer(no_args_is_help=True)

FeaturesOption = Annotated[Path, typer.Option(help="Folder of {video_id}.zarr feature stores.")]


@app.command("list")
def list_command(
    in_features: Annotated[int, typer.Option(help="Input feature width to count for.")] = 128,
    num_classes: Annotated[int, typer.Option(help="Number of classes to count for.")] = 18,
) -> None:
    """Registered heads and their trainable parameter counts."""
    from stages.heads.registry import build_head, list_heads

    for name in list_heads():
        head = build_head(name, in_features, num_classes)
        typer.echo(f"{name}\t{sum(p.numel() for p in head.parameters())}")


@app.command("train")
def train_command(
    manifest: ManifestOption,
    root: RootOption,
    split: Annotated[str, typer.Option(help="Split whose test videos are predicted.")],
    features: FeaturesOption,
    head: Annotated[str, typer.Option(help="Head name (see `motionseg heads list`).")],
    run: Annotated[int, typer.Option(help="Run number; the seed is seed + run.")],
    out: Annotated[Path, typer.Option(help="Run folder to write (replaced atomically).")],
    options: Annotated[str | None, typer.Option(help="Head options as JSON.")] = None,
    train: Annotated[
        str | None,
        typer.Option(
            help="Training settings as JSON: optimizer, lr, epochs, batch_size, sample_rate, "
            "weight_decay, device (defaults: the head's reference settings)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Base seed.")] = 0,
    granularity: Annotated[str | None, typer.Option(help="Label granularity.")] = None,
) -> None:
    """Train a head on a split's training videos, then predict its test videos into OUT."""
    from stages.common.manifest import load_manifest
    from stages.common.progress import Progress
    from stages.heads.train import TrainSettings, train_run

    overrides = json_object(train, "--train")
    epochs = TrainSettings.resolve(head, overrides).epochs
    with Progress(f"{head} split {split} run {run}", epochs, "epochs") as bar:
        info = train_run(
            load_manifest(manifest, root, granularity),
            split,
            features,
            head,
            run,
            out,
            json_object(options, "--options"),
            overrides,
            base_seed=seed,
            progress=lambda epoch, loss, seconds: bar.update(loss=loss),
        )
    typer.echo(
        f"{head} split {split} run {run}: final loss {info['final_train_loss']:.4f}, "
        f"{info['train_seconds']:.1f} s; wrote {out}"
    )


@app.command("predict")
def predict_command(
    model: Annotated[Path, typer.Argument(help="model.pt written by `heads train`.")],
    features: FeaturesOption,
    manifest: ManifestOption,
    root: RootOption,
    videos: Annotated[list[str], typer.Option(help="Video id to predict (repeat the option).")],
    out: Annotated[Path, typer.Option(help="Folder to write (replaced atomically).")],
    granularity: Annotated[
        str | None, typer.Option(help="Label granularity (default: the model's).")
    ] = None,
) -> None:
    """Predict videos with a saved head: pred/, gt/ and native/ label files in OUT."""
    from stages.common.atomic import atomic_path, check_destination
    from stages.common.manifest import load_manifest
    from stages.common.outputs import PREDICTIONS
    from stages.heads.predict import load_model, predict_videos, write_marker

    inputs = (model, features, manifest, root)
    check_destination(out, PREDICTIONS, inputs)
    head, saved = load_model(model)
    loaded = load_manifest(manifest, root, granularity or saved.get("granularity"))
    with atomic_path(out, PREDICTIONS, inputs) as tmp:
        tmp.mkdir(parents=True)
        predict_videos(head, saved, loaded, features, videos, tmp)
        write_marker(tmp, model, videos)
    typer.echo(f"wrote {len(videos)} prediction(s) to {out}")
