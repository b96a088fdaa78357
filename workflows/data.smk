# Data stage: real corpora -> cleaned, deduplicated, tokenized, mixed Megatron shards.
# Each rule is one `fugaku-sim data <stage>` reading the config that data_config wrote and
# writing its folder under results/data/ (the folder of that config); each stage writes its
# folder under a temporary name and renames it at the end, so a failed rule leaves nothing
# half-written.

DATA = "results/data"


rule data_config:
    output:
        config=f"{DATA}/config.yaml",
    log:
        "logs/data/config.log",
    params:
        fs=FS,
        data=json_arg(CFG.data),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    shell:
        "{params.fs} workflow write --section data --json {params.data} --out {output.config}"
        " > {log} 2>&1"


rule data_collect:
    input:
        config=rules.data_config.output.config,
    output:
        report=f"{DATA}/raw/report.json",
    log:
        "logs/data/collect.log",
    params:
        fs=FS,
        out=folder_of("input.config"),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.fs} data collect --config {input.config} --out {params.out}"
        " --workers {threads} > {log} 2>&1"


rule data_clean:
    input:
        config=rules.data_config.output.config,
        raw=rules.data_collect.output.report,
    output:
        report=f"{DATA}/clean/report.json",
    log:
        "logs/data/clean.log",
    params:
        fs=FS,
        out=folder_of("input.config"),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.fs} data clean --config {input.config} --out {params.out}"
        " --workers {threads} > {log} 2>&1"


rule data_dedup:
    input:
        config=rules.data_config.output.config,
        clean=rules.data_clean.output.report,
    output:
        report=f"{DATA}/dedup/report.json",
    log:
        "logs/data/dedup.log",
    params:
        fs=FS,
        out=folder_of("input.config"),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.fs} data dedup --config {input.config} --out {params.out}"
        " --workers {threads} > {log} 2>&1"


rule data_tokenizer:
    input:
        config=rules.data_config.output.config,
        dedup=rules.data_dedup.output.report,
    output:
        model=f"{DATA}/tokenizer.model",
        report=f"{DATA}/tokenizer/report.json",
    log:
        "logs/data/tokenizer.log",
    params:
        fs=FS,
        out=folder_of("input.config"),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.fs} data tokenizer --config {input.config} --out {params.out}"
        " --workers {threads} > {log} 2>&1"


rule data_tokenize:
    input:
        config=rules.data_config.output.config,
        tokenizer=rules.data_tokenizer.output.model,
    output:
        report=f"{DATA}/tokenized/report.json",
    log:
        "logs/data/tokenize.log",
    params:
        fs=FS,
        out=folder_of("input.config"),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.fs} data tokenize --config {input.config} --out {params.out}"
        " --workers {threads} > {log} 2>&1"


rule data_mix:
    input:
        config=rules.data_config.output.config,
        tokenized=rules.data_tokenize.output.report,
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
    params:
        fs=FS,
        out=folder_of("input.config"),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.fs} data mix --config {input.config} --out {params.out}"
        " --workers {threads} > {log} 2>&1"
