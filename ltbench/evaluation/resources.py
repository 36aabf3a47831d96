"""Paper-scale evaluation jobs: which evaluator, and the SLURM resources of one ``ltbench evaluate``.

:func:`evaluation_resources` turns the size of a val set into runtime, memory and CPUs, from a model
fitted to measurements of ``benchmarks/eval_scale.py`` (its printed output is kept in
``benchmarks/results/eval_scale.txt``): ``ltbench evaluate --iou-types bbox,segm`` on synthetic
LVIS-v1-like val sets (``ltbench.evaluation.synthetic``: 1,203 categories in LVIS v1's r/c/f
proportions with federated lists, 1-24 objects per 480x640 image, 300 detections per image with RLE
masks plus 30 below LVIS' cap) of 1,000, 2,500, 5,000, 10,000 and (the fast path only: the LVIS API's
extrapolated 29.7 GB did not fit) 20,000 images, on a shared 2-CPU x86-64 machine with 24 GB (Python
3.11, lvis 0.5.3, faster-coco-eval 1.8.0). The constants come from the runs made while other jobs
kept the load average at 5-11; repeats at load 1-2 took 10-30% less CPU time and the same memory.
The two evaluators' metrics agreed within 1e-14 AP points at every size where both ran.

Model, per evaluator, with N the number of val images:

- CPU seconds ``c * (N / 1000) ** p``, least squares in log-log: the LVIS API's cost grows a little
  faster than linearly (p = 1.19; 1.08 at low load), the fast path's linearly (p = 1.03). On a SLURM allocation (dedicated CPUs)
  one process's wall time is about its CPU time. The wall times measured on the shared machine are
  not used: they measure its other jobs as much as the evaluator.
- peak memory MB ``a + b * N``, least squares; the memory of the evaluating process and its forked
  workers together (peak of their summed PSS, which is what a cgroup memory limit charges).
- one CPU for either evaluator. The fast path in one process needs about 4 CPU minutes for 20,000
  images, and with two or more workers about twice the memory (the parent keeps the parsed
  detections while the workers hold copies of their shards: 13.4 GB instead of 7.3 GB at 10,000
  images), so the job asks for one CPU, and the fast path's default ``--workers`` (never more than
  ``$SLURM_CPUS_PER_TASK``) is then 1.

and the job asks for ``RUNTIME_MARGIN`` times the CPU time and ``MEMORY_MARGIN`` times the peak: real
masks (arbitrary shapes) have longer RLE strings than the synthetic octagons, a cluster CPU may be
slower, and the job also reads the training annotations (``--train-ann``, parsed and dropped before
the detections are read) and the proposal statistics. For LVIS v1 val (19,809 images) the fast
path's figures are interpolated, the LVIS API's extrapolated from 10,000 images.

Not covered: AP-fixed / AP-pool (``--ap-fixed-detections``: 10,000 detections per category over the
whole set, a second and larger detections file).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean

EVALUATORS = ("lvis-api", "fast")
SCALES = ("smoke", "mini", "paper")  # ltbench.plan.scales.SCALES (not imported: this module stays light)

# Fitted by benchmarks/eval_scale.py (see the module docstring):
# cpu_c, cpu_p: CPU seconds = cpu_c * (N / 1000) ** cpu_p; mem_a, mem_b: peak MB = mem_a + mem_b * N.
MODEL: dict[str, dict[str, float]] = {
    "lvis-api": {"cpu_c": 45.40, "cpu_p": 1.185, "mem_a": 169.3, "mem_b": 1.37878},
    "fast": {"cpu_c": 10.74, "cpu_p": 1.027, "mem_a": 153.3, "mem_b": 0.71532},
}
# The processes the memory was measured with (the fast path with --workers 1).
CPUS = {"lvis-api": 1, "fast": 1}
# The measurements the constants are fitted to: evaluator -> [(images, CPU s, peak MB)]; the tests
# check that MODEL reproduces them.
MEASURED: dict[str, list[tuple[int, float, float]]] = {
    "lvis-api": [(1000, 43.7, 1511), (2500, 135.9, 3648), (5000, 339.8, 7081), (10000, 643.6, 13944)],
    "fast": [(1000, 11.3, 912), (2500, 25.2, 1960), (5000, 53.7, 3689), (10000, 129.3, 7254), (20000, 222.6, 14492)],
}
RUNTIME_MARGIN = 2.0
MEMORY_MARGIN = 1.5
MIN_RUNTIME_MIN = 15
MIN_MEM_MB = 4000


def model_cpu_s(num_val_images: int, evaluator: str) -> float:
    """The model's CPU seconds of one bbox+segm evaluation of ``num_val_images`` images (no margin)."""
    m = MODEL[_check_evaluator(evaluator)]
    return m["cpu_c"] * (num_val_images / 1000) ** m["cpu_p"]


def model_peak_mb(num_val_images: int, evaluator: str) -> float:
    """The model's peak memory (MB) of one bbox+segm evaluation of ``num_val_images`` images (no margin)."""
    m = MODEL[_check_evaluator(evaluator)]
    return m["mem_a"] + m["mem_b"] * num_val_images


def evaluation_resources(num_val_images: int, evaluator: str) -> dict[str, int]:
    """SLURM resources of one paper-scale ``ltbench evaluate`` (bbox + segm, 300 detections per image)
    of a val set of ``num_val_images`` images with ``evaluator`` ("lvis-api" or "fast").

    Returns ``{"runtime_min", "mem_mb", "cpus"}``: the model's CPU time times ``RUNTIME_MARGIN`` (at
    least ``MIN_RUNTIME_MIN``), its peak memory times ``MEMORY_MARGIN`` rounded up to whole GB (at least
    ``MIN_MEM_MB``), and one CPU (see the module docstring). The caller maps them onto its scheduler's
    names (SLURM via Snakemake: ``runtime``, ``mem_mb``, ``cpus_per_task``).
    """
    if isinstance(num_val_images, bool) or not isinstance(num_val_images, int) or num_val_images < 1:
        raise LtbenchError(f"number of val images {num_val_images!r}", key="num_val_images",
                           expected="a positive integer (e.g. ltbench.plan.scales.val_images(dataset))")
    runtime = math.ceil(RUNTIME_MARGIN * model_cpu_s(num_val_images, evaluator) / 60)
    mem_mb = math.ceil(MEMORY_MARGIN * model_peak_mb(num_val_images, evaluator) / 1000) * 1000
    return {"runtime_min": max(MIN_RUNTIME_MIN, runtime), "mem_mb": max(MIN_MEM_MB, mem_mb),
            "cpus": CPUS[evaluator]}


def evaluator_for_scale(setting: str | Mapping[str, str], scale: str) -> str:
    """The evaluator of the workflow config's ``evaluator`` setting at ``scale``: the setting itself
    when it is one name, its entry for ``scale`` when it is a mapping ``{smoke: ..., paper: ...}``."""
    if scale not in SCALES:
        raise LtbenchError(f"unknown scale {scale!r}{did_you_mean(scale, SCALES)}", key="scale",
                           expected=" or ".join(SCALES))
    if isinstance(setting, Mapping):
        if scale not in setting:
            raise LtbenchError(f"config evaluator has no entry for scale {scale!r}", key=["evaluator", scale],
                               expected="an evaluator per scale, e.g. {smoke: lvis-api, paper: fast}")
        return _check_evaluator(setting[scale], key=["evaluator", scale])
    return _check_evaluator(setting, key="evaluator")


def _check_evaluator(evaluator: Any, key: Any = "evaluator") -> str:
    if evaluator not in EVALUATORS:
        raise LtbenchError(f"unknown evaluator {evaluator!r}{did_you_mean(str(evaluator), EVALUATORS)}",
                           key=key, expected=" or ".join(EVALUATORS))
    return evaluator
