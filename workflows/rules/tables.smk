# collect -> render: tables/<paper>_table<N>.md|.tex, tables/<paper>.md, tables/audit.md|.html.


rule collect:
    # The records of one table, aggregated (pandas -> parquet); also refreshes results/metrics.parquet.
    input:
        table_records,
    output:
        "results/tables/{paper}_table{table}.parquet",
    log:
        "results/logs/collect/{paper}_table{table}.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
        plan=PLAN_ARGS,
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "{params.cmd} results collect --paper {wildcards.paper} --table {wildcards.table} {params.plan} --strict"
        " --out {output} > {log} 2>&1"


rule render_table:
    input:
        collected="results/tables/{paper}_table{table}.parquet",
        spec="workflows/papers/{paper}.yaml",
    output:
        md=report("tables/{paper}_table{table}.md", caption="../report/table.rst", category="Tables"),
        tex="tables/{paper}_table{table}.tex",
    log:
        "results/logs/render/{paper}_table{table}.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
        plan=PLAN_ARGS,
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "{params.cmd} render --paper {wildcards.paper} --table {wildcards.table} {params.plan}"
        " --md {output.md} --tex {output.tex} > {log} 2>&1"


rule render_sensitivity:
    # tables/<paper>_table<N>_sensitivity.md: the table's methods through config `sensitivity_frameworks`
    # side by side (method x framework, gain over the baseline per framework).
    input:
        records=sensitivity_records,
        spec="workflows/papers/{paper}.yaml",
    output:
        report("tables/{paper}_table{table}_sensitivity.md", caption="../report/table.rst", category="Sensitivity"),
    log:
        "results/logs/render/{paper}_table{table}_sensitivity.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
        scale=SCALE,
        seeds=f"--seeds {SEEDS}" if SEEDS else "",
        frameworks=lambda w: ",".join(sensitivity_frameworks()),
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "{params.cmd} render --paper {wildcards.paper} --table {wildcards.table} --sensitivity"
        " --frameworks {params.frameworks} --scale {params.scale} {params.seeds} --md {output} > {log} 2>&1"


rule render_paper:
    input:
        paper_tables,
    output:
        report("tables/{paper}.md", caption="../report/table.rst", category="Tables"),
    log:
        "results/logs/render/{paper}.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
        plan=PLAN_ARGS,
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "{params.cmd} render --paper {wildcards.paper} --all-tables {params.plan} --md {output} > {log} 2>&1"


rule metrics:
    # Every record the plan has for the configured papers (a whole campaign), as one parquet.
    input:
        campaign_records,
    output:
        "results/metrics.parquet",
    log:
        "results/logs/collect/metrics.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "{params.cmd} results collect --strict --out {output} > {log} 2>&1"


rule audit:
    # Renders from whatever the store holds now (pending cells say so): planning a campaign works
    # before any result exists. `snakemake tables/audit.md results/metrics.parquet` audits a full one.
    input:
        specs=expand("workflows/papers/{paper}.yaml", paper=config["papers"]),
    output:
        md=report("tables/audit.md", caption="../report/audit.rst", category="Audit"),
        html=report("tables/audit.html", caption="../report/audit.rst", category="Audit"),
        # the report site: one page per table (plots, footnotes), status, claims, downloads of every cell
        site=directory("tables/site"),
    log:
        "results/logs/render/audit.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
        plan=PLAN_ARGS,
        papers=" ".join(f"--paper {p}" for p in config["papers"]),
        work=lambda w: WORK,  # training work directories: the campaign status reads their logs
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "{params.cmd} audit --work-dir {params.work} {params.papers} {params.plan} --md {output.md} --html {output.html} --site {output.site} > {log} 2>&1"
