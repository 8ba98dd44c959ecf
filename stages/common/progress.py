"""Progress of long loops: a bar on a terminal, plain periodic lines in a log file.

Decoding, backbone training, extraction and head training run for minutes to hours, mostly
under Snakemake with stderr sent to a log file. On a terminal (stderr is a tty) the loop shows
a `rich` progress bar (typer ships rich); elsewhere it writes one plain line every `interval`
seconds and one at the end, so `tail -f logs/...` shows how far a job is and when it ends::

    extract S1_01: 1200/5000 frames (24%), 88.1 frames/s, elapsed 13.6 s, ETA 43.1 s, loss 0.41

`MOTIONSEG_PROGRESS_SECONDS` sets the interval of the plain lines (default 30; 0 prints every
update) and `MOTIONSEG_PROGRESS=plain` forces plain lines on a terminal too.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

DEFAULT_INTERVAL = 30.0


def _format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _format_fields(fields: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items()
    )


class Progress:
    """Counts `done` of `total` units; `update()` after each step, `close()` (or `with`) at the end.

    `fields` passed to `update` (for example `loss=0.41`) are shown after the counts.
    """

    def __init__(
        self,
        description: str,
        total: int,
        unit: str = "items",
        stream: IO[str] | None = None,
        interval: float | None = None,
        bar: bool | None = None,
    ) -> None:
        self.description, self.total, self.unit = description, max(0, int(total)), unit
        self.stream = stream if stream is not None else sys.stderr
        env_interval = os.environ.get("MOTIONSEG_PROGRESS_SECONDS")
        self.interval = (
            interval
            if interval is not None
            else float(env_interval)
            if env_interval
            else DEFAULT_INTERVAL
        )
        if bar is None:
            bar = os.environ.get("MOTIONSEG_PROGRESS") != "plain" and _isatty(self.stream)
        self.done = 0
        self.fields: dict[str, Any] = {}
        self.start = time.monotonic()
        self._last_line = self.start
        self._bar = _RichBar(description, self.total, unit, self.stream) if bar else None

    def update(self, advance: int = 1, **fields: Any) -> None:
        self.done += advance
        self.fields.update(fields)
        if self._bar is not None:
            self._bar.update(self.done, _format_fields(self.fields))
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval and self.done < self.total:
            self._last_line = now
            self._write_line(now)

    def line(self, now: float | None = None) -> str:
        """The plain progress line for the state now."""
        now = time.monotonic() if now is None else now
        elapsed = now - self.start
        parts = [f"{self.description}: {self.done}/{self.total} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        if elapsed > 0 and self.done:
            rate = self.done / elapsed
            parts.append(f"{rate:.3g} {self.unit}/s")
            parts.append(f"elapsed {_format_seconds(elapsed)}")
            if self.done < self.total:
                parts.append(f"ETA {_format_seconds((self.total - self.done) / rate)}")
        if self.fields:
            parts.append(_format_fields(self.fields))
        return ", ".join(parts)

    def close(self, final_line: bool = True) -> None:
        """Stop the bar, or write the final plain line (skipped when a loop failed)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif final_line:
            self._write_line(time.monotonic())

    def _write_line(self, now: float) -> None:
        self.stream.write(self.line(now) + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(final_line=exc_type is None)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _RichBar:
    """A transient rich bar with counts, rate, ETA and the fields text."""

    def __init__(self, description: str, total: int, unit: str, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._progress = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(file=stream),
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total or None, info="")

    def update(self, done: int, info: str) -> None:
        self._progress.update(self._task, completed=done, info=info)

    def close(self) -> None:
        self._progress.stop()
