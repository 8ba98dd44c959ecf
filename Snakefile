# motionseg workflow: `snakemake --cores 8 results/<dataset>` for every dataset configured in
# pipeline/config/<dataset>.yaml (or passed with --configfile). Logic lives in the `motionseg`
# CLI; rules only call it. See pipeline/rules/common.smk for how configs are found.

from pathlib import Path

from snakemake.utils import min_version

min_version("8.0")


configfile: Path(workflow.basedir) / "pipeline" / "config" / "default.yaml"


include: "pipeline/rules/common.smk"
include: "pipeline/rules/data.smk"
include: "pipeline/rules/decode.smk"
include: "pipeline/rules/features.smk"
include: "pipeline/rules/heads.smk"
include: "pipeline/rules/report.smk"


rule all:
    input:
        expand("results/{dataset}", dataset=DEFAULT_TARGETS),
