# Data stage: real corpora -> cleaned, deduplicated, tokenized, mixed Megatron shards.
# Each rule is one `fugaku-sim data <stage>`; each stage writes its folder under a temporary
# name and renames it at the end, so a failed rule leaves nothing half-written.

DATA = "results/data"


rule data_config:
    output:
        f"{DATA}/config.yaml",
    log:
        "logs/data/config.log",
    params:
        data=json_arg(CFG.data),
    conda:
        ENV
    shell:
        "{FS} workflow write --section data --json {params.data} --out {output} > {log} 2>&1"


rule data_collect:
    input:
        f"{DATA}/config.yaml",
    output:
        f"{DATA}/raw/report.json",
    log:
        "logs/data/collect.log",
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{FS} data collect --config {input} --out {DATA} --workers {threads} --quiet > {log} 2>&1"


rule data_clean:
    input:
        config=f"{DATA}/config.yaml",
        raw=f"{DATA}/raw/report.json",
    output:
        f"{DATA}/clean/report.json",
    log:
        "logs/data/clean.log",
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{FS} data clean --config {input.config} --out {DATA} --workers {threads} --quiet > {log} 2>&1"


rule data_dedup:
    input:
        config=f"{DATA}/config.yaml",
        clean=f"{DATA}/clean/report.json",
    output:
        f"{DATA}/dedup/report.json",
    log:
        "logs/data/dedup.log",
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{FS} data dedup --config {input.config} --out {DATA} --workers {threads} --quiet > {log} 2>&1"


rule data_tokenizer:
    input:
        config=f"{DATA}/config.yaml",
        dedup=f"{DATA}/dedup/report.json",
    output:
        model=f"{DATA}/tokenizer.model",
        report=f"{DATA}/tokenizer/report.json",
    log:
        "logs/data/tokenizer.log",
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{FS} data tokenizer --config {input.config} --out {DATA} --workers {threads} --quiet > {log} 2>&1"


rule data_tokenize:
    input:
        config=f"{DATA}/config.yaml",
        tokenizer=f"{DATA}/tokenizer.model",
    output:
        f"{DATA}/tokenized/report.json",
    log:
        "logs/data/tokenize.log",
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{FS} data tokenize --config {input.config} --out {DATA} --workers {threads} --quiet > {log} 2>&1"


rule data_mix:
    input:
        config=f"{DATA}/config.yaml",
        tokenized=f"{DATA}/tokenized/report.json",
    output:
        manifest=report(
            f"{DATA}/manifest.json", category="Data", caption="report/manifest.rst"
        ),
        blend=f"{DATA}/blend.json",
        plot=report(
            f"{DATA}/composition.png", category="Data", caption="report/composition.rst"
        ),
        maths=f"{DATA}/maths_eval.jsonl",
    log:
        "logs/data/mix.log",
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{FS} data mix --config {input.config} --out {DATA} --workers {threads} --quiet > {log} 2>&1"
