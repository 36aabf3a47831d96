"""SLURM resources of the workflow's jobs: GPUs, CPUs, memory and runtime per training run (from the plan's
cost model), prediction and evaluation jobs; partition and account."""

from __future__ import annotations

import math
from typing import Any

from ltbench.workflow.plan import RunInfo


def gpus_for(run: RunInfo, scale: str, slurm: dict[str, Any]) -> int:
    if scale != "paper":
        return 0
    wanted = int(run.config.get("gpus") or (run.config.get("schedule") or {}).get("gpus") or 8)
    return max(1, min(wanted, int(slurm.get("max_gpus_per_job", 8))))


def train_resources(run: RunInfo, scale: str, slurm: dict[str, Any]) -> dict[str, Any]:
    gpus = gpus_for(run, scale, slurm)
    margin = float(slurm.get("runtime_margin", 1.5))
    floor = int(slurm.get("min_runtime_min", 30))
    hours = float(run.gpu_hours or 0.0)
    if gpus:
        runtime = max(floor, math.ceil(hours / gpus * 60 * margin))
        cpus = gpus * int(slurm.get("cpus_per_gpu", 8))
        mem_mb = gpus * int(slurm.get("mem_mb_per_gpu", 48000))
    else:  # smoke scale: the cost model's CPU-hours of the tiny model
        runtime = max(10, math.ceil(float(run.cpu_hours or 0.0) * 60 * margin))
        cpus = 1
        mem_mb = 4000
    resources: dict[str, Any] = {"runtime": runtime, "mem_mb": mem_mb, "cpus_per_task": cpus}
    if gpus:
        resources["gpu"] = gpus
        if slurm.get("gpu_model"):
            resources["gpu_model"] = slurm["gpu_model"]
    return resources


def light_resources(scale: str, slurm: dict[str, Any], *, gpu: bool) -> dict[str, Any]:
    """Prediction (gpu=True: one GPU at paper scale) and evaluation/rendering jobs (CPU only)."""
    if scale == "paper" and gpu:
        res: dict[str, Any] = {"runtime": 120, "mem_mb": int(slurm.get("mem_mb_per_gpu", 48000)), "cpus_per_task": int(slurm.get("cpus_per_gpu", 8)), "gpu": 1}
        if slurm.get("gpu_model"):
            res["gpu_model"] = slurm["gpu_model"]
        return res
    if scale == "paper":
        return {"runtime": 120, "mem_mb": 32000, "cpus_per_task": 4}  # LVIS val evaluation: ~20k images
    return {"runtime": 15, "mem_mb": 2000, "cpus_per_task": 1}


def slurm_placement(slurm: dict[str, Any], environ: dict[str, str]) -> dict[str, str]:
    """Partition and account: the workflow config wins, then $SLURM_PARTITION / $SLURM_ACCOUNT; else none."""
    out = {}
    partition = slurm.get("partition") or environ.get("SLURM_PARTITION")
    account = slurm.get("account") or environ.get("SLURM_ACCOUNT")
    if partition:
        out["slurm_partition"] = partition
    if account:
        out["slurm_account"] = account
    return out
