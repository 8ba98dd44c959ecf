"""One exception type for problems a user can fix (bad input, missing files, bad config).

The CLI turns it into a one-line message and exit code 1, so a user never sees a traceback
from deep inside a library for something that is their input's fault.
"""

from __future__ import annotations

from pathlib import Path


class MotionsegError(Exception):
    """A problem with the user's input, named precisely enough to fix."""


def input_error(path: str | Path, problem: str) -> MotionsegError:
    """Build the standard message shape: which file, then what is wrong with it."""
    return MotionsegError(f"{path}: {problem}")
