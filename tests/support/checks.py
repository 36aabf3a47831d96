"""Checks of what the adapters write (detections.json, proposal_stats.npz), shared by the adapter tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from support.tiny_lvis import CATEGORY_IDS

#: the plain view
PLAIN = {"id": "plain", "name": "plain"}


def check_detections(path: Path, data, *, limit: int = 300) -> list[dict]:
    """Every entry is a valid LVIS result for the val file: known image, real category id, xywh box
    inside the image, score >= 1e-4, RLE counts as str decoding to the image size; <= limit per image."""
    from pycocotools import mask as mask_utils

    dets = json.loads(path.read_text())
    gt = json.loads(Path(data.val).read_text())
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    per_image: dict[int, int] = {}
    for d in dets:
        assert d["image_id"] in sizes
        assert d["category_id"] in CATEGORY_IDS
        x, y, w, h = d["bbox"]
        height, width = sizes[d["image_id"]]
        assert w >= 0 and h >= 0 and x >= 0 and y >= 0 and x + w <= width + 1e-3 and y + h <= height + 1e-3
        assert d["score"] >= 1e-4
        seg = d["segmentation"]
        assert isinstance(seg["counts"], str) and seg["size"] == [height, width]
        assert mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()}).shape == (height, width)
        per_image[d["image_id"]] = per_image.get(d["image_id"], 0) + 1
    assert max(per_image.values()) <= limit
    return dets


def check_outputs(out_dir: Path, *, expect_detections: bool = True) -> list[dict]:
    """detections.json entries are sane LVIS results; proposal_stats.npz rows sum to their counts."""
    dets = json.loads((out_dir / "detections.json").read_text())
    if expect_detections:
        assert dets, "no detections"
    for d in dets:
        assert d["category_id"] in CATEGORY_IDS and 1e-4 <= d["score"] <= 1.0 + 1e-6 and len(d["bbox"]) == 4
        assert np.isfinite(d["score"])
    stats = np.load(out_dir / "proposal_stats.npz")
    assert np.isfinite(stats["cm_sum"]).all()
    np.testing.assert_allclose(stats["cm_sum"].sum(axis=1), stats["cm_count"], rtol=1e-6)
    return dets

def frozen_outside_head_unchanged(stage1_state: dict, stage2_state: dict, head_prefix: str) -> None:
    """Stage 2 trains only the new head: every stage-1 tensor outside the box head is unchanged."""
    import torch

    checked = 0
    for key, value in stage1_state.items():
        if key.startswith(head_prefix) or key.endswith("num_batches_tracked"):
            continue
        assert torch.equal(value, stage2_state[key]), key
        checked += 1
    assert checked > 10


#: The AP-fixed view the adapter tests predict: per-class top 4, no per-image cap.
TOP_K_VIEW = {"id": "apfixed", "name": "plain", "detections": {"mode": "per_class_top_k", "k": 4}}


def predict_capped_and_top_k(adapter, capped_run: dict, workdir: Path, data, out: Path) -> tuple[list[dict], list[dict]]:
    """Predict the plain view of ``capped_run`` (3 detections per image) into ``out/capped`` and
    ``TOP_K_VIEW`` into ``out/topk``; both files are checked (``check_detections``, then
    ``check_per_class_top_k``) and returned as (capped, topk)."""
    adapter.predict(capped_run, PLAIN, workdir, data, split="val", out_dir=out / "capped")
    adapter.predict(capped_run, TOP_K_VIEW, workdir, data, split="val", out_dir=out / "topk")
    capped = check_detections(out / "capped" / "detections.json", data, limit=3)
    topk = check_detections(out / "topk" / "detections.json", data, limit=10**6)
    check_per_class_top_k(capped, topk, cap=3, k=4)
    return capped, topk


def check_per_class_top_k(capped: list[dict], uncapped: list[dict], *, cap: int, k: int) -> None:
    """AP-fixed mode checks: ``uncapped`` (predicted with ``detections: {mode: per_class_top_k, k}``)
    exceeds the per-image ``cap`` that ``capped`` (the plain view) obeys on some image, keeps at most ``k``
    detections per category, and those are the category's best: every capped detection of a category
    scoring above that category's k-th uncapped score is among the uncapped ones."""
    from collections import Counter

    per_image = Counter(d["image_id"] for d in uncapped)
    assert max(Counter(d["image_id"] for d in capped).values()) <= cap
    assert max(per_image.values()) > cap, "the per-image cap still applies"
    per_class = Counter(d["category_id"] for d in uncapped)
    assert max(per_class.values()) <= k
    assert all(d["score"] >= 1e-4 for d in uncapped)
    kept = {(d["image_id"], d["category_id"], round(d["score"], 6)) for d in uncapped}
    floor = {c: sorted((d["score"] for d in uncapped if d["category_id"] == c), reverse=True)[-1] for c in per_class}
    for d in capped:
        if per_class.get(d["category_id"], 0) == k and d["score"] > floor[d["category_id"]] + 1e-6:
            assert (d["image_id"], d["category_id"], round(d["score"], 6)) in kept


def check_regulariser_record(workdir: Path, family: str, *, max_iterations: int = 2) -> dict:
    """done.json's ``training.pcb`` of a family test's run (``record_regulariser``): present for PCB families,
    consistent (targets only when the regulariser was on, an off-label share only with targets), with the classes
    never seen as LVIS category ids of the tiny data; absent for the others. Returns the training block."""
    training = json.loads((workdir / "done.json").read_text())["training"]
    if not family.startswith("pcb"):
        assert "pcb" not in training
        return training
    pcb = training["pcb"]
    assert 0 <= pcb["regularised_iterations"] <= max_iterations, pcb
    assert (pcb["targets"] > 0) == (pcb["regularised_iterations"] > 0), pcb
    assert ("offlabel_pct" in pcb) == (pcb["targets"] > 0) and 0 <= pcb.get("offlabel_pct", 0) < 100, pcb
    assert set(pcb["classes_never_seen"]) <= set(CATEGORY_IDS), pcb
    if pcb["regularised_iterations"] == 0:  # the record says why, and the table's footnote reads it
        assert any("never turned on" in n for n in training.get("notes", [])), training
    return training
