"""The MS-TCN data layout: the precomputed features most segmentation models read, imported.

Layout (MS-TCN, MS-TCN++, ASFormer, DiffAct, LTContext, UVAST all read it)::

    ROOT/features/<video>.npy       float (D, T): D channels (I3D: 2048), T frames (I3D: 15 fps)
    ROOT/groundTruth/<video>.txt    one class name per line, one line per feature frame
    ROOT/splits/train.split<k>.bundle, test.split<k>.bundle   one `<video>.txt` per line
    ROOT/mapping.txt                `index name` lines, indices 0, 1, 2, ... without gaps

Some feature sets come as one HDF5 file with a dataset per video (named by the video id, shaped
(D, T) as the .npy files) instead of `features/`; `--h5 FILE` reads that, with the same checks.

The import converts, it does not read in place: the features become Zarr feature stores
(`OUT/features/<video>.zarr`, the layout `motionseg features extract` writes, one row per
label line, `frame_index` 0..T-1), so the heads, the report and the notebooks read them like
any backbone's; the labels are copied to `OUT/groundTruth/`, aligned to the features; the
manifest goes to `OUT/manifest/` (data root OUT, `fps` the features' rate, so the "native" rate
of the labels is the feature rate). Nothing is written inside ROOT.

Length policy (`stages.data.checks`): a feature file and its label file may differ by at most
max(2, 0.1%) frames (the public files are off by a few frames); the labels are then cut or padded
with their last label to the features' length and the video is named in a warning. A larger
difference is an error naming both files. An array whose *first* axis matches the labels is
refused as (T, D) instead of (D, T); non-finite values are refused, naming the file.

Splits: our manifests store the test videos of each split and train on all the others. A train
bundle that is not exactly the complement of its test bundle is reported as a warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from stages.common.atomic import check_destination, write_text
from stages.common.errors import MotionsegError, input_error
from stages.common.labels import ClassList, read_label_file, write_label_file
from stages.common.manifest import Manifest, VideoEntry
from stages.common.outputs import FEATURE_STORE, LABEL_FILE, MANIFEST, MANIFEST_PART
from stages.common.progress import Progress
from stages.common.stores import write_store
from stages.data.checks import align_labels, default_tolerance

MAPPING = "mapping.txt"
LABEL_TEMPLATE = "groundTruth/{video_id}.txt"
STORE_TEMPLATE = "features/{video_id}.zarr"
MANIFEST_DIR = "manifest"
KNOWN_BACKGROUND = ("SIL", "background", "action_start", "action_end")
"""Background names of the public files (Breakfast, GTEA, 50 Salads), used when none is given."""
BUNDLE = re.compile(r"^(train|test)\.split(\d+)\.bundle$")
HEADER = "# Written by `motionseg data import mstcn` from {root}\n"


@dataclass(frozen=True)
class Layout:
    """What an MS-TCN folder holds, checked for presence: classes, splits, one source per video."""

    root: Path
    classes: ClassList
    test: dict[str, tuple[str, ...]]
    videos: tuple[str, ...]
    h5: Path | None = None
    warnings: tuple[str, ...] = ()

    def label_path(self, video: str) -> Path:
        return self.root / LABEL_TEMPLATE.format(video_id=video)

    def feature_source(self, video: str) -> str:
        """The file (or HDF5 dataset) holding one video's features, as errors name it."""
        if self.h5 is not None:
            return f"{self.h5}[{video}]"
        return str(self.root / "features" / f"{video}.npy")


@dataclass
class ImportReport:
    manifest: Manifest
    frames: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def read_bundle(path: Path) -> list[str]:
    """Video ids of a bundle (`<video>.txt` per line; a bare id is accepted too)."""
    ids = [line.strip().removesuffix(".txt") for line in path.read_text().splitlines()]
    ids = [v for v in ids if v]
    if not ids:
        raise input_error(path, "bundle lists no video")
    dupes = sorted({v for v in ids if ids.count(v) > 1})
    if dupes:
        raise input_error(path, f"bundle lists video(s) twice: {dupes[:5]}")
    return ids


def choose_background(names: Sequence[str], mapping: Path, background: Sequence[str]) -> list[str]:
    """The given background names (each must be a class), else the known ones in the mapping."""
    chosen = list(background) or [b for b in KNOWN_BACKGROUND if b in names]
    if not chosen:
        raise input_error(
            mapping,
            f"none of the usual background names {list(KNOWN_BACKGROUND)} is a class: "
            "pass --background NAME",
        )
    missing = [b for b in chosen if b not in names]
    if missing:
        raise input_error(mapping, f"background class(es) {missing} not in the mapping")
    return chosen


def scan_layout(root: Path, background: Sequence[str] = (), h5: Path | None = None) -> Layout:
    """Read mapping and bundles, and check every listed video has labels and features.

    Reads no feature data, so the workflow can plan from it at parse time.
    """
    root = Path(root)
    if not root.is_dir():
        raise input_error(root, "MS-TCN folder not found (features/, groundTruth/, splits/)")
    mapping = root / MAPPING
    names = ClassList.read(mapping, ()).names
    classes = ClassList(names, tuple(choose_background(names, mapping, background)))

    bundles = {key: (path, read_bundle(path)) for key, path in _bundles(root / "splits").items()}
    splits = sorted((k for kind, k in bundles if kind == "test"), key=int)
    test = {k: tuple(bundles[("test", k)][1]) for k in splits}
    videos = list(dict.fromkeys(v for _, ids in sorted(bundles.values()) for v in ids))
    warnings = []
    for k in splits:
        if ("train", k) not in bundles:
            continue
        path, train = bundles[("train", k)]
        overlap = sorted(set(train) & set(test[k]))
        if overlap:
            raise input_error(path, f"lists test video(s) of split {k}: {overlap[:5]}")
        left_out = set(videos) - set(train) - set(test[k])
        if left_out:
            warnings.append(
                f"{path}: {len(left_out)} video(s) in neither train nor test bundle of split "
                f"{k} (e.g. {sorted(left_out)[0]}); motionseg trains on every non-test video"
            )
    layout = Layout(root, classes, test, tuple(videos), h5, tuple(warnings))
    _check_present(layout, bundles)
    return layout


def _bundles(splits: Path) -> dict[tuple[str, str], Path]:
    if not splits.is_dir():
        raise input_error(splits, "no splits/ folder (train.split<k>.bundle, test.split<k>.bundle)")
    found = {}
    for path in splits.iterdir():
        if m := BUNDLE.match(path.name):
            found[(m.group(1), m.group(2))] = path
    if not any(kind == "test" for kind, _ in found):
        raise input_error(splits, "no test.split<k>.bundle file")
    for kind, k in found:
        if kind == "train" and ("test", k) not in found:
            raise input_error(found[(kind, k)], f"no test.split{k}.bundle next to it")
    return found


def _check_present(layout: Layout, bundles: dict[tuple[str, str], tuple[Path, list]]) -> None:
    """Every bundle's videos have a label file and features; one error names the bundle."""
    with _h5_keys(layout.h5) as h5_keys:
        for path, ids in sorted(bundles.values()):
            missing = []
            for video in ids:
                if not layout.label_path(video).is_file():
                    missing.append(str(layout.label_path(video)))
                has = (
                    video in h5_keys
                    if h5_keys is not None
                    else Path(layout.feature_source(video)).is_file()
                )
                if not has:
                    missing.append(layout.feature_source(video))
            if missing:
                more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
                raise input_error(path, f"names missing file(s): {', '.join(missing[:3])}{more}")


@contextmanager
def _h5_keys(h5: Path | None) -> Iterator[set[str] | None]:
    if h5 is None:
        yield None
        return
    with _open_h5(h5) as f:
        yield set(f.keys())


@contextmanager
def _open_h5(path: Path):
    import h5py

    if not path.is_file():
        raise input_error(path, "HDF5 feature file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise input_error(path, f"not a readable HDF5 file ({err})") from None
    with f:
        yield f


def planned_manifest(layout: Layout, out: Path, name: str, fps: float) -> Manifest:
    """The manifest `import_mstcn` writes into OUT, built without writing anything."""
    return Manifest(
        name=name,
        directory=Path(out) / MANIFEST_DIR,
        root=Path(out),
        fps=float(fps),
        classes=layout.classes,
        classes_path=Path(out) / MANIFEST_DIR / MAPPING,
        granularity="default",
        label_template=LABEL_TEMPLATE,
        videos={v: VideoEntry(v, Path(STORE_TEMPLATE.format(video_id=v))) for v in layout.videos},
        splits=dict(layout.test),
        settings={"precomputed": True, "source": str(layout.root)},
    )


def _check_shape(layout: Layout, video: str, shape: tuple[int, ...], num_labels: int) -> int:
    """T of a (D, T) array, or an error naming the file: (T, D), wrong length, not 2-D."""
    source = layout.feature_source(video)
    if len(shape) != 2:
        raise MotionsegError(f"{source}: expected a 2-D (D, T) array, got shape {shape}")
    allowed = default_tolerance(num_labels)
    dim, frames = shape
    if abs(frames - num_labels) <= allowed:
        return frames
    if abs(dim - num_labels) <= allowed:
        raise MotionsegError(
            f"{source}: shape {shape} looks like (T, D): its first axis matches the "
            f"{num_labels} labels of {layout.label_path(video)}; the layout is (D, T), transpose it"
        )
    raise MotionsegError(
        f"{source}: {frames} feature frames (axis 1 of {shape}) but {layout.label_path(video)} "
        f"has {num_labels} labels, more than the tolerated {allowed} frames apart "
        "(features and labels describe different videos)"
    )


def _read_features(layout: Layout, video: str, h5file) -> np.ndarray:
    """(D, T) float32, finite, or an error naming the file."""
    source = layout.feature_source(video)
    if h5file is not None:
        data = np.asarray(h5file[video][...])
    else:
        try:
            data = np.load(source, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise MotionsegError(f"{source}: not a readable .npy array ({err})") from None
    if data.dtype.kind not in "fiu":
        raise MotionsegError(f"{source}: expected numbers, got dtype {data.dtype}")
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise MotionsegError(f"{source}: {bad} non-finite value(s) (NaN or inf)")
    return data.astype(np.float32, copy=False)


def _shape(layout: Layout, video: str, h5file) -> tuple[int, ...]:
    if h5file is not None:
        return tuple(h5file[video].shape)
    source = layout.feature_source(video)
    try:
        return tuple(np.load(source, mmap_mode="r", allow_pickle=False).shape)
    except (ValueError, OSError) as err:
        raise MotionsegError(f"{source}: not a readable .npy array ({err})") from None


def import_mstcn(
    root: Path,
    out: Path,
    name: str | None = None,
    background: Sequence[str] = (),
    fps: float = 15,
    h5: Path | None = None,
    features_name: str = "i3d",
    expect: dict[str, int] | None = None,
) -> ImportReport:
    """Check everything, then write feature stores, aligned labels and (last) the manifest.

    Shapes and lengths of every video are checked before the first store is written; values
    (NaN) are checked while converting, so a bad file stops the import before the manifest,
    which is what makes OUT usable, is written.
    """
    root, out = Path(root), Path(out)
    if out.resolve() == root.resolve():
        raise MotionsegError(f"{out}: --out must differ from ROOT (the import writes groundTruth/)")
    layout = scan_layout(root, background, h5)
    manifest = planned_manifest(layout, out, name or out.name, fps)
    inputs = (root, *([h5] if h5 is not None else []))
    check_destination(manifest.directory, MANIFEST, inputs)
    for video in layout.videos:  # before any work: nothing written over foreign files
        check_destination(out / STORE_TEMPLATE.format(video_id=video), FEATURE_STORE, inputs)
        check_destination(out / LABEL_TEMPLATE.format(video_id=video), LABEL_FILE, inputs)
    report = ImportReport(manifest, warnings=list(layout.warnings))
    report.warnings += _unexpected_counts(manifest, expect or {})
    h5_ctx = _open_h5(h5) if h5 is not None else _no_h5()
    with h5_ctx as h5file:
        plan: dict[str, tuple[np.ndarray, int]] = {}
        widths: dict[int, str] = {}
        for video in layout.videos:
            labels = read_label_file(layout.label_path(video), layout.classes)
            shape = _shape(layout, video, h5file)
            frames = _check_shape(layout, video, shape, labels.size)
            widths.setdefault(shape[0], layout.feature_source(video))
            if len(widths) > 1:
                first = ", ".join(f"{d} ({src})" for d, src in widths.items())
                raise MotionsegError(f"feature files differ in width D: {first}")
            if frames != labels.size:
                how = "cut" if labels.size > frames else "padded with the last label"
                report.warnings.append(
                    f"{video}: {frames} feature frames, {labels.size} labels in "
                    f"{layout.label_path(video)}: labels {how} to {frames}"
                )
            plan[video] = (labels, frames)
        with Progress(f"import {root.name}", len(plan), "videos") as progress:
            for video, (labels, frames) in plan.items():
                data = _read_features(layout, video, h5file)
                aligned = align_labels(labels, frames)
                _write_video(out, manifest, video, data.T, aligned, features_name)
                report.frames[video] = frames
                progress.update()
    write_manifest(manifest, HEADER.format(root=root))
    return report


def _unexpected_counts(manifest: Manifest, expect: dict[str, int]) -> list[str]:
    """Warnings where the files hold other numbers of videos/classes/splits than the config says."""
    found = {
        "videos": len(manifest.videos),
        "classes": len(manifest.classes),
        "splits": len(manifest.splits),
    }
    return [
        f"{manifest.settings['source']}: {found[k]} {k}, the dataset has {n} (a subset or "
        "other files?)"
        for k, n in expect.items()
        if found[k] != n
    ]


@contextmanager
def _no_h5() -> Iterator[None]:
    yield None


def _write_video(
    out: Path, manifest: Manifest, video: str, features: np.ndarray, labels, features_name: str
) -> None:
    """One feature store (T, D) at the labels' rate and the aligned label file."""
    frames = np.arange(features.shape[0], dtype=np.int64)
    chunk = max(1, min(features.shape[0], 4096))
    attrs = {
        "video_id": video,
        "backbone": features_name,
        "options": {},
        "weights": "precomputed",
        "checkpoint": None,
        "frozen": True,
        "source": manifest.settings["source"],
        "fps": manifest.fps,
        "source_fps": manifest.fps,
        "feature_dim": int(features.shape[1]),
        "padding": None,
    }
    arrays = {
        "features": (
            np.ascontiguousarray(features),
            ("time", "channel"),
            (chunk, features.shape[1]),
        ),
        "frame_index": (frames, ("time",), (chunk,)),
    }
    dest = out / STORE_TEMPLATE.format(video_id=video)
    write_store(dest, arrays, attrs, FEATURE_STORE, inputs=(manifest.settings["source"],))
    write_label_file(out / LABEL_TEMPLATE.format(video_id=video), labels)


def write_manifest(manifest: Manifest, header: str) -> None:
    """dataset.yaml, videos.tsv, splits.tsv and mapping.txt of `manifest` into its directory."""
    directory = manifest.directory
    meta = {
        "name": manifest.name,
        "fps": int(manifest.fps) if manifest.fps.is_integer() else manifest.fps,
        "background": list(manifest.classes.background),
        "default_root": str(manifest.root),
        "videos": "videos.tsv",
        "splits": "splits.tsv",
        "default_granularity": manifest.granularity,
        "granularities": {
            manifest.granularity: {"classes": MAPPING, "labels": manifest.label_template}
        },
        "settings": dict(manifest.settings),
    }
    videos = "".join(f"{v}\t{e.path}\n" for v, e in manifest.videos.items())
    splits = "".join(f"{k}\t{v}\n" for k, ids in manifest.splits.items() for v in ids)
    write_text(directory / "videos.tsv", "video_id\tvideo\n" + videos, MANIFEST_PART)
    write_text(directory / "splits.tsv", "split\tvideo_id\n" + splits, MANIFEST_PART)
    manifest.classes.write(directory / MAPPING, MANIFEST_PART)
    dataset_yaml = header + yaml.safe_dump(meta, sort_keys=False)
    write_text(directory / "dataset.yaml", dataset_yaml, MANIFEST_PART)
