"""SLURM resources of the workflow's jobs: GPUs, CPUs, memory and runtime per training run (from the plan's
cost model), prediction and evaluation jobs; partition and account."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ltbench.errors import LtbenchError
from ltbench.workflow.plan import RunInfo


def gpus_for(run: RunInfo, scale: str, slurm: dict[str, Any]) -> int:
    if scale != "paper":
        return 0
    wanted = int(run.config.get("gpus") or (run.config.get("schedule") or {}).get("gpus") or 8)
    return max(1, min(wanted, int(slurm.get("max_gpus_per_job", 8))))


#: Exit status of a training job that checkpointed before its time limit: resubmit it (the value of
#: adapters.engine.preemption.EXIT_CODE; the workflow does not import the adapters).
RESUBMIT_EXIT_CODE = 75
#: Default of ``slurm.max_runtime_min``: many clusters cap jobs at 24 h.
MAX_RUNTIME_MIN = 1440
#: Default of ``slurm.checkpoint_signal_s``: SLURM signals a training job this long before its limit.
CHECKPOINT_SIGNAL_S = 600
#: The signal asked of SLURM: every process of the job step gets it, and only the training loop handles it
#: (its default action is to be ignored, so Snakemake and bash in the step live on; adapters.engine.preemption).
CHECKPOINT_SIGNAL = "URG"


def cap_runtime(minutes: float, slurm: dict[str, Any]) -> int:
    """A runtime request (minutes) capped at ``slurm.max_runtime_min``: no job asks for more, retries
    included (a training that needs longer checkpoints before the limit and is resubmitted)."""
    return max(1, min(math.ceil(minutes), int(slurm.get("max_runtime_min", MAX_RUNTIME_MIN))))


def retry_runtime(minutes: float, attempt: int, slurm: dict[str, Any]) -> int:
    """The runtime request of Snakemake's ``attempt`` (1, 2, ...): ``attempt`` times more, capped."""
    return cap_runtime(minutes * max(1, int(attempt)), slurm)


def train_runtime_estimate(run: RunInfo, scale: str, slurm: dict[str, Any]) -> int:
    """Minutes a training run needs in one piece: the cost model's estimate times the margin, floored."""
    margin = float(slurm.get("runtime_margin", 1.5))
    gpus = gpus_for(run, scale, slurm)
    if gpus:
        return max(int(slurm.get("min_runtime_min", 30)), math.ceil(float(run.gpu_hours or 0.0) / gpus * 60 * margin))
    return max(10, math.ceil(float(run.cpu_hours or 0.0) * 60 * margin))  # smoke: CPU-hours of the tiny model


def checkpoint_signal(slurm: dict[str, Any]) -> str | None:
    """The ``slurm_extra`` of a training job: ``--signal=URG@<slurm.checkpoint_signal_s>`` (None when 0)."""
    seconds = int(slurm.get("checkpoint_signal_s", CHECKPOINT_SIGNAL_S))
    if seconds <= 0:
        return None
    if seconds >= 60 * int(slurm.get("max_runtime_min", MAX_RUNTIME_MIN)):
        raise LtbenchError(
            f"slurm.checkpoint_signal_s ({seconds} s) is not shorter than slurm.max_runtime_min",
            key="slurm.checkpoint_signal_s",
            expected="the time a training job needs to finish an iteration and write a checkpoint, well below the time limit",
        )
    return f"--signal={CHECKPOINT_SIGNAL}@{seconds}"


def train_retries(runs: Iterable[RunInfo], scale: str, slurm: dict[str, Any]) -> int:
    """Retries of the train rule: ``slurm.train_retries``, else the number of time-limited jobs that the
    longest run needs (estimate / ``max_runtime_min``, rounded up), i.e. one resubmission per time limit
    plus one spare for a node failure or a short estimate. A genuine error fails after as many."""
    if slurm.get("train_retries") is not None:
        return int(slurm["train_retries"])
    cap = int(slurm.get("max_runtime_min", MAX_RUNTIME_MIN))
    return max([math.ceil(train_runtime_estimate(run, scale, slurm) / cap) for run in runs] or [1])


def train_resources(run: RunInfo, scale: str, slurm: dict[str, Any]) -> dict[str, Any]:
    gpus = gpus_for(run, scale, slurm)
    runtime = cap_runtime(train_runtime_estimate(run, scale, slurm), slurm)
    if gpus:
        cpus = gpus * int(slurm.get("cpus_per_gpu", 8))
        mem_mb = gpus * int(slurm.get("mem_mb_per_gpu", 48000))
    else:
        cpus = 1
        mem_mb = 4000
    resources: dict[str, Any] = {"runtime": runtime, "mem_mb": mem_mb, "cpus_per_task": cpus}
    signal = checkpoint_signal(slurm)
    if signal:
        resources["slurm_extra"] = signal
    if gpus:
        resources["gpu"] = gpus
        if slurm.get("gpu_model"):
            resources["gpu_model"] = slurm["gpu_model"]
    return resources


def light_resources(scale: str, slurm: dict[str, Any], *, gpu: bool) -> dict[str, Any]:
    """Prediction (gpu=True: one GPU at paper scale) and evaluation/rendering jobs (CPU only)."""
    if scale == "paper" and gpu:
        res: dict[str, Any] = {"runtime": cap_runtime(120, slurm), "mem_mb": int(slurm.get("mem_mb_per_gpu", 48000)),
                               "cpus_per_task": int(slurm.get("cpus_per_gpu", 8)), "gpu": 1}
        if slurm.get("gpu_model"):
            res["gpu_model"] = slurm["gpu_model"]
        return res
    if scale == "paper":
        return {"runtime": cap_runtime(120, slurm), "mem_mb": 32000, "cpus_per_task": 4}  # LVIS val evaluation: ~20k images
    return {"runtime": cap_runtime(15, slurm), "mem_mb": 2000, "cpus_per_task": 1}


def evaluate_resources(scale: str, slurm: dict[str, Any], *, num_val_images: int, evaluator: str,
                       ap_fixed: bool) -> dict[str, Any]:
    """One ``ltbench evaluate`` job. At paper scale sized from the val set (ltbench.evaluation.resources:
    measured CPU time and peak memory of bbox+segm evaluation, with margins) and capped like every job; an
    AP-fixed view (10k detections per class, a second evaluation) keeps at least 120 min and 32 GB."""
    if scale != "paper":
        return light_resources(scale, slurm, gpu=False)
    from ltbench.evaluation.resources import evaluation_resources

    need = evaluation_resources(num_val_images, evaluator)
    runtime, mem_mb = need["runtime_min"], need["mem_mb"]
    if ap_fixed:
        runtime, mem_mb = max(runtime, 120), max(mem_mb, 32000)
    return {"runtime": cap_runtime(runtime, slurm), "mem_mb": mem_mb, "cpus_per_task": need["cpus"]}


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
