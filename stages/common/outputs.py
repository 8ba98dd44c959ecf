"""Every kind of output the project writes, and the metadata that proves one is ours.

`stages.common.atomic.atomic_path` replaces an existing destination only if it is an output of
the kind its writer declares here (docs/contracts.md, "Overwrite policy").
"""

from __future__ import annotations

from pathlib import Path

from stages.common.atomic import (
    OutputKind,
    folder_with,
    json_file,
    text_file_inside,
    torch_file,
    zarr_store,
)

FRAME_STORE = zarr_store("frame store", "frames")
FEATURE_STORE = zarr_store("feature store", "features")
CHECKPOINT = torch_file("checkpoint")
HEAD_MODEL = torch_file("saved head")
HEAD_RUN = folder_with("head run folder", "run.json")
PREDICTIONS = folder_with("prediction folder", "predictions.json")
REPORT = folder_with("report folder", "report.json")
EVALUATION_JSON = json_file("evaluation JSON")
CHECK_REPORT = json_file("check report")
IMPORT_REPORT = json_file("import report")
SYNTH_ROOT = folder_with("synthetic data root", "synth.json")


def _is_generated_manifest(path: Path) -> bool:
    try:
        first = (path / "dataset.yaml").read_text(encoding="utf-8").partition("\n")[0]
    except (OSError, UnicodeDecodeError):
        return False
    return "motionseg data" in first.lower()


MANIFEST = OutputKind(
    "generated manifest folder",
    "dataset.yaml whose first line says `motionseg data` wrote it",
    lambda path: path.is_dir() and _is_generated_manifest(path),
)
MANIFEST_PART = text_file_inside("manifest file", MANIFEST)


def _is_training_log(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline().startswith("epoch,train_loss")
    except (OSError, UnicodeDecodeError):
        return False


TRAINING_LOG = OutputKind("training log", "a header 'epoch,train_loss,...'", _is_training_log)
LABEL_FILE = OutputKind(
    "label file",
    "a regular file (converted and aligned label files are derived data, rewritten on rerun)",
    Path.is_file,
)
VIDEO_LINK = OutputKind("video link", "a symbolic link made by an import", Path.is_symlink)


def _is_npy(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(6) == b"\x93NUMPY"
    except OSError:
        return False


EXPORTED_ARRAY = OutputKind(
    "exported feature array", "a .npy file (numpy's magic bytes) written by an export", _is_npy
)
LAYOUT_FILE = OutputKind(
    "MS-TCN layout file",
    "a regular file (exported bundles and mapping are derived data, rewritten on rerun)",
    Path.is_file,
)
