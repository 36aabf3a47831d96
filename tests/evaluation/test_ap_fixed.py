"""AP-fixed / AP-pool (ltbench.evaluation.ap_fixed) against a hand-computed case and the LVIS API."""

from __future__ import annotations

import random

import pytest

from ltbench.errors import LtbenchError
from ltbench.evaluation.ap_fixed import evaluate_fixed, pooled_precision, top_k_per_class
from support.ap_fixed_case import AP_A, AP_B, box_ann, det, hand_case


def test_hand_computed_case():
    gt, dets = hand_case()
    m = evaluate_fixed("<gt>", "<dets>", ("bbox",), gt_data=gt, dets_data=dets)
    assert m["bbox.APfixed"] == pytest.approx(100 * (AP_A + AP_B) / 2)
    assert m["bbox.APfixed_f"] == pytest.approx(100 * AP_A)
    assert m["bbox.APfixed_r"] == pytest.approx(100 * AP_B)
    assert m["bbox.APfixed_c"] == -1.0 and m["bbox.APpool_c"] == -1.0
    assert m["bbox.APpool"] == pytest.approx(60.0)
    assert m["bbox.APpool_f"] == pytest.approx(100 * AP_A)  # a one-category pool is that category's AP
    assert m["bbox.APpool_r"] == pytest.approx(50.0)


def test_per_class_budget_is_applied():
    gt, dets = hand_case()
    # K = 2: A keeps TP(.9) and FP(.8) -> recall reaches only .5: AP_A = 51/101; B keeps its two
    # highest: image 3's (not evaluated) and FP(.95) -> AP_B = 0.
    m = evaluate_fixed("<gt>", "<dets>", ("bbox",), gt_data=gt, dets_data=dets, dets_per_class=2)
    assert m["bbox.APfixed_f"] == pytest.approx(100 * 51 / 101)
    assert m["bbox.APfixed_r"] == pytest.approx(0.0)
    # pool: FP(.95) TP(.9) FP(.8) over 3 GT: precision 0 .5 1/3 -> .5 up to recall 1/3 (34 points)
    assert m["bbox.APpool"] == pytest.approx(100 * 0.5 * 34 / 101)


def test_no_per_image_cap(tmp_path):
    """Standard LVIS evaluation keeps the top 300 per image; AP-fixed keeps everything within the class budget."""
    import json

    from ltbench.evaluation.lvis_eval import evaluate

    gt, dets = hand_case()
    # 400 false positives of category 1 on image 1, all scored above A's true positive there (.9):
    # image 1 then has 402 detections and a 300 cap drops that true positive.
    extra = [det(1, 1, 60, 60 + (i % 30), 0.91 + i * 1e-5) for i in range(400)]
    fixed = evaluate_fixed("<gt>", "<dets>", ("bbox",), gt_data=gt, dets_data=dets + extra)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets + extra))
    standard = evaluate(tmp_path / "gt.json", tmp_path / "dets.json", iou_types=("bbox",))
    # A ranked: 400 FP, TP(.9), FP(.8), TP(.7) over 2 GT -> precision 1/401 at recall .5, 2/403 at 1;
    # interpolation takes the better 2/403 at every recall point
    assert fixed["bbox.APfixed_f"] == pytest.approx(100 * 2 / 403)
    # standard: image 1 keeps its top 300 (B's FP at .95 and 299 of A's FPs), so A's TP there is gone:
    # 299 FP, FP(.8), TP(.7) -> precision 1/301 up to recall .5, nothing beyond
    assert standard["bbox.APf"] == pytest.approx(100 * 51 / 301 / 101)
    assert standard["bbox.APr"] == pytest.approx(fixed["bbox.APfixed_r"])  # B untouched


def test_top_k_per_class_keeps_order_and_ties():
    dets = [det(1, 1, 0, 0, s) for s in (0.5, 0.9, 0.5, 0.7)] + [det(1, 2, 0, 0, 0.1)]
    kept = top_k_per_class(dets, 2)
    assert [d["score"] for d in kept if d["category_id"] == 1] == [0.9, 0.7]
    kept = top_k_per_class(dets, 3)
    ones = [d for d in kept if d["category_id"] == 1]
    assert [d["score"] for d in ones] == [0.9, 0.7, 0.5] and ones[2] is not dets[0]  # copies, stable tie
    assert len(top_k_per_class(dets)) == 5
    with pytest.raises(LtbenchError, match="dets_per_class"):
        top_k_per_class(dets, 0)


def random_case(seed):
    rng = random.Random(seed)
    images = [{"id": i, "height": 64, "width": 64, "neg_category_ids": [], "not_exhaustive_category_ids": []}
              for i in range(1, 7)]
    cats = [{"id": c, "name": f"c{c}", "frequency": "rcf"[c % 3]} for c in range(1, 6)]
    anns, dets = [], []
    for img in images:
        for c in rng.sample(range(1, 6), 2):
            x, y = rng.randint(0, 40), rng.randint(0, 40)
            anns.append(box_ann(len(anns) + 1, img["id"], c, x, y, 16, 16))
            for _ in range(3):
                dets.append(det(img["id"], c, x + rng.randint(-6, 6), y + rng.randint(-6, 6), rng.random(), 16, 16))
        img["neg_category_ids"] = [c for c in range(1, 6) if rng.random() < 0.3 and
                                   all(a["category_id"] != c or a["image_id"] != img["id"] for a in anns)]
        for c in img["neg_category_ids"]:
            dets.append(det(img["id"], c, rng.randint(0, 40), rng.randint(0, 40), rng.random(), 16, 16))
    return {"images": images, "categories": cats, "annotations": anns}, dets


@pytest.mark.parametrize("seed", [0, 1])
def test_fixed_equals_lvis_api_when_no_cap_binds(seed, tmp_path):
    """With few detections per image neither budget binds: AP-fixed == the LVIS API's AP (and r/c/f)."""
    import json

    from ltbench.evaluation.lvis_eval import evaluate

    gt, dets = random_case(seed)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    standard = evaluate(tmp_path / "gt.json", tmp_path / "dets.json", iou_types=("bbox",))
    fixed = evaluate_fixed(tmp_path / "gt.json", tmp_path / "dets.json", ("bbox",))
    for ours, theirs in (("APfixed", "AP"), ("APfixed_r", "APr"), ("APfixed_c", "APc"), ("APfixed_f", "APf")):
        assert fixed[f"bbox.{ours}"] == pytest.approx(standard[f"bbox.{theirs}"], abs=1e-9), ours
    # pooling is not averaging: AP-pool differs from AP-fixed on random scores
    assert fixed["bbox.APpool"] != pytest.approx(fixed["bbox.APfixed"], abs=1e-6)


def test_pooled_precision_edge_cases():
    import numpy as np

    assert pooled_precision([], 1, [0.0, 1.0]) is None
    only_ignored = {"dt_scores": [0.5], "dt_matches": np.zeros((1, 1)), "dt_ignore": np.zeros((1, 1)),
                    "gt_ignore": np.array([1])}
    assert pooled_precision([only_ignored], 1, [0.0, 1.0]) is None
    no_dets = {"dt_scores": [], "dt_matches": np.zeros((1, 0)), "dt_ignore": np.zeros((1, 0)), "gt_ignore": np.array([0])}
    precision, recall = pooled_precision([no_dets], 1, [0.0, 1.0])
    assert precision.tolist() == [[0.0, 0.0]] and recall.tolist() == [0.0]


def test_bad_arguments():
    gt, dets = hand_case()
    with pytest.raises(LtbenchError, match="unknown iou type"):
        evaluate_fixed("<gt>", None, ("keypoints",), gt_data=gt, dets_data=dets)
    with pytest.raises(LtbenchError, match="unknown AP-pool pool"):
        evaluate_fixed("<gt>", None, ("bbox",), gt_data=gt, dets_data=dets, pools=("all", "rare"))


def test_fixed_is_per_class_and_pool_rewards_cross_class_calibration():
    """The defining property: rescaling one category's scores (a monotone map) leaves every per-class
    ranking -- so AP-fixed -- unchanged, but moves that category within the pooled ranking."""
    gt, dets = random_case(3)
    base = evaluate_fixed("<gt>", None, ("bbox",), gt_data=gt, dets_data=dets)
    rescaled = [dict(d, score=d["score"] * 0.01) if d["category_id"] == 1 else d for d in dets]
    moved = evaluate_fixed("<gt>", None, ("bbox",), gt_data=gt, dets_data=rescaled)
    for key in ("bbox.APfixed", "bbox.APfixed_r", "bbox.APfixed_c", "bbox.APfixed_f"):
        assert moved[key] == pytest.approx(base[key], abs=1e-12), key
    assert moved["bbox.APpool"] != pytest.approx(base["bbox.APpool"], abs=1e-6)
    # a common monotone map of all scores changes nothing at all
    squared = [dict(d, score=d["score"] ** 2) for d in dets]
    assert evaluate_fixed("<gt>", None, ("bbox",), gt_data=gt, dets_data=squared) == pytest.approx(base)


def test_segm_matches_bbox_on_box_shaped_masks():
    from pycocotools import mask as mask_utils

    gt, dets = hand_case()
    sized = []
    for d in dets:
        x, y, w, h = d["bbox"]
        rle = mask_utils.merge(mask_utils.frPyObjects([[x, y, x + w, y, x + w, y + h, x, y + h]], 100, 100))
        sized.append(dict(d, segmentation={"size": rle["size"], "counts": rle["counts"].decode("ascii")}))
    m = evaluate_fixed("<gt>", None, ("bbox", "segm"), gt_data=gt, dets_data=sized)
    assert m["segm.APfixed"] == pytest.approx(100 * (AP_A + AP_B) / 2)
    assert m["segm.APpool"] == pytest.approx(60.0)
    assert {k.split(".", 1)[1] for k in m if k.startswith("segm.")} == {k.split(".", 1)[1] for k in m if k.startswith("bbox.")}


def test_module_cli(tmp_path, capsys):
    import json

    from ltbench.evaluation.ap_fixed import main

    gt, dets = hand_case()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    out = tmp_path / "m.json"
    assert main([str(tmp_path / "gt.json"), str(tmp_path / "dets.json"), "--iou-types", "bbox", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["bbox.APpool"] == pytest.approx(60.0) and json.loads(capsys.readouterr().out) == written
    assert main([str(tmp_path / "gt.json"), str(tmp_path / "missing.json"), "--iou-types", "bbox"]) == 2
    assert "error:" in capsys.readouterr().err
