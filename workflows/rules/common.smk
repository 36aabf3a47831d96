# Shared state of the workflow: the plan, the ltbench command, wildcard constraints, resources.
import json
import os
import shlex
import sys

from ltbench import workflow as wf
from ltbench.evaluation.resources import evaluator_for_scale
from ltbench.weights import export_config as export_weights_config

# Every ltbench command of this workflow reads and writes the store under the working directory's results/.
wf.export_results_dir("results", os.environ)

SCALE = config["scale"]
# The config's evaluator is one name or one per scale; the rules read this scale's name.
config["evaluator"] = evaluator_for_scale(config["evaluator"], SCALE)
FRAMEWORK = config.get("framework")
SEEDS = config.get("seeds")  # None: the specs' seeds; N: N seeds (runs) per row, tables show mean ± std (n)
SLURM = config.get("slurm", {})
# Extra metric columns on every reproduced table (e.g. segm.APfixed): the spec loader reads them from the
# environment, so this process and every job it starts see the same tables (ltbench.spec.extra_columns).
EXTRA_COLUMNS = wf.export_extra_columns(config.get("extra_columns") or [], os.environ)
# Pretrained weights: the cache folder and the user's own files go to every job through the environment
# ($LTBENCH_WEIGHTS, $LTBENCH_WEIGHT_FILES), where the adapters' ltbench.weights.resolve reads them.
WEIGHTS = export_weights_config(config.get("weights"), os.environ)
PLAN = wf.WorkflowPlan.build(scale=SCALE, framework=FRAMEWORK, papers=config["papers"], seeds=SEEDS)
WORK = os.environ.get("LTBENCH_WORK", "work")


def ltbench_command():
    """How rules call ltbench: config, else `python -m ltbench` in a conda env, else this interpreter."""
    if config.get("ltbench_command"):
        return config["ltbench_command"]
    if "conda" in str(getattr(workflow.deployment_settings, "deployment_method", "")).lower():
        return "python -m ltbench"
    return shlex.quote(sys.executable) + " -m ltbench"


LTBENCH = ltbench_command()
REGRESSION_ARGS = f"--scale {SCALE}" + (f" --framework {FRAMEWORK}" if FRAMEWORK else "")
PLAN_ARGS = REGRESSION_ARGS + (f" --seeds {SEEDS}" if SEEDS else "")
PLACEMENT = wf.slurm_placement(SLURM, dict(os.environ))
# A training job signalled before its time limit checkpoints and exits wf.RESUBMIT_EXIT_CODE; Snakemake
# resubmits it (the train retries: as many as the time-limited jobs of the longest run, one spare). Only the
# Snakemake that submits jobs retries: a per-rule count also applies inside a SLURM job (where the
# plugin's --retries 0 does not override it) and would restart the training in the ending allocation.
TRAIN_RETRIES = 0 if workflow.remote_exec or workflow.subprocess_exec else wf.train_retries(PLAN.runs.values(), SCALE, SLURM)


wildcard_constraints:
    run=wf.ID_PATTERN,
    view=wf.ID_PATTERN,
    paper="|".join(wf.PAPERS),
    table=r"[0-9A-Za-z.]+",
    dataset=r"[A-Za-z0-9._-]+",
    scale="smoke|mini|paper",


def ap_fixed_budget(wildcards):
    """k of the (run, view)'s AP-fixed prediction, or None."""
    return wf.ap_fixed_k(PLAN.view(wildcards.run, wildcards.view), config["ap_fixed"], SCALE)


def dataset_marker(wildcards):
    return wf.data_marker(SCALE, PLAN.run(wildcards.run).dataset)


def training_data(wildcards):
    # the dataset, and at mini scale the synthetic backbone its runs start from
    return wf.training_inputs(SCALE, PLAN.run(wildcards.run).dataset)


SLURM_RESOURCES = ("runtime", "mem_mb", "cpus_per_task", "gpu", "gpu_model", "slurm_partition", "slurm_account", "slurm_extra",
                   "ranks", "tasks_per_node", "mpi", "nodes", "tasks_per_gpu")
# Ranks and launcher of training jobs (null ranks: one per GPU the job holds).
TRAINING = config.get("training", {})


def train_resources():
    """``resources: **train_resources()``: per-run SLURM resources from the plan's cost model."""

    def get(name):
        def resource(wildcards, attempt):
            res = {**PLAN.train_resources(wildcards.run, SLURM, TRAINING), **PLACEMENT}
            if name == "runtime":  # a retry asks for more time, never more than slurm.max_runtime_min
                return wf.retry_runtime(res["runtime"], attempt, SLURM)
            return res.get(name)

        return resource

    return {name: get(name) for name in SLURM_RESOURCES}


def val_images_of(wildcards):
    """Val images of the job's run's dataset (the size prediction and evaluation jobs are sized from)."""
    from ltbench.plan.scales import val_images

    return val_images(PLAN.run(wildcards.run).dataset)


def per_job_resources(need, keys):
    """``resources`` whose every value is ``need(wildcards)[key]``: sized per job (the keys are the scale's)."""
    return {**{key: (lambda w, key=key: need(w)[key]) for key in keys}, **PLACEMENT}


def predict_resources():
    """``resources: **predict_resources()``: each run's prediction sized from its val set (one GPU at paper scale)."""

    def need(wildcards):
        return wf.predict_resources(SCALE, SLURM, num_val_images=val_images_of(wildcards))

    return per_job_resources(need, wf.predict_resources(SCALE, SLURM, num_val_images=1))


def evaluate_resources():
    """``resources: **evaluate_resources()``: each (run, view)'s evaluation sized from its val set."""

    def need(wildcards):
        return wf.evaluate_resources(SCALE, SLURM, num_val_images=val_images_of(wildcards), evaluator=config["evaluator"],
                                     ap_fixed=ap_fixed_budget(wildcards) is not None)

    return per_job_resources(need, wf.evaluate_resources(SCALE, SLURM, num_val_images=1, evaluator=config["evaluator"],
                                                         ap_fixed=False))


def dataset_paths(wildcards):
    from ltbench.data.datasets import resolve

    return resolve(PLAN.run(wildcards.run).dataset, SCALE, check=False)


def checked_records(records):
    """The record files a rule reads. A missing or corrupt one is made again in this run (its record job is
    forced, and so every job after it): Snakemake itself remakes a missing intermediate file only when a later
    job has to run anyway, and never looks inside one (ltbench.workflow.recovery)."""
    return wf.rebuild_damaged(workflow, records)


def retrain_request(wildcards):
    """No input file. When the user forces this run's training job, leaves results/runs/<run>/train.retrain.json
    while the DAG is built (not in a dry run), which tells the job, wherever it runs, to train a finished work
    directory again; any other rerun of the job marks the finished training (ltbench.workflow.workdir)."""
    done = wf.train_done(wildcards.run)
    wf.request_retrain(workflow, "train", done, os.path.join(os.path.dirname(done), wf.RETRAIN_REQUEST))
    return []


def table_records(wildcards):
    pairs = PLAN.table_pairs(wildcards.paper, wildcards.table)
    if config["render_failed"]:  # render now: (run, view) pairs with a failure note show as failed cells
        pairs = wf.without_failed(pairs, "results")
    return checked_records([wf.record_file(r, v) for r, v in pairs])


def sensitivity_frameworks():
    from ltbench.analysis.sensitivity import parse_frameworks

    return parse_frameworks(config.get("sensitivity_frameworks"), SCALE)


def sensitivity_records(wildcards):
    """Records of one table through every sensitivity framework (each framework's runs are separate runs)."""
    pairs = [p for fw in sensitivity_frameworks() for p in PLAN.table_pairs(wildcards.paper, wildcards.table, framework=fw)]
    if config["render_failed"]:
        pairs = wf.without_failed(pairs, "results")
    return checked_records([wf.record_file(r, v) for r, v in dict.fromkeys(pairs)])


def campaign_records(wildcards):
    """Every record the plan has for the configured papers."""
    return checked_records([wf.record_file(r, v) for r, v in PLAN.all_pairs()])


def paper_tables(wildcards):
    from ltbench.render.tables import reproduced_table_ids

    return [f"tables/{wildcards.paper}_table{t}.md" for t in reproduced_table_ids(wildcards.paper)]


def regression_records(wildcards):
    from ltbench.store.regression import load_expected, task_pairs

    expected = load_expected(config["regression"]["expected"])
    if expected.scale != SCALE:
        raise ValueError(f"{expected.path} holds {expected.scale}-scale values; run with --config scale={expected.scale}")
    served = task_pairs(expected, scale=SCALE, framework=FRAMEWORK)
    return checked_records([wf.record_file(r, v) for r, v in dict.fromkeys(p for pairs in served.values() for p in pairs)])


# Bookkeeping steps run where Snakemake runs (not as cluster jobs).
localrules:
    data,
    record,
    collect,
    render_table,
    render_sensitivity,
    render_paper,
    metrics,
    audit,
    regression,
