"""Deterministic subsets of real LVIS annotation files (``ltbench data subset``), for CI on real data.

What a subset keeps:
- every category with its metadata unchanged (ids, names, synsets, r/c/f, image and instance counts of
  the full training set: class statistics stay those of LVIS);
- ``n_images`` images, each with all its fields (``neg_category_ids`` and ``not_exhaustive_category_ids``
  too, so federated evaluation works) and all its annotations;
- the r/c/f mix: the images are a seeded random sample, except that first, for each frequency group
  r, c, f that has annotations in the source, one image containing that group is taken (in the same
  seeded order), so all three groups are represented whenever the source has them.

It also names the images a user must copy, relative to the COCO image root, as
``ltbench.data.layout.image_relative_path`` gives them: coco_url's last two parts
(``train2017/000000000009.jpg``); ``file_name`` where an image has no ``coco_url``.
"""

from __future__ import annotations

import random
from os import PathLike
from pathlib import Path
from typing import Any

from ltbench.data.layout import image_relative_path
from ltbench.errors import LtbenchError
from ltbench.io import file_sha256

FREQUENCY_GROUPS = ("r", "c", "f")


def make_subset(doc: dict[str, Any], n_images: int, *, seed: int = 0, label: str = "<annotations>") -> dict[str, Any]:
    """The subset document (a new dict; ``doc`` is not modified)."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise LtbenchError(f"missing list {key!r}", path=label, key=key, expected="an LVIS annotation file")
    images = sorted(doc["images"], key=lambda im: int(im["id"]))
    if not 1 <= n_images <= len(images):
        raise LtbenchError(f"cannot keep {n_images} images", path=label, key="images",
                           expected=f"--images between 1 and {len(images)} (the file's image count)")
    frequency = {int(c["id"]): c.get("frequency") for c in doc["categories"]}
    groups_of: dict[int, set[str]] = {int(im["id"]): set() for im in images}
    for i, a in enumerate(doc["annotations"]):
        cid = int(a["category_id"])
        if cid not in frequency:
            raise LtbenchError(f"annotation uses unknown category id {cid}", path=label, key=["annotations", i, "category_id"],
                               expected="an id listed in categories")
        if frequency[cid] in FREQUENCY_GROUPS and int(a["image_id"]) in groups_of:
            groups_of[int(a["image_id"])].add(str(frequency[cid]))

    order = [int(im["id"]) for im in images]
    random.Random(seed).shuffle(order)
    chosen: list[int] = []
    covered: set[str] = set()
    for group in FREQUENCY_GROUPS:
        if group in covered or len(chosen) >= n_images:
            continue
        first = next((i for i in order if group in groups_of[i] and i not in chosen), None)
        if first is not None:
            chosen.append(first)
            covered |= groups_of[first]
    chosen_set = set(chosen)
    for i in order:
        if len(chosen_set) >= n_images:
            break
        chosen_set.add(i)

    out = {key: value for key, value in doc.items() if key not in ("images", "annotations")}
    out["images"] = [im for im in images if int(im["id"]) in chosen_set]
    out["annotations"] = [a for a in doc["annotations"] if int(a["image_id"]) in chosen_set]
    return out


def write_subset(ann: str | PathLike[str], out: str | PathLike[str], *, n_images: int, seed: int = 0,
                 image_list: str | PathLike[str] | None = None) -> dict[str, Any]:
    """Write the subset of ``ann`` to ``out`` (and the image list); returns a summary dict."""
    from ltbench.io import read_json, write_json, write_text

    doc = read_json(ann)
    if not isinstance(doc, dict):
        raise LtbenchError("not an LVIS annotation file", path=ann, expected="a JSON object with images, annotations, categories")
    sub = make_subset(doc, n_images, seed=seed, label=str(ann))
    info = dict(sub.get("info") or {})
    info["ltbench_subset"] = {"source": Path(ann).name, "source_sha256": file_sha256(Path(ann)), "images": n_images, "seed": seed}
    sub["info"] = info
    write_json(out, sub, indent=None)
    if image_list is not None:
        write_text(image_list, "".join(image_relative_path(im, source=ann) + "\n" for im in sub["images"]))
    frequency = {int(c["id"]): c.get("frequency") for c in sub["categories"]}
    with_group = {g: set() for g in FREQUENCY_GROUPS}
    for a in sub["annotations"]:
        g = frequency[int(a["category_id"])]
        if g in with_group:
            with_group[g].add(int(a["image_id"]))
    return {
        "images": len(sub["images"]),
        "annotations": len(sub["annotations"]),
        "categories": len(sub["categories"]),
        "categories_with_annotations": len({int(a["category_id"]) for a in sub["annotations"]}),
        "images_with_frequency": {g: len(s) for g, s in with_group.items()},
    }
