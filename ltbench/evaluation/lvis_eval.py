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
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

from ltbench.errors import LtbenchError

IOU_TYPES = ("bbox", "segm")
EVALUATORS = ("lvis-api", "fast")
MAX_DETS = 300
# LVIS' summary names, in the order LVISEval.summarize produces them.
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf",
                "AR@300", "ARs@300", "ARm@300", "ARl@300")
AREA_LABELS = ("all", "small", "medium", "large")
FREQUENCIES = ("r", "c", "f")
# Compressed RLE strings (pycocotools' LEB128-like code) use the characters chr(48)..chr(111).
_BAD_RLE_CHAR = re.compile(r"[^0-o]")


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
# Input: ground truth and detections, validated.
# --------------------------------------------------------------------------------------------------
@dataclass
class GroundTruth:
    """A parsed, validated LVIS annotation file."""

    path: str
    data: dict
    image_sizes: dict[int, list[int]]  # image id -> [height, width]
    category_ids: list[int]  # ascending
    frequency: dict[int, str]  # category id -> "r" | "c" | "f"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def load_ground_truth(path: str | PathLike[str], data: dict | None = None) -> GroundTruth:
    """Read and validate an LVIS-format annotation file (images with federated lists, categories with
    a frequency, annotations with bbox/area/segmentation)."""
    from ltbench.evaluation.jsonload import load_json

    path = str(path)
    gt = load_json(path) if data is None else data
    if not isinstance(gt, dict):
        raise LtbenchError("not an LVIS annotation file", path=path, expected="a JSON object with "
                           "'images', 'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise LtbenchError(f"missing or not a list: {key!r}", path=path, key=key,
                               expected="a list (LVIS annotation format)")
    sizes: dict[int, list[int]] = {}
    for i, img in enumerate(gt["images"]):
        if not isinstance(img, dict):
            raise LtbenchError("image is not an object", path=path, key=["images", i], expected="an object")
        for key in ("id", "height", "width"):
            if not isinstance(img.get(key), int) or isinstance(img.get(key), bool):
                raise LtbenchError(f"image {key!r} missing or not an integer", path=path,
                                   key=["images", i, key], expected="an integer")
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            if not isinstance(img.get(key), list):
                raise LtbenchError(
                    f"image {img['id']} has no {key!r} list", path=path, key=["images", i, key],
                    expected="a list of category ids (LVIS' federated annotation; [] when none)")
        if img["id"] in sizes:
            raise LtbenchError(f"duplicate image id {img['id']}", path=path, key=["images", i, "id"],
                               expected="unique image ids")
        sizes[img["id"]] = [img["height"], img["width"]]
    frequency: dict[int, str] = {}
    for i, cat in enumerate(gt["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int):
            raise LtbenchError("category without an integer id", path=path, key=["categories", i],
                               expected="an object with an integer 'id'")
        if cat.get("frequency") not in FREQUENCIES:
            raise LtbenchError(f"category {cat['id']} has frequency {cat.get('frequency')!r}", path=path,
                               key=["categories", i, "frequency"], expected="'r', 'c' or 'f'")
        frequency[cat["id"]] = cat["frequency"]
    for i, ann in enumerate(gt["annotations"]):
        if not isinstance(ann, dict):
            raise LtbenchError("annotation is not an object", path=path, key=["annotations", i],
                               expected="an object")
        if not isinstance(ann.get("id"), int) or ann["id"] <= 0:
            raise LtbenchError("annotation id missing or not a positive integer", path=path,
                               key=["annotations", i, "id"], expected="an integer >= 1 (LVIS uses 0 as 'unmatched')")
        if ann.get("image_id") not in sizes:
            raise LtbenchError(f"unknown image_id {ann.get('image_id')!r}", path=path,
                               key=["annotations", i, "image_id"], expected="an id listed in 'images'")
        if ann.get("category_id") not in frequency:
            raise LtbenchError(f"unknown category_id {ann.get('category_id')!r}", path=path,
                               key=["annotations", i, "category_id"], expected="an id listed in 'categories'")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise LtbenchError(f"malformed bbox {bbox!r}", path=path, key=["annotations", i, "bbox"],
                               expected="[x, y, width, height] of 4 finite numbers")
        if not _is_number(ann.get("area")):
            raise LtbenchError("area missing or not a number", path=path, key=["annotations", i, "area"],
                               expected="a finite number")
    return GroundTruth(path=path, data=gt, image_sizes=sizes, category_ids=sorted(frequency),
                       frequency=frequency)


def _explain_bad_detection(i: int, det: Any, path: str, gt: GroundTruth, need_segm: bool) -> LtbenchError:
    """The precise error for detection ``i`` (called once the fast check found something wrong)."""
    key: list[str | int] = [i]
    if not isinstance(det, dict):
        return LtbenchError(f"detection is a {type(det).__name__}", path=path, key=key,
                            expected="an object {image_id, category_id, bbox, score, segmentation}")
    image_id = det.get("image_id")
    try:
        known_image = image_id in gt.image_sizes
    except TypeError:
        known_image = False
    if not known_image:
        return LtbenchError(f"unknown image_id {image_id!r}", path=path, key=key + ["image_id"],
                            expected=f"an image id of the ground truth {gt.path}")
    try:
        known_cat = det.get("category_id") in gt.frequency
    except TypeError:
        known_cat = False
    if not known_cat:
        return LtbenchError(f"unknown category_id {det.get('category_id')!r}", path=path,
                            key=key + ["category_id"], expected=f"a category id of the ground truth {gt.path}")
    if not _is_number(det.get("score")):
        return LtbenchError(f"score {det.get('score')!r} is not a finite number", path=path,
                            key=key + ["score"], expected="a finite number")
    bbox = det.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        return LtbenchError(f"malformed bbox {bbox!r}", path=path, key=key + ["bbox"],
                            expected="[x, y, width, height] of 4 finite numbers")
    if bbox[2] < 0 or bbox[3] < 0:
        return LtbenchError(f"bbox {bbox!r} has a negative width or height", path=path, key=key + ["bbox"],
                            expected="[x, y, width, height] with width, height >= 0")
    if need_segm:
        segm = det.get("segmentation")
        if not isinstance(segm, dict):
            return LtbenchError(f"segmentation is {type(segm).__name__}", path=path, key=key + ["segmentation"],
                                expected="a compressed RLE {'size': [height, width], 'counts': str}")
        size = gt.image_sizes[image_id]
        if segm.get("size") != size:
            return LtbenchError(f"RLE size {segm.get('size')!r} differs from the image's [height, width] {size}",
                                path=path, key=key + ["segmentation", "size"], expected=str(size))
        counts = segm.get("counts")
        if not isinstance(counts, str):
            return LtbenchError(f"RLE counts is {type(counts).__name__}", path=path,
                                key=key + ["segmentation", "counts"],
                                expected="a compressed RLE string (decode pycocotools' bytes with .decode('ascii'))")
        bad = _BAD_RLE_CHAR.search(counts)
        if not counts or bad:
            what = "empty" if not counts else f"has the character {bad.group()!r} at position {bad.start()}"
            return LtbenchError(f"RLE counts {what}", path=path, key=key + ["segmentation", "counts"],
                                expected="a compressed RLE string of characters '0'..'o'")
        if size[0] * size[1] > 0 and not _rle_covers(counts, size[0] * size[1]):
            return LtbenchError("RLE counts do not add up to height*width (truncated or corrupt)", path=path,
                                key=key + ["segmentation", "counts"],
                                expected=f"runs summing to {size[0]}*{size[1]}={size[0] * size[1]}")
    return LtbenchError("malformed detection", path=path, key=key, expected="LVIS results format")


def decode_rle_counts(counts: str) -> list[int]:
    """Run lengths of a compressed RLE string (pycocotools' ``rleFrString``, in Python).

    Each run is a little-endian sequence of 5-bit groups (chars offset by 48, bit 0x20 = more groups
    follow, bit 0x10 of the last group = sign); from the third run on, values are deltas to the run two
    places before. Raises ValueError on a string that ends inside a run.
    """
    runs: list[int] = []
    pos, n = 0, len(counts)
    while pos < n:
        value, shift, more = 0, 0, True
        while more:
            if pos >= n:
                raise ValueError("RLE string ends inside a run")
            c = ord(counts[pos]) - 48
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos += 1
            shift += 1
            if not more and (c & 0x10):
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _rle_covers(counts: str, total: int) -> bool:
    try:
        runs = decode_rle_counts(counts)
    except ValueError:
        return False
    return all(r >= 0 for r in runs) and sum(runs) == total


def load_detections(path: str | PathLike[str], gt: GroundTruth, iou_types: Sequence[str],
                    data: list | None = None, check_rle_runs: bool = False) -> list[dict]:
    """Read and validate an LVIS results file: a non-empty list of
    ``{image_id, category_id, bbox: [x, y, w, h], score, segmentation: {size, counts}}``
    (``segmentation`` needed only for ``segm``). The first bad record raises ``LtbenchError`` naming
    its index, key and what was expected.

    ``check_rle_runs`` also decodes every RLE string in Python to check that its runs add up to
    height*width (slow: about a second per 100k masks); by default only the structure, the size and
    the alphabet of RLE strings are checked.
    """
    from ltbench.evaluation.jsonload import load_json

    path = str(path)
    dets = load_json(path) if data is None else data
    if not isinstance(dets, list):
        raise LtbenchError(f"detections file holds a {type(dets).__name__}", path=path,
                           expected="a JSON list of detections (LVIS results format)")
    if not dets:
        raise LtbenchError("no detections in the file", path=path,
                           expected="at least one detection (the LVIS API cannot evaluate an empty list)")
    need_segm = "segm" in iou_types
    if not _detections_look_valid(dets, gt, need_segm) or check_rle_runs:
        _find_bad_detection(dets, path, gt, need_segm, check_rle_runs)
    return dets


def _detections_look_valid(dets: list, gt: GroundTruth, need_segm: bool) -> bool:
    """Whole-list checks at C speed (map/itemgetter/sum/translate); False at the first sign of
    trouble, which :func:`_find_bad_detection` then pins down record by record."""
    from operator import eq, itemgetter

    import numpy as np

    try:
        if not all(type(d) is dict for d in dets):
            return False
        img_ids = list(map(itemgetter("image_id"), dets))
        if not set(img_ids) <= gt.image_sizes.keys():
            return False
        if not set(map(itemgetter("category_id"), dets)) <= gt.frequency.keys():
            return False
        # sum() raises TypeError on a non-number; inf/nan anywhere makes the total non-finite.
        if not math.isfinite(sum(map(itemgetter("score"), dets))):
            return False
        boxes = list(map(itemgetter("bbox"), dets))
        if set(map(len, boxes)) != {4} or not math.isfinite(sum(map(sum, boxes))):
            return False
        if min(map(itemgetter(2), boxes)) < 0 or min(map(itemgetter(3), boxes)) < 0:
            return False
        if need_segm:
            segms = list(map(itemgetter("segmentation"), dets))
            if not all(type(sg) is dict for sg in segms):
                return False
            if not all(map(eq, map(itemgetter("size"), segms), map(gt.image_sizes.__getitem__, img_ids))):
                return False
            counts = list(map(itemgetter("counts"), segms))
            # join: TypeError unless every counts is a str; encode: error on non-ASCII.
            if min(map(len, counts)) == 0:
                return False
            chars = np.frombuffer("".join(counts).encode("ascii"), dtype=np.uint8)
            if chars.min() < 48 or chars.max() > 111:  # outside the RLE alphabet '0'..'o'
                return False
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return True


def _find_bad_detection(dets: list, path: str, gt: GroundTruth, need_segm: bool, check_rle_runs: bool) -> None:
    """Raise the precise error for the first bad detection (record-by-record check)."""
    sizes, cats = gt.image_sizes, gt.frequency
    isfinite = math.isfinite
    for i, d in enumerate(dets):
        try:
            if type(d) is not dict or d.get("category_id") not in cats:
                raise ValueError
            size = sizes[d["image_id"]]
            s = d["score"]
            x, y, w, h = d["bbox"]
            if not isfinite(s + x + y + w + h) or w < 0 or h < 0 or type(s) is bool:
                raise ValueError
            if need_segm:
                segm = d["segmentation"]
                counts = segm["counts"]
                if segm["size"] != size or type(counts) is not str or not counts or _BAD_RLE_CHAR.search(counts):
                    raise ValueError
                if check_rle_runs and not _rle_covers(counts, size[0] * size[1]):
                    raise ValueError
        except (ValueError, TypeError, KeyError):
            raise _explain_bad_detection(i, d, path, gt, need_segm) from None


def limit_dets_per_image(dets: Sequence[dict], max_dets: int = MAX_DETS) -> list[dict]:
    """The top ``max_dets`` detections of each image, exactly as ``LVISResults`` chooses them.

    Same order and tie-breaking as lvis 0.5.3: images in order of first appearance; an image with at
    most ``max_dets`` detections keeps its file order, a larger one is stably sorted by descending score
    and cut. (The annotation ids LVIS assigns follow this order, and break score ties later.)
    """
    per_image: dict[int, list[dict]] = {}
    for det in dets:
        per_image.setdefault(det["image_id"], []).append(det)
    out: list[dict] = []
    for anns in per_image.values():
        if len(anns) > max_dets:
            anns = sorted(anns, key=lambda a: a["score"], reverse=True)[:max_dets]
        out.extend(anns)
    return out


def federated_filter(gt: GroundTruth, dets: Sequence[dict]) -> list[dict]:
    """The detections LVIS evaluates: those whose category is in the image's ground truth or in its
    ``neg_category_ids`` (order kept). The others are neither true nor false positives."""
    allowed: dict[int, set[int]] = {img["id"]: set(img["neg_category_ids"]) for img in gt.data["images"]}
    for ann in gt.data["annotations"]:
        allowed[ann["image_id"]].add(ann["category_id"])
    return [d for d in dets if d["category_id"] in allowed[d["image_id"]]]


# --------------------------------------------------------------------------------------------------
# Summaries, per category and per bin.
# --------------------------------------------------------------------------------------------------
@dataclass
class IouTypeResult:
    """Evaluation of one iou type.

    precision: (T=10, R=101, K, A=4) float64, -1 where a category has no ground truth;
    recall: (T, K, A) float64, same convention; category_ids: (K,) ascending.
    """

    iou_type: str
    summary: dict[str, float]  # METRIC_NAMES -> value in [0, 1] or -1
    precision: Any
    recall: Any
    category_ids: list[int]


def _iou_thresholds() -> Any:
    import numpy as np

    # LVIS' Params: linspace, not arange (arange's points are slightly off).
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def _mean_valid(s: Any) -> float:
    valid = s[s > -1]
    return -1.0 if valid.size == 0 else float(valid.mean())


def summarize(precision: Any, recall: Any, freq_groups: Sequence[Sequence[int]]) -> dict[str, float]:
    """LVIS' summary rule (``LVISEval._summarize``) over precision (T,R,K,A) and recall (T,K,A):
    the mean over all entries > -1 of the selected slice; -1 when there is none.
    ``freq_groups``: category indices (into K) of r, c, f."""
    import numpy as np

    thrs = _iou_thresholds()
    out: dict[str, float] = {}
    out["AP"] = _mean_valid(precision[:, :, :, [0]])
    out["AP50"] = _mean_valid(precision[np.where(thrs == 0.50)[0]][:, :, :, [0]])
    out["AP75"] = _mean_valid(precision[np.where(thrs == 0.75)[0]][:, :, :, [0]])
    for label, a in (("APs", 1), ("APm", 2), ("APl", 3)):
        out[label] = _mean_valid(precision[:, :, :, [a]])
    for label, group in zip(("APr", "APc", "APf"), freq_groups):
        out[label] = _mean_valid(precision[:, :, list(group), [0]])
    out[f"AR@{MAX_DETS}"] = _mean_valid(recall[:, :, [0]])
    for label, a in (("ARs", 1), ("ARm", 2), ("ARl", 3)):
        out[f"{label}@{MAX_DETS}"] = _mean_valid(recall[:, :, [a]])
    return out


def freq_groups_of(gt: GroundTruth, category_ids: Sequence[int]) -> list[list[int]]:
    groups: list[list[int]] = [[] for _ in FREQUENCIES]
    for idx, cid in enumerate(category_ids):
        groups[FREQUENCIES.index(gt.frequency[cid])].append(idx)
    return groups


def per_category_ap(result: IouTypeResult) -> dict[int, float]:
    """AP (in [0, 1]) of each category over IoU 0.5:0.95, area "all"; -1 where it has no ground truth."""
    return {cid: _mean_valid(result.precision[:, :, k, 0]) for k, cid in enumerate(result.category_ids)}


def bin_summary(result: IouTypeResult, train_counts: Mapping[int, int], scheme: str = "lvis") -> dict[str, float]:
    """AP1..AP4 (in [0, 1], -1 for an empty bin): LVIS' rule applied to the categories of each bin."""
    from ltbench.evaluation.bins import BIN_SCHEMES, bins_of

    bins = bins_of(result.category_ids, train_counts, scheme)
    out = {}
    for b in range(len(BIN_SCHEMES[scheme])):
        idx = [k for k, kb in enumerate(bins) if kb == b]
        out[f"AP{b + 1}"] = _mean_valid(result.precision[:, :, idx, [0]]) if idx else -1.0
    return out


# --------------------------------------------------------------------------------------------------
# The two evaluators.
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
            from concurrent.futures import ProcessPoolExecutor

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
