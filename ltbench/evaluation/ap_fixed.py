"""AP-fixed and AP-pool (Dave et al., "Evaluating Large-Vocabulary Object Detectors: The Devil is in the
Details", 2021), as optional metrics next to the LVIS metrics of record.

Why: LVIS' standard AP keeps the top 300 detections *per image* across all categories, so the AP of one
category depends on the scores of the others (a re-ranking that only moves detections between categories
changes it). The fix:

- **AP-fixed**: the detection budget is per *category* over the whole val set: the top ``K = 10,000``
  detections of each category, with **no per-image cap**; then LVIS' usual per-category AP under its
  federated rules (a detection counts only on images where its category is annotated positive or listed
  in ``neg_category_ids``; unmatched detections of a ``not_exhaustive`` category are ignored), averaged
  over categories (and over r / c / f for ``APfixed_r`` ...). IoU 0.50:0.95, 101 recall points, area "all".
- **AP-pool**: the same budget and the same per-(image, category) matching, but the precision/recall
  curve is computed once over the detections of *all* categories of a pool ranked together by score
  (true/false positives and the number of ground-truth instances summed over the pool), so it rewards
  scores that are comparable across categories (calibration). Pools: all, r, c, f.

A detections file produced with the standard inference (<= 300 per image) gives an AP-fixed that is
artificially low for frequent categories: for the metric as defined, the adapter must be run in its
top-K-per-class mode (no per-image cap). :func:`top_k_per_class` applies the budget to whatever file
it gets.

Metric keys (AP points, -1 where undefined): ``<iou>.APfixed``, ``<iou>.APfixed_r|_c|_f``,
``<iou>.APpool``, ``<iou>.APpool_r|_c|_f`` for iou in bbox, segm.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from typing import Any

from ltbench.errors import LtbenchError

DETS_PER_CLASS = 10_000
POOLS = ("all", "r", "c", "f")


def top_k_per_class(dets: Iterable[Mapping[str, Any]], k: int = DETS_PER_CLASS) -> list[dict]:
    """The ``k`` highest-scoring detections of every category over the whole set (ties: file order)."""
    if k < 1:
        raise LtbenchError(f"dets_per_class must be >= 1, got {k}", expected="a positive budget (10000 in Dave et al.)")
    per_cat: dict[int, list[dict]] = {}
    for det in dets:
        per_cat.setdefault(det["category_id"], []).append(dict(det))
    out: list[dict] = []
    for anns in per_cat.values():
        if len(anns) > k:
            anns = sorted(anns, key=lambda a: a["score"], reverse=True)[:k]  # stable: ties keep file order
        out.extend(anns)
    return out


def pooled_precision(entries: Sequence[Mapping[str, Any]], num_iou: int, rec_thrs: Sequence[float]) -> tuple[Any, Any] | None:
    """Precision (T, R) and recall (T,) of one pool from LVIS per-(image, category) matching results.

    Args:
        entries: ``LVISEval.eval_imgs`` items of the pool's categories (None removed), each with
            ``dt_scores`` (n,), ``dt_matches`` (T, n) (matched gt id or 0), ``dt_ignore`` (T, n) and
            ``gt_ignore`` (g,).
        num_iou: T, the number of IoU thresholds.
        rec_thrs: the R recall points (LVIS: 101 in [0, 1]).
    Returns:
        None when the pool has no (non-ignored) ground truth; else precision at each recall point
        (interpolated: the best precision at any recall >= that point, 0 beyond the reached recall) and
        the final recall, per IoU threshold.

    Detections of all entries are ranked together by descending score (a stable sort, so equal scores
    keep the order of ``entries``); with one category per pool this is exactly LVIS' per-category AP.
    """
    import numpy as np

    if not entries:
        return None
    num_gt = int(sum(np.count_nonzero(np.asarray(e["gt_ignore"]) == 0) for e in entries))
    if num_gt == 0:
        return None
    scores = np.concatenate([np.asarray(e["dt_scores"], dtype=np.float64).reshape(-1) for e in entries])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([np.asarray(e["dt_matches"]).reshape(num_iou, -1) for e in entries], axis=1)[:, order]
    ignored = np.concatenate([np.asarray(e["dt_ignore"]).reshape(num_iou, -1) for e in entries], axis=1)[:, order]
    tps = np.logical_and(matched != 0, np.logical_not(ignored))
    fps = np.logical_and(matched == 0, np.logical_not(ignored))
    tp_sum = np.cumsum(tps, axis=1, dtype=np.float64)
    fp_sum = np.cumsum(fps, axis=1, dtype=np.float64)
    rec_thrs = np.asarray(rec_thrs, dtype=np.float64)
    precision = np.zeros((num_iou, len(rec_thrs)))
    recall = np.zeros(num_iou)
    for t in range(num_iou):
        tp, fp = tp_sum[t], fp_sum[t]
        if tp.size == 0:
            continue
        rc = tp / num_gt
        recall[t] = rc[-1]
        pr = tp / (tp + fp + np.spacing(1))
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # best precision at this recall or any higher one
        idx = np.searchsorted(rc, rec_thrs, side="left")
        inside = idx < len(pr)
        precision[t, inside] = pr[idx[inside]]
    return precision, recall


def _points(value: float) -> float:
    return -1.0 if value < 0 else 100.0 * value


def evaluate_fixed(
    gt_path: str | PathLike[str],
    dets_path: str | PathLike[str] | None = None,
    iou_types: Sequence[str] = ("bbox", "segm"),
    *,
    dets_per_class: int = DETS_PER_CLASS,
    gt_data: dict | None = None,
    dets_data: list | None = None,
    pools: Sequence[str] = POOLS,
) -> dict[str, float]:
    """AP-fixed and AP-pool of a detections file (or list) against LVIS-format ground truth.

    Returns a flat dict of metric keys (see the module docstring) in AP points, -1 where undefined.
    Uses the LVIS API (the evaluator of record) for the per-(image, category) matching.
    """
    import warnings

    import numpy as np

    from ltbench.evaluation.lvis_eval import _lvis_api, _lvis_from_dict
    from ltbench.evaluation.lvis_inputs import load_detections, load_ground_truth

    for iou_type in iou_types:
        if iou_type not in ("bbox", "segm"):
            raise LtbenchError(f"unknown iou type {iou_type!r}", expected="bbox and/or segm")
    for pool in pools:
        if pool not in POOLS:
            raise LtbenchError(f"unknown AP-pool pool {pool!r}", expected="one of " + ", ".join(POOLS))
    gt = load_ground_truth(gt_path, gt_data)
    dets = load_detections(dets_path if dets_path is not None else "<detections>", gt, iou_types, data=dets_data)
    kept = top_k_per_class(dets, dets_per_class)
    _, LVISResults, LVISEval = _lvis_api()
    lvis_gt = _lvis_from_dict(gt.data)
    with warnings.catch_warnings():  # lvis 0.5.3 calls the deprecated Logger.warn
        warnings.simplefilter("ignore", DeprecationWarning)
        lvis_dt = LVISResults(lvis_gt, kept, max_dets=-1)  # -1: no per-image cap
    out: dict[str, float] = {}
    for iou_type in iou_types:
        ev = LVISEval(lvis_gt, lvis_dt, iou_type=iou_type)
        ev.params.max_dets = -1
        ev.params.area_rng = [ev.params.area_rng[0]]  # "all" only: the papers report no S/M/L here
        ev.params.area_rng_lbl = [ev.params.area_rng_lbl[0]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ev.evaluate()
        cat_ids = list(ev.params.cat_ids)
        num_imgs, num_iou = len(ev.params.img_ids), len(ev.params.iou_thrs)
        by_pool = {"all": list(range(len(cat_ids)))}
        for label in ("r", "c", "f"):
            by_pool[label] = [k for k, cid in enumerate(cat_ids) if gt.frequency[cid] == label]

        def entries(cat_indices: Sequence[int]) -> list[dict]:
            # eval_imgs is ordered category-major, then area (one here), then image
            return [e for k in cat_indices for e in ev.eval_imgs[k * num_imgs:(k + 1) * num_imgs] if e is not None]

        per_cat_ap = np.full(len(cat_ids), -1.0)
        for k in range(len(cat_ids)):
            got = pooled_precision(entries([k]), num_iou, ev.params.rec_thrs)
            if got is not None:
                per_cat_ap[k] = float(got[0].mean())
        for pool in pools:
            idx = by_pool[pool]
            valid = [per_cat_ap[k] for k in idx if per_cat_ap[k] >= 0]
            suffix = "" if pool == "all" else f"_{pool}"
            out[f"{iou_type}.APfixed{suffix}"] = _points(float(np.mean(valid)) if valid else -1.0)
            got = pooled_precision(entries(idx), num_iou, ev.params.rec_thrs) if idx else None
            out[f"{iou_type}.APpool{suffix}"] = _points(-1.0 if got is None else float(got[0].mean()))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ltbench.evaluation.ap_fixed GT.json DETS.json [--iou-types bbox,segm] [--dets-per-class K]
    [--out METRICS.json]``: print (and optionally write, atomically) the AP-fixed / AP-pool metrics."""
    import argparse
    import json
    import sys

    from ltbench import io

    parser = argparse.ArgumentParser(prog="python -m ltbench.evaluation.ap_fixed", description=__doc__.split("\n")[0])
    parser.add_argument("gt")
    parser.add_argument("dets")
    parser.add_argument("--iou-types", default="bbox,segm")
    parser.add_argument("--dets-per-class", type=int, default=DETS_PER_CLASS)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    try:
        metrics = evaluate_fixed(args.gt, args.dets, tuple(t for t in args.iou_types.split(",") if t),
                                 dets_per_class=args.dets_per_class)
    except LtbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        io.write_json(args.out, metrics)
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
