"""LVIS metrics of record (bbox, segm), the fast path that reproduces them, and instance-count bins.

Evaluator of record: the LVIS API (``lvis==0.5.3``) with LVIS' federated rules — a detection counts only
when its category is in the image's ground truth or in its ``neg_category_ids``; unmatched detections of
a category in ``not_exhaustive_category_ids`` are not false positives — and 300 detections per image
across all categories (the top-scoring ones, chosen before evaluation).

Fast path (``evaluator="fast"``): faster-coco-eval's C++ matcher in LVIS mode, fed the *same*
detections LVIS evaluates —

- the top 300 per image, chosen exactly as ``LVISResults`` does (faster-coco-eval caps per
  image-category pair, so without this truncation it drifts by 0.1–0.5 AP);
- then only those whose category is in the image's ground truth or negative list (LVIS' federated
  filter, applied before faster-coco-eval rather than inside it);
- masks that can never be compared with ground truth (no object of that category in that image) are
  replaced by an empty mask, since only their box area matters;
- ground-truth ``iscrowd`` is dropped (LVIS ignores it) and ``ignore`` kept (LVIS honours it);

and run per iou type and per category shard in forked worker processes, each sent its shard's inputs,
with IoUs and the matcher restricted to the (image, category) pairs that hold anything. Its summary
numbers come from its precision/recall arrays through :func:`summarize`, LVIS' own summary rule.
Tests (hand-checked cases, the real LVIS v0.5 val sample, property tests on random data) check every
metric against the LVIS API; ``benchmarks/eval_speed.py`` measures the speed-up.

Metric keys: ``<iou_type>.<name>`` with name in :data:`METRIC_NAMES` and ``AP1..AP4`` when training
instance counts are given; values in AP points (percent), unrounded; ``-1`` where LVIS leaves a metric
undefined (no ground truth in that group).

This module is the entry point (:func:`evaluate`) and holds the LVIS API with its numpy shim; the rest
lives in ``lvis_inputs`` (ground truth and detections, validated; top 300 per image; federated
filter), ``lvis_summary`` (LVIS' summary rule, per category and per bin) and ``lvis_fast`` (the fast
path). Their public names are importable from here too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

from ltbench.errors import LtbenchError
from ltbench.evaluation.lvis_fast import default_workers, run_fast
from ltbench.evaluation.lvis_inputs import (FREQUENCIES, IOU_TYPES, MAX_DETS, GroundTruth, decode_rle_counts,
                                             federated_filter, limit_dets_per_image, load_detections,
                                             load_ground_truth)
from ltbench.evaluation.lvis_summary import (AREA_LABELS, METRIC_NAMES, IouTypeResult, bin_summary,
                                             freq_groups_of, per_category_ap, summarize)

# The public names of the evaluation modules, importable from here as before the split.
__all__ = [
    "AREA_LABELS", "EVALUATORS", "FREQUENCIES", "IOU_TYPES", "MAX_DETS", "METRIC_NAMES",
    "GroundTruth", "IouTypeResult", "bin_summary", "decode_rle_counts", "default_workers", "evaluate",
    "federated_filter", "freq_groups_of", "limit_dets_per_image", "load_detections", "load_ground_truth",
    "parse_iou_types", "per_category_ap", "run_fast", "run_lvis_api", "summarize",
]

EVALUATORS = ("lvis-api", "fast")


# --------------------------------------------------------------------------------------------------
# The numpy compatibility shim for lvis==0.5.3 (the one place it lives).
#
# lvis 0.5.3 (the registry's latest release, 2020) calls ``np.float`` in LVISEval.accumulate, which numpy
# removed in 1.24 (AttributeError). The upstream fix was never released. Instead of patching numpy for
# every module, lvis.eval gets a view of numpy that also has ``float`` (the builtin, which is exactly
# what the removed alias was). Nothing else changes. Remove this when lvis > 0.5.3 is released.
# --------------------------------------------------------------------------------------------------
def _lvis_api() -> tuple[type, type, type]:
    """Import the LVIS API with the numpy shim applied; returns (LVIS, LVISResults, LVISEval)."""
    import types

    import lvis.eval
    import numpy
    from lvis import LVIS, LVISEval, LVISResults

    if not hasattr(numpy, "float") and not getattr(lvis.eval.np, "_ltbench_shim", False):
        shim = types.ModuleType("numpy_ltbench_shim", "numpy plus the removed alias np.float = float")
        shim.__dict__.update(numpy.__dict__)
        shim.float = float
        shim._ltbench_shim = True
        lvis.eval.np = shim
    # LVISResults warns "Assuming user provided the results in correct format" for in-memory results:
    # ltbench has validated them already.
    logging.getLogger("lvis.results").setLevel(logging.ERROR)
    return LVIS, LVISResults, LVISEval


def _lvis_from_dict(gt: dict) -> Any:
    """An ``lvis.LVIS`` over an already-parsed annotation dict (the ground truth is parsed once)."""
    LVIS, _, _ = _lvis_api()

    class _LVISFromDict(LVIS):
        def _load_json(self, path: Any) -> Any:
            return path if isinstance(path, dict) else super()._load_json(path)

    return _LVISFromDict(gt)


# --------------------------------------------------------------------------------------------------
# The evaluator of record (the fast one: ltbench.evaluation.lvis_fast.run_fast).
# --------------------------------------------------------------------------------------------------
def run_lvis_api(gt: GroundTruth, dets: list[dict], iou_types: Sequence[str] = IOU_TYPES,
                 lvis_gt: Any = None) -> dict[str, IouTypeResult]:
    """The evaluator of record: LVISResults (top 300 per image) + LVISEval, one iou type after another."""
    _, LVISResults, LVISEval = _lvis_api()
    if lvis_gt is None:
        lvis_gt = _lvis_from_dict(gt.data)
    import warnings

    with warnings.catch_warnings():  # lvis 0.5.3 calls the deprecated Logger.warn
        warnings.simplefilter("ignore", DeprecationWarning)
        lvis_dt = LVISResults(lvis_gt, dets, max_dets=MAX_DETS)
    out = {}
    for iou_type in iou_types:
        ev = LVISEval(lvis_gt, lvis_dt, iou_type=iou_type)
        ev.run()
        summary = {name: float(ev.results[name]) for name in METRIC_NAMES}
        out[iou_type] = IouTypeResult(iou_type, summary, ev.eval["precision"], ev.eval["recall"],
                                      list(ev.params.cat_ids))
    return out


# --------------------------------------------------------------------------------------------------
# The public entry point.
# --------------------------------------------------------------------------------------------------
_log = logging.getLogger("ltbench.evaluation")


class _phase:
    """Logs the wall time of a phase at INFO level (``ltbench evaluate -v`` shows them)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        import time

        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        import time

        _log.info("%-28s %7.2f s", self.name, time.perf_counter() - self.start)


class _gc_paused:
    """Pause Python's cyclic garbage collector.

    Millions of small dicts (parsed detections) make every full collection walk the whole heap, again
    and again while more objects are created, and in forked workers it also copies every page it
    touches. The parsed JSON and faster-coco-eval's records hold no reference cycles (refcounting
    frees them), so pausing it changes nothing but time: about a fifth of the fast path's CPU time and
    half of the parsing time at 1,500 images.
    """

    def __enter__(self) -> None:
        import gc

        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        import gc

        if self.was_enabled:
            gc.enable()


def _points(value: float) -> float:
    """[0, 1] -> AP points; LVIS' "undefined" -1 stays -1."""
    return -1.0 if value == -1 else float(value) * 100.0


def parse_iou_types(iou_types: str | Sequence[str]) -> tuple[str, ...]:
    items = [t.strip() for t in iou_types.split(",")] if isinstance(iou_types, str) else list(iou_types)
    items = [t for t in items if t]
    bad = [t for t in items if t not in IOU_TYPES]
    if bad or not items:
        raise LtbenchError(f"unknown iou type {bad[0] if bad else '(none)'!r}", key="iou_types",
                           expected="a comma-separated subset of bbox,segm")
    return tuple(dict.fromkeys(items))


def evaluate(
    gt_path: str | PathLike[str],
    dets_path: str | PathLike[str],
    iou_types: str | Sequence[str] = IOU_TYPES,
    evaluator: str = "lvis-api",
    train_ann: str | PathLike[str] | None = None,
    proposal_stats: str | PathLike[str] | None = None,
    *,
    bins: str = "lvis",
    train_counts: Mapping[int, int] | None = None,
    workers: int | None = None,
    category_shards: int | None = None,
    return_results: bool = False,
) -> dict[str, float]:
    """Evaluate an LVIS results file against LVIS-format ground truth.

    Returns a flat dict of canonical keys: ``bbox.AP``, ``segm.APr``, ``segm.AR@300``, ... and, with
    ``train_ann`` (or ``train_counts``: category id -> training instances), ``<iou>.AP1..AP4`` over the
    instance-count bins ``bins`` ("lvis" or "coco-lt"). Values are AP points (percent), unrounded, -1
    where undefined. With ``proposal_stats`` (a ``proposal_stats.npz``): ``PwB`` and ``cls.ACC``,
    ``cls.ACCbg`` and, when training counts are known, ``cls.ACC1..4`` (percent).

    ``evaluator``: "lvis-api" (of record) or "fast" (faster-coco-eval, identical numbers, parallel).
    ``return_results=True`` returns ``(metrics, {iou_type: IouTypeResult})`` for plots.
    """
    from ltbench.evaluation.bins import bin_edges, training_instance_counts

    iou_types = parse_iou_types(iou_types)
    if evaluator not in EVALUATORS:
        raise LtbenchError(f"unknown evaluator {evaluator!r}", key="evaluator", expected=" or ".join(EVALUATORS))
    bin_edges(bins)  # fail early on a bad scheme name
    with _phase("read + check ground truth"), _gc_paused():
        gt = load_ground_truth(gt_path)
    with _phase("read + check detections"), _gc_paused():
        dets = load_detections(dets_path, gt, iou_types)
    if train_counts is None and train_ann is not None:
        with _phase("count training instances"):
            train_counts = training_instance_counts(train_ann)

    with _phase(f"evaluate ({evaluator})"):
        if evaluator == "lvis-api":
            results = run_lvis_api(gt, dets, iou_types)  # the API as it is, cyclic GC on
        else:
            with _gc_paused():
                results = run_fast(gt, dets, iou_types, workers=workers, category_shards=category_shards)

    metrics: dict[str, float] = {}
    for iou_type in iou_types:
        res = results[iou_type]
        for name in METRIC_NAMES:
            metrics[f"{iou_type}.{name}"] = _points(res.summary[name])
        if train_counts is not None:
            for name, value in bin_summary(res, train_counts, bins).items():
                metrics[f"{iou_type}.{name}"] = _points(value)
    if proposal_stats is not None:
        from ltbench.evaluation.confusion import proposal_metrics

        metrics.update(proposal_metrics(proposal_stats, train_counts=train_counts, bins=bins))
    return (metrics, results) if return_results else metrics
