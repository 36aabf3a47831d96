"""The synthetic val files work in the LVIS evaluator of record, federated semantics included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ltbench.data.synth import generate


@pytest.fixture(scope="module")
def val_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "synth"
    generate(out, seed=0, preset="tiny")
    return out / "annotations" / "lvis_v1_val.json"


def _perfect_detections(doc: dict) -> list[dict]:
    from pycocotools import mask as mask_utils

    sizes = {im["id"]: (im["height"], im["width"]) for im in doc["images"]}
    dets = []
    for a in doc["annotations"]:
        h, w = sizes[a["image_id"]]
        rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], h, w))
        rle["counts"] = rle["counts"].decode("ascii")
        dets.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                     "segmentation": rle, "score": 0.9})
    return dets


def _ap(gt: Path, dets: list[dict], iou_type: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    from lvis import LVIS, LVISEval, LVISResults

    monkeypatch.setattr(np, "float", float, raising=False)  # lvis 0.5.3 uses the alias removed in numpy 1.24
    api = LVIS(str(gt))
    ev = LVISEval(api, LVISResults(api, [dict(d) for d in dets], max_dets=300), iou_type)
    ev.run()
    return ev.get_results()


def test_ground_truth_as_detections_scores_100(val_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = json.loads(val_file.read_text())
    dets = _perfect_detections(doc)
    for iou_type in ("bbox", "segm"):
        res = _ap(val_file, dets, iou_type, monkeypatch)
        for key in ("AP", "APr", "APc", "APf"):
            assert res[key] == pytest.approx(1.0), (iou_type, key, res[key])


def test_federated_semantics(val_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A confident false positive counts against a class on its verified-negative images only; on images
    where the class was never checked it is ignored, as LVIS prescribes."""
    doc = json.loads(val_file.read_text())
    dets = _perfect_detections(doc)
    pos: dict[int, set[int]] = {}
    for a in doc["annotations"]:
        pos.setdefault(a["category_id"], set()).add(a["image_id"])
    cid = doc["categories"][0]["id"]
    neg_image = next(im["id"] for im in doc["images"] if cid in im["neg_category_ids"])
    unchecked = next(im["id"] for im in doc["images"]
                     if cid not in im["neg_category_ids"] and im["id"] not in pos[cid])
    fp = {"category_id": cid, "bbox": [2.0, 2.0, 20.0, 20.0], "score": 1.0}
    ignored = _ap(val_file, dets + [{**fp, "image_id": unchecked}], "bbox", monkeypatch)
    counted = _ap(val_file, dets + [{**fp, "image_id": neg_image}], "bbox", monkeypatch)
    assert ignored["AP"] == pytest.approx(1.0)
    assert counted["AP"] < 1.0
