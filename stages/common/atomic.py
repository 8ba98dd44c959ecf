"""Atomic writes that never destroy what the project did not write.

A killed job leaves either the old output or the new one, never half of one; and a destination
is replaced only when it is missing or is an earlier output *of the same kind*, recognised by
the metadata the project writes into it (an `OutputKind`). Refused, with a `MotionsegError`
naming the path and nothing touched: an input of the same command or a folder above one, the
current folder or one above it (`.`, `..`, an empty path), anything else already there.

Concurrent writers of one destination each build their own temporary sibling
(`.NAME.tmp-PID-XXXXXXXX`); the last to finish wins, as with files, and every temporary is
removed whatever happens.

Kept free of heavy imports so that label and report writers can use it cheaply.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.common.errors import MotionsegError

VERSION_KEY = "motionseg_version"
"""Every store, run folder and report the project writes carries this key in its metadata."""

COMMIT_ATTEMPTS = 5
"""How often a commit retries when racing writers keep putting a folder in the way."""


@dataclass(frozen=True)
class OutputKind:
    """One kind of output, and how to tell an existing destination is an earlier one of ours."""

    name: str  # "frame store", "head run folder", ... (used in messages)
    proof: str  # what an earlier output of this kind carries, for the refusal message
    is_ours: Callable[[Path], bool]


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def has_version_key(path: Path) -> bool:
    """A JSON object file carrying `VERSION_KEY`."""
    data = read_json(path)
    return isinstance(data, dict) and VERSION_KEY in data


def zarr_store(name: str, array: str) -> OutputKind:
    """A Zarr v3 store whose group attrs carry the project's version and that holds `array`."""

    def is_ours(path: Path) -> bool:
        meta = read_json(path / "zarr.json")
        attrs = meta.get("attributes") if isinstance(meta, dict) else None
        return isinstance(attrs, dict) and VERSION_KEY in attrs and (path / array).is_dir()

    return OutputKind(
        name, f"zarr.json attributes with {VERSION_KEY} and a '{array}' array", is_ours
    )


def folder_with(name: str, marker: str) -> OutputKind:
    """A folder holding the JSON file `marker`, written by the project (it has `VERSION_KEY`)."""
    return OutputKind(
        name,
        f"a {marker} with {VERSION_KEY}",
        lambda path: path.is_dir() and has_version_key(path / marker),
    )


def json_file(name: str) -> OutputKind:
    """A JSON object file carrying `VERSION_KEY`."""
    return OutputKind(name, f"a JSON object with {VERSION_KEY}", has_version_key)


def torch_file(name: str) -> OutputKind:
    """A file `torch.save` wrote (a zip archive holding a pickle)."""

    def is_ours(path: Path) -> bool:
        if not path.is_file() or not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/data.pkl") for n in archive.namelist())

    return OutputKind(name, "a torch.save archive", is_ours)


def text_file_inside(name: str, folder_kind: OutputKind) -> OutputKind:
    """A plain file inside a folder of `folder_kind` (which proves the folder is ours)."""
    return OutputKind(
        name,
        f"a file inside a {folder_kind.name} ({folder_kind.proof})",
        lambda path: path.is_file() and folder_kind.is_ours(path.parent),
    )


def check_destination(
    dest: str | Path, kind: OutputKind, inputs: Iterable[str | Path] = ()
) -> Path:
    """Raise unless `dest` may be written as a `kind` by a command reading `inputs`.

    Call it before heavy work, so a refused command costs nothing; `atomic_path` calls it again.
    """
    raw = Path(dest)
    if str(dest).strip() == "":
        raise MotionsegError(f"empty output path for the {kind.name}")
    target = raw.resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise MotionsegError(
            f"{raw}: is the current folder or one above it; refusing to replace it with a "
            f"{kind.name}"
        )
    for source in inputs:
        source = Path(source).resolve()
        if target == source or target in source.parents:
            what = "is an input of this command" if target == source else "holds an input"
            raise MotionsegError(
                f"{raw}: {what} ({source}); refusing to replace it with a {kind.name}"
            )
    _check_parent(raw)
    if (raw.exists() or raw.is_symlink()) and not (_is_empty_folder(raw) or kind.is_ours(raw)):
        raise _not_ours(raw, kind)
    return raw


def _is_empty_folder(path: Path) -> bool:
    """Nothing to lose: an empty folder may become any output."""
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


@contextlib.contextmanager
def atomic_path(
    dest: str | Path, kind: OutputKind, inputs: Iterable[str | Path] = ()
) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces `dest`, on error it is removed.

    `dest` is checked first (`check_destination`); the yielded path does not exist yet.
    """
    dest = check_destination(dest, kind, inputs)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        _commit(tmp, dest, kind)
    finally:
        _remove(tmp)


def write_text(
    path: str | Path, text: str, kind: OutputKind, inputs: Iterable[str | Path] = ()
) -> None:
    """Replace `path` with `text` (UTF-8) in one step."""
    with atomic_path(path, kind, inputs) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _check_parent(dest: Path) -> None:
    """The nearest existing ancestor must be a folder (a file there is a typo, not a parent)."""
    for parent in dest.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise MotionsegError(f"{dest}: its parent {parent} is a file, not a folder")
            return


def _not_ours(dest: Path, kind: OutputKind) -> MotionsegError:
    return MotionsegError(
        f"{dest}: exists and is not a {kind.name} this project wrote (no {kind.proof}); "
        "refusing to replace it: move it away or choose another output path"
    )


def _commit(tmp: Path, dest: Path, kind: OutputKind) -> None:
    """Rename `tmp` onto `dest`; an older folder of ours in the way is moved aside first.

    `os.replace` swaps files atomically but renames a folder only onto a missing or empty one,
    so an existing folder (an earlier run's, or a racing writer's that finished first) is
    renamed aside and removed. Each step is one rename, so racing writers never see a
    half-removed folder, and whoever renames last wins.
    """
    for _ in range(COMMIT_ATTEMPTS):
        try:
            os.replace(tmp, dest)
            return
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
                raise
        try:
            replaceable = _is_empty_folder(dest) or kind.is_ours(dest)
        except FileNotFoundError:  # a racing writer moved it aside while it was looked at
            continue
        if not replaceable:
            raise _not_ours(dest, kind)
        aside = dest.with_name(f".{dest.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):  # a racing writer moved it first
            os.rename(dest, aside)
            _remove(aside)
    raise MotionsegError(f"{dest}: other processes kept replacing it while this one wrote it")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)
