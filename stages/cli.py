"""Root command: one sub-command or sub-app per stage.

Stage modules import torch and friends lazily inside their commands, so `motionseg --help`
stays fast. A `MotionsegError` anywhere below becomes one line on stderr and exit code 1.
Under the workflow, a command refuses to run when it is another checkout's code
(stages.common.checkout).
"""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from stages.common.checkout import check_checkout
from stages.common.errors import MotionsegError


class _FriendlyErrors(TyperGroup):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            check_checkout()
            return super().invoke(ctx)
        except MotionsegError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_FriendlyErrors,
    no_args_is_help=True,
    add_completion=False,
    help="motionseg: fine-grained temporal action segmentation pipeline.",
)


def _mount() -> None:
    from stages.data.cli import app as data_app
    from stages.decode.cli import decode
    from stages.evaluate.cli import evaluate, report
    from stages.features.cli import app as features_app
    from stages.heads.cli import app as heads_app

    app.add_typer(data_app, name="data", help="Synthesize the demo dataset; import real ones.")
    app.command("decode", help="Decode a video into a frame store (PyAV, timestamp sampling).")(
        decode
    )
    app.add_typer(features_app, name="features", help="Backbones: list, fine-tune, extract.")
    app.add_typer(heads_app, name="heads", help="Long-temporal heads: list, train, predict.")
    app.command("evaluate", help="Frame accuracy, edit score and F1@k of predictions.")(evaluate)
    app.command("report", help="Collect runs into metrics.csv, tables and plots.")(report)


_mount()
