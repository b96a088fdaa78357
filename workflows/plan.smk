# Plan before run: the capacity plan for the reference job (Fugaku-LLM on 13,824 Fugaku
# nodes, on the software stack fitted to the team's measured runs) and the campaign of its best
# layout (the chain of jobs with failures, queue waits and the model preset's production
# settings); the reference job's own layout predicted on that stack and on the what-if stack
# of the May 2024 announcement, with intervals, and what moves the answer most; the plan for
# this run's ranks on its cluster (which picks the layout when train.layout is "auto"), and
# the simulator's prediction for the layout actually used.
# Verbs that print JSON write it straight into the declared output: if they fail, Snakemake
# removes the partial file.

PLAN = "results/plan"


rule plan_reference:
    output:
        plan=report(f"{PLAN}/plan.json", category="Plan", caption="report/plan.rst"),
        plot=report(f"{PLAN}/plan.png", category="Plan", caption="report/plan.rst"),
        job=directory(f"{PLAN}/job"),
    log:
        "logs/plan/reference.log",
    params:
        fs=FS,
        cluster=CFG.plan.cluster,
        stack=CFG.plan.stack,
        model=CFG.plan.model,
        nodes=CFG.plan.nodes,
        global_batch=CFG.plan.global_batch,
        tokens=CFG.plan.tokens,
        top=CFG.plan.top,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "{params.fs} plan --cluster {params.cluster} --stack {params.stack} --model {params.model}"
        " --nodes {params.nodes} --global-batch {params.global_batch} --tokens {params.tokens}"
        " --top {params.top} --json --plot {output.plot} --emit-job {output.job}"
        " > {output.plan} 2> {log}"


rule plan_table:
    input:
        plan=rules.plan_reference.output.plan,
    output:
        table=report(f"{PLAN}/plan.md", category="Plan", caption="report/plan.rst"),
    log:
        "logs/plan/table.log",
    params:
        fs=FS,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    shell:
        "{params.fs} workflow plan-table --plan {input.plan} --out {output.table} > {log} 2>&1"


rule plan_campaign:
    input:
        rules.plan_reference.output.plan,
    output:
        campaign=report(f"{PLAN}/campaign.json", category="Plan", caption="report/campaign.rst"),
        plot=report(f"{PLAN}/campaign.png", category="Plan", caption="report/campaign.rst"),
    log:
        "logs/plan/campaign.log",
    params:
        fs=FS,
        cluster=CFG.plan.cluster,
        stack=CFG.plan.stack,
        model=CFG.plan.model,
        global_batch=CFG.plan.global_batch,
        tokens=CFG.plan.tokens,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    shell:
        "{params.fs} campaign --cluster {params.cluster} --stack {params.stack} --model {params.model}"
        " --layout-from {input} --global-batch {params.global_batch} --tokens {params.tokens}"
        " --json --plot {output.plot} > {output.campaign} 2> {log}"


rule predict_reference:
    output:
        fitted=report(
            f"{PLAN}/reference.json", category="Plan", caption="report/reference.rst"
        ),
        whatif=report(
            f"{PLAN}/reference_whatif.json", category="Plan", caption="report/reference.rst"
        ),
    log:
        "logs/plan/predict_reference.log",
    params:
        fs=FS,
        cluster=CFG.plan.cluster,
        stack=CFG.plan.stack,
        whatif=CFG.plan.whatif_options(),
        model=CFG.plan.model,
        tokens=CFG.plan.tokens,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        # the model preset's own layout (Fugaku-LLM: TP6 PP8 DP288), on the fitted stack and
        # on the what-if stack, each with p10/p50/p90
        "({params.fs} predict --cluster {params.cluster} --stack {params.stack}"
        " --model {params.model} --tokens {params.tokens} --json > {output.fitted}"
        " && {params.fs} predict --cluster {params.cluster} --stack {params.stack}"
        " {params.whatif} --model {params.model} --tokens {params.tokens} --json"
        " > {output.whatif}) 2> {log}"


rule sensitivity_reference:
    output:
        json=f"{PLAN}/sensitivity.json",
        plot=report(f"{PLAN}/sensitivity.png", category="Plan", caption="report/reference.rst"),
    log:
        "logs/plan/sensitivity.log",
    params:
        fs=FS,
        cluster=CFG.plan.cluster,
        stack=CFG.plan.stack,
        model=CFG.plan.model,
        tokens=CFG.plan.tokens,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "{params.fs} sensitivity --cluster {params.cluster} --stack {params.stack}"
        " --model {params.model} --tokens {params.tokens} --json --plot {output.plot}"
        " > {output.json} 2> {log}"


rule train_settings:
    output:
        settings=f"{PLAN}/train_settings.yaml",
    log:
        "logs/plan/train_settings.log",
    params:
        fs=FS,
        settings=json_arg(CFG.train.settings),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    shell:
        "{params.fs} workflow write --section train-settings --json {params.settings}"
        " --out {output.settings} > {log} 2>&1"


rule train_layout_fixed:
    output:
        layout=f"{PLAN}/train_layout_fixed.json",
    log:
        "logs/plan/train_layout_fixed.log",
    params:
        fs=FS,
        layout=json_arg(FIXED_LAYOUT),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    shell:
        "{params.fs} workflow write --section layout --json {params.layout}"
        " --out {output.layout}"
        " > {log} 2>&1"


rule plan_train:
    input:
        settings=rules.train_settings.output.settings,
    output:
        plan=f"{PLAN}/train_plan.json",
    log:
        "logs/plan/train_plan.log",
    params:
        fs=FS,
        cluster=CFG.train.cluster,
        stack=CFG.train.stack,
        model=CFG.train.model,
        nodes=TRAIN_ALLOCATION.nodes,
        ppn=TRAIN_ALLOCATION.processes_per_node,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        # only layouts the trainer runs (the simulator models more)
        "{params.fs} plan --cluster {params.cluster} --stack {params.stack} --model {params.model}"
        " --nodes {params.nodes} --processes-per-node {params.ppn} --engine train"
        " --train-config {input.settings} --json > {output.plan} 2> {log}"


rule train_layout:
    input:
        # the fastest layout of the run's plan, or the fixed one of the config
        plan=(
            rules.plan_train.output.plan
            if AUTO_LAYOUT
            else rules.train_layout_fixed.output.layout
        ),
    output:
        layout=f"{PLAN}/train_layout.json",
    log:
        "logs/plan/train_layout.log",
    params:
        fs=FS,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    shell:
        "{params.fs} workflow pick-layout --plan {input.plan} --out {output.layout} > {log} 2>&1"


rule predict_train:
    input:
        settings=rules.train_settings.output.settings,
        layout=rules.train_layout.output.layout,
    output:
        prediction=f"{PLAN}/train_prediction.json",
        table=report(
            f"{PLAN}/train_prediction.md", category="Prediction", caption="report/prediction.rst"
        ),
        trace=report(
            f"{PLAN}/train_trace.json", category="Prediction", caption="report/trace.rst"
        ),
    log:
        "logs/plan/predict_train.log",
    params:
        fs=FS,
        cluster=CFG.train.cluster,
        stack=CFG.train.stack,
        model=CFG.train.model,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        # the layout record carries the processes per node and job shape the run uses
        "({params.fs} predict --cluster {params.cluster} --stack {params.stack}"
        " --model {params.model}"
        " --train-config {input.settings} --layout-from {input.layout}"
        " --json --trace {output.trace} > {output.prediction}"
        " && {params.fs} workflow plan-table --plan {output.prediction} --out {output.table})"
        " 2> {log}"
