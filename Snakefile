# motionseg workflow: `snakemake --cores 8 results/<dataset>` for every dataset configured in
# pipeline/config/<dataset>.yaml (or passed with --configfile). Logic lives in the `motionseg`
# CLI; rules only call it. See pipeline/rules/common.smk for how configs are found.
#
# Rules run the `motionseg` of the active environment (or, with --use-conda, of
# pipeline/envs/motionseg.yaml, which installs this checkout). It must be this checkout's code:
# the DAG is built with the `stages` package imported here, and every rule exports
# MOTIONSEG_CHECKOUT so that `motionseg` refuses to run another checkout's code.

from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("8.0")

CHECKOUT = Path(workflow.basedir).resolve()
try:
    import stages
except ImportError:
    raise WorkflowError(
        f"the `stages` package is not installed: pip install -e {CHECKOUT}"
    ) from None
if Path(stages.__file__).resolve().parents[1] != CHECKOUT:
    raise WorkflowError(
        f"this workflow is {CHECKOUT}, but the installed motionseg is the code in "
        f"{Path(stages.__file__).resolve().parents[1]}: pip install -e {CHECKOUT} into this "
        "environment, or run that checkout's Snakefile"
    )


configfile: Path(workflow.basedir) / "pipeline" / "config" / "default.yaml"


shell.prefix(f"set -euo pipefail; export MOTIONSEG_CHECKOUT='{CHECKOUT}'; ")


include: "pipeline/rules/common.smk"


# Applies to every rule below; a split is any name without a slash (results_paths).
wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS) or "(?!)",
    backbone=r"[^/]+",
    head=r"[^/]+",
    split=r"[^/]+",
    run=r"\d+",
    video=r"[^/]+",


include: "pipeline/rules/data.smk"
include: "pipeline/rules/decode.smk"
include: "pipeline/rules/features.smk"
include: "pipeline/rules/heads.smk"
include: "pipeline/rules/report.smk"


rule all:
    input:
        expand("results/{dataset}", dataset=DEFAULT_TARGETS),
