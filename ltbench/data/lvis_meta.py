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
from collections.abc import Sequence
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
    num_images: int | None = None  # training images (EQL's f_j = image_count_j / num_images); None: unknown

    @classmethod
    def from_counts(cls, *, instance_counts: list[int] | None = None, image_counts: list[int] | None = None,
                    num_images: int | None = None) -> ClassStats:
        """Statistics given as plain per-class lists (tests, hand-made heads): category ids 1..C, frequency
        groups from the image counts when given, else from the instance counts."""
        counts = instance_counts if instance_counts is not None else image_counts
        if counts is None:
            raise LtbenchError("no class counts given", key="instance_counts", expected="instance_counts or image_counts")
        c = len(counts)
        basis = image_counts if image_counts is not None else instance_counts
        return cls(
            category_ids=list(range(1, c + 1)),
            names=[str(k) for k in range(1, c + 1)],
            frequencies=[lvis_frequency(int(n)) for n in basis],
            image_counts=[int(n) for n in (image_counts if image_counts is not None else [0] * c)],
            instance_counts=[int(n) for n in (instance_counts if instance_counts is not None else [0] * c)],
            source="given",
            num_images=num_images,
        )

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


def count_from_annotations(doc: dict[str, Any], label: str = "<annotation dict>") -> tuple[dict[int, int], dict[int, int]]:
    """(images per category id, instances per category id) counted from ``doc['annotations']``.

    The one place ltbench counts training statistics: every annotation counts, tiny boxes included
    (mmdet's ``get_cat_ids`` and detectron2's repeat factors see them too; only the training targets drop
    boxes under 1 px)."""
    images: dict[int, set[int]] = {}
    instances: dict[int, int] = {}
    for i, a in enumerate(doc.get("annotations", [])):
        try:
            cid = int(a["category_id"])
        except (KeyError, TypeError, ValueError):
            raise LtbenchError("annotation without an integer category_id", path=label, key=["annotations", i],
                               expected="an object with an integer category_id") from None
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
            per_image, per_instance = count_from_annotations(doc, label)
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
        num_images=len(doc["images"]) if isinstance(doc.get("images"), list) else None,
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


def instance_bin(count: int, edges: Sequence[float], *, empty: int = -1) -> int:
    """The one binning rule of ltbench: 0-based bin of a training instance count, bin b holding
    ``edges[b-1] <= count < edges[b]`` (bin 0 from 1, the last bin open-ended).

    ``empty`` is the bin of a class without any training instance, which callers decide explicitly:
    -1 (no bin) for evaluation, where SimCal's first bin is (0, 10); BAGS puts such classes in its first
    group (``empty=0``). LVIS edges (10, 100, 1000) give AP1..AP4 and BAGS' groups 1..4 as 0..3; SimCal's
    COCO-LT bins are (20, 400, 8000).
    """
    import bisect

    if count <= 0:
        return empty
    return bisect.bisect_right(list(edges), count)
