"""SLURM resources of the workflow's jobs: GPUs, CPUs, memory and runtime per training run (from the plan's
cost model), prediction and evaluation jobs; partition and account."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
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


def checkpoint_signal(slurm: dict[str, Any], runtime_min: int | None = None) -> str | None:
    """The ``slurm_extra`` of a training job: ``--signal=URG@<slurm.checkpoint_signal_s>`` (None when 0), at
    most a quarter of the job's ``runtime_min`` before its end (a short job is not signalled at its start)."""
    seconds = int(slurm.get("checkpoint_signal_s", CHECKPOINT_SIGNAL_S))
    if seconds <= 0:
        return None
    if seconds >= 60 * int(slurm.get("max_runtime_min", MAX_RUNTIME_MIN)):
        raise LtbenchError(
            f"slurm.checkpoint_signal_s ({seconds} s) is not shorter than slurm.max_runtime_min",
            key="slurm.checkpoint_signal_s",
            expected="the time a training job needs to finish an iteration and write a checkpoint, well below the time limit",
        )
    if runtime_min is not None:
        seconds = max(1, min(seconds, 60 * int(runtime_min) // 4))
    return f"--signal={CHECKPOINT_SIGNAL}@{seconds}"


def train_retries(runs: Iterable[RunInfo], scale: str, slurm: dict[str, Any]) -> int:
    """Retries of the train rule: ``slurm.train_retries``, else the number of time-limited jobs that the
    longest run needs (estimate / ``max_runtime_min``, rounded up), i.e. one resubmission per time limit
    plus one spare for a node failure or a short estimate. A genuine error fails after as many."""
    if slurm.get("train_retries") is not None:
        return int(slurm["train_retries"])
    cap = int(slurm.get("max_runtime_min", MAX_RUNTIME_MIN))
    return max([math.ceil(train_runtime_estimate(run, scale, slurm) / cap) for run in runs] or [1])


#: How the ranks of a training job start (``training.launcher``): auto = torchrun on one node, srun across nodes.
LAUNCHERS = ("auto", "torchrun", "srun")


@dataclass(frozen=True)
class Launch:
    """How one training job runs: ``ranks`` data-parallel processes (one per GPU at paper scale), started by
    ``launcher`` (``ltbench train --ranks --launcher``) over ``nodes`` nodes."""

    ranks: int
    launcher: str
    nodes: int


def train_launch(run: RunInfo, scale: str, slurm: dict[str, Any], training: dict[str, Any] | None = None) -> Launch:
    """The ranks, launcher and nodes of ``run``'s training job. ``training`` is the workflow config's block:
    ``ranks`` (null: one per GPU the job holds, 1 without GPUs; a number of CPU ranks (gloo) for tests) and
    ``launcher`` (auto, torchrun or srun); ``slurm.gpus_per_node`` splits a job of more GPUs over nodes."""
    training = training or {}
    gpus = gpus_for(run, scale, slurm)
    wanted = training.get("ranks")
    if wanted is not None and (isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1):
        raise LtbenchError(f"training.ranks {wanted!r}", key=["training", "ranks"], expected="null or a positive integer")
    if gpus and wanted is not None and wanted != gpus:
        raise LtbenchError(f"training.ranks {wanted} for a job of {gpus} GPUs", key=["training", "ranks"],
                           expected="null (one rank per GPU) at paper scale")
    ranks = int(wanted or gpus or 1)
    per_node = int(slurm.get("gpus_per_node", 8))
    nodes = max(1, math.ceil(gpus / per_node)) if gpus else 1
    launcher = training.get("launcher") or "auto"
    if launcher not in LAUNCHERS:
        raise LtbenchError(f"unknown launcher {launcher!r}", key=["training", "launcher"], expected=" or ".join(LAUNCHERS))
    if launcher == "auto":
        launcher = "srun" if nodes > 1 else "torchrun"
    if nodes > 1 and launcher == "torchrun":
        raise LtbenchError(f"{gpus} GPUs over {nodes} nodes started by torchrun", key=["training", "launcher"],
                           expected="auto or srun (torchrun starts ranks on one node)")
    return Launch(ranks, launcher, nodes)


def train_resources(run: RunInfo, scale: str, slurm: dict[str, Any], training: dict[str, Any] | None = None) -> dict[str, Any]:
    """SLURM resources of one training job. torchrun (one node): one task holding every GPU and its CPUs.
    srun: one SLURM task per rank (the executor plugin's ``tasks_per_node`` with ``mpi: srun``: the rule's command
    calls srun itself), one GPU per task, over ``nodes`` nodes; CPUs and memory per task/node accordingly."""
    launch = train_launch(run, scale, slurm, training)
    gpus = gpus_for(run, scale, slurm)
    runtime = cap_runtime(train_runtime_estimate(run, scale, slurm), slurm)
    cpus_per_gpu, mem_per_gpu = int(slurm.get("cpus_per_gpu", 8)), int(slurm.get("mem_mb_per_gpu", 48000))
    if gpus:
        cpus = gpus * cpus_per_gpu
        mem_mb = gpus * mem_per_gpu
    else:
        cpus = 1
        mem_mb = 4000
    resources: dict[str, Any] = {"runtime": runtime, "mem_mb": mem_mb, "cpus_per_task": cpus, "ranks": launch.ranks}
    if launch.launcher == "srun" and launch.ranks > 1:
        per_node = math.ceil(launch.ranks / launch.nodes)
        # tasks per node, not tasks: the ranks read SLURM_NTASKS_PER_NODE (Lightning's SLURMEnvironment)
        resources.update(mpi="srun", tasks_per_node=per_node, nodes=launch.nodes, cpus_per_task=cpus_per_gpu if gpus else 1,
                         mem_mb=per_node * (mem_per_gpu if gpus else 4000))
        if gpus:
            resources["tasks_per_gpu"] = 1
    signal = checkpoint_signal(slurm, runtime)
    if signal:
        resources["slurm_extra"] = signal
    if gpus:
        resources["gpu"] = gpus
        if slurm.get("gpu_model"):
            resources["gpu_model"] = slurm["gpu_model"]
    return resources


def light_resources(scale: str, slurm: dict[str, Any], *, gpu: bool) -> dict[str, Any]:
    """Prediction (gpu=True: one GPU at paper scale; sized by :func:`predict_resources`) and other light jobs."""
    if scale == "paper" and gpu:
        res: dict[str, Any] = {"runtime": cap_runtime(120, slurm), "mem_mb": int(slurm.get("mem_mb_per_gpu", 48000)),
                               "cpus_per_task": int(slurm.get("cpus_per_gpu", 8)), "gpu": 1}
        if slurm.get("gpu_model"):
            res["gpu_model"] = slurm["gpu_model"]
        return res
    if scale == "paper":
        return {"runtime": cap_runtime(120, slurm), "mem_mb": 32000, "cpus_per_task": 4}  # LVIS val evaluation: ~20k images
    return {"runtime": cap_runtime(15, slurm), "mem_mb": 2000, "cpus_per_task": 1}


#: Prediction images per second on one GPU at paper settings (1333x800, 300 detections and their masks per
#: image), an assumption until ``benchmarks/gpu_check.py`` measures it on the cluster's GPUs: set
#: ``slurm.predict_images_per_s`` from its table. Conservative on purpose (a job killed at its limit loses all).
PREDICT_IMAGES_PER_S = 2.0


def predict_resources(scale: str, slurm: dict[str, Any], *, num_val_images: int) -> dict[str, Any]:
    """One prediction job (a view of a run over its val set). At paper scale one GPU, its CPUs and memory,
    and a runtime from the val set's size at ``slurm.predict_images_per_s`` with a margin of 1.5, plus 10
    minutes to load the model and write the detections; capped like every job."""
    if scale != "paper":
        return light_resources(scale, slurm, gpu=True)
    rate = float(slurm.get("predict_images_per_s", PREDICT_IMAGES_PER_S))
    if rate <= 0:
        raise LtbenchError(f"slurm.predict_images_per_s {rate}", key="slurm.predict_images_per_s", expected="a positive number")
    res = light_resources(scale, slurm, gpu=True)
    res["runtime"] = cap_runtime(10 + 1.5 * num_val_images / rate / 60, slurm)
    return res


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
