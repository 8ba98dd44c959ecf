"""`motionseg decode VIDEO OUT.zarr [--fps F] [--size S]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def decode(
    video: Annotated[Path, typer.Argument(help="Input video (any format FFmpeg reads).")],
    out: Annotated[Path, typer.Argument(help="Frame store to write (OUT.zarr), replaced.")],
    fps: Annotated[
        float | None,
        typer.Option(help="Sample frames by timestamp to this rate; default: every frame."),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(help="Resize the short side to this many pixels, keeping the aspect."),
    ] = None,
) -> None:
    """Decode VIDEO into the frame store OUT (frames sampled by timestamp, never re-encoded)."""
    from stages.common.stores import open_store
    from stages.decode.video import decode_video

    store = open_store(decode_video(video, out, fps=fps, size=size), required=("frame_index",))
    attrs = store.attrs
    typer.echo(
        f"{out}: {store['frame_index'].shape[0]} of {attrs['num_source_frames']} frames "
        f"at {attrs['fps']:g} fps"
    )
