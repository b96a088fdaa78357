# The release: Hugging Face-loadable weights, tokenizer, model card, checksums, tarball;
# then an independent verification of what was written.


rule release:
    input:
        model="results/train/model.safetensors",
        summary="results/train/summary.json",
        eval="results/eval/eval.json",
        manifest="results/data/manifest.json",
        prediction="results/plan/train_prediction.json",
        compare="results/compare/run/compare.json",
    output:
        sums=f"results/release/{RUN}/SHA256SUMS",
        tarball=f"results/release/{RUN}.tar.gz",
    log:
        "logs/release/release.log",
    params:
        name=RUN,
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "OPENBLAS_NUM_THREADS=1 {FS} release build --checkpoint {input.model} --data results/data"
        " --eval {input.eval} --train results/train/run --prediction {input.prediction}"
        " --compare {input.compare} --name {params.name} --out results/release > {log} 2>&1"


rule release_verify:
    input:
        f"results/release/{RUN}/SHA256SUMS",
    output:
        f"results/release/{RUN}.verified",
    log:
        "logs/release/verify.log",
    params:
        folder=f"results/release/{RUN}",
    conda:
        ENV
    shell:
        "{FS} release verify {params.folder} > {log} 2>&1 && cp {log} {output}"
