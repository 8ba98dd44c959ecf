"""Reading `.pt` files (checkpoints, weights, saved heads) with errors a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.common.errors import input_error


def load_torch_file(path: str | Path, what: str, missing: str | None = None) -> Any:
    """`torch.load` on CPU, tensors and plain containers only (`weights_only`).

    A missing file says `missing` (default "<what> not found"); a foreign or corrupt one says
    it is not a readable `what`, with torch's own reason, instead of an unpickling traceback.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise input_error(path, missing or f"{what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a foreign or corrupt file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise input_error(
            path, f"not a readable {what} (not a torch .pt file? {type(err).__name__}: {reason})"
        ) from None
