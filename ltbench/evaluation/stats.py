"""Dataset statistics (SimCal Table 1): categories per image-count split (r/c/f) and per training
instance-count bin, for the training set and for the categories present in val ("train-on-val").

- r/c/f: the categories' ``frequency`` field (LVIS' official split, the one APr/APc/APf use); a file
  without it (COCO-LT) gets the split computed from its own training image counts with LVIS v1's
  definition: r <= 10 images, c 11–100, f > 100.
- bins: training instances counted from the annotations (see :mod:`ltbench.evaluation.bins`); categories
  without any training instance are counted apart ("0").
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import Any

from ltbench.errors import LtbenchError


def _frequency_from_images(image_count: int) -> str:
    return "r" if image_count <= 10 else ("c" if image_count <= 100 else "f")


def _check_annotation_file(data: Any, path: str) -> None:
    if not isinstance(data, dict):
        raise LtbenchError("not an LVIS/COCO annotation file", path=path,
                           expected="a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise LtbenchError(f"missing or not a list: {key!r}", path=path, key=key, expected="a list")
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int):
            raise LtbenchError("category without an integer id", path=path, key=["categories", i],
                               expected="an object with an integer 'id'")
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "category_id" not in ann or "image_id" not in ann:
            raise LtbenchError("annotation without category_id/image_id", path=path, key=["annotations", i],
                               expected="an object with 'image_id' and 'category_id'")


def _split_stats(cat_ids: list[int], freq: Mapping[int, str], counts: Mapping[int, int], scheme: str) -> dict:
    from ltbench.evaluation.bins import BIN_SCHEMES, bin_index, bin_label

    n_bins = len(BIN_SCHEMES[scheme])
    by_freq = {"r": 0, "c": 0, "f": 0}
    by_bin = {bin_label(b, scheme): 0 for b in range(n_bins)}
    zero = 0
    for cid in cat_ids:
        by_freq[freq[cid]] += 1
        b = bin_index(counts.get(cid, 0), scheme)
        if b < 0:
            zero += 1
        else:
            by_bin[bin_label(b, scheme)] += 1
    return {"total": len(cat_ids), "frequency": by_freq, "bins": by_bin, "no_instances": zero}


def dataset_statistics(ann_path: str | PathLike[str], val_path: str | PathLike[str] | None = None,
                       scheme: str = "lvis") -> dict[str, Any]:
    """{"train": {...}, "train-on-val": {...} (with ``val_path``)}, each with ``total`` categories,
    ``frequency`` {r, c, f}, ``bins`` {label: categories}, ``no_instances``, plus image and instance
    totals and where r/c/f came from (``frequency_source``)."""
    from ltbench.evaluation.bins import bin_edges
    from ltbench.evaluation.jsonload import load_json

    bin_edges(scheme)
    ann_path = str(ann_path)
    train = load_json(ann_path)
    _check_annotation_file(train, ann_path)
    cat_ids = sorted(c["id"] for c in train["categories"])
    known = set(cat_ids)
    counts: dict[int, int] = {}
    images_of: dict[int, set] = {}
    for i, ann in enumerate(train["annotations"]):
        cid = ann["category_id"]
        if cid not in known:
            raise LtbenchError(f"unknown category_id {cid!r}", path=ann_path, key=["annotations", i, "category_id"],
                               expected="an id listed in 'categories'")
        counts[cid] = counts.get(cid, 0) + 1
        images_of.setdefault(cid, set()).add(ann["image_id"])
    if all(c.get("frequency") in ("r", "c", "f") for c in train["categories"]):
        freq = {c["id"]: c["frequency"] for c in train["categories"]}
        source = "category 'frequency' field"
    else:
        freq = {cid: _frequency_from_images(len(images_of.get(cid, ()))) for cid in cat_ids}
        source = "training image counts (r <= 10, c 11-100, f > 100)"
    out: dict[str, Any] = {
        "scheme": scheme,
        "frequency_source": source,
        "train": {**_split_stats(cat_ids, freq, counts, scheme),
                  "images": len(train["images"]), "instances": len(train["annotations"])},
    }
    if val_path is not None:
        val_path = str(val_path)
        val = load_json(val_path)
        _check_annotation_file(val, val_path)
        present = sorted({a["category_id"] for a in val["annotations"]})
        unknown = [c for c in present if c not in known]
        if unknown:
            raise LtbenchError(f"{len(unknown)} val categories are not in the training file, e.g. {unknown[0]}",
                               path=val_path, key="annotations",
                               expected=f"category ids of {ann_path} (same LVIS version?)")
        out["train-on-val"] = {**_split_stats(present, freq, counts, scheme),
                               "images": len(val["images"]), "instances": len(val["annotations"])}
    return out


def format_statistics(stats: Mapping[str, Any], fmt: str = "text") -> str:
    """Render :func:`dataset_statistics` as "text", "markdown" or "json"."""
    import json

    if fmt == "json":
        return json.dumps(stats, indent=2)
    rows = []
    names = [k for k in ("train", "train-on-val") if k in stats]
    bin_labels = list(stats["train"]["bins"])
    header = ["Set", "Total", "rare", "common", "frequent", *bin_labels, "0 inst."]
    for name in names:
        s = stats[name]
        rows.append([name.capitalize() if name == "train" else "Train-on-val", str(s["total"]),
                     str(s["frequency"]["r"]), str(s["frequency"]["c"]), str(s["frequency"]["f"]),
                     *[str(s["bins"][b]) for b in bin_labels], str(s["no_instances"])])
    from tabulate import tabulate

    table = tabulate(rows, headers=header, tablefmt="pipe" if fmt == "markdown" else "simple",
                     disable_numparse=True, colalign=["left"] + ["right"] * (len(header) - 1))
    note = (f"Categories per split: r/c/f from the {stats['frequency_source']}; bins of training instances "
            f"({stats['scheme']}).")
    return table + "\n\n" + note
