# Training over MPI. The run works in results/train/run/ (checkpoints, metrics as they
# grow; fugaku_sim.workflow.rundir.work_folder), which is not a declared output: when a
# killed run is rerun (`--rerun-incomplete`), Snakemake removes only the declared copies
# below and the trainer resumes from its newest valid checkpoint instead of starting over.
# `workflow run-dir` first checks that the folder's checkpoints come from the same inputs
# (data, tokenizer, settings, layout, model); a folder of another run is moved aside and the
# run starts fresh.

TRAIN = "results/train"


rule train:
    input:
        blend=rules.data_mix.output.blend,
        tokenizer=rules.data_tokenizer.output.model,
        settings=rules.train_settings.output.settings,
        layout=rules.train_layout.output.layout,
    output:
        metrics=f"{TRAIN}/metrics.jsonl",
        model=f"{TRAIN}/model.safetensors",
        summary=f"{TRAIN}/summary.json",
    log:
        "logs/train/train.log",
    params:
        fs=FS,
        fs1=FS1,
        mpi=mpi_launcher,
        model=CFG.train.model,
        data=folder_of("input.blend"),
        work=work_folder_of("output.summary"),
        checkpoint_every=CFG.train.checkpoint_every,
        eval_every=CFG.train.eval_every,
    # Locally `threads` reserves one core per rank (Snakemake does not count `tasks` against
    # --cores). On a cluster threads are per rank (Slurm's --cpus-per-task, PJM's
    # OMP_NUM_THREADS): the slurm and fugaku profiles set them to 1 with set-threads.
    threads: CFG.train.ranks
    resources:
        mem_mb=4000,
        runtime=120,
        tasks=CFG.train.ranks,
        nodes=TRAIN_ALLOCATION.nodes,
        # train.mpi_launcher, unless the profile sets it (the slurm profile: srun --mpi=pmi2)
        mpi=CFG.train.mpi_launcher,
    conda:
        ENV
    shell:
        "({params.fs} workflow run-dir --work {params.work} --arg model={params.model}"
        " --inputs {input.blend} {input.tokenizer} {input.settings} {input.layout}"
        " && {params.mpi} -n {resources.tasks} {params.fs1} train"
        " --model {params.model} --data {params.data}"
        " --train-config {input.settings} --layout-from {input.layout}"
        " --out {params.work} --checkpoint-every {params.checkpoint_every}"
        " --eval-every {params.eval_every} --resume auto) > {log} 2>&1"
        " && cp {params.work}/model.safetensors {output.model}"
        " && cp {params.work}/summary.json {output.summary}"
        " && cp {params.work}/metrics.jsonl {output.metrics}"


rule loss_plot:
    input:
        metrics=rules.train.output.metrics,
    output:
        plot=report(f"{TRAIN}/loss.png", category="Training", caption="report/loss.rst"),
    log:
        "logs/train/loss_plot.log",
    params:
        fs=FS,
        vocab=TRAIN_VOCAB,
        title=shlex.quote(f"{CFG.train.model}: {RUN}"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    shell:
        "{params.fs} workflow loss-plot --metrics {input.metrics} --vocab {params.vocab}"
        " --title {params.title} --out {output.plot} > {log} 2>&1"
