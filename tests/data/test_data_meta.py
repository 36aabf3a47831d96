"""Per-class statistics in class-index order (ascending category id) from LVIS-format files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltbench.data import lvis_meta
from ltbench.errors import LtbenchError


def _doc(with_meta: bool = True) -> dict:
    # Categories deliberately out of id order; metadata counts differ from the annotations (as in a subset).
    cats = [
        {"id": 30, "name": "c30", "frequency": "f", "image_count": 500, "instance_count": 2000},
        {"id": 4, "name": "c4", "frequency": "r", "image_count": 2, "instance_count": 3},
        {"id": 17, "name": "c17", "frequency": "c", "image_count": 40, "instance_count": 90},
    ]
    if not with_meta:
        cats = [{"id": c["id"], "name": c["name"]} for c in cats]
    images = [{"id": i} for i in (5, 1, 9)]
    anns = [
        {"id": 1, "image_id": 5, "category_id": 30},
        {"id": 2, "image_id": 5, "category_id": 30},
        {"id": 3, "image_id": 1, "category_id": 30},
        {"id": 4, "image_id": 1, "category_id": 4},
    ]
    return {"categories": cats, "images": images, "annotations": anns}


def test_class_index_order_and_metadata_source() -> None:
    s = lvis_meta.class_stats(_doc())
    assert s.category_ids == [4, 17, 30] and s.names == ["c4", "c17", "c30"]
    assert s.source == "metadata"
    assert s.instance_counts == [3, 90, 2000] and s.image_counts == [2, 40, 500]
    assert s.frequencies == ["r", "c", "f"]
    assert s.index_of() == {4: 0, 17: 1, 30: 2}
    assert s.frequency_mask("r") == [True, False, False]
    with pytest.raises(LtbenchError):
        s.frequency_mask("x")


def test_counts_from_annotations() -> None:
    s = lvis_meta.class_stats(_doc(), source="annotations")
    assert s.source == "annotations"
    assert s.instance_counts == [1, 0, 3] and s.image_counts == [1, 0, 2]
    # Without metadata, auto counts the annotations and derives r/c/f from the image counts.
    auto = lvis_meta.class_stats(_doc(with_meta=False))
    assert auto.source == "annotations" and auto.instance_counts == [1, 0, 3] and auto.frequencies == ["r", "r", "r"]
    with pytest.raises(LtbenchError, match=r"categories\[0\]: category metadata lacks"):
        lvis_meta.class_stats(_doc(with_meta=False), source="metadata")


def test_real_sample_metadata_agrees_with_annotations(lvis_samples: Path) -> None:
    path = lvis_samples / "lvis_v0.5_val_100.json"
    meta = lvis_meta.class_stats(path)  # the sample's category counts describe its own 100 images
    counted = lvis_meta.class_stats(path, source="annotations")
    assert meta.source == "metadata" and counted.source == "annotations" and meta.num_classes == 1230
    assert meta.instance_counts == counted.instance_counts and sum(counted.instance_counts) == 977
    assert meta.image_counts == counted.image_counts
    assert meta.category_ids == sorted(meta.category_ids)
    assert meta.frequencies.count("r") > 0 and set(meta.frequencies) == {"r", "c", "f"}


def test_all_zero_metadata_falls_back_to_annotations() -> None:
    doc = _doc()
    for c in doc["categories"]:
        c["image_count"] = c["instance_count"] = 0
    s = lvis_meta.class_stats(doc)
    assert s.source == "annotations" and s.instance_counts == [1, 0, 3]
    assert s.frequencies == ["r", "c", "f"]  # the file's r/c/f labels are kept
    assert lvis_meta.instance_counts(doc, source="metadata") == [0, 0, 0]


def test_synthetic_training_file(tmp_path: Path) -> None:
    from ltbench.data.synth import generate

    generate(tmp_path / "s", preset="tiny")
    path = tmp_path / "s/annotations/lvis_v1_train.json"
    meta = lvis_meta.class_stats(path)
    counted = lvis_meta.class_stats(path, source="annotations")
    assert meta.source == "metadata" and meta.instance_counts == counted.instance_counts
    assert meta.image_counts == counted.image_counts
    ids, sets = lvis_meta.image_category_sets(path)
    assert len(ids) == 130 and all(sets)
    for k, cid in enumerate(meta.category_ids):
        assert sum(cid in s for s in sets) == meta.image_counts[k]


def test_image_category_sets_and_ids() -> None:
    ids, sets = lvis_meta.image_category_sets(_doc())
    assert ids == [5, 1, 9] and sets == [{30}, {30, 4}, set()]
    assert lvis_meta.category_ids(_doc()) == [4, 17, 30]


def test_bins_and_frequency() -> None:
    assert [lvis_meta.instance_bin(n, (10, 100, 1000), empty=0) for n in [0, 9, 10, 99, 100, 999, 1000, 5000]] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [lvis_meta.instance_bin(n, (20, 400, 8000)) for n in [19, 20, 8000]] == [0, 1, 3]
    assert [lvis_meta.lvis_frequency(n) for n in (1, 10, 11, 100, 101)] == ["r", "r", "c", "c", "f"]


def test_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(LtbenchError, match="not an LVIS/COCO annotation file"):
        lvis_meta.class_stats(bad)
    with pytest.raises(LtbenchError, match="file not found"):
        lvis_meta.class_stats(tmp_path / "missing.json")
