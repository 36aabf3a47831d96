# Regression check: a tiny mini-scale matrix checked against committed expected values with tolerances
# (detectron2-style [task, metric, expected, tolerance] in workflows/regression/expected.yaml; `make regression`).


rule regression:
    input:
        expected=config["regression"]["expected"],
        records=regression_records,
    output:
        "results/regression.md",
    log:
        "results/logs/regression.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
        plan=REGRESSION_ARGS,
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "{params.cmd} results regression --expected {input.expected} {params.plan} --out {output} > {log} 2>&1"
