"""Where a run computes and at which precision: the same policy for every adapter, and never silent.

Device (``ltbench train/predict --device``, or ``$LTBENCH_DEVICE``): ``auto`` (default) uses CUDA when it
is usable; at paper scale it is an error when it is not, with the reason (CPU-only torch build, no visible
device, a driver too old for this build): a 100-GPU-hour job must not start a weeks-long CPU run.
``cpu`` is for debugging; ``cuda`` demands CUDA at any scale.

Precision: ``fp16: true`` in a run config means automatic mixed precision with dynamic loss scaling — on
CUDA float16 (``16-mixed``). A CPU has no float16 autocast worth running, so there the same code path runs
with bfloat16 (``bf16-mixed``) only when asked (``--precision bf16-mixed``, what the CPU tests do);
otherwise a CPU run of an fp16 config trains in float32 and says so in its run record.
"""

from __future__ import annotations

import os

from ltbench.errors import LtbenchError

DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed")


def cuda_problem() -> str | None:
    """None when CUDA is usable here, else why not (one line)."""
    import torch

    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    try:
        torch.cuda.init()
    except Exception as exc:  # the driver's own reason: too old, not loaded, no device
        return f"CUDA initialisation failed: {str(exc).splitlines()[0]} (torch {torch.__version__}, built for CUDA {torch.version.cuda})"
    if torch.cuda.device_count() == 0:
        return "no CUDA device is visible to this process"
    return None


def resolve_device(requested: str | None, *, scale: str) -> str:
    """"cuda" or "cpu" for ``requested`` (None: ``$LTBENCH_DEVICE`` or "auto"), by the policy above."""
    requested = requested or os.environ.get("LTBENCH_DEVICE") or "auto"
    if requested not in DEVICES:
        raise LtbenchError(f"unknown device {requested!r}", key="--device", expected="auto, cuda or cpu")
    if requested == "cpu":
        return "cpu"
    problem = cuda_problem()
    if problem is None:
        return "cuda"
    if requested == "cuda" or scale == "paper":
        raise LtbenchError(f"no usable CUDA: {problem}", key="--device",
                           expected="a GPU node with a driver recent enough for this torch build",
                           hint="`make setup-gpu` picks a torch build for the node's driver (README, GPU nodes); "
                                "`--device cpu` runs on the CPU on purpose (debugging only)")
    return "cpu"


def resolve_precision(run_config: dict, device: str, requested: str | None = None) -> str:
    """Lightning-style precision string for a run on ``device`` (see the module docstring)."""
    requested = requested or os.environ.get("LTBENCH_PRECISION") or "auto"
    if requested not in PRECISIONS:
        raise LtbenchError(f"unknown precision {requested!r}", key="--precision", expected=", ".join(PRECISIONS))
    if requested != "auto":
        if requested == "16-mixed" and device != "cuda":
            raise LtbenchError("float16 mixed precision needs CUDA", key="--precision", expected="bf16-mixed on a CPU")
        return requested
    if run_config.get("fp16") and device == "cuda":
        return "16-mixed"
    return "32-true"


def training_environment(device: str, precision: str, *, world_size: int, per_rank_batch: int, total_batch: int,
                         workers: int, notes: list[str] | None = None) -> dict:
    """How a run trained, for its ``done.json`` and records: the training host and its devices (not the
    host that later records the metrics), ranks, precision, the batch split, loader workers, deviations."""
    import socket

    import torch

    names = []
    if device == "cuda":
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "host": socket.gethostname(), "device": device, "device_names": names, "ranks": int(world_size),
        "precision": precision, "batch_per_rank": int(per_rank_batch), "batch_total": int(total_batch),
        "loader_workers": int(workers), "torch": torch.__version__, "cuda": torch.version.cuda,
        # the vector instructions torch's CPU kernels use: on the CPU, another capability trains other bits
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "notes": list(notes or []),
    }


def loader_workers(schedule: dict, *, scale: str, local_ranks: int) -> int:
    """DataLoader workers per rank: ``schedule.num_workers`` when set, else at paper scale the CPUs this
    process may use shared among the ranks of the node, less one for the rank itself (at most 8); at smoke
    scale 0 (images are tiny; workers would cost more than they save)."""
    if schedule.get("num_workers") is not None:
        return int(schedule["num_workers"])
    if scale != "paper":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cpus // max(1, local_ranks) - 1))
