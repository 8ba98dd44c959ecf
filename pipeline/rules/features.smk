# Fine-tune one backbone per split on that split's training videos, then extract one feature
# per sampled frame for every video with that split's model; frozen backbones skip training.


rule train_backbone:
    input:
        lambda w: [frame_store(w.dataset, v) for v in manifest(w.dataset).train_ids(w.split)],
    output:
        "results/models/{dataset}/{backbone}/split{split}/best.pt",
    params:
        dataset=lambda w: dataset_args(w.dataset),
        name=lambda w: model_cfg(w.dataset, "backbones", w.backbone)["name"],
        options=lambda w: as_json(model_cfg(w.dataset, "backbones", w.backbone).get("options")),
        train=lambda w: as_json(model_cfg(w.dataset, "backbones", w.backbone).get("train")),
        seed=lambda w: cfg(w.dataset).get("seed", 0),
        outdir=lambda w, output: str(Path(output[0]).parent),
    threads: lambda w: torch_threads(w.dataset)
    resources:
        gpu=lambda w: gpus(w.dataset),
    log:
        "logs/{dataset}/train_backbone/{backbone}/split{split}.log",
    benchmark:
        "results/benchmarks/{dataset}/train_backbone/{backbone}/split{split}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} motionseg features train {params.dataset} "
        "--split {wildcards.split} "
        "--backbone {params.name} --frames results/frames/{wildcards.dataset} "
        "--out {params.outdir} --options '{params.options}' --train '{params.train}' "
        "--seed {params.seed} &> {log}"


# One extraction job per (backbone, split) writes the stores of all videos: the model is
# loaded once, which matters when there are many short videos. Its outputs are the per-video
# stores, so the rule is generated per dataset (outputs must be static patterns); deleting one
# store re-runs that job, the heads of that backbone/split and the report, nothing else.
for _dataset in (d for d in DATASETS if not is_precomputed(d)):
    _videos = manifest(_dataset).video_ids

    rule:
        name:
            f"extract_features_{_dataset}"
        input:
            checkpoint=f"results/models/{_dataset}/{{backbone}}/split{{split}}/best.pt",
            frames=[frame_store(_dataset, v) for v in _videos],
        output:
            [
                directory(f"{split_feature_dir(_dataset, '{backbone}', '{split}')}/{v}.zarr")
                for v in _videos
            ],
        params:
            outdir=lambda w, output: str(Path(output[0]).parent),
        threads: lambda w, _d=_dataset: torch_threads(_d)
        resources:
            gpu=lambda w, _d=_dataset: gpus(_d),
        log:
            f"logs/{_dataset}/extract/{{backbone}}/split{{split}}.log",
        benchmark:
            f"results/benchmarks/{_dataset}/extract/{{backbone}}/split{{split}}.tsv"
        shell:
            "OMP_NUM_THREADS={threads} motionseg features extract {input.checkpoint} "
            "{input.frames} --out-dir {params.outdir} &> {log}"


# A frozen backbone (`train: false`) has no checkpoint: its features come from its initial
# weights and do not depend on the split, so each video is extracted once and every split's
# heads read the same store.
rule extract_frozen:
    input:
        frames=lambda w: frame_store(w.dataset, w.video),
    output:
        directory("results/features/{dataset}/{backbone}/frozen/{video}.zarr"),
    params:
        name=lambda w: model_cfg(w.dataset, "backbones", w.backbone)["name"],
        options=lambda w: as_json(model_cfg(w.dataset, "backbones", w.backbone).get("options")),
        outdir=lambda w, output: str(Path(output[0]).parent),
    threads: lambda w: torch_threads(w.dataset)
    resources:
        gpu=lambda w: gpus(w.dataset),
    log:
        "logs/{dataset}/extract/{backbone}/frozen/{video}.log",
    benchmark:
        "results/benchmarks/{dataset}/extract/{backbone}/frozen/{video}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} motionseg features extract --backbone {params.name} "
        "--options '{params.options}' {input.frames} --out-dir {params.outdir} &> {log}"
