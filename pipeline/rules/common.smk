# Shared helpers: load and validate every dataset config, resolve manifests, and build the
# CLI arguments the rules use; every results path comes from stages.common.results_paths.
# Imports only stages.common (no torch), so DAG building stays fast. The Snakefile checks that
# `stages` is this checkout's code before including this file.

import json
import re
from functools import cache
from pathlib import Path

import yaml
from snakemake.utils import validate

from stages.common import results_paths as paths
from stages.common.errors import MotionsegError
from stages.common.manifest import load_manifest

CONFIG_DIR = Path(workflow.basedir) / "pipeline" / "config"
# The software of every rule; relative to pipeline/rules/, as conda paths are.
CONDA_ENV = "../envs/motionseg.yaml"
SCHEMA = str(Path(workflow.basedir) / "pipeline" / "schemas" / "dataset.schema.yaml")
validate(config, str(Path(workflow.basedir) / "pipeline" / "schemas" / "workflow.schema.yaml"))


def _load_dataset_configs() -> dict:
    files = [p for p in sorted(CONFIG_DIR.glob("*.yaml")) if p.name != "default.yaml"]
    files += [Path(p) for p in config.get("dataset_configs", [])]
    datasets = {}
    for path in files:
        cfg = yaml.safe_load(path.read_text())
        try:
            validate(cfg, SCHEMA)
        except Exception as err:
            raise MotionsegError(f"{path}: invalid dataset config: {err}") from None
        name = cfg["dataset"]
        if name in config.get("roots", {}):
            cfg["root"] = str(config["roots"][name])
        if "root" not in cfg and "synthesize" not in cfg:
            raise MotionsegError(f"{path}: `root` is required (where the dataset lives)")
        if name in datasets:
            raise MotionsegError(f"{path}: dataset {name!r} is configured twice")
        # Manifests ship with the workflow: relative paths are relative to the Snakefile.
        if "manifest" in cfg:
            cfg["manifest"] = str(Path(workflow.basedir) / cfg["manifest"])
        datasets[name] = cfg
    return datasets


DATASETS = _load_dataset_configs()
DEFAULT_TARGETS = config.get("default_targets", [])


def cfg(dataset: str) -> dict:
    return DATASETS[dataset]


def is_prepared(dataset: str) -> bool:
    """Synthesized and imported datasets get their data root made by rule prepare_dataset."""
    return any(key in cfg(dataset) for key in ("synthesize", "import", "precomputed"))


def is_precomputed(dataset: str) -> bool:
    """Features come with the data (MS-TCN layout): no decode, no backbone."""
    return "precomputed" in cfg(dataset)


def precomputed_args(dataset: str) -> str:
    """`motionseg data import mstcn` flags from a config's `precomputed` entry."""
    pre = cfg(dataset)["precomputed"]
    flags = [f"--name {dataset}", f"--features-name {pre['features']}"]
    flags += [f"--background {b}" for b in pre.get("background", [])]
    flags += [f"--fps {pre['fps']}"] if "fps" in pre else []
    flags += [f"--h5 {precomputed_h5(dataset)}"] if "h5" in pre else []
    flags += [f"--expect-{k} {n}" for k, n in pre.get("expect", {}).items()]
    return " ".join(flags)


def precomputed_h5(dataset: str) -> Path:
    """The config's HDF5 file; a relative path is relative to the dataset root."""
    return Path(cfg(dataset)["root"]) / cfg(dataset)["precomputed"]["h5"]


def data_root(dataset: str) -> str:
    """Where the manifest's relative paths point: data/<dataset> when the workflow makes it
    (synthesis, import), else the configured root of an already-converted dataset."""
    return f"data/{dataset}" if is_prepared(dataset) else cfg(dataset)["root"]


def decode_fps(dataset: str) -> float:
    """Configured decode rate, else the manifest's backbone sampling rate, else native."""
    return cfg(dataset)["decode"].get("fps") or manifest(dataset).settings.get(
        "backbone_fps", manifest(dataset).fps
    )


@cache
def manifest(dataset: str):
    c = cfg(dataset)
    if is_precomputed(dataset):
        return precomputed_manifest(dataset)
    return load_manifest(c["manifest"], data_root(dataset), c.get("granularity"))


def precomputed_manifest(dataset: str):
    """The manifest the import wrote, or, before it ran, the one it will write (planned from
    the MS-TCN folder's mapping and bundles, no feature data read)."""
    from stages.data.mstcn import MANIFEST_DIR, planned_manifest, scan_layout

    out = Path(data_root(dataset))
    if (out / MANIFEST_DIR / "dataset.yaml").is_file():
        return load_manifest(out / MANIFEST_DIR, out)
    pre = cfg(dataset)["precomputed"]
    h5 = precomputed_h5(dataset) if "h5" in pre else None
    layout = scan_layout(Path(cfg(dataset)["root"]), pre.get("background", []), h5)
    return planned_manifest(layout, out, dataset, pre.get("fps", 15))


def splits(dataset: str) -> list[str]:
    wanted = cfg(dataset).get("splits", "all")
    names = manifest(dataset).split_names
    if wanted == "all":
        return names
    chosen = [str(s) for s in wanted]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise MotionsegError(f"{dataset}: config names unknown split(s) {unknown}")
    return chosen


def torch_threads(dataset: str) -> int:
    """Threads per torch job (OMP_NUM_THREADS); several 1-thread jobs beat oversubscription."""
    return int(cfg(dataset).get("threads", 4))


def gpus(dataset: str) -> int:
    """GPUs a training/extraction job holds (the `gpu` resource): 0 when the dataset config
    says `gpu: false`, so CPU-only runs are not serialised by a machine's `gpu` limit."""
    return 1 if cfg(dataset).get("gpu", True) else 0


def runs(dataset: str) -> list[int]:
    return list(range(1, int(cfg(dataset).get("runs", 5)) + 1))


def model_cfg(dataset: str, section: str, label: str) -> dict:
    """A `backbones`/`heads` entry: registry name (defaults to the label), options, train."""
    entry = cfg(dataset)[section][label] or {}
    return {"name": entry.get(section.rstrip("s"), label), **entry}


def as_json(value) -> str:
    """JSON for a single-quoted shell argument."""
    return json.dumps(value or {}, sort_keys=True).replace("'", "'\\''")


def cli_flags(values: dict) -> str:
    """`{a_b: 1}` -> `--a-b 1`: config mappings passed through to a command's options."""
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in values.items())


def dataset_args(dataset: str) -> str:
    """The manifest, data root and granularity every per-split command takes."""
    m = manifest(dataset)
    return f"--manifest {m.directory} --root {m.root} --granularity {m.granularity}"


def is_frozen(dataset: str, backbone: str) -> bool:
    """A backbone entry with `train: false`: features from its initial weights, no training."""
    return model_cfg(dataset, "backbones", backbone).get("train") is False


def feature_dir(dataset: str, backbone: str, split: str) -> str:
    """Per-split stores of a fine-tuned backbone. Frozen and precomputed features do not depend
    on the split: one store per video, read by every split's heads."""
    if is_precomputed(dataset):
        return f"{data_root(dataset)}/features"
    if is_frozen(dataset, backbone):
        return paths.frozen_feature_dir(dataset, backbone)
    return paths.feature_dir(dataset, backbone, split)


def feature_names(dataset: str) -> list[str]:
    """Backbone labels of the results: the configured backbones, or the precomputed features."""
    if is_precomputed(dataset):
        return [cfg(dataset)["precomputed"]["features"]]
    return list(cfg(dataset)["backbones"])


def all_runs(dataset: str) -> list[str]:
    c = cfg(dataset)
    return [
        paths.run_dir(dataset, b, h, s, r)
        for b in feature_names(dataset)
        for h in c["heads"]
        for s in splits(dataset)
        for r in runs(dataset)
    ]


def prepare_command(wildcards, output) -> str:
    """`motionseg data synth` (demo), `motionseg data import` or, for precomputed features,
    `motionseg data import mstcn` for rule prepare_dataset."""
    c = cfg(wildcards.dataset)
    if "synthesize" in c:  # unset keys take the command's defaults
        return f"motionseg data synth {output[0]} {cli_flags(c['synthesize'])}"
    if is_precomputed(wildcards.dataset):
        args = precomputed_args(wildcards.dataset)
        return f"motionseg data import mstcn {c['root']} --out {output[0]} {args}"
    imp = c["import"]
    flags = cli_flags(imp.get("options", {}))
    return f"motionseg data import {imp['format']} {c['root']} --out {output[0]} {flags}"
