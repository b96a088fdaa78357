# Close the loop.
# - compare_run (part of `all`): the simulator's prediction for the layout the training run
#   used, beside what the run measured; on the profile `calibrate` measures on this machine in
#   the same build (compare.profile: measured, the default), or on train.cluster.
# - `snakemake compare`: calibrate this machine with microbenchmarks, run a set of short
#   training runs (DP, TP, PP, mixed; oversubscribed ones included), compare each with its
#   prediction on the calibrated profile, and fit this machine's software stack to those runs
#   (leave-one-out error and coverage in stack/fit.json).

COMPARE = "results/compare"
MEASURED_PROFILE = f"{COMPARE}/calibrated.yaml"


rule compare_run:
    input:
        summary=rules.train.output.summary,
        metrics=rules.train.output.metrics,
        prediction=rules.predict_train.output.prediction,
        profile=MEASURED_PROFILE if CFG.compare.profile == "measured" else [],
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
        # the measured profile is this rule's input: named through it
        cluster=lambda w, input: input.profile if input.profile else CFG.train.cluster,
        stack=CFG.train.stack,
        out=folder_of("output.json"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "{params.fs} validate --cluster {params.cluster} --stack {params.stack}"
        " --from-metrics {input.summary}"
        " --out {params.out} --json > {log} 2>&1"


rule calibrate:
    output:
        profile=MEASURED_PROFILE,
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


rule calibrate_stack:
    input:
        profile=rules.calibrate.output.profile,
        validate=rules.validate.output.json,
    output:
        stack=f"{COMPARE}/stack/local.yaml",
        fit=f"{COMPARE}/stack/fit.json",
    log:
        "logs/compare/calibrate_stack.log",
    params:
        fs=FS,
        runs=lambda wildcards, input: os.path.join(os.path.dirname(input.validate), "runs"),
        free=CFG.compare.stack_free,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        # every run validate trained, fitted with the same job mapping validate predicts with
        "{params.fs} calibrate --from-runs {params.runs}/* --cluster {input.profile}"
        " --free {params.free} --out {output.stack} --json > {output.fit} 2> {log}"


rule compare:
    input:
        rules.validate.output.json,
        rules.compare_run.output.json,
        rules.calibrate_stack.output.fit,
