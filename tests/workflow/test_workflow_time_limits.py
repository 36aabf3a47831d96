"""Time limits of SLURM jobs: runtime requests capped at slurm.max_runtime_min (retries included), the
checkpoint signal asked of SLURM, and the train rule's retries (resubmissions of time-limited runs)."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

from ltbench import paths
from ltbench.errors import LtbenchError
from ltbench import workflow as wf

SLURM = {"cpus_per_gpu": 8, "mem_mb_per_gpu": 48000, "min_runtime_min": 30, "runtime_margin": 1.5, "max_gpus_per_job": 8}


def run(gpu_hours: float, gpus: int = 8, run_id: str = "r-aaaa") -> wf.RunInfo:
    return wf.RunInfo(run_id, {"id": run_id, "dataset": "lvis_v1", "gpus": gpus}, gpu_hours=gpu_hours, cpu_hours=0.05)


def test_cap_runtime_never_exceeds_max_runtime_min():
    assert wf.cap_runtime(90, {}) == 90
    assert wf.cap_runtime(5000, {}) == wf.MAX_RUNTIME_MIN == 1440
    assert wf.cap_runtime(5000, {"max_runtime_min": 720}) == 720
    assert wf.cap_runtime(89.2, {}) == 90
    assert wf.cap_runtime(0, {}) == 1


@pytest.mark.parametrize(("gpu_hours", "gpus", "expected"), [(8, 8, 90), (124, 8, 1395), (124, 4, 1440), (124, 1, 1440)])
def test_train_runtime_is_the_estimate_capped(gpu_hours, gpus, expected):
    res = wf.train_resources(run(gpu_hours, gpus), "paper", SLURM)
    assert res["runtime"] == expected  # 124 GPU-h on 8 GPUs x 1.5 = 1395 min; on 4 GPUs 2790 min -> 24 h
    assert wf.train_resources(run(gpu_hours, gpus), "paper", {**SLURM, "max_runtime_min": 60})["runtime"] == 60


def test_retries_ask_for_more_time_but_never_more_than_the_cap():
    """The train rule's runtime on Snakemake's attempt N (common.smk train_res): N times more, capped."""
    assert [wf.retry_runtime(90, attempt, {}) for attempt in (1, 2, 3, 20)] == [90, 180, 270, 1440]
    assert [wf.retry_runtime(1440, attempt, {}) for attempt in (1, 2)] == [1440, 1440]
    assert wf.retry_runtime(10, 3, {"max_runtime_min": 1}) == 1
    source = (paths.WORKFLOWS / "rules" / "common.smk").read_text()
    assert 'wf.retry_runtime(res["runtime"], attempt, SLURM)' in source


def test_checkpoint_signal_rides_in_slurm_extra():
    assert wf.checkpoint_signal({}) == "--signal=URG@600"
    assert wf.checkpoint_signal({"checkpoint_signal_s": 15}) == "--signal=URG@15"
    assert wf.checkpoint_signal({"checkpoint_signal_s": 0}) is None
    # a 10-minute job is signalled 150 s before its end, not 600 s (at its start)
    assert wf.checkpoint_signal({}, 10) == "--signal=URG@150" and wf.checkpoint_signal({}, 1440) == "--signal=URG@600"
    assert wf.train_resources(run(8), "paper", SLURM)["slurm_extra"] == "--signal=URG@600"
    assert "slurm_extra" not in wf.train_resources(run(8), "paper", {**SLURM, "checkpoint_signal_s": 0})
    with pytest.raises(LtbenchError, match="checkpoint_signal_s"):
        wf.checkpoint_signal({"checkpoint_signal_s": 3600, "max_runtime_min": 60})


def test_train_retries_cover_the_longest_run_with_one_spare():
    runs = [run(8, run_id="short"), run(124, 2, run_id="long")]  # 124 GPU-h on 2 GPUs x 1.5 = 5580 min
    assert wf.train_retries(runs, "paper", SLURM) == 4  # ceil(5580 / 1440): 3 resubmissions + 1 spare
    assert wf.train_retries(runs[:1], "paper", SLURM) == 1
    assert wf.train_retries(runs, "paper", {**SLURM, "train_retries": 0}) == 0
    assert wf.train_retries([], "paper", SLURM) == 1


def test_light_jobs_are_capped_too():
    for scale in ("paper", "smoke"):
        for gpu in (True, False):
            assert wf.light_resources(scale, {"max_runtime_min": 10}, gpu=gpu)["runtime"] <= 10


@pytest.mark.slow
def test_slurm_dry_run_requests_stay_under_the_cap_and_train_gets_the_signal(tmp_path):
    import shutil

    if shutil.which("sinfo") is None:
        pytest.skip("the SLURM plugin's dry run needs sinfo on PATH (apt-get install slurm-client)")
    limits = tmp_path / "limits.yaml"
    limits.write_text("slurm: {max_runtime_min: 120, checkpoint_signal_s: 300}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "slurm", "-n", "--forceall", "tables/pcb_table2.md",
         "--configfile", "workflows/config/config.yaml", str(limits)],
        cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runtimes = [int(r) for r in re.findall(r"runtime=(\d+)", proc.stdout)]
    assert runtimes and max(runtimes) == 120
    train = [b for b in proc.stdout.split("\n[") if "\nrule train:" in "\n" + b.split("]", 1)[-1]]
    assert train and all("slurm_extra=--signal=URG@300" in b for b in train)


@pytest.mark.slow
def test_a_genuine_training_error_is_retried_train_retries_times_then_fails_with_a_note(tmp_path):
    """Retries resubmit a training job whatever made it fail; a real error (here: a checkpoint pointer
    to a missing file) fails every attempt, and after 1 + slurm.train_retries attempts the workflow
    fails with the run's failure note. (The local executor: the retries are Snakemake's, not SLURM's.)"""
    import json
    import os
    import shutil

    from ltbench.plan import build_plan

    plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke")
    run_id = next(r.run_ids[0] for r in plan.rows if r.run_ids)
    work = tmp_path / "wf"
    work.mkdir()
    shutil.copy2(paths.REPO_ROOT / "Snakefile", work / "Snakefile")
    shutil.copytree(paths.WORKFLOWS, work / "workflows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(paths.REPO_ROOT / "profiles", work / "profiles")
    (work / "local").symlink_to("profiles/local")
    (work / "work" / run_id).mkdir(parents=True)
    (work / "work" / run_id / "last_checkpoint").write_text("model_0000020.pth\n")  # a file that is not there
    (work / "limits.yaml").write_text("slurm: {train_retries: 2}\n")
    env = {**os.environ, "LTBENCH_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "local", "--configfile", "workflows/config/config.yaml", "limits.yaml",
         "--allowed-rules", "train", "data", "--", f"results/runs/{run_id}/train.done"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-3000:]
    assert log.count("Trying to restart job") == 2, log[-3000:]
    assert "Exiting because a job execution failed" in log
    note = json.loads((work / "results" / "failures" / run_id / "train.json").read_text())
    assert "last_checkpoint points at 'model_0000020.pth', which does not exist" in note["reason"]
    assert not (work / "results" / "runs" / run_id / "train.done").exists()


def test_prediction_jobs_are_sized_from_the_val_set_and_capped():
    v1 = wf.predict_resources("paper", {}, num_val_images=19809)
    v05 = wf.predict_resources("paper", {}, num_val_images=5000)
    assert v1["gpu"] == 1 and v05["runtime"] < v1["runtime"]
    assert v1["runtime"] == math.ceil(10 + 1.5 * 19809 / wf.PREDICT_IMAGES_PER_S / 60)
    faster = wf.predict_resources("paper", {"predict_images_per_s": 8.0}, num_val_images=19809)
    assert faster["runtime"] < v1["runtime"]
    assert wf.predict_resources("paper", {"max_runtime_min": 60}, num_val_images=19809)["runtime"] == 60
    with pytest.raises(LtbenchError, match="predict_images_per_s"):
        wf.predict_resources("paper", {"predict_images_per_s": 0}, num_val_images=10)
    assert "gpu" not in wf.predict_resources("smoke", {}, num_val_images=120)
