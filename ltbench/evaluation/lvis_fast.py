"""The fast evaluator: faster-coco-eval's C++ matcher in LVIS mode, fed the detections LVIS evaluates,
run per iou type and category shard in forked worker processes (:func:`run_fast`).

Why each step gives LVIS' numbers is told in :mod:`ltbench.evaluation.lvis_eval`; the tests check
every metric against the LVIS API.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ltbench.evaluation.lvis_inputs import (IOU_TYPES, MAX_DETS, GroundTruth, federated_filter,
                                             limit_dets_per_image)
from ltbench.evaluation.lvis_summary import (AREA_LABELS, IouTypeResult, _iou_thresholds, freq_groups_of,
                                             summarize)

_log = logging.getLogger("ltbench.evaluation")


# Set in the parent before forking: the parsed ground truth and truncated detections. The evaluating
# process reads them here; forked workers use only the ground truth's small parts (image sizes, federated
# lists, category ids) and get their shard's annotations and detections sent (_run_pool).
_FORK_SHARED: dict[str, Any] = {}


def _stub_unmatchable_masks(gt: GroundTruth, dets: list[dict]) -> list[dict]:
    """Replace the mask of every detection that has no ground truth of its category in its image by
    an empty mask of the same size (in a copy of the record; the caller's list is not touched).

    Such a detection (a negative category) can only be a false positive: its mask is never compared
    with anything, and its area for APs/APm/APl is its box's (LVIS and faster-coco-eval both take
    ``area = w*h`` when results carry a bbox). Decoding those masks is pure cost to faster-coco-eval,
    which converts every detection's RLE up front.
    """
    import numpy as np
    import pycocotools.mask as mask_utils

    present = {(a["image_id"], a["category_id"]) for a in gt.data["annotations"]}
    empty: dict[tuple[int, int], dict] = {}
    out = []
    for d in dets:
        if (d["image_id"], d["category_id"]) in present:
            out.append(d)
            continue
        h, w = d["segmentation"]["size"]
        stub = empty.get((h, w))
        if stub is None:
            rle = mask_utils.encode(np.zeros((h, w, 1), dtype=np.uint8, order="F"))[0]
            stub = empty[(h, w)] = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        out.append({**d, "segmentation": stub})
    return out


def _lvis_fast_eval(gt: GroundTruth, gt_anns: Sequence[dict], dets: Sequence[dict], iou_type: str,
                    cat_ids: Sequence[int], group_size: int = 16) -> tuple[Any, Any]:
    """faster-coco-eval's C++ matcher/accumulator on LVIS' evaluated detections, without its Python
    front end. Returns precision (T, R, K, A) and recall (T, K, A) for ``cat_ids`` (each with ground
    truth in ``gt_anns``), in that order.

    What ``COCO.loadRes`` + ``COCOeval._prepare`` would do, in one pass and without the LVIS filter
    (``dets`` are already filtered): each detection record gets ``id`` (its 1-based position), ``area``
    (its box's w*h, as LVIS and loadRes take it), ``iscrowd`` 0 and ``lvis_mark`` (its category is not
    exhaustively annotated in its image); ground truth keeps its ``ignore`` flag and gets ``iscrowd`` 0
    (LVIS honours the one and ignores the other, where faster-coco-eval would overwrite ignore); masks
    are converted once (``calculateRleForAllAnnotations``) for segm. Then, unlike faster-coco-eval 1.8.0
    — which builds a dict over *every* image x category pair (6 million on LVIS v1 val), computes
    mask IoUs in a thread pool and matches every pair — IoUs are computed only for pairs with both
    ground truth and detections, and the C++ matcher runs once per group of categories over only the
    images those categories touch: an untouched image adds nothing to a category's precision or
    recall, and categories are accumulated independently, so the arrays are the same. Equality with
    the LVIS API on every metric is what the tests check.
    """
    import copy

    import numpy as np
    from faster_coco_eval import faster_eval_api_cpp as _C
    from faster_coco_eval.core import mask as mask_utils
    from faster_coco_eval.core.faster_eval_api import COCOeval_faster

    ev = COCOeval_faster(None, None, iouType=iou_type, lvis_style=True, print_function=_log.debug,
                         rle_iou_max_workers=1)
    p = ev.params
    p.maxDets = [MAX_DETS]
    p.imgIds = sorted(gt.image_sizes)
    p.catIds = [int(c) for c in cat_ids]
    segm = iou_type == "segm"
    sizes = {i: (hw[0], hw[1]) for i, hw in gt.image_sizes.items()}
    nel = {img["id"]: set(img["not_exhaustive_category_ids"]) for img in gt.data["images"]}

    # LVIS honours a ground-truth "ignore" flag and treats every object as non-crowd.
    gts = [{**a, "ignore": int(bool(a.get("ignore", 0))), "iscrowd": 0} for a in gt_anns]
    dts = []
    for k, d in enumerate(dets, 1):
        b = d["bbox"]
        rec = {"id": k, "image_id": d["image_id"], "category_id": d["category_id"], "score": d["score"],
               "bbox": b, "area": b[2] * b[3], "iscrowd": 0, "lvis_mark": d["category_id"] in nel[d["image_id"]]}
        if segm:
            rec["segmentation"] = d["segmentation"]
        dts.append(rec)
    if segm:
        mask_utils.calculateRleForAllAnnotations(gts, sizes, True, False, ev.boundary_dilation_ratio, 1)
        mask_utils.calculateRleForAllAnnotations(dts, sizes, True, False, ev.boundary_dilation_ratio, 1)
    touched: dict[int, set[int]] = {c: set() for c in p.catIds}
    gt_pairs, dt_pairs = set(), set()
    for a in gts:
        ev.gt_dataset.append_ref(a["image_id"], a["category_id"], a)
        gt_pairs.add((a["image_id"], a["category_id"]))
        touched[a["category_id"]].add(a["image_id"])
    for d in dts:
        ev.dt_dataset.append_ref(d["image_id"], d["category_id"], d)
        dt_pairs.add((d["image_id"], d["category_id"]))
        touched[d["category_id"]].add(d["image_id"])

    ious_of = {pair: ev.computeIoU(*pair) for pair in gt_pairs & dt_pairs}
    ev._paramsEval = copy.deepcopy(p)
    empty: list = []
    precisions, recalls, order = [], [], []
    for group in _category_groups(touched, group_size):
        imgs = sorted(set().union(*(touched[c] for c in group)))
        ious = [[ious_of.get((i, c), empty) for c in group] for i in imgs]
        params = copy.copy(ev._paramsEval)  # the accumulator sizes its arrays from these lists
        params.imgIds, params.catIds = imgs, group
        res = _C.COCOevalEvaluateAccumulate(params, ious, ev.gt_dataset, ev.dt_dataset, imgs, group, True)
        precisions.append(np.asarray(res["precision"])[..., -1])  # (T, R, K, A, M) -> (T, R, K, A)
        recalls.append(np.asarray(res["recall"])[..., -1])  # (T, K, A, M) -> (T, K, A)
        order.extend(group)
    pos = np.argsort([p.catIds.index(c) for c in order], kind="stable")
    return np.concatenate(precisions, axis=2)[:, :, pos], np.concatenate(recalls, axis=1)[:, pos]


def _category_groups(touched: Mapping[int, set[int]], group_size: int) -> list[list[int]]:
    """Categories in groups of ``group_size``, sorted by how many images they touch, so that each
    group's image set (the union) stays close to its members' own."""
    ranked = sorted(touched, key=lambda c: (len(touched[c]), c))
    return [ranked[k:k + group_size] for k in range(0, len(ranked), group_size)]


def _shard_inputs(gt: GroundTruth, dets: Sequence[dict], iou_type: str,
                  cat_ids: Sequence[int]) -> tuple[list[dict], list[dict]]:
    """The ground truth and detections of one category shard, as a worker process needs them for
    ``iou_type`` (for bbox without the masks and polygons, which bbox never reads)."""
    keep = set(cat_ids)
    anns = [a for a in gt.data["annotations"] if a["category_id"] in keep]
    dets = [d for d in dets if d["category_id"] in keep]
    if iou_type == "segm":
        return anns, dets
    strip = [{k: v for k, v in a.items() if k != "segmentation"} for a in anns]
    return strip, [{k: v for k, v in d.items() if k != "segmentation"} for d in dets]


def _fast_task(iou_type: str, cat_ids: Sequence[int] | None, anns: list[dict] | None = None,
               dets: list[dict] | None = None) -> tuple[str, list[int], Any, Any]:
    """The fast evaluation of one iou type, for all categories or a shard of them (given only that
    shard's ground truth and detections — categories are evaluated independently).
    Returns (iou_type, category ids, precision (T,R,K,A), recall (T,K,A)).

    ``anns`` and ``dets``: the shard's inputs (:func:`_shard_inputs`), sent to a worker process; None:
    taken from ``_FORK_SHARED`` and filtered here (in the evaluating process itself)."""
    import numpy as np

    gt: GroundTruth = _FORK_SHARED["gt"]
    wanted = list(gt.category_ids if cat_ids is None else cat_ids)
    if anns is None or dets is None:
        anns, dets = gt.data["annotations"], _FORK_SHARED["dets"]
        if cat_ids is not None:
            keep = set(cat_ids)
            anns = [a for a in anns if a["category_id"] in keep]
            dets = [d for d in dets if d["category_id"] in keep]
    # A category without ground truth has precision and recall -1 whatever its detections (LVIS skips
    # it in accumulate): it is left out of the matcher and filled in here.
    with_gt = {a["category_id"] for a in anns}
    evaluated = [c for c in wanted if c in with_gt]
    T, R, A = len(_iou_thresholds()), 101, len(AREA_LABELS)  # LVIS: 10 IoUs, 101 recall points
    precision = -np.ones((T, R, len(wanted), A))
    recall = -np.ones((T, len(wanted), A))
    if evaluated:
        with_gt_dets = [d for d in dets if d["category_id"] in with_gt]
        prec, rec = _lvis_fast_eval(gt, anns, with_gt_dets, iou_type, evaluated)
        pos = [wanted.index(c) for c in evaluated]
        precision[:, :, pos, :] = prec
        recall[:, pos, :] = rec
    return iou_type, [int(c) for c in wanted], precision, recall


def default_workers() -> int:
    """Worker processes for the fast path: the CPUs this process may use (a SLURM allocation, a
    taskset) that are not already busy (1-minute load average). Forked workers only pay off on idle
    CPUs: on busy ones they add copy-on-write and start-up costs and gain nothing. In a SLURM job
    never more than ``$SLURM_CPUS_PER_TASK``, even where SLURM does not bind the job to its CPUs: its
    memory is sized for that many processes (ltbench.evaluation.resources)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    allocated = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if allocated.isdigit() and int(allocated) > 0:
        cpus = min(cpus, int(allocated))
    try:
        idle = cpus - os.getloadavg()[0]
    except OSError:
        idle = cpus
    return max(1, min(cpus, int(idle + 0.5)))


def _balanced_shards(gt: GroundTruth, dets: Sequence[dict], n: int) -> list[list[int]]:
    """Categories split into ``n`` shards of about equal work (ground truth + detections per category;
    largest first onto the lightest shard). Each shard's ids ascending."""
    import heapq

    load = {c: 1 for c in gt.category_ids}
    for ann in gt.data["annotations"]:
        load[ann["category_id"]] += 1
    for det in dets:
        load[det["category_id"]] += 1
    heap = [(0, k) for k in range(n)]
    shards: list[list[int]] = [[] for _ in range(n)]
    for cid in sorted(load, key=lambda c: (-load[c], c)):
        total, k = heapq.heappop(heap)
        shards[k].append(cid)
        heapq.heappush(heap, (total + load[cid], k))
    return [sorted(s) for s in shards if s]


def _run_pool(ctx: Any, workers: int, gt: GroundTruth, dets: list[dict],
              tasks: Sequence[tuple[str, list[int] | None]]) -> list[tuple[str, list[int], Any, Any]]:
    """Run ``tasks`` in ``workers`` forked processes, each task sent its shard's inputs.

    The workers share only the small things copy-on-write (the parent's ``_FORK_SHARED``: image sizes,
    federated lists, category ids). Their shard's annotations and detections go to them pickled, one
    task at a time as a worker comes free. A worker that read the parent's parsed detections instead
    would write the reference count of every object it reads and so copy nearly every memory page of
    them (CPython's small objects share pages, whatever the shard): about one more copy of the
    detections per worker. Measured by benchmarks/eval_scale.py at 5,000 images, peak memory of the
    process and its workers: 3.7 GB in one process; 6.9 GB with two workers either way; with four,
    9.5 GB reading copy-on-write, 7.0 GB sent. (Two or more workers hold about twice one process's
    memory: the parent keeps all parsed detections while the workers hold their shards' copies.)
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    todo = list(tasks)[::-1]
    parts = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        running: set = set()
        while todo or running:
            while todo and len(running) < workers:
                iou_type, cat_ids = todo.pop()
                anns, shard = _shard_inputs(gt, dets, iou_type, gt.category_ids if cat_ids is None else cat_ids)
                running.add(pool.submit(_fast_task, iou_type, cat_ids, anns, shard))
                del anns, shard  # the pool holds them until sent
            done, running = wait(running, return_when=FIRST_COMPLETED)
            parts.extend(f.result() for f in done)
    return parts


def run_fast(gt: GroundTruth, dets: list[dict], iou_types: Sequence[str] = IOU_TYPES,
             workers: int | None = None, category_shards: int | None = None) -> dict[str, IouTypeResult]:
    """The fast path: truncate to LVIS' top 300 per image, then faster-coco-eval (LVIS mode) per iou
    type and category shard. ``workers`` forked processes (default: :func:`default_workers`; 1 = all
    in this process) take the tasks as they come free, each sent its shard's inputs (:func:`_run_pool`).
    ``category_shards`` (default: ``workers``) splits each iou type's categories into independent
    parts of about equal work, so that the workers finish together."""
    import numpy as np

    # LVIS truncates first, then drops detections of categories neither in the image's ground truth
    # nor in its negative list. Dropping them here (order kept) changes no number, saves faster-coco-eval
    # the work, and avoids its crash on an image whose detections are all dropped
    # (faster-coco-eval 1.8.0 looks up that image's size and fails with "unordered_map::at").
    evaluated = federated_filter(gt, limit_dets_per_image(dets, MAX_DETS))
    if "segm" in iou_types:
        evaluated = _stub_unmatchable_masks(gt, evaluated)
    if workers is None:
        workers = default_workers()
    workers = max(1, int(workers))
    if category_shards is None:
        category_shards = workers if workers > 1 else 1
    groups: list[list[int] | None] = [None]
    if category_shards > 1:
        groups = list(_balanced_shards(gt, evaluated, category_shards))
    # Heaviest first (segm decodes masks), so that the last tasks to finish are short.
    tasks = [(t, g) for t in sorted(iou_types, key=lambda t: t != "segm") for g in groups]
    _FORK_SHARED.update(gt=gt, dets=evaluated)
    # Imported once here, before forking, rather than in every worker.
    import faster_coco_eval.core.faster_eval_api  # noqa: F401
    try:
        if workers <= 1 or len(tasks) == 1:
            parts = [_fast_task(*task) for task in tasks]
        else:
            import multiprocessing

            try:
                ctx = multiprocessing.get_context("fork")
            except ValueError:  # no fork on this platform: the workers could not share the data
                ctx = None
            if ctx is None:
                parts = [_fast_task(*task) for task in tasks]
            else:
                parts = _run_pool(ctx, min(workers, len(tasks)), gt, evaluated, tasks)
    finally:
        _FORK_SHARED.clear()
    out = {}
    for iou_type in iou_types:
        mine = [p for p in parts if p[0] == iou_type]
        cat_ids = [c for p in mine for c in p[1]]
        precision = np.concatenate([p[2] for p in mine], axis=2)
        recall = np.concatenate([p[3] for p in mine], axis=1)
        order = np.argsort(cat_ids, kind="stable")
        cat_ids = [cat_ids[k] for k in order]
        precision, recall = precision[:, :, order, :], recall[:, order, :]
        summary = summarize(precision, recall, freq_groups_of(gt, cat_ids))
        out[iou_type] = IouTypeResult(iou_type, summary, precision, recall, cat_ids)
    return out
