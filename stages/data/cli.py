"""Typer app of the data stage (being written)."""

from pathlib import Path
from typing import Annotated

import typer

from stages.data.import_cli import check, import_app
from stages.data.synth import SynthOptions

app = typer.Typer(no_args_is_help=True)
app.add_typer(import_app, name="import")
app.command("check")(check)


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Argument(help="Data root to write: videos/, labels/, manifest/.")],
    seed: Annotated[
        int, typer.Option(help="Random seed; same seed, same files.")
    ] = SynthOptions.seed,
    videos: Annotated[int, typer.Option(help="Number of videos.")] = SynthOptions.videos,
    splits: Annotated[
        int, typer.Option(help="Number of leave-one-group-out splits (= subject groups).")
    ] = SynthOptions.splits,
    size: Annotated[
        int, typer.Option(help="Frame width in pixels (even); height is 3/4.")
    ] = SynthOptions.size,
    fps: Annotated[
        int, typer.Option(help="Frame rate of the videos and labels.")
    ] = SynthOptions.fps,
    manifest_out: Annotated[
        Path | None, typer.Option(help="Where to write the manifest (default: OUT/manifest).")
    ] = None,
) -> None:
    """Render the demo dataset: motion-defined actions on a textured table, H.264 + labels."""
    from stages.data.synth import synthesize

    options = SynthOptions(seed=seed, videos=videos, splits=splits, size=size, fps=fps)
    plans = synthesize(out, options, manifest_out)
    frames = sum(p.num_frames for p in plans)
    typer.echo(
        f"wrote {len(plans)} videos ({frames} frames, {frames / fps:.1f} s at {fps} fps, "
        f"{size}x{options.height} px) to {out}; manifest in {manifest_out or out / 'manifest'}"
    )
