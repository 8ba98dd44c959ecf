"""Refuse to run another checkout's code under this checkout's workflow.

With one environment and two clones, the `motionseg` on PATH runs whichever clone was
installed, not the one whose Snakefile is running. The Snakefile checks the package it imports
while building the DAG, and exports `MOTIONSEG_CHECKOUT` (its own folder) to every rule; the CLI
then refuses, in one line, when the `stages` package it runs lives elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from stages.common.errors import MotionsegError

CHECKOUT_ENV = "MOTIONSEG_CHECKOUT"


def package_checkout() -> Path:
    """The folder holding the running `stages` package (a checkout, or site-packages)."""
    import stages

    return Path(stages.__file__).resolve().parents[1]


def check_checkout(environ: dict[str, str] | None = None) -> None:
    """Raise when `MOTIONSEG_CHECKOUT` names a folder other than the running code's."""
    expected = (os.environ if environ is None else environ).get(CHECKOUT_ENV)
    if not expected:
        return
    running = package_checkout()
    if running != Path(expected).resolve():
        raise MotionsegError(
            f"the workflow of {expected} runs motionseg, but this motionseg is the code in "
            f"{running}: install that checkout into this environment "
            f"(pip install -e {expected}) or run the Snakefile of {running}"
        )
