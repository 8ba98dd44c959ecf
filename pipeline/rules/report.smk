# Evaluate every run and write results/<dataset>/: metrics.csv, table.md/csv, plots/, index.html.


rule report:
    input:
        lambda w: all_runs(w.dataset),
    output:
        directory(paths.report_dir("{dataset}")),
    params:
        predictions=lambda w: paths.predictions_dir(w.dataset),
        classes=lambda w: manifest(w.dataset).classes_path,
        background=lambda w: " ".join(
            f"--background {b}" for b in manifest(w.dataset).classes.background
        ),
        motion_only=lambda w: " ".join(
            f"--motion-only {c}" for c in manifest(w.dataset).motion_only
        ),
        rate=lambda w: cfg(w.dataset).get("evaluate", {}).get("rate", "feature"),
        span=lambda w: cfg(w.dataset).get("evaluate", {}).get("span", "video"),
        runs=lambda w, input: " ".join(f"--run {r}" for r in input),
    resources:
        mem_mb=8000,
        runtime=30,
    log:
        "logs/{dataset}/report.log",
    conda:
        CONDA_ENV
    shell:
        "motionseg report {params.predictions} {output} "
        "--classes {params.classes} {params.background} {params.motion_only} "
        "--rate {params.rate} --span {params.span} "
        "--dataset {wildcards.dataset} {params.runs} "
        "--benchmarks results/benchmarks/{wildcards.dataset} &> {log}"
