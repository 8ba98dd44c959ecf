# Evaluate every run and write results/<dataset>/: metrics.csv, table.md/csv, plots/, index.html.


rule report:
    input:
        lambda w: all_runs(w.dataset),
    output:
        directory("results/{dataset}"),
    params:
        classes=lambda w: manifest(w.dataset).classes_path,
        background=lambda w: " ".join(
            f"--background {b}" for b in manifest(w.dataset).classes.background
        ),
        motion_only=lambda w: " ".join(
            f"--motion-only {c}" for c in manifest(w.dataset).motion_only
        ),
        rate=lambda w: cfg(w.dataset).get("evaluate", {}).get("rate", "feature"),
        runs=lambda w, input: " ".join(f"--run {r}" for r in input),
    log:
        "logs/{dataset}/report.log",
    shell:
        "motionseg report results/predictions/{wildcards.dataset} {output} "
        "--classes {params.classes} {params.background} {params.motion_only} --rate {params.rate} "
        "--dataset {wildcards.dataset} {params.runs} &> {log}"
