"""COCO-LT: a long-tailed subset of COCO train2017 (``ltbench data coco-lt --variant bags|simcal``).

Both papers evaluate on COCO val2017; only the training set is built here.

Targets (training instances per COCO class; crowd annotations are never counted):

- ``bags`` (BAGS, supplementary 7.4.1): "sort all categories of LVIS and COCO by their number of training
  instances ... set the target training instance number per category in COCO as the training instance
  number of its corresponding category in LVIS". Assumption A1 (``align="rank"``, default): the k-th most
  frequent of the C COCO classes corresponds to the LVIS class at rank round(k * (L-1) / (C-1)) of the L
  LVIS classes sorted by training instances (evenly spaced ranks, both ends included), which is what
  sorting both lists and "aligning" them (their Fig. 6) implies. ``align="synset"`` takes the literal
  alternative: the LVIS class with the same WordNet synset (``coco_to_synset.json``); it does not give a
  long tail (COCO's classes are all frequent in LVIS) and exists for comparison. The LVIS counts come from
  the LVIS v0.5 training file (the paper's LVIS); ``count_field="image_count"`` allows category tables
  that lack instance counts (e.g. LVIS v1's published image counts), as a stated deviation.
- ``simcal`` (SimCal, Sec. 5: "following an exponential distribution on training instance statistics";
  details in a supplement we do not have). Assumption A2: with COCO classes sorted by their train2017
  instance count n_(0) >= ... >= n_(C-1), target_k = round(n_(0) * (min_count / n_(0)) ** (k / (C-1))):
  the head class keeps all its instances and the counts decay geometrically to ``min_count`` (default 1).
  With COCO's n_(0) ~ 262k this spreads the 80 classes about evenly over SimCal's COCO-LT bins (<20,
  20-400, 400-8000, >=8000 instances), each a factor 20 wide.

Sampling (both variants; BAGS: "We make use of as many instances in a sampled image as possible. Training
instances in a sampled image will only be ignored when there are plenty of instances belonging to that
category"): classes are visited from the smallest target up (ties: category id); while a class is below
its target, a not yet selected image containing it is drawn (seeded order); every instance in a drawn image
is kept unless its class already reached its target (then it is dropped: assumption A3, the papers do not
say whether "ignored" means removed or marked ignore). Crowd annotations of selected images are kept as
they are (ignore regions). A class whose target exceeds what COCO has gets all it has (reported).
Deterministic: the same input, variant, options and seed give the same file.
"""

from __future__ import annotations

import hashlib
import random
from os import PathLike
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError


def _lvis_counts(lvis: Any, count_field: str, label: str) -> list[dict[str, Any]]:
    cats = lvis.get("categories") if isinstance(lvis, dict) else lvis
    if not isinstance(cats, list) or not cats:
        raise LtbenchError("no LVIS categories", path=label, key="categories", expected="an LVIS file or a list of categories")
    for i, c in enumerate(cats):
        if not isinstance(c.get(count_field), int):
            raise LtbenchError(f"category has no integer {count_field!r}", path=label, key=["categories", i, count_field],
                               expected=f"every category with {count_field}",
                               hint="pass the LVIS training annotation file, or --count-field image_count")
    if not any(c[count_field] for c in cats):
        raise LtbenchError(f"every {count_field} is 0 (a validation file?)", path=label, key=count_field,
                           expected="training counts (lvis_v0.5_train.json)")
    return cats


def _coco_counts(coco: dict[str, Any], label: str) -> tuple[dict[int, int], dict[int, list[dict[str, Any]]]]:
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise LtbenchError(f"missing list {key!r}", path=label, key=key, expected="a COCO instances file")
    known = {int(c["id"]) for c in coco["categories"]}
    counts = {cid: 0 for cid in known}
    per_image: dict[int, list[dict[str, Any]]] = {}
    for i, a in enumerate(coco["annotations"]):
        cid = int(a["category_id"])
        if cid not in known:
            raise LtbenchError(f"unknown category id {cid}", path=label, key=["annotations", i, "category_id"],
                               expected="an id listed in categories")
        if a.get("iscrowd", 0):
            continue
        counts[cid] += 1
        per_image.setdefault(int(a["image_id"]), []).append(a)
    return counts, per_image


def targets_bags(coco_counts: dict[int, int], coco_categories: list[dict[str, Any]], lvis_cats: list[dict[str, Any]],
                 *, count_field: str = "instance_count", align: str = "rank", synset_map: dict[str, Any] | None = None,
                 label: str = "<lvis>") -> dict[int, int]:
    """COCO category id -> target training instances (before capping at what COCO has)."""
    if align == "rank":
        coco_sorted = sorted(coco_counts, key=lambda cid: (-coco_counts[cid], cid))
        lvis_sorted = sorted((int(c[count_field]) for c in lvis_cats), reverse=True)
        n, m = len(coco_sorted), len(lvis_sorted)
        if n == 1:
            return {coco_sorted[0]: lvis_sorted[0]}
        return {cid: lvis_sorted[round(k * (m - 1) / (n - 1))] for k, cid in enumerate(coco_sorted)}
    if align == "synset":
        if synset_map is None:
            from ltbench.io import read_json
            from ltbench.paths import LVIS_SAMPLES_DIR

            synset_map = read_json(LVIS_SAMPLES_DIR / "coco_to_synset.json")
        by_coco_id = {int(v["coco_cat_id"]): v["synset"] for v in synset_map.values()}
        by_synset = {c.get("synset"): int(c[count_field]) for c in lvis_cats}
        out = {}
        for c in coco_categories:
            synset = by_coco_id.get(int(c["id"]))
            if synset not in by_synset:
                raise LtbenchError(f"COCO category {c.get('name')!r} (id {c['id']}) has no LVIS category with synset {synset!r}",
                                   path=label, key="categories", expected="the LVIS categories of the synset map")
            out[int(c["id"])] = by_synset[synset]
        return out
    raise LtbenchError(f"unknown align {align!r}", key="align", expected="rank | synset")


def targets_simcal(coco_counts: dict[int, int], *, min_count: int = 1) -> dict[int, int]:
    """COCO category id -> target: geometric decay from the head class's count down to ``min_count``."""
    if min_count < 1:
        raise LtbenchError(f"min_count={min_count}", key="min_count", expected="an integer >= 1")
    order = sorted(coco_counts, key=lambda cid: (-coco_counts[cid], cid))
    head = max(coco_counts[order[0]], min_count)
    n = len(order)
    if n == 1:
        return {order[0]: head}
    return {cid: max(min_count, int(round(head * (min_count / head) ** (k / (n - 1))))) for k, cid in enumerate(order)}


def sample_to_targets(per_image: dict[int, list[dict[str, Any]]], targets: dict[int, int], *, seed: int = 0
                      ) -> tuple[list[int], list[dict[str, Any]], dict[int, int]]:
    """Greedy image sampling (module docstring). Returns (selected image ids, kept non-crowd annotations,
    kept count per category id)."""
    rng = random.Random(seed)
    images_of: dict[int, list[int]] = {cid: [] for cid in targets}
    for image_id in sorted(per_image):
        for cid in sorted({int(a["category_id"]) for a in per_image[image_id]}):
            images_of.setdefault(cid, []).append(image_id)
    kept_count = {cid: 0 for cid in targets}
    selected: set[int] = set()
    kept: list[dict[str, Any]] = []
    for cid in sorted(targets, key=lambda c: (targets[c], c)):
        candidates = list(images_of.get(cid, []))
        rng.shuffle(candidates)
        for image_id in candidates:
            if kept_count[cid] >= targets[cid]:
                break
            if image_id in selected:
                continue
            selected.add(image_id)
            for a in sorted(per_image[image_id], key=lambda a: int(a["id"])):
                d = int(a["category_id"])
                if kept_count.get(d, 0) < targets.get(d, 0):
                    kept.append(a)
                    kept_count[d] += 1
    return sorted(selected), sorted(kept, key=lambda a: int(a["id"])), kept_count


def build_coco_lt(coco: dict[str, Any], variant: str, *, lvis_categories: Any = None, count_field: str = "instance_count",
                  align: str = "rank", min_count: int = 1, seed: int = 0, coco_label: str = "<coco>",
                  lvis_label: str = "<lvis>") -> tuple[dict[str, Any], dict[str, Any]]:
    """(COCO-LT annotation dict, report with per-class target/available/kept)."""
    from ltbench.data.lvis_meta import lvis_frequency
    from ltbench.data.layout import image_relative_path

    counts, per_image = _coco_counts(coco, coco_label)
    if variant == "bags":
        if lvis_categories is None:
            raise LtbenchError("COCO-LT (bags) needs LVIS training counts", key="--lvis-categories",
                               expected="the LVIS v0.5 training annotation file",
                               hint="pass --lvis-categories lvis_v0.5_train.json")
        lvis_cats = _lvis_counts(lvis_categories, count_field, lvis_label)
        raw = targets_bags(counts, coco["categories"], lvis_cats, count_field=count_field, align=align, label=lvis_label)
    elif variant == "simcal":
        raw = targets_simcal(counts, min_count=min_count)
    else:
        raise LtbenchError(f"unknown variant {variant!r}", key="variant", expected="bags | simcal")
    targets = {cid: min(t, counts[cid]) for cid, t in raw.items()}
    selected, kept, kept_count = sample_to_targets(per_image, targets, seed=seed)
    selected_set = set(selected)
    crowd = [a for a in coco["annotations"] if a.get("iscrowd", 0) and int(a["image_id"]) in selected_set]
    annotations = sorted(kept + crowd, key=lambda a: int(a["id"]))

    image_count: dict[int, set[int]] = {cid: set() for cid in counts}
    for a in kept:
        image_count[int(a["category_id"])].add(int(a["image_id"]))
    categories = []
    for c in sorted(coco["categories"], key=lambda c: int(c["id"])):
        cid = int(c["id"])
        categories.append({**c, "image_count": len(image_count[cid]), "instance_count": kept_count[cid],
                           "frequency": lvis_frequency(len(image_count[cid]))})
    images = []
    for im in sorted(coco["images"], key=lambda im: int(im["id"])):
        if int(im["id"]) in selected_set:
            images.append({**im, "file_name": image_relative_path(im, source=coco_label)})
    info = dict(coco.get("info") or {})
    info["ltbench_coco_lt"] = {
        "variant": variant, "seed": seed, "align": align if variant == "bags" else None,
        "count_field": count_field if variant == "bags" else None,
        "min_count": min_count if variant == "simcal" else None,
        "note": "file_name is relative to the COCO image root (train2017/...); see ltbench/data/coco_lt.py",
    }
    doc = {"info": info, "licenses": coco.get("licenses", []), "categories": categories, "images": images,
           "annotations": annotations}
    report = {
        cid: {"target": raw[cid], "available": counts[cid], "kept": kept_count[cid]} for cid in sorted(counts)
    }
    return doc, report


def write_coco_lt(coco_path: str | PathLike[str], out: str | PathLike[str], *, variant: str,
                  lvis_categories: str | PathLike[str] | None = None, count_field: str = "instance_count",
                  align: str = "rank", min_count: int = 1, seed: int = 0) -> dict[str, Any]:
    """Read COCO (and LVIS) files, write COCO-LT to ``out``; returns a summary dict."""
    from ltbench.io import read_json, write_json

    coco = read_json(coco_path)
    lvis = read_json(lvis_categories) if lvis_categories is not None else None
    doc, report = build_coco_lt(coco, variant, lvis_categories=lvis, count_field=count_field, align=align,
                                min_count=min_count, seed=seed, coco_label=str(coco_path),
                                lvis_label=str(lvis_categories))
    h = hashlib.sha256(Path(coco_path).read_bytes()).hexdigest()
    doc["info"]["ltbench_coco_lt"]["source_sha256"] = h
    write_json(out, doc, indent=None)
    kept = [r["kept"] for r in report.values()]
    return {
        "images": len(doc["images"]),
        "annotations": sum(kept),
        "categories": len(doc["categories"]),
        "max_count": max(kept),
        "min_count": min(kept),
        "short_classes": sum(1 for r in report.values() if r["kept"] < r["target"]),
        "report": report,
    }
