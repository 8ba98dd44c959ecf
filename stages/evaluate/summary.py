"""Per-run metric rows and the 'mean ± std over runs' tables of the report.

The table follows the LCDC paper's Table 1, which reports mean and standard deviation over five
runs. The paper does not say how the two combine with the splits, so we fix it: for each run,
average the metric over the splits (the published protocol for one run), then take the mean and
the *sample* standard deviation (ddof = 1) of those per-run values. With one run the std is
undefined and only the mean is printed. Every run of a model must cover the same splits, or the
per-run values would not be comparable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stages.common.errors import MotionsegError
from stages.evaluate.metrics import CONVENTIONS, THRESHOLDS, combine, f1_key, metric_keys
from stages.evaluate.runs import RunScores

KEYS = metric_keys(THRESHOLDS)
ID_COLUMNS = ["backbone", "head", "split", "run"]
METRICS_COLUMNS = [*ID_COLUMNS, *KEYS, "convention"]
TABLE_METRICS = [*(f1_key(k) for k in THRESHOLDS), "edit", "acc"]
DISPLAY = {**{f1_key(k): f"F1@{round(k * 100)}" for k in THRESHOLDS}, "edit": "Edit", "acc": "Acc"}
CONVENTION_TITLES = {
    "per-video": "Per-video mean (default; the convention of the LCDC and TCN papers' tables)",
    "pooled": "Pooled (frames and segments summed over videos, as MS-TCN's eval.py; "
    "edit is still the per-video mean)",
}


def metrics_frame(scored: Sequence[RunScores]) -> pd.DataFrame:
    """One row per run and convention, columns `METRICS_COLUMNS`; per-video rows first."""
    rows = []
    for convention in CONVENTIONS:
        for item in scored:
            values = combine(list(item.videos.values()), convention)
            run = item.run
            rows.append(
                {
                    "backbone": run.backbone,
                    "head": run.head,
                    "split": run.split,
                    "run": run.run,
                    **values,
                    "convention": convention,
                }
            )
    return pd.DataFrame(rows, columns=METRICS_COLUMNS)


def check_split_coverage(metrics: pd.DataFrame) -> None:
    """Every run of a (backbone, head) must cover the same splits."""
    for (backbone, head), group in metrics.groupby(["backbone", "head"], sort=False):
        splits = group.groupby("run")["split"].apply(lambda s: tuple(sorted(set(s))))
        if splits.nunique() > 1:
            detail = "; ".join(f"run {r}: splits {list(s)}" for r, s in splits.items())
            raise MotionsegError(
                f"{backbone}/{head}: runs cover different splits ({detail}); "
                "finish or remove the incomplete runs"
            )


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per convention and model: runs, splits, and `{metric}_mean`, `{metric}_std` columns."""
    check_split_coverage(metrics)
    keys = ["convention", "backbone", "head"]
    per_run = metrics.groupby([*keys, "run"], sort=False)[KEYS].mean().reset_index()
    grouped = per_run.groupby(keys, sort=False)
    out = grouped[KEYS].agg(["mean", "std"])  # pandas std is the sample std (ddof = 1)
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out.insert(0, "runs", grouped.size())
    out.insert(1, "splits", metrics.groupby(keys, sort=False)["split"].nunique())
    return out.reset_index()


def format_cell(mean: float, std: float) -> str:
    """'80.22 ± 0.21' as in the paper; the mean alone when std is undefined (one run)."""
    return f"{mean:.2f}" if np.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper-style table: model rows, 'mean ± std' cells, both conventions."""
    table = pd.DataFrame(
        {
            "convention": summary["convention"],
            "model": summary["backbone"] + " + " + summary["head"],
            "runs": summary["runs"],
            "splits": summary["splits"],
        }
    )
    for metric in TABLE_METRICS:
        table[DISPLAY[metric]] = [
            format_cell(m, s)
            for m, s in zip(summary[f"{metric}_mean"], summary[f"{metric}_std"], strict=True)
        ]
    return table


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no extra dependency such as tabulate)."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
