"""Synthetic LVIS-format ground truth and detections, for the evaluator's tests and speed benchmark.

Ground truth: images with polygon annotations (octagons), LVIS' federated lists (``neg_category_ids``,
``not_exhaustive_category_ids``) and categories with r/c/f frequencies in LVIS v1's proportions.
Detections: boxes and RLE masks jittered around ground-truth objects (with the right category, a
negative category or a random one) plus pure noise, with scores in (0, 1) — some of them rounded so
that score ties occur, as they do in real detector output.
"""

from __future__ import annotations

import math
from typing import Any


def _octagon(x: float, y: float, w: float, h: float) -> list[float]:
    """An octagon inscribed in the box (cut corners), as a flat polygon [x1, y1, x2, y2, ...]."""
    cx, cy = w * 0.25, h * 0.25
    return [x + cx, y, x + w - cx, y, x + w, y + cy, x + w, y + h - cy,
            x + w - cx, y + h, x + cx, y + h, x, y + h - cy, x, y + cy]


def make_ground_truth(num_images: int = 100, num_categories: int = 50, seed: int = 0,
                      max_objects: int = 12, image_size: tuple[int, int] = (240, 320)) -> dict:
    """An LVIS-format annotation dict (polygons, areas, federated lists, r/c/f frequencies)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # LVIS v1: 337 rare, 461 common, 405 frequent of 1203.
    n_r = round(num_categories * 337 / 1203)
    n_f = round(num_categories * 405 / 1203)
    freqs = ["r"] * n_r + ["c"] * (num_categories - n_r - n_f) + ["f"] * n_f
    categories = [{"id": k + 1, "name": f"cat{k + 1}", "synset": f"cat{k + 1}.n.01", "frequency": freqs[k],
                   "image_count": 0, "instance_count": 0} for k in range(num_categories)]
    # Long-tailed category popularity: frequent categories appear far more often.
    weight = np.array([{"r": 0.2, "c": 1.0, "f": 5.0}[f] for f in freqs])
    weight /= weight.sum()
    height, width = image_size
    images, annotations = [], []
    ann_id = 1
    for i in range(num_images):
        img_id = 1000 + 7 * i  # ids not contiguous, not starting at 1
        n_obj = int(rng.integers(1, max_objects + 1))
        cats = rng.choice(num_categories, size=n_obj, p=weight) + 1
        present = sorted(set(int(c) for c in cats))
        for c in cats:
            w = float(rng.uniform(8, width / 2))
            h = float(rng.uniform(8, height / 2))
            x = float(rng.uniform(0, width - w))
            y = float(rng.uniform(0, height - h))
            poly = _octagon(x, y, w, h)
            annotations.append({"id": ann_id, "image_id": img_id, "category_id": int(c),
                                "bbox": [x, y, w, h], "area": w * h * 0.875, "segmentation": [poly]})
            ann_id += 1
        absent = [k for k in range(1, num_categories + 1) if k not in present]
        neg = sorted(int(k) for k in rng.choice(absent, size=min(len(absent), int(rng.integers(0, 6))),
                                                 replace=False))
        not_exh = sorted(int(k) for k in present if rng.random() < 0.15)
        images.append({"id": img_id, "height": height, "width": width, "file_name": f"{img_id:012d}.jpg",
                       "neg_category_ids": neg, "not_exhaustive_category_ids": not_exh})
    return {"info": {"description": "ltbench synthetic LVIS"}, "images": images,
            "annotations": annotations, "categories": categories, "licenses": []}


def make_detections(gt: dict, per_image: int = 300, seed: int = 1, masks: bool = True,
                    tie_fraction: float = 0.2, extra_per_image: int = 0) -> list[dict[str, Any]]:
    """Detections in the LVIS results format for every image of ``gt``.

    ``per_image`` detections per image (plus ``extra_per_image`` low-scoring ones beyond LVIS' 300 cap,
    to exercise the truncation), each {image_id, category_id, bbox, score, segmentation (RLE)}.
    """
    import numpy as np
    import pycocotools.mask as mask_utils

    rng = np.random.default_rng(seed)
    cat_ids = [c["id"] for c in gt["categories"]]
    by_image: dict[int, list[dict]] = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    dets: list[dict[str, Any]] = []
    for img in gt["images"]:
        height, width = img["height"], img["width"]
        anns = by_image.get(img["id"], [])
        n = per_image + extra_per_image
        boxes = np.empty((n, 4))
        cats = np.empty(n, dtype=np.int64)
        kind = rng.random(n)
        for j in range(n):
            if anns and kind[j] < 0.6:
                ann = anns[int(rng.integers(len(anns)))]
                x, y, w, h = ann["bbox"]
                s = rng.normal(0, 0.12, 4)
                w2, h2 = max(1.0, w * math.exp(s[2])), max(1.0, h * math.exp(s[3]))
                x2 = min(max(0.0, x + s[0] * w), width - 1.0)
                y2 = min(max(0.0, y + s[1] * h), height - 1.0)
                boxes[j] = [x2, y2, min(w2, width - x2), min(h2, height - y2)]
                r = rng.random()
                if r < 0.7:
                    cats[j] = ann["category_id"]
                elif r < 0.85 and img["neg_category_ids"]:
                    cats[j] = img["neg_category_ids"][int(rng.integers(len(img["neg_category_ids"])))]
                else:
                    cats[j] = cat_ids[int(rng.integers(len(cat_ids)))]
            else:
                w, h = rng.uniform(4, width / 2), rng.uniform(4, height / 2)
                boxes[j] = [rng.uniform(0, width - w), rng.uniform(0, height - h), w, h]
                if img["neg_category_ids"] and rng.random() < 0.5:
                    cats[j] = img["neg_category_ids"][int(rng.integers(len(img["neg_category_ids"])))]
                else:
                    cats[j] = cat_ids[int(rng.integers(len(cat_ids)))]
        scores = rng.uniform(1e-4, 1.0, n)
        tied = rng.random(n) < tie_fraction
        scores[tied] = np.round(scores[tied], 2) + 0.001  # coarse scores collide
        scores[per_image:] *= 1e-3  # the extra ones fall below the top 300
        rles = None
        if masks:
            polys = [_octagon(*b) for b in boxes.tolist()]
            rles = mask_utils.frPyObjects(polys, height, width)
        for j in range(n):
            det: dict[str, Any] = {"image_id": img["id"], "category_id": int(cats[j]),
                                   "bbox": [round(v, 2) for v in boxes[j].tolist()], "score": float(scores[j])}
            if rles is not None:
                det["segmentation"] = {"size": [height, width], "counts": rles[j]["counts"].decode("ascii")}
            dets.append(det)
    # A detector writes images in arbitrary order; shuffle images (not within an image).
    order = rng.permutation(len(gt["images"]))
    grouped: dict[int, list[dict]] = {}
    for det in dets:
        grouped.setdefault(det["image_id"], []).append(det)
    img_ids = [gt["images"][k]["id"] for k in order]
    return [d for i in img_ids for d in grouped.get(i, [])]
