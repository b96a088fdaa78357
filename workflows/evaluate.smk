# Held-out evaluation of the trained model.


rule evaluate:
    input:
        model=rules.train.output.model,
        blend=rules.data_mix.output.blend,
    output:
        json="results/eval/eval.json",
        table=report("results/eval/eval.md", category="Evaluation", caption="report/eval.rst"),
    log:
        "logs/eval/evaluate.log",
    params:
        fs=FS1,
        data=folder_of("input.blend"),
        out=folder_of("output.json"),
        max_docs=CFG.evaluate.max_docs,
        seed=CFG.evaluate.seed,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.fs} evaluate --checkpoint {input.model}"
        " --data {params.data} --out {params.out} --max-docs {params.max_docs}"
        " --seed {params.seed} > {log} 2>&1"
