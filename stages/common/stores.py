"""Zarr store layout, written atomically (`stages.common.atomic`).

One store per unit of work (a video's frames, a video's features under one backbone/split), so
parallel jobs never share a file. Every store is written under a temporary name next to its
destination and renamed only when complete: a killed job leaves nothing that looks finished.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from stages import __version__
from stages.common.atomic import OutputKind, atomic_path
from stages.common.errors import input_error


def create_array(
    group: zarr.Group,
    name: str,
    shape: Sequence[int],
    dtype: Any,
    dimension_names: Sequence[str],
    chunks: Sequence[int],
    attrs: Mapping[str, Any] | None = None,
    compressor: zarr.codecs.BloscCodec | None = None,
) -> zarr.Array:
    """A compressed array with `dimension_names`, so `xarray.open_zarr` names its axes.

    `compressor` replaces the default Blosc zstd where speed matters more than size (frames).
    """
    chunks = tuple(max(1, min(c, s)) if s else 1 for c, s in zip(chunks, shape, strict=True))
    arr = group.create_array(
        name,
        shape=tuple(shape),
        dtype=dtype,
        chunks=chunks,
        dimension_names=tuple(dimension_names),
        compressors=compressor
        or zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
    )
    if attrs:
        arr.update_attributes(dict(attrs))
    return arr


def write_store(
    dest: str | Path,
    arrays: Mapping[str, tuple[np.ndarray, Sequence[str], Sequence[int]]],
    attrs: Mapping[str, Any],
    kind: OutputKind,
    inputs: Sequence[str | Path] = (),
) -> Path:
    """Write small, in-memory arrays to a new store atomically.

    `arrays` maps name -> (data, dimension_names, chunks). Store-level `attrs` get the code
    version added. `dest` is replaced only if it is an earlier store of `kind` (not one of
    `inputs`).
    """
    dest = Path(dest)
    with atomic_path(dest, kind, inputs) as tmp:
        group = zarr.open_group(tmp, mode="w")
        for name, (data, dims, chunks) in arrays.items():
            arr = create_array(group, name, data.shape, data.dtype, dims, chunks)
            arr[...] = data
        # One metadata write: `attrs.update` rewrites zarr.json once per key (zarr 3).
        group.update_attributes({**dict(attrs), "motionseg_version": __version__})
        consolidate(tmp)
    return dest


def consolidate(path: Path) -> None:
    """Consolidate metadata so `xarray.open_zarr` opens the store in one read.

    Zarr 3 warns that consolidated metadata is not yet in the v3 spec; xarray and zarr-python
    both read it, which is all the notebook path needs.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(path)


def open_store(path: str | Path, required: Sequence[str] = ()) -> zarr.Group:
    """Open a finished store read-only; a missing or foreign store is a clear error."""
    path = Path(path)
    if not path.exists():
        raise input_error(path, "store not found")
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as err:  # zarr raises several types for a non-store folder
        problem = f"not a readable Zarr store ({type(err).__name__}: {err})"
        raise input_error(path, problem) from None
    missing = [name for name in required if name not in group]
    if missing:
        raise input_error(path, f"store has no array(s) {missing}")
    return group


def first_non_finite_row(values: np.ndarray) -> int | None:
    """Index of the first row holding a NaN or an infinity, None when all are finite."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    return int(bad.argmax()) if bad.any() else None
