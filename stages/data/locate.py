"""Find a dataset's files inside a download folder, wherever the archive put them.

Real downloads differ in layout (`rgb/`, `ann-ts/`, `activityAnnotations/`, a nested copy of
the archive's top folder, ...), so importers do not hard-code paths: they walk the folder once,
collect every file whose *name* matches a pattern, and pick per video the candidate in one of
the usual sub-folders, else the shallowest one (ties broken by path, so the choice is
deterministic). Links an importer created itself are ignored, so importing twice into the same
folder never makes a link point at itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from stages.common.atomic import atomic_path
from stages.common.errors import MotionsegError
from stages.common.outputs import VIDEO_LINK

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")


def require_folder(path: Path, what: str, dataset: str) -> None:
    """A missing download folder is one clear message, not a file-by-file list."""
    if not path.is_dir():
        raise MotionsegError(
            f"{path}: folder not found; expected {what} there. Set `root:` in "
            f"pipeline/config/{dataset}.yaml to the folder of your download."
        )


def scan(root: Path, patterns: Mapping[str, re.Pattern[str]]) -> dict[str, dict[str, list[Path]]]:
    """Every file below `root` whose name fully matches a pattern, by kind and by its `id` group."""
    found: dict[str, dict[str, list[Path]]] = {kind: {} for kind in patterns}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            for kind, pattern in patterns.items():
                match = pattern.fullmatch(name)
                if match:
                    found[kind].setdefault(match["id"], []).append(Path(dirpath) / name)
    return found


def pick(
    candidates: list[Path],
    preferred: Collection[str],
    skip: Callable[[Path], bool] | None = None,
) -> Path | None:
    """The candidate in a usual sub-folder, else the shallowest; none that `skip` rejects."""
    usable = [p for p in candidates if skip is None or not skip(p)]
    if not usable:
        return None
    return min(usable, key=lambda p: (p.parent.name.lower() not in preferred, len(p.parts), str(p)))


def pick_each(
    found: Mapping[str, list[Path]],
    preferred: Collection[str],
    skip: Callable[[Path], bool] | None = None,
) -> dict[str, Path]:
    """`pick` per id of a `scan` result; ids left without a usable candidate are dropped."""
    chosen = {vid: pick(paths, preferred, skip) for vid, paths in found.items()}
    return {vid: p for vid, p in chosen.items() if p is not None}


def is_own_link(links_dir: Path) -> Callable[[Path], bool]:
    """Rejects the links an earlier import made in `links_dir` (real files there are kept)."""
    links_dir = links_dir.resolve()
    return lambda p: p.is_symlink() and p.parent.resolve() == links_dir


def link_video(source: Path, dest: Path) -> None:
    """Make `dest` a symlink to `source` (absolute), replacing an older link; keep real files."""
    source = source.resolve()
    if dest.is_symlink() or not dest.exists():
        with atomic_path(dest, VIDEO_LINK) as tmp:
            tmp.symlink_to(source)
    elif dest.resolve() != source:
        raise MotionsegError(
            f"{dest}: a different file already exists there; move it away or import into "
            f"another --out folder"
        )
