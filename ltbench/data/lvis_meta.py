"""Per-class statistics of an LVIS-format annotation file, in class-index order.

Class index k is the 0-based foreground index in **ascending category-id order** (docs/CONTRACTS.md);
background is not a class here (where it goes, first or last, is the caller's convention). Every list
returned has length C = number of categories in the file.

Which counts: ``source="metadata"`` reads the categories' ``image_count`` / ``instance_count`` fields
(what the official implementations read from the LVIS training json), ``source="annotations"`` counts
the file's annotations, ``source="auto"`` (default) uses the metadata when every category carries both
fields and at least one is non-zero, else the annotations. A subset of LVIS keeps the full dataset's
metadata, so ``auto`` gives the full-LVIS counts there; pass ``"annotations"`` for the subset's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from ltbench.errors import LtbenchError

Source = Literal["auto", "metadata", "annotations"]


@dataclass(frozen=True)
class ClassStats:
    """Training statistics per class, index k = k-th smallest category id.

    ``category_ids`` (C,), ``names`` (C,), ``frequencies`` (C,) 'r'/'c'/'f', ``image_counts`` (C,) and
    ``instance_counts`` (C,) as Python ints; ``source`` says where the counts came from.
    """

    category_ids: list[int]
    names: list[str]
    frequencies: list[str]
    image_counts: list[int]
    instance_counts: list[int]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def index_of(self) -> dict[int, int]:
        """category id -> class index."""
        return {cid: k for k, cid in enumerate(self.category_ids)}

    def frequency_mask(self, group: str) -> list[bool]:
        """(C,) True where the class is in LVIS frequency group ``group`` ('r', 'c' or 'f')."""
        if group not in ("r", "c", "f"):
            raise LtbenchError(f"unknown frequency group {group!r}", expected="r | c | f")
        return [f == group for f in self.frequencies]


def load(ann: str | PathLike[str] | dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(parsed annotation dict, label for errors) from a path or an already loaded dict."""
    from ltbench.io import read_json

    if isinstance(ann, dict):
        return ann, "<annotation dict>"
    doc = read_json(ann)
    if not isinstance(doc, dict) or not isinstance(doc.get("categories"), list):
        raise LtbenchError("not an LVIS/COCO annotation file", path=ann, key="categories", expected="a list of categories")
    return doc, str(Path(ann))


def lvis_frequency(image_count: int) -> str:
    """LVIS frequency group from the number of training images: r <= 10, c 11-100, f > 100."""
    return "r" if image_count <= 10 else ("c" if image_count <= 100 else "f")


def count_from_annotations(doc: dict[str, Any]) -> tuple[dict[int, int], dict[int, int]]:
    """(images per category id, instances per category id) counted from ``doc['annotations']``."""
    images: dict[int, set[int]] = {}
    instances: dict[int, int] = {}
    for a in doc.get("annotations", []):
        cid = int(a["category_id"])
        instances[cid] = instances.get(cid, 0) + 1
        images.setdefault(cid, set()).add(int(a["image_id"]))
    return {c: len(s) for c, s in images.items()}, instances


def class_stats(ann: str | PathLike[str] | dict[str, Any], *, source: Source = "auto") -> ClassStats:
    """Per-class statistics of a training annotation file (see module docstring for ``source``)."""
    doc, label = load(ann)
    cats = sorted(doc["categories"], key=lambda c: int(c["id"]))
    if not cats:
        raise LtbenchError("no categories", path=label, key="categories", expected="at least one category")
    has_meta = all(isinstance(c.get("image_count"), int) and isinstance(c.get("instance_count"), int) for c in cats)
    meta_nonzero = has_meta and any(c["image_count"] or c["instance_count"] for c in cats)
    if source == "metadata" and not has_meta:
        missing = next(i for i, c in enumerate(doc["categories"]) if not isinstance(c.get("instance_count"), int) or not isinstance(c.get("image_count"), int))
        raise LtbenchError("category metadata lacks image_count/instance_count", path=label,
                           key=["categories", missing], expected="integer image_count and instance_count",
                           hint="use source='annotations' to count them from the annotations")
    use_meta = source == "metadata" or (source == "auto" and meta_nonzero)
    if use_meta:
        image_counts = [int(c["image_count"]) for c in cats]
        instance_counts = [int(c["instance_count"]) for c in cats]
    else:
        if source == "annotations" or "annotations" in doc:
            per_image, per_instance = count_from_annotations(doc)
        else:
            raise LtbenchError("no annotations and no count metadata", path=label, key="annotations",
                               expected="annotations, or categories with image_count/instance_count")
        image_counts = [per_image.get(int(c["id"]), 0) for c in cats]
        instance_counts = [per_instance.get(int(c["id"]), 0) for c in cats]
    frequencies = [str(c["frequency"]) if c.get("frequency") in ("r", "c", "f") else lvis_frequency(n)
                   for c, n in zip(cats, image_counts)]
    return ClassStats(
        category_ids=[int(c["id"]) for c in cats],
        names=[str(c.get("name", c["id"])) for c in cats],
        frequencies=frequencies,
        image_counts=image_counts,
        instance_counts=instance_counts,
        source="metadata" if use_meta else "annotations",
    )


def instance_counts(ann: str | PathLike[str] | dict[str, Any], *, source: Source = "auto") -> list[int]:
    """(C,) training instances per class, class-index order."""
    return class_stats(ann, source=source).instance_counts


def image_counts(ann: str | PathLike[str] | dict[str, Any], *, source: Source = "auto") -> list[int]:
    """(C,) training images per class, class-index order."""
    return class_stats(ann, source=source).image_counts


def category_ids(ann: str | PathLike[str] | dict[str, Any]) -> list[int]:
    """(C,) category ids in class-index order (ascending)."""
    doc, _ = load(ann)
    return sorted(int(c["id"]) for c in doc["categories"])


def image_category_sets(ann: str | PathLike[str] | dict[str, Any]) -> tuple[list[int], list[set[int]]]:
    """(image ids in file order, category ids present in each image) — the samplers' input."""
    doc, _ = load(ann)
    image_ids = [int(im["id"]) for im in doc.get("images", [])]
    present: dict[int, set[int]] = {i: set() for i in image_ids}
    for a in doc.get("annotations", []):
        present.setdefault(int(a["image_id"]), set()).add(int(a["category_id"]))
    return image_ids, [present[i] for i in image_ids]


def instance_count_bins(counts: list[int], edges: tuple[int, ...] = (10, 100, 1000)) -> list[int]:
    """(C,) bin index per class by training instance count: bin b holds edges[b-1] <= n < edges[b].

    Defaults give SimCal's AP1..AP4 bins on LVIS (<10, 10-100, 100-1000, >=1000) and BAGS' groups 1-4
    (as 0..3); SimCal's COCO-LT bins are ``edges=(20, 400, 8000)``.
    """
    import bisect

    return [bisect.bisect_right(edges, n) for n in counts]
