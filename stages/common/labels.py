"""Class lists, per-frame label files and segments.

The interchange format is the MS-TCN `groundTruth/` layout: one text file per video with one
class name per line, plus a mapping file of `index name` lines. `.npy` integer arrays are also
read, as indices into a class list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.common.atomic import OutputKind, write_text
from stages.common.errors import input_error


@dataclass(frozen=True)
class ClassList:
    """Ordered class names (index = position) and which of them count as background."""

    names: tuple[str, ...]
    background: tuple[str, ...] = ("background",)

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            dupes = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"duplicate class names: {dupes}")

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def encode(self, labels: Sequence[str], source: str | Path = "<labels>") -> np.ndarray:
        """Names -> int64 indices; an unknown name is an error naming the file and the label."""
        lookup = {n: i for i, n in enumerate(self.names)}
        try:
            return np.fromiter((lookup[s] for s in labels), dtype=np.int64, count=len(labels))
        except KeyError as err:
            raise input_error(
                source, f"unknown class {err.args[0]!r} (known: {', '.join(self.names)})"
            ) from None

    def decode(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self.names, dtype=object)[np.asarray(indices, dtype=np.int64)]

    @classmethod
    def read(cls, path: str | Path, background: Sequence[str] = ("background",)) -> ClassList:
        """Read a mapping file of `index name` lines (or one bare name per line)."""
        path = Path(path)
        if not path.is_file():
            raise input_error(path, "class list not found")
        names: list[str] = []
        for lineno, line in enumerate(read_text(path).splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 2 and parts[0].isdigit():
                if int(parts[0]) != len(names):
                    raise input_error(path, f"line {lineno}: index {parts[0]} out of order")
                names.append(parts[1])
            elif len(parts) == 1:
                names.append(parts[0])
            else:
                raise input_error(path, f"line {lineno}: expected 'index name', got {line!r}")
        try:
            classes = cls(tuple(names), tuple(background))
        except ValueError as err:
            raise input_error(path, str(err)) from None
        missing = [b for b in background if b not in names]
        if missing:
            raise input_error(path, f"background class(es) {missing} not in the class list")
        return classes

    def write(self, path: str | Path, kind: OutputKind) -> None:
        """Write `index name` lines; `path` may replace only an output of `kind`."""
        write_text(path, "".join(f"{i} {n}\n" for i, n in enumerate(self.names)), kind)


def read_text(path: Path) -> str:
    """A text file as UTF-8, without a byte-order mark (editors on Windows add one), and with
    `\r\n` read as `\n`; another encoding is an error naming the first offending byte."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        byte = data[err.start]
        raise input_error(
            path, f"not UTF-8 text: byte 0x{byte:02x} at offset {err.start}; save it as UTF-8"
        ) from None
    return text.replace("\r\n", "\n")


def read_label_file(path: str | Path, classes: ClassList | None = None) -> np.ndarray:
    """Per-frame labels as an array of class names (object dtype).

    Text files hold one name per line (blank lines ignored only at the end of the file);
    `.npy` files hold integer indices and need `classes` to be turned into names.
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "label file not found")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise input_error(path, f"not a readable .npy array ({err})") from None
        if arr.dtype.kind in "US":
            return arr.astype(str).astype(object)
        if arr.dtype.kind not in "iu" or arr.ndim != 1:
            raise input_error(path, f"expected a 1-D integer array, got {arr.dtype} {arr.shape}")
        if classes is None:
            return arr.astype(str).astype(object)
        if arr.size and (arr.min() < 0 or arr.max() >= len(classes)):
            raise input_error(path, f"label index outside 0..{len(classes) - 1}")
        return classes.decode(arr)
    lines = read_text(path).rstrip("\n").split("\n")
    if lines == [""]:
        raise input_error(path, "label file is empty")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            raise input_error(path, f"line {lineno}: blank label")
    labels = np.asarray([line.strip() for line in lines], dtype=object)
    if classes is not None:
        classes.encode(labels, source=path)  # validates names
    return labels


def write_label_file(path: str | Path, labels: Sequence[str]) -> None:
    """Write one label per line, atomically (a killed job leaves no half-written file)."""
    from stages.common.outputs import LABEL_FILE

    write_text(path, "".join(f"{label}\n" for label in labels), LABEL_FILE)


@dataclass(frozen=True)
class Segment:
    """A maximal run of equal labels, frames [start, end)."""

    label: str
    start: int
    end: int


def segments(labels: Sequence[str] | np.ndarray) -> list[Segment]:
    """Split per-frame labels into maximal runs."""
    labels = np.asarray(labels, dtype=object)
    if labels.size == 0:
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [labels.size]])
    return [Segment(str(labels[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def frames_from_segments(
    segs: Sequence[tuple[int, int, str]], num_frames: int, background: str = "background"
) -> np.ndarray:
    """Per-frame labels from (start, end_inclusive, label) rows; uncovered frames background.

    Later rows overwrite earlier ones where they overlap, so callers decide precedence by order.
    """
    out = np.full(num_frames, background, dtype=object)
    for start, end, label in segs:
        lo, hi = max(0, int(start)), min(num_frames, int(end) + 1)
        if lo < hi:
            out[lo:hi] = label
    return out
