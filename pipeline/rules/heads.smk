# Train a head on a split's training feature stores, `runs` times with different seeds, and
# predict that split's test videos.


rule train_head:
    input:
        # Precomputed features: the import's data root, which holds all stores.
        lambda w: [data_root(w.dataset)]
        if is_precomputed(w.dataset)
        else [
            f"{feature_dir(w.dataset, w.backbone, w.split)}/{v}.zarr"
            for v in manifest(w.dataset).video_ids
        ],
    output:
        directory(paths.run_dir("{dataset}", "{backbone}", "{head}", "{split}", "{run}")),
    params:
        dataset=lambda w: dataset_args(w.dataset),
        features=lambda w: feature_dir(w.dataset, w.backbone, w.split),
        name=lambda w: model_cfg(w.dataset, "heads", w.head)["name"],
        options=lambda w: as_json(model_cfg(w.dataset, "heads", w.head).get("options")),
        train=lambda w: as_json(model_cfg(w.dataset, "heads", w.head).get("train")),
        seed=lambda w: cfg(w.dataset).get("seed", 0),
    threads: lambda w: torch_threads(w.dataset)
    resources:
        mem_mb=16000,
        runtime=120,
    log:
        "logs/{dataset}/train_head/{backbone}/{head}/split{split}/run{run}.log",
    benchmark:
        "results/benchmarks/{dataset}/train_head/{backbone}/{head}/split{split}/run{run}.tsv"
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} motionseg heads train {params.dataset} --split {wildcards.split} "
        "--features {params.features} --head {params.name} --run {wildcards.run} "
        "--seed {params.seed} --out {output} --options '{params.options}' "
        "--train '{params.train}' &> {log}"
