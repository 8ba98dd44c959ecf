# Make the data root a manifest points into: synthesize it (demo), import the user's
# download (labels converted to per-frame files) or their precomputed MS-TCN-layout features
# (feature stores, aligned labels, manifest). Then check it before any heavy work.


rule prepare_dataset:
    output:
        directory("data/{dataset}"),
    params:
        command=prepare_command,
    log:
        "logs/{dataset}/prepare.log",
    conda:
        CONDA_ENV
    shell:
        "{params.command} &> {log}"


rule check_dataset:
    input:
        lambda w: data_root(w.dataset) if is_prepared(w.dataset) else [],
    output:
        touch("results/checks/{dataset}.ok"),
    params:
        dataset=lambda w: dataset_args(w.dataset),
    log:
        "logs/{dataset}/check.log",
    conda:
        CONDA_ENV
    shell:
        "motionseg data check {params.dataset} &> {log}"
