"""The Snakemake workflow: lint, dry runs of the main target under both profiles, profiles, helpers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ltbench import paths
from ltbench.errors import LtbenchError
from ltbench import workflow as wf

from support.workflow import SNAKEMAKE, jobs_of, snakemake  # noqa: F401


def test_lint_is_clean():
    proc = snakemake("--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_local_dry_run_of_the_main_target_plans_every_run_once():
    from ltbench.plan import build_plan

    plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke")
    proc = snakemake("--profile", "local", "-n", "--forceall", "tables/pcb_table2.md")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = jobs_of(proc.stdout)
    assert jobs["train"] == len(plan.runs)
    assert jobs["predict"] == jobs["evaluate"] == jobs["record"] == len({(v.run_id, v.view_id) for v in plan.views})
    assert jobs["collect"] == jobs["render_table"] == 1
    # checkpoints are never a declared output (a failed job's outputs are deleted)
    outputs = re.findall(r"^\s+output: (.*)$", proc.stdout, re.M)
    assert outputs and not [o for o in outputs if "work/" in o or o.rstrip("/").endswith(tuple(plan.runs))]


def test_mini_dry_run_trains_the_backbone_once_before_the_eight_shared_runs():
    from ltbench.plan import build_plan

    plan = build_plan(targets=["tables/pcb_table2.md"], scale="mini")
    proc = snakemake("--profile", "local", "-n", "--forceall", "tables/pcb_table2.md", "--config", "scale=mini")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = jobs_of(proc.stdout)
    assert jobs["backbone"] == 1 and jobs["data"] == 1 and jobs["train"] == len(plan.runs) == 8
    assert "results/data/mini/backbone/v1/lvis_v1.txt" in proc.stdout


def test_extra_ap_fixed_columns_add_one_top_k_prediction_per_view():
    """`extra_columns` with AP-fixed: the same trains and predicts, plus predict_top_k for every view."""
    from ltbench.plan import build_plan

    plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke")
    proc = snakemake("--profile", "local", "-n", "--forceall", "tables/pcb_table2.md",
                     "--config", "extra_columns=[segm.APfixed,segm.APpool]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = jobs_of(proc.stdout)
    views = len({(v.run_id, v.view_id) for v in plan.views})
    assert jobs["train"] == len(plan.runs)
    assert jobs["predict"] == jobs["predict_top_k"] == jobs["evaluate"] == views
    bad = snakemake("--profile", "local", "-n", "tables/pcb_table2.md", "--config", "extra_columns=[segm.APfix]")
    assert bad.returncode != 0 and "did you mean 'segm.APfixed'" in bad.stdout + bad.stderr


@pytest.mark.slow
def test_slurm_dry_run_asks_gpus_runtime_and_partition_from_config_and_env():
    if shutil.which("sinfo") is None:
        pytest.skip("the SLURM plugin's dry run needs sinfo on PATH (apt-get install slurm-client)")
    proc = snakemake("--profile", "slurm", "-n", "--forceall", "tables/pcb_table2.md",
                     env={"SLURM_PARTITION": "gpu-test", "SLURM_ACCOUNT": "proj42"}, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    train_blocks = [b for b in proc.stdout.split("\n[") if "\nrule train:" in "\n" + b.split("]", 1)[-1]]
    assert train_blocks
    for block in train_blocks:
        res = re.search(r"resources: (.*)", block).group(1)
        assert "gpu=8" in res and "slurm_partition=gpu-test" in res and "slurm_account=proj42" in res
        runtime = int(re.search(r"runtime=(\d+)", res).group(1))
        assert runtime >= 30  # paper scale: hours of GPU time, floor 30 min
    assert "scale: paper" not in proc.stderr  # sanity: no config error
    assert "data/paper/lvis_v0.5.txt" in proc.stdout


@pytest.mark.parametrize(
    ("override", "needle"),
    [({"scale": "huge"}, "huge"), ({"framework": "caffe"}, "caffe"), ({"papers": []}, "papers"),
     ({"tolerances": {"smoke": {"APr": -1}}}, "default"), ({"colour": "red"}, "colour")],
)
def test_config_is_validated_against_the_schema(override, needle):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    config = yaml.safe_load((paths.WORKFLOWS / "config" / "config.yaml").read_text())
    validate(dict(config), str(paths.WORKFLOWS / "schemas" / "config.schema.yaml"))  # the shipped config is valid
    with pytest.raises(WorkflowError, match=needle):
        validate({**config, **override}, str(paths.WORKFLOWS / "schemas" / "config.schema.yaml"))


def test_schema_fills_defaults():
    from snakemake.utils import validate

    config: dict = {}
    validate(config, str(paths.WORKFLOWS / "schemas" / "config.schema.yaml"))
    assert config["scale"] == "smoke" and config["framework"] is None and config["evaluator"] == {"smoke": "lvis-api", "mini": "lvis-api", "paper": "fast"}


@pytest.mark.slow
def test_framework_override_changes_every_run():
    proc = snakemake("--profile", "local", "-n", "--forceall", "tables/pcb_table2.md", "--config", "framework=mmdet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    from ltbench.plan import build_plan

    plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke", framework="mmdet")
    assert all(r.config["framework"] == "mmdet" for r in plan.runs.values())
    for run_id in plan.runs:
        assert f"run={run_id}" in proc.stdout


@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_profiles_pin_rerun_triggers_and_are_found_from_the_root(profile):
    link = paths.REPO_ROOT / profile
    assert link.is_symlink() and link.resolve() == (paths.REPO_ROOT / "profiles" / profile).resolve()
    config = yaml.safe_load((link / "config.v8+.yaml").read_text())
    assert config["rerun-triggers"] == ["mtime", "input"]
    assert config["rerun-incomplete"] is True
    expected_scale = "smoke" if profile == "local" else "paper"
    assert f"scale={expected_scale}" in config["config"]


def test_every_rule_has_log_and_conda():
    text = "\n".join(p.read_text() for p in (paths.WORKFLOWS / "rules").glob("*.smk"))
    rules = re.split(r"^rule ", text, flags=re.M)[1:]
    assert len(rules) >= 10
    for rule in rules:
        name = rule.split(":", 1)[0]
        assert "\n    log:" in rule and "\n    conda:" in rule, name


# --- helpers (no Snakemake) -------------------------------------------------------------------------
class FakeRunPlan:
    def __init__(self, config, gpu_hours=0.0, cpu_hours=0.0):
        self.config, self.gpu_hours, self.cpu_hours = config, gpu_hours, cpu_hours


class FakeView:
    def __init__(self, run_id, view_id):
        self.run_id, self.view_id, self.view_config = run_id, view_id, {"id": view_id, "name": view_id}


def fake_plan():
    runs = {
        "s1-aaaa": FakeRunPlan({"id": "s1-aaaa", "dataset": "lvis_v1", "stage1": None}, gpu_hours=96.0, cpu_hours=0.05),
        "s2-bbbb": FakeRunPlan({"id": "s2-bbbb", "dataset": "lvis_v1", "stage1": "s1-aaaa"}, gpu_hours=8.0, cpu_hours=0.01),
    }
    return type("P", (), {"runs": runs, "views": [FakeView("s1-aaaa", "plain"), FakeView("s2-bbbb", "plain"), FakeView("s2-bbbb", "cm-val")]})()


def test_workflow_plan_indexes_runs_views_and_stage1():
    plan = wf.WorkflowPlan(fake_plan(), scale="paper", framework=None, papers=["pcb"])
    assert plan.stage1_inputs("s2-bbbb") == ["results/runs/s1-aaaa/train.done"]
    assert plan.stage1_inputs("s1-aaaa") == []
    assert plan.all_pairs() == [("s1-aaaa", "plain"), ("s2-bbbb", "plain"), ("s2-bbbb", "cm-val")]
    assert plan.view("s2-bbbb", "cm-val")["name"] == "cm-val"
    with pytest.raises(LtbenchError, match="not in the plan"):
        plan.run("s3-cccc")
    with pytest.raises(LtbenchError, match="no view 'cm-train'"):
        plan.view("s2-bbbb", "cm-train")


def test_train_resources_from_the_cost_model():
    plan = wf.WorkflowPlan(fake_plan(), scale="paper", framework=None, papers=["pcb"])
    slurm = {"cpus_per_gpu": 8, "mem_mb_per_gpu": 48000, "min_runtime_min": 30, "runtime_margin": 1.5, "max_gpus_per_job": 8}
    big = plan.train_resources("s1-aaaa", slurm)
    assert big == {"runtime": 96 * 60 * 1.5 / 8, "mem_mb": 8 * 48000, "cpus_per_task": 64, "gpu": 8, "slurm_extra": "--signal=URG@600",
                   "ranks": 8}
    small = plan.train_resources("s2-bbbb", slurm)
    assert small["runtime"] == 90  # 8 GPU-h / 8 GPUs * 1.5 = 90 min
    assert plan.train_resources("s2-bbbb", {**slurm, "min_runtime_min": 120})["runtime"] == 120
    assert plan.train_resources("s1-aaaa", {**slurm, "max_gpus_per_job": 4})["gpu"] == 4
    assert plan.train_resources("s1-aaaa", {**slurm, "gpu_model": "a100"})["gpu_model"] == "a100"
    smoke = wf.WorkflowPlan(fake_plan(), scale="smoke", framework=None, papers=["pcb"])
    res = smoke.train_resources("s1-aaaa", slurm)
    assert "gpu" not in res and res["cpus_per_task"] == 1 and res["runtime"] == 10


def test_training_jobs_run_a_rank_per_gpu_torchrun_on_one_node_srun_tasks_across_nodes():
    from ltbench.errors import LtbenchError

    plan = wf.WorkflowPlan(fake_plan(), scale="paper", framework=None, papers=["pcb"])
    slurm = {"cpus_per_gpu": 8, "mem_mb_per_gpu": 48000, "max_gpus_per_job": 16, "gpus_per_node": 8}
    assert plan.train_launch("s1-aaaa", {**slurm, "max_gpus_per_job": 8}) == wf.Launch(8, "torchrun", 1)
    one_node = plan.train_resources("s1-aaaa", {**slurm, "max_gpus_per_job": 8})
    assert "mpi" not in one_node and "tasks_per_node" not in one_node and one_node["gpu"] == 8
    # a 16-GPU run (gpus: 16 in its config) over two 8-GPU nodes: one srun task per GPU
    big = wf.RunInfo("s1-big", {"id": "s1-big", "dataset": "lvis_v1", "gpus": 16}, gpu_hours=96, cpu_hours=0.05)
    assert wf.train_launch(big, "paper", slurm) == wf.Launch(16, "srun", 2)
    res = wf.train_resources(big, "paper", slurm)
    assert (res["mpi"], res["tasks_per_node"], res["nodes"], res["tasks_per_gpu"], res["gpu"]) == ("srun", 8, 2, 1, 16)
    assert res["cpus_per_task"] == 8 and res["mem_mb"] == 8 * 48000  # per task / per node
    with pytest.raises(LtbenchError, match="torchrun"):
        wf.train_launch(big, "paper", slurm, {"launcher": "torchrun"})
    with pytest.raises(LtbenchError, match="ranks"):
        wf.train_launch(big, "paper", slurm, {"ranks": 2})  # paper scale: a rank per GPU
    # smoke scale: N CPU ranks on request, as srun tasks (the SLURM test) or torchrun
    smoke = wf.WorkflowPlan(fake_plan(), scale="smoke", framework=None, papers=["pcb"])
    cpu = smoke.train_resources("s1-aaaa", slurm, {"ranks": 2, "launcher": "srun"})
    assert (cpu["ranks"], cpu["mpi"], cpu["tasks_per_node"], cpu["cpus_per_task"]) == (2, "srun", 2, 1) and "gpu" not in cpu
    assert smoke.train_launch("s1-aaaa", slurm, {"ranks": 2}) == wf.Launch(2, "torchrun", 1)
    assert smoke.train_resources("s1-aaaa", slurm)["ranks"] == 1


def test_slurm_placement_prefers_config_then_environment():
    assert wf.slurm_placement({}, {}) == {}
    assert wf.slurm_placement({}, {"SLURM_PARTITION": "p", "SLURM_ACCOUNT": "a"}) == {"slurm_partition": "p", "slurm_account": "a"}
    assert wf.slurm_placement({"partition": "q"}, {"SLURM_PARTITION": "p"}) == {"slurm_partition": "q"}


def test_table_target_parsing():
    assert wf.parse_table_target("tables/pcb_table2.md") == ("pcb", "2")
    assert wf.parse_table_target("simcal_table5.tex") == ("simcal", "5")
    with pytest.raises(LtbenchError, match="not a table target"):
        wf.parse_table_target("tables/foo_table2.md")


def test_row_pairs_of_pcb_table2_cover_the_runs_and_mark_cited_rows():
    served = wf.row_pairs("pcb", "2", scale="smoke", framework=None)
    assert ("v0.5", "softmax") in served and served[("v0.5", "softmax")].pairs
    assert len(served) == 16
    for serve in served.values():
        assert serve.pairs or serve.reason  # a row without a run says why


def test_without_failed_drops_pairs_of_failed_runs_and_views(tmp_path):
    from ltbench.store import write_failure

    write_failure("run-a", "train", "nan", results_dir=tmp_path)
    write_failure("run-b", "predict", "oom", view_id="cm-val", results_dir=tmp_path)
    pairs = [("run-a", "plain"), ("run-b", "plain"), ("run-b", "cm-val"), ("run-c", "plain")]
    assert wf.without_failed(pairs, str(tmp_path)) == [("run-b", "plain"), ("run-c", "plain")]


def test_parent_workdir_args():
    assert wf.parent_workdir_args({"stage1": None}, "work") == ""
    assert wf.parent_workdir_args({"stage1": "s1-a", "init_from": "p-b"}, "w") == "--stage1-workdir w/s1-a --init-workdir w/p-b"
