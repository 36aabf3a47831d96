"""LVIS-format data for training and prediction, framework-free: image records, masks and class statistics.

``load_lvis_split(annotation_file, image_root)`` reads an LVIS (or COCO) annotation file once into
``ImageRecord``s: boxes as (N, 4) xyxy float32 pixels, classes as (N,) class indices (0-based, ascending
category-id order), the raw polygons/RLE, and the image's path under ``image_root``
(``ltbench.data.layout.image_relative_path``: coco_url's last two parts, else a relative file_name). The split's
``class_stats`` (``ltbench.data.lvis_meta.ClassStats``) are counted by the one counting function of
``ltbench.data.lvis_meta``; heads and views receive them as one object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltbench.errors import LtbenchError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ltbench.data.lvis_meta import ClassStats


@dataclass
class ImageRecord:
    """One image and its instances. ``boxes`` (N, 4) xyxy float32 in pixels; ``classes`` (N,) class
    indices (0-based, category-id order); ``segmentations``: the raw LVIS polygons/RLE per instance."""

    image_id: int
    path: Path
    width: int
    height: int
    boxes: Any
    classes: Any
    segmentations: list
    category_ids: set[int]


#: Training splits drop images whose short side is under this many pixels, as mmdet's LVIS configs do
#: (``train_dataloader.dataset.filter_cfg = dict(filter_empty_gt=True, min_size=32)``), in every adapter.
TRAIN_MIN_SIDE = 32


@dataclass
class LvisSplit:
    """An LVIS-format annotation file, indexed for training/prediction."""

    annotation_file: Path
    category_ids: list[int]  # ascending; position = class index
    images: list[ImageRecord]
    class_stats: ClassStats  # counted from the file's annotations; num_images = len(images)

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    @property
    def instance_counts(self) -> list[int]:
        return self.class_stats.instance_counts

    @property
    def image_counts(self) -> list[int]:
        return self.class_stats.image_counts

    def class_index(self) -> dict[int, int]:
        return {cid: k for k, cid in enumerate(self.category_ids)}


def load_lvis_split(annotation_file: Path, image_root: Path, *, keep_empty: bool = False) -> LvisSplit:
    """Read an LVIS-format file. Boxes with width or height < 1 px are dropped from the targets (as every
    framework does); the class statistics count every annotation (``lvis_meta.count_from_annotations``).

    ``keep_empty=False`` (training) drops images without any instance and images whose short side is under
    ``TRAIN_MIN_SIDE`` px (mmdet's LVIS ``filter_cfg``); ``keep_empty=True`` (prediction) keeps every image.
    """
    import dataclasses

    import numpy as np

    from ltbench.data.layout import image_relative_path
    from ltbench.data.lvis_meta import class_stats
    from ltbench.io import read_json

    annotation_file = Path(annotation_file)
    doc = read_json(annotation_file)
    for key in ("images", "annotations", "categories"):
        if key not in doc:
            raise LtbenchError(f"no {key!r} list", path=annotation_file, key=key, expected="an LVIS-format annotation file")
    category_ids = sorted(int(c["id"]) for c in doc["categories"])
    index = {cid: k for k, cid in enumerate(category_ids)}
    by_image: dict[int, list[dict]] = {}
    for i, ann in enumerate(doc["annotations"]):
        cid = int(ann.get("category_id", -1))
        if cid not in index:
            raise LtbenchError(
                f"annotation category_id {cid} is not in categories",
                path=annotation_file,
                key=["annotations", i, "category_id"],
                expected="an id listed in categories",
            )
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    images = []
    for img in doc["images"]:
        anns = [a for a in by_image.get(int(img["id"]), []) if a["bbox"][2] >= 1 and a["bbox"][3] >= 1]
        if not keep_empty and (not anns or min(int(img["width"]), int(img["height"])) < TRAIN_MIN_SIDE):
            continue
        relative = image_relative_path(img, source=annotation_file)
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns], dtype=np.float32).reshape(-1, 4)
        classes = np.array([index[int(a["category_id"])] for a in anns], dtype=np.int64)
        images.append(
            ImageRecord(
                image_id=int(img["id"]),
                path=Path(image_root) / relative,
                width=int(img["width"]),
                height=int(img["height"]),
                boxes=boxes,
                classes=classes,
                segmentations=[a.get("segmentation") for a in anns],
                category_ids={int(a["category_id"]) for a in anns},
            )
        )
    stats = class_stats(doc, source="annotations")
    return LvisSplit(annotation_file, category_ids, images, dataclasses.replace(stats, num_images=len(images)))


def read_image(record: ImageRecord) -> "torch.Tensor":
    """(3, H, W) float32 in [0, 1], RGB."""
    import numpy as np
    import torch
    from PIL import Image

    if not record.path.is_file():
        raise LtbenchError(
            "image file not found",
            path=record.path,
            expected=f"the image of image_id {record.image_id} under the dataset's image_root",
            hint="check image_root in workflows/config/datasets.yaml (or $LTBENCH_DATA)",
        )
    with Image.open(record.path) as pil:
        array = np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def instance_masks(record: ImageRecord) -> "torch.Tensor":
    """(N, H, W) uint8 masks decoded from the LVIS polygons/RLE of ``record``."""
    import numpy as np
    import torch
    from pycocotools import mask as mask_utils

    h, w = record.height, record.width
    out = np.zeros((len(record.segmentations), h, w), dtype=np.uint8)
    for i, seg in enumerate(record.segmentations):
        if not seg:
            x0, y0, x1, y1 = record.boxes[i].round().astype(int).tolist()
            out[i, y0:y1, x0:x1] = 1
            continue
        if isinstance(seg, list):
            rles = mask_utils.frPyObjects(seg, h, w)
            rle = mask_utils.merge(rles)
        elif isinstance(seg.get("counts"), list):
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = seg
        out[i] = mask_utils.decode(rle)
    return torch.from_numpy(out)
