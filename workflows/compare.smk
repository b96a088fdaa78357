# Close the loop.
# - compare_run (part of `all`): the simulator's prediction for the layout the training run
#   used, beside what the run measured.
# - `snakemake compare`: calibrate this machine with microbenchmarks, run a set of short
#   training runs (DP, TP, PP, mixed; oversubscribed ones included) and compare each with
#   its prediction on the calibrated profile.

COMPARE = "results/compare"


rule compare_run:
    input:
        summary=rules.train.output.summary,
        metrics=rules.train.output.metrics,
        prediction=rules.predict_train.output.prediction,
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
        out=folder_of("output.json"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "{params.fs} validate --cluster {params.cluster} --from-metrics {input.summary}"
        " --out {params.out} --json > {log} 2>&1"


rule calibrate:
    output:
        profile=f"{COMPARE}/calibrated.yaml",
    log:
        "logs/compare/calibrate.log",
    params:
        fs=FS1,
        quick="--quick" if CFG.compare.calibrate_quick else "",
        ranks=CFG.train.ranks,
    threads: 2
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "{params.fs} calibrate --name calibrated --out {output.profile}"
        " --ranks {params.ranks} {params.quick} > {log} 2>&1"


rule validate:
    input:
        profile=rules.calibrate.output.profile,
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
        fs=FS1,
        runs=CFG.compare.runs,
        out=folder_of("output.json"),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.fs} validate --cluster {input.profile} --runs {params.runs}"
        " --out {params.out} --json > {log} 2>&1"


rule compare:
    input:
        rules.validate.output.json,
        rules.compare_run.output.json,
