# Fine-tune one backbone per split on that split's training videos, then extract one feature
# per sampled frame for every video with that split's model; frozen backbones skip training
# and are extracted once per video. Both hold a GPU (`gpu` resource,
# which the SLURM executor turns into a GPU request) unless the dataset config says `gpu: false`.
# Backbone training and then extraction go first among ready jobs (`priority`): they are the
# long chain of every model, so heads fill the gaps instead of delaying the last backbone
# (on the 2-core demo, 70 s of one idle core without this).


rule train_backbone:
    input:
        lambda w: [paths.frame_store(w.dataset, v) for v in manifest(w.dataset).train_ids(w.split)],
    output:
        paths.checkpoint("{dataset}", "{backbone}", "{split}"),
    params:
        dataset=lambda w: dataset_args(w.dataset),
        name=lambda w: model_cfg(w.dataset, "backbones", w.backbone)["name"],
        options=lambda w: as_json(model_cfg(w.dataset, "backbones", w.backbone).get("options")),
        train=lambda w: as_json(model_cfg(w.dataset, "backbones", w.backbone).get("train")),
        seed=lambda w: cfg(w.dataset).get("seed", 0),
        frames=lambda w: paths.frames_dir(w.dataset),
        outdir=lambda w: paths.model_dir(w.dataset, w.backbone, w.split),
    threads: lambda w: torch_threads(w.dataset)
    priority: 2
    resources:
        gpu=lambda w: gpus(w.dataset),
        mem_mb=32000,
        runtime=1440,
    log:
        "logs/{dataset}/train_backbone/{backbone}/split{split}.log",
    benchmark:
        "results/benchmarks/{dataset}/train_backbone/{backbone}/split{split}.tsv"
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} motionseg features train {params.dataset} "
        "--split {wildcards.split} "
        "--backbone {params.name} --frames {params.frames} "
        "--out {params.outdir} --options '{params.options}' --train '{params.train}' "
        "--seed {params.seed} &> {log}"


# One extraction job per (backbone, split) writes the stores of all videos: the model is
# loaded once, which matters when there are many short videos. Its outputs are the per-video
# stores, so the rule is generated per dataset (outputs must be static patterns) and named
# extract_features_<dataset>; deleting one store re-runs that job, the heads of that
# backbone/split and the report, nothing else.
for _dataset in (d for d in DATASETS if not is_precomputed(d)):
    _videos = manifest(_dataset).video_ids

    rule:
        name:
            f"extract_features_{_dataset}"
        input:
            checkpoint=paths.checkpoint(_dataset, "{backbone}", "{split}"),
            frames=[paths.frame_store(_dataset, v) for v in _videos],
        output:
            [
                directory(paths.feature_store(_dataset, "{backbone}", "{split}", v))
                for v in _videos
            ],
        params:
            outdir=lambda w, _d=_dataset: paths.feature_dir(_d, w.backbone, w.split),
        threads: lambda w, _d=_dataset: torch_threads(_d)
        priority: 1
        resources:
            gpu=lambda w, _d=_dataset: gpus(_d),
            mem_mb=16000,
            runtime=60,
        log:
            f"logs/{_dataset}/extract/{{backbone}}/split{{split}}.log",
        benchmark:
            f"results/benchmarks/{_dataset}/extract/{{backbone}}/split{{split}}.tsv"
        conda:
            CONDA_ENV
        shell:
            "OMP_NUM_THREADS={threads} motionseg features extract {input.checkpoint} "
            "{input.frames} --out-dir {params.outdir} &> {log}"


# A frozen backbone (`train: false`) has no checkpoint: its features come from its initial
# weights and do not depend on the split, so each video is extracted once and every split's
# heads read the same store.
rule extract_frozen:
    input:
        frames=lambda w: paths.frame_store(w.dataset, w.video),
    output:
        directory(f"{paths.frozen_feature_dir('{dataset}', '{backbone}')}/{{video}}.zarr"),
    params:
        name=lambda w: model_cfg(w.dataset, "backbones", w.backbone)["name"],
        options=lambda w: as_json(model_cfg(w.dataset, "backbones", w.backbone).get("options")),
        outdir=lambda w: paths.frozen_feature_dir(w.dataset, w.backbone),
    threads: lambda w: torch_threads(w.dataset)
    resources:
        gpu=lambda w: gpus(w.dataset),
        mem_mb=16000,
        runtime=60,
    log:
        "logs/{dataset}/extract/{backbone}/frozen/{video}.log",
    benchmark:
        "results/benchmarks/{dataset}/extract/{backbone}/frozen/{video}.tsv"
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} motionseg features extract --backbone {params.name} "
        "--options '{params.options}' {input.frames} --out-dir {params.outdir} &> {log}"
