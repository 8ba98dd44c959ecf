# Make the data root a manifest points into: synthesize it (demo), import the user's
# download (labels converted to per-frame files) or their precomputed MS-TCN-layout features
# (feature stores, aligned labels, manifest). Then check it before any heavy work.


def prepare_command(wildcards, output) -> str:
    c = cfg(wildcards.dataset)
    if "synthesize" in c:  # unset keys take the command's defaults
        return f"motionseg data synth {output[0]} {cli_flags(c['synthesize'])}"
    if is_precomputed(wildcards.dataset):
        args = precomputed_args(wildcards.dataset)
        return f"motionseg data import mstcn {c['root']} --out {output[0]} {args}"
    imp = c["import"]
    flags = cli_flags(imp.get("options", {}))
    return f"motionseg data import {imp['format']} {c['root']} --out {output[0]} {flags}"


rule prepare_dataset:
    output:
        directory("data/{dataset}"),
    params:
        command=prepare_command,
    log:
        "logs/{dataset}/prepare.log",
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
    shell:
        "motionseg data check {params.dataset} &> {log}"
