"""Where a report's numbers came from, so a table copied into a paper can be traced to its run.

Collected from files the stages already write: each run's `run.json` (head, options, resolved
training settings, seed, device, split, manifest, final loss), one feature store's attributes
per backbone and split (backbone options, initial weights, checkpoint or `frozen`), the
backbone's `train_log.csv` next to its checkpoint (final loss and validation accuracy), and the
workflow's Snakemake benchmark tables (`results/benchmarks/{dataset}/{stage}/...tsv`, column
`s`: wall seconds per job), summed per stage. The code version is `git describe` of the
checkout the code runs from, else the package version.
"""

from __future__ import annotations

import csv
import datetime
import html
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from stages import __version__
from stages.common.stores import open_store
from stages.evaluate.runs import Rate, RunDir

STORE_ATTRS = ("backbone", "options", "weights", "checkpoint", "checkpoint_epoch", "frozen")
CONVENTION_NOTE = (
    "both conventions are reported: per-video (the mean of per-video values, the LCDC and TCN "
    "tables) and pooled (frames and segments summed over a split's videos, as MS-TCN's eval.py)"
)


def code_version() -> str:
    """`git describe --always --dirty` of this code's checkout, else the package version."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return f"motionseg {__version__}"
    described = out.stdout.strip()
    return f"git {described}" if out.returncode == 0 and described else f"motionseg {__version__}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _backbone_info(features_dir: str | None) -> dict[str, Any]:
    """Attributes of the first feature store the run read, and its checkpoint's last log row."""
    if not features_dir or not Path(features_dir).is_dir():
        return {}
    store = next(iter(sorted(Path(features_dir).glob("*.zarr"))), None)
    if store is None:
        return {}
    attrs = dict(open_store(store).attrs)
    info = {k: attrs[k] for k in STORE_ATTRS if k in attrs}
    if attrs.get("checkpoint"):
        log = Path(attrs["checkpoint"]).parent / "train_log.csv"
        if log.is_file():
            with log.open() as handle:
                rows = list(csv.DictReader(handle))
            if rows:
                last = rows[-1]
                info["final_epoch"] = {k: last[k] for k in ("epoch", "train_loss", "val_acc")}
                info["train_log"] = str(log)
    return info


def stage_times(benchmarks_dir: Path | None) -> pd.DataFrame:
    """Jobs, total and longest wall seconds per stage from Snakemake benchmark tables."""
    rows = []
    if benchmarks_dir is not None and benchmarks_dir.is_dir():
        for table in sorted(benchmarks_dir.rglob("*.tsv")):
            try:
                seconds = float(pd.read_csv(table, sep="\t")["s"].iloc[-1])
            except (OSError, KeyError, IndexError, ValueError, pd.errors.ParserError):
                continue
            rows.append((table.relative_to(benchmarks_dir).parts[0], seconds))
    frame = pd.DataFrame(rows, columns=["stage", "s"])
    return (
        frame.groupby("stage", sort=False)["s"]
        .agg(jobs="count", total_s="sum", longest_s="max")
        .reset_index()
        .round(1)
    )


def collect(
    runs: Sequence[RunDir], rate: Rate, span: str, benchmarks_dir: Path | None, started: float
) -> dict[str, Any]:
    """Everything the provenance section shows, also written as `provenance.json`."""
    models: dict[str, dict[str, Any]] = {}
    for run in runs:
        info = _read_json(run.path / "run.json")
        entry = models.setdefault(
            run.model,
            {
                "backbone": run.backbone,
                "head": run.head,
                "head_options": info.get("options"),
                "train": info.get("train"),
                "device": info.get("device"),
                "dataset": info.get("dataset"),
                "manifest": info.get("manifest"),
                "granularity": info.get("granularity"),
                "splits": [],
                "seeds": [],
                "final_train_loss": [],
                "backbone_by_split": {},
            },
        )
        entry["splits"] = sorted({*entry["splits"], run.split})
        entry["seeds"] = sorted({*entry["seeds"], info.get("seed")} - {None})
        if "final_train_loss" in info:
            entry["final_train_loss"].append(round(float(info["final_train_loss"]), 4))
        if str(run.split) not in entry["backbone_by_split"]:
            entry["backbone_by_split"][str(run.split)] = _backbone_info(info.get("features"))
    now = datetime.datetime.now(datetime.UTC)
    return {
        "code_version": code_version(),
        "date": now.isoformat(timespec="seconds"),
        "report_seconds": round(now.timestamp() - started, 1),
        "label_rate": rate,
        "label_span": span,
        "conventions": CONVENTION_NOTE,
        "models": models,
        "stage_times": stage_times(benchmarks_dir).to_dict(orient="records"),
    }


def markdown(prov: dict[str, Any]) -> str:
    lines = [
        "## Provenance\n",
        f"- code: {prov['code_version']}; report written {prov['date']}",
        f"- labels at the {prov['label_rate']} rate, span {prov['label_span']}; "
        f"{prov['conventions']}",
    ]
    for name, model in prov["models"].items():
        lines.append(
            f"- **{name}**: manifest {model['manifest']} ({model['granularity']}), splits "
            f"{model['splits']}, seeds {model['seeds']}, device {model['device']}, head options "
            f"`{json.dumps(model['head_options'])}`, training `{json.dumps(model['train'])}`, "
            f"final training loss {model['final_train_loss']}"
        )
        for split, backbone in model["backbone_by_split"].items():
            lines.append(f"  - split {split} features: `{json.dumps(backbone)}`")
    if prov["stage_times"]:
        lines += ["", "| stage | jobs | total s | longest s |", "|---|---|---|---|"]
        lines += [
            f"| {t['stage']} | {t['jobs']} | {t['total_s']} | {t['longest_s']} |"
            for t in prov["stage_times"]
        ]
    return "\n".join(lines) + "\n"


def html_section(prov: dict[str, Any]) -> str:
    """The provenance section of index.html; final values link to their logs."""
    esc = html.escape
    parts = [
        "<h2>Provenance</h2>",
        f"<p>Code: {esc(prov['code_version'])}; report written {esc(prov['date'])}. Labels at "
        f"the {esc(prov['label_rate'])} rate, span {esc(prov['label_span'])}; "
        f"{esc(prov['conventions'])}. All of it: "
        '<a href="provenance.json">provenance.json</a>.</p>',
        "<table><tr><th>model</th><th>manifest / splits / seeds / device</th><th>head options"
        "</th><th>training</th><th>final training loss (run.json)</th><th>features per split"
        "</th></tr>",
    ]
    for name, model in prov["models"].items():
        backbone = "<br>".join(
            _features_cell(split, info) for split, info in model["backbone_by_split"].items()
        )
        parts.append(
            f"<tr><td>{esc(name)}</td><td>{esc(str(model['manifest']))} "
            f"({esc(str(model['granularity']))}), splits {model['splits']}, seeds "
            f"{model['seeds']}, {esc(str(model['device']))}</td>"
            f"<td>{esc(json.dumps(model['head_options']))}</td>"
            f"<td>{esc(json.dumps(model['train']))}</td>"
            f"<td>{model['final_train_loss']}</td><td>{backbone}</td></tr>"
        )
    parts.append("</table>")
    if prov["stage_times"]:
        parts.append("<h3>Wall time per stage (Snakemake benchmarks)</h3>")
        parts.append(pd.DataFrame(prov["stage_times"]).to_html(index=False, border=0))
    return "\n".join(parts)


def _features_cell(split: str, info: dict[str, Any]) -> str:
    """One split's feature-store attributes; the backbone's final epoch links to its log."""
    shown = {k: v for k, v in info.items() if k != "train_log"}
    cell = f"split {html.escape(split)}: {html.escape(json.dumps(shown))}"
    if "train_log" in info:
        link = Path(info["train_log"]).resolve().as_uri()
        cell += f' (<a href="{html.escape(link)}">train_log.csv</a>)'
    return cell
