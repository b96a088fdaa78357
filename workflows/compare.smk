# Close the loop.
# - compare_run (part of `all`): the simulator's prediction for the layout the training run
#   used, beside what the run measured.
# - `snakemake compare`: calibrate this machine with microbenchmarks, run a set of short
#   training runs (DP, TP, PP, mixed; oversubscribed ones included) and compare each with
#   its prediction on the calibrated profile.

COMPARE = "results/compare"


rule compare_run:
    input:
        summary="results/train/summary.json",
        metrics="results/train/metrics.jsonl",
        prediction="results/plan/train_prediction.json",
    output:
        json=f"{COMPARE}/run/compare.json",
        plot=report(
            f"{COMPARE}/run/compare.png",
            category="Predicted vs measured",
            caption="report/compare.rst",
        ),
        table=report(
            f"{COMPARE}/run/compare.md",
            category="Predicted vs measured",
            caption="report/compare.rst",
        ),
    log:
        "logs/compare/run.log",
    params:
        fs=FS,
        cluster=CFG.train.cluster,
        # the trainer's work folder beside the declared copies (see train.smk)
        run=lambda wildcards, input: os.path.join(os.path.dirname(input.summary), "run"),
        out=folder_of("output.json"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "{params.fs} validate --cluster {params.cluster} --from-metrics {params.run}"
        " --out {params.out} --json > {log} 2>&1"


rule calibrate:
    output:
        f"{COMPARE}/calibrated.yaml",
    log:
        "logs/compare/calibrate.log",
    params:
        fs=FS,
        quick="--quick" if CFG.compare.calibrate_quick else "",
        ranks=CFG.train.ranks,
    threads: 2
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "OPENBLAS_NUM_THREADS=1 {params.fs} calibrate --name calibrated --out {output}"
        " --ranks {params.ranks} {params.quick} > {log} 2>&1"


rule validate:
    input:
        f"{COMPARE}/calibrated.yaml",
    output:
        json=f"{COMPARE}/validate/compare.json",
        plot=report(
            f"{COMPARE}/validate/compare.png",
            category="Predicted vs measured",
            caption="report/compare.rst",
        ),
        table=f"{COMPARE}/validate/compare.md",
    log:
        "logs/compare/validate.log",
    params:
        fs=FS,
        runs=CFG.compare.runs,
        out=folder_of("output.json"),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "OPENBLAS_NUM_THREADS=1 {params.fs} validate --cluster {input} --runs {params.runs}"
        " --out {params.out} --json > {log} 2>&1"


rule compare:
    input:
        f"{COMPARE}/validate/compare.json",
        f"{COMPARE}/run/compare.json",
