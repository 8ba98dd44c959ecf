# Make the data root a manifest points into: synthesize it (demo) or import the user's
# download (labels converted to per-frame files). Then check it before any heavy work.


def prepare_command(wildcards, output) -> str:
    c = cfg(wildcards.dataset)
    if "synthesize" in c:
        s = c["synthesize"]
        return (
            f"motionseg data synth {output[0]} --seed {s.get('seed', 0)} "
            f"--videos {s.get('videos', 12)} --splits {s.get('splits', 4)} "
            f"--size {s.get('size', 96)} --fps {s.get('fps', 15)}"
        )
    imp = c["import"]
    extra = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in imp.get("options", {}).items())
    return f"motionseg data import {imp['format']} {c['root']} --out {output[0]} {extra}"


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
        manifest=lambda w: cfg(w.dataset)["manifest"],
        root=lambda w: data_root(w.dataset),
        granularity=lambda w: manifest(w.dataset).granularity,
    log:
        "logs/{dataset}/check.log",
    shell:
        "motionseg data check --manifest {params.manifest} --root {params.root} "
        "--granularity {params.granularity} &> {log}"
