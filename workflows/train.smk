# Training over MPI. The run works in results/train/run/ (checkpoints, metrics as they
# grow), which is not a declared output: when a killed run is rerun
# (`--rerun-incomplete`), Snakemake removes only the declared copies below and the trainer
# resumes from its newest valid checkpoint instead of starting over.

TRAIN = "results/train"


rule train:
    input:
        blend="results/data/blend.json",
        tokenizer="results/data/tokenizer.model",
        settings="results/plan/train_settings.yaml",
        layout="results/plan/train_layout.json",
    output:
        metrics=f"{TRAIN}/metrics.jsonl",
        model=f"{TRAIN}/model.safetensors",
        summary=f"{TRAIN}/summary.json",
    log:
        "logs/train/train.log",
    params:
        mpi=mpi_launcher,
        model=CFG.train.model,
        work=f"{TRAIN}/run",
        checkpoint_every=CFG.train.checkpoint_every,
        eval_every=CFG.train.eval_every,
    threads: CFG.train.ranks
    resources:
        tasks=CFG.train.ranks,
        mem_mb=4000,
        runtime=120,
        nodes=TRAIN_NODES,
        mpi="mpiexec",
    conda:
        ENV
    shell:
        "OPENBLAS_NUM_THREADS=1 {params.mpi} -n {resources.tasks} {FS} train"
        " --model {params.model} --data results/data"
        " --train-config {input.settings} --layout-from {input.layout}"
        " --out {params.work} --checkpoint-every {params.checkpoint_every}"
        " --eval-every {params.eval_every} --resume auto --no-progress > {log} 2>&1"
        " && cp {params.work}/model.safetensors {output.model}"
        " && cp {params.work}/summary.json {output.summary}"
        " && cp {params.work}/metrics.jsonl {output.metrics}"


rule loss_plot:
    input:
        f"{TRAIN}/metrics.jsonl",
    output:
        report(f"{TRAIN}/loss.png", category="Training", caption="report/loss.rst"),
    log:
        "logs/train/loss_plot.log",
    params:
        vocab=TRAIN_VOCAB,
        title=f"{CFG.train.model}: {RUN}",
    conda:
        ENV
    shell:
        "{FS} workflow loss-plot --metrics {input} --vocab {params.vocab}"
        " --title '{params.title}' --out {output} > {log} 2>&1"
