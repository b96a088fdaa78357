# The release: Hugging Face-loadable weights, tokenizer, model card, checksums, tarball;
# then an independent verification of what was written. `release build` writes the folder
# under a temporary name and renames it into place with SHA256SUMS inside; if anything after
# that fails (the tarball), the rule removes the folder, so a failed release leaves nothing.


rule release:
    input:
        model=rules.train.output.model,
        summary=rules.train.output.summary,
        eval=rules.evaluate.output.json,
        manifest=rules.data_mix.output.manifest,
        prediction=rules.predict_train.output.prediction,
        compare=rules.compare_run.output.json,
    output:
        sums=f"results/release/{RUN}/SHA256SUMS",
        card=report(
            f"results/release/{RUN}/README.md", category="Release", caption="report/card.rst"
        ),
        tarball=f"results/release/{RUN}.tar.gz",
    log:
        "logs/release/release.log",
    params:
        fs=FS1,
        name=RUN,
        data=folder_of("input.manifest"),
        train=folder_of("input.summary"),
        folder=folder_of("output.sums"),
        out=folder_of("output.sums", up=2),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "{params.fs} release build --checkpoint {input.model}"
        " --data {params.data} --eval {input.eval} --train {params.train}"
        " --prediction {input.prediction} --compare {input.compare} --name {params.name}"
        " --out {params.out} > {log} 2>&1 || {{ rm -rf {params.folder}; exit 1; }}"


rule release_verify:
    input:
        sums=rules.release.output.sums,
    output:
        verified=f"results/release/{RUN}.verified",
    log:
        "logs/release/verify.log",
    params:
        fs=FS,
        folder=folder_of("input.sums"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "{params.fs} release verify {params.folder} > {log} 2>&1 && cp {log} {output.verified}"
