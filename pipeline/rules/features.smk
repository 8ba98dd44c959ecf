# Fine-tune one backbone per split on that split's training videos, then extract one feature
# per sampled frame for every video with that split's model.


rule train_backbone:
    input:
        lambda w: [frame_store(w.dataset, v) for v in manifest(w.dataset).train_ids(w.split)],
    output:
        "results/models/{dataset}/{backbone}/split{split}/best.pt",
    params:
        manifest=lambda w: cfg(w.dataset)["manifest"],
        root=lambda w: data_root(w.dataset),
        granularity=lambda w: manifest(w.dataset).granularity,
        name=lambda w: backbone_cfg(w.dataset, w.backbone)["backbone"],
        options=lambda w: as_json(backbone_cfg(w.dataset, w.backbone).get("options")),
        train=lambda w: as_json(backbone_cfg(w.dataset, w.backbone).get("train")),
        seed=lambda w: cfg(w.dataset).get("seed", 0),
        outdir=lambda w, output: str(Path(output[0]).parent),
    resources:
        gpu=1,
    log:
        "logs/{dataset}/train_backbone/{backbone}/split{split}.log",
    benchmark:
        "results/benchmarks/{dataset}/train_backbone/{backbone}/split{split}.tsv"
    shell:
        "motionseg features train --manifest {params.manifest} --root {params.root} "
        "--granularity {params.granularity} --split {wildcards.split} "
        "--backbone {params.name} --frames results/frames/{wildcards.dataset} "
        "--out {params.outdir} --options '{params.options}' --train '{params.train}' "
        "--seed {params.seed} &> {log}"


rule extract_features:
    input:
        checkpoint="results/models/{dataset}/{backbone}/split{split}/best.pt",
        frames="results/frames/{dataset}/{video}.zarr",
    output:
        directory("results/features/{dataset}/{backbone}/split{split}/{video}.zarr"),
    resources:
        gpu=1,
    log:
        "logs/{dataset}/extract/{backbone}/split{split}/{video}.log",
    shell:
        "motionseg features extract {input.checkpoint} {input.frames} {output} "
        "--video-id {wildcards.video} &> {log}"
