"""LVIS inputs, read and validated: the ground truth (:class:`GroundTruth`), the detections (LVIS
results format, compressed RLE masks checked), and the detections LVIS evaluates of them (its top
300 per image, :func:`limit_dets_per_image`; its federated filter, :func:`federated_filter`).

A bad record raises ``LtbenchError`` naming its index, key and what was expected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

from ltbench.errors import LtbenchError

IOU_TYPES = ("bbox", "segm")
MAX_DETS = 300
FREQUENCIES = ("r", "c", "f")
# Compressed RLE strings (pycocotools' LEB128-like code) use the characters chr(48)..chr(111).
_BAD_RLE_CHAR = re.compile(r"[^0-o]")


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
