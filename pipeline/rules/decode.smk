# One frame store per video, sampled by timestamp at the dataset's decode fps.


rule decode:
    input:
        checked="results/checks/{dataset}.ok",
    output:
        directory(paths.frame_store("{dataset}", "{video}")),
    params:
        video=lambda w: manifest(w.dataset).video_path(w.video),
        fps=lambda w: decode_fps(w.dataset),
        size=lambda w: cfg(w.dataset)["decode"]["size"],
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        "logs/{dataset}/decode/{video}.log",
    benchmark:
        "results/benchmarks/{dataset}/decode/{video}.tsv"
    conda:
        CONDA_ENV
    shell:
        "motionseg decode {params.video} {output} --fps {params.fps} --size {params.size} &> {log}"
