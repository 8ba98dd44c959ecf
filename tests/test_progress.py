"""The progress helper: plain periodic lines with counts and ETA off a terminal, a rich bar on
one; TensorBoard scalars when the package is installed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from stages.common import progress as progress_module
from stages.common.progress import Progress
from stages.common.scalars import ScalarLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_every_interval_with_rate_and_eta(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    out = io.StringIO()
    with Progress("extract v1", 100, "frames", stream=out, interval=10, bar=False) as p:
        clock.now += 5
        p.update(20)  # 5 s < 10 s: no line yet
        clock.now += 5
        p.update(20, loss=0.5)  # 40 frames in 10 s: 4 frames/s, 60 left -> 15 s
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "extract v1: 40/100 frames (40%), 4 frames/s, elapsed 10.0 s, ETA 15.0 s, loss 0.5"
    )
    assert lines[1].startswith("extract v1: 40/100 frames (40%)")  # final line at close
    assert len(lines) == 2


def test_failed_loop_writes_no_final_line() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError), Progress("x", 3, stream=out, interval=60, bar=False) as p:
        p.update()
        raise RuntimeError
    assert out.getvalue() == ""


def test_long_durations_read_as_clock_time(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    p = Progress("train", 4, "epochs", stream=io.StringIO(), bar=False)
    clock.now += 3725
    p.update()
    assert p.line() == "train: 1/4 epochs (25%), 0.000268 epochs/s, elapsed 1:02:05, ETA 3:06:15"


def test_rich_bar_on_a_terminal_stream() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    with Progress("decode v.mp4", 3, "frames", stream=out) as p:
        for _ in range(3):
            p.update(kept=1)
    assert "decode v.mp4" in out.getvalue() and "3/3" in out.getvalue()


def test_scalars_reach_tensorboard_event_files(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with ScalarLog(tmp_path / "tb") as log:
        assert log.enabled
        for step, value in enumerate([1.0, 0.5, 0.25], 1):
            log.add("train/loss", value, step)
        log.add("val/acc", None, 1)  # no validation this epoch: nothing written
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert events.Tags()["scalars"] == ["train/loss"]
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
        (1, 1.0),
        (2, 0.5),
        (3, 0.25),
    ]
