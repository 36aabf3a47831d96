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
