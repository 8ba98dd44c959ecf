"""Training curves as TensorBoard scalars, when the optional `tensorboard` package is installed.

`pip install motionseg[tensorboard]` and `tensorboard --logdir results/models` to watch a
backbone train (loss per step, loss/accuracy/validation accuracy per epoch). Without the
package `ScalarLog` does nothing: TensorBoard is never a hard dependency, and the same values
are always in `train_log.csv` / `run.json`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class ScalarLog:
    """`add(tag, value, step)` to an event file in `log_dir`; a no-op without tensorboard."""

    def __init__(self, log_dir: str | Path) -> None:
        self._writer = None
        if tensorboard_available():
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(log_dir))

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def add(self, tag: str, value: float | None, step: int) -> None:
        if self._writer is not None and value is not None:
            self._writer.add_scalar(tag, float(value), step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> ScalarLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
