# ltbench workflow: train -> predict (per view) -> evaluate -> record -> collect -> render.
#
#   snakemake --profile local tables/pcb_table2.md     # smoke scale, CPU (the default target)
#   snakemake --profile slurm tables/pcb_table2.md     # paper scale, one SLURM job per step
#   snakemake --profile local tables/pcb_table2.md --config seeds=3   # 3 seeds per row: mean ± std (n)
#   snakemake --profile local tables/pcb_table2_sensitivity.md        # torchvision vs mmdet, gain per framework
#   snakemake --profile local tables/pcb.md            # every reproduced table of a paper
#   snakemake --profile local all_tables               # every table of every paper (make all-tables)
#   snakemake --profile local tables/audit.md          # status of every cell of every table (+ .html)
#   snakemake --profile local --config scale=mini -- regression   # mini metrics vs workflows/regression/expected.yaml
#
# Runs and views come from the plan (ltbench.plan); the decisions live in ltbench.workflow.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "workflows/config/config.yaml"


validate(config, "workflows/schemas/config.schema.yaml")


report: "workflows/report/workflow.rst"


# The default target: the main job (README's first command).
rule all:
    input:
        "tables/pcb_table2.md",


# Every reproduced table of every configured paper (`make all-tables`): tables/<paper>.md, one per paper.
rule all_tables:
    input:
        expand("tables/{paper}.md", paper=config["papers"]),


include: "workflows/rules/common.smk"
include: "workflows/rules/train.smk"
include: "workflows/rules/evaluate.smk"
include: "workflows/rules/tables.smk"
include: "workflows/rules/regression.smk"
