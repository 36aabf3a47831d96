"""A tiny synthetic LVIS-format dataset for the adapter tests.

Deliberately minimal (a handful of 64-px images, 4 categories with non-contiguous LVIS ids) so that a few
training iterations of an R-18 Mask R-CNN take seconds on one CPU thread; it makes the category-id mapping
(ids 1, 3, 7, 12: not 1..C) and the federated image lists explicit.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: LVIS category ids of the synthetic classes: deliberately not contiguous, so that an adapter that
#: confuses class index and category id produces wrong ``category_id``s in detections.json.
CATEGORY_IDS = (1, 3, 7, 12)
#: One RGB colour per category: classes are visually distinct, so a few iterations can learn them.
COLOURS = ((230, 40, 40), (40, 200, 40), (40, 60, 230), (230, 200, 30))
#: Instances per category in the train split: long-tailed (frequent ... rare).
TRAIN_SHAPE = (12, 6, 3, 1)


@dataclass(frozen=True)
class TinyData:
    """The three paths the adapters consume (same attributes as ``ltbench.data.datasets.DatasetPaths``)."""

    train: Path
    val: Path
    image_root: Path


def _polygon_rect(x0: float, y0: float, w: float, h: float) -> list[float]:
    return [x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h]


def _polygon_diamond(x0: float, y0: float, w: float, h: float) -> list[float]:
    cx, cy = x0 + w / 2, y0 + h / 2
    return [cx, y0, x0 + w, cy, cx, y0 + h, x0, cy]


def _draw(image: np.ndarray, category_index: int, x0: int, y0: int, w: int, h: int) -> list[float]:
    """Paint one object; even class indices are rectangles, odd ones diamonds. Returns its polygon."""
    from PIL import Image, ImageDraw

    poly = (_polygon_rect if category_index % 2 == 0 else _polygon_diamond)(x0, y0, w, h)
    pil = Image.fromarray(image)
    ImageDraw.Draw(pil).polygon([(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)], fill=COLOURS[category_index])
    image[...] = np.asarray(pil)
    return poly


def _split(root: Path, split: str, per_class: tuple[int, ...], size: int, seed: int, first_image_id: int) -> dict:
    from PIL import Image

    rng = np.random.default_rng(seed)
    # One object per image keeps the geometry trivial; each class gets `per_class[k]` images.
    plan = [k for k, n in enumerate(per_class) for _ in range(n)]
    rng.shuffle(plan)
    images, annotations = [], []
    for i, k in enumerate(plan):
        image_id = first_image_id + i
        pixels = np.full((size, size, 3), 90, dtype=np.uint8)
        pixels += rng.integers(0, 20, size=pixels.shape, dtype=np.uint8)
        w, h = (int(v) for v in rng.integers(size // 3, size // 2 + 1, size=2))
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        poly = _draw(pixels, k, x0, y0, w, h)
        file_name = f"{split}/{image_id:06d}.png"
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / "images" / file_name)
        others = [c for j, c in enumerate(CATEGORY_IDS) if j != k]
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": size,
                "height": size,
                # Federated lists: the other classes are verified absent, none is non-exhaustive.
                "neg_category_ids": others[:2],
                "not_exhaustive_category_ids": [],
            }
        )
        area = float(w * h) if k % 2 == 0 else float(w * h) / 2
        annotations.append(
            {
                "id": len(annotations) + 1 + first_image_id * 10,
                "image_id": image_id,
                "category_id": CATEGORY_IDS[k],
                "bbox": [float(x0), float(y0), float(w), float(h)],
                "area": area,
                "segmentation": [poly],
                "iscrowd": 0,
            }
        )
    return {"images": images, "annotations": annotations}


def make_tiny_lvis(root: Path, *, size: int = 64, seed: int = 0, val_per_class: int = 2) -> TinyData:
    """Write ``root/annotations/{train,val}.json`` and ``root/images/{train,val}/*.png``.

    Train: 22 images (12/6/3/1 per class, one object each), val: ``val_per_class`` images per class.
    Categories carry LVIS metadata (``frequency``, ``image_count``, ``instance_count``, ``synset``).
    """
    root = Path(root)
    train = _split(root, "train", TRAIN_SHAPE, size, seed, first_image_id=100)
    val = _split(root, "val", (val_per_class,) * len(CATEGORY_IDS), size, seed + 1, first_image_id=900)
    categories = []
    for k, cid in enumerate(CATEGORY_IDS):
        n = TRAIN_SHAPE[k]
        categories.append(
            {
                "id": cid,
                "name": f"class_{cid}",
                "synset": f"class_{cid}.n.01",
                "frequency": "f" if n > 10 else ("c" if n > 2 else "r"),
                "image_count": n,
                "instance_count": n,
            }
        )
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train), ("val", val)):
        doc = {"info": {"description": "ltbench adapter test data"}, "licenses": [], "categories": categories, **split}
        (root / "annotations" / f"{name}.json").write_text(json.dumps(doc))
    return TinyData(root / "annotations" / "train.json", root / "annotations" / "val.json", root / "images")
