"""The hand-computed AP-fixed / AP-pool case (tests/evaluation/test_ap_fixed.py has the computation)."""

from __future__ import annotations


def box_ann(ann_id, image_id, category_id, x, y, w=10, h=10):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": [x, y, w, h], "area": w * h,
            "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}


def det(image_id, category_id, x, y, score, w=10, h=10):
    return {"image_id": image_id, "category_id": category_id, "bbox": [x, y, w, h], "score": score}


def hand_case():
    """Category 1 ('f'): GT on images 1 and 2. Category 2 ('r'): GT on image 2, listed negative on image 1.

    Image 3 has no annotations and no negative list, so any detection there is not evaluated.
    """
    gt = {
        "images": [
            {"id": 1, "height": 100, "width": 100, "neg_category_ids": [2], "not_exhaustive_category_ids": []},
            {"id": 2, "height": 100, "width": 100, "neg_category_ids": [], "not_exhaustive_category_ids": []},
            {"id": 3, "height": 100, "width": 100, "neg_category_ids": [], "not_exhaustive_category_ids": []},
        ],
        "categories": [{"id": 1, "name": "a", "frequency": "f", "image_count": 2, "instance_count": 2},
                       {"id": 2, "name": "b", "frequency": "r", "image_count": 1, "instance_count": 1}],
        "annotations": [box_ann(1, 1, 1, 0, 0), box_ann(2, 2, 1, 50, 50), box_ann(3, 2, 2, 20, 70)],
    }
    dets = [
        det(1, 1, 0, 0, 0.9),     # TP for A
        det(2, 1, 80, 0, 0.8),    # FP for A (no overlap)
        det(2, 1, 50, 50, 0.7),   # TP for A
        det(1, 2, 30, 30, 0.95),  # FP for B (B is negative on image 1)
        det(2, 2, 20, 70, 0.6),   # TP for B
        det(3, 2, 0, 0, 0.99),    # image 3: B neither positive nor negative -> not evaluated
    ]
    return gt, dets


# Hand computation (IoU is 1 or 0, so every IoU threshold gives the same curve; 101 recall points):
# A ranked TP, FP, TP over 2 GT: recall .5 .5 1, precision 1 .5 2/3 -> interpolated 1 up to recall .5
#   (51 points: 0.00..0.50), 2/3 for 0.51..1.00 (50 points): AP_A = (51 + 50 * 2/3) / 101.
# B ranked FP, TP over 1 GT: precision 0, .5 -> interpolated .5 everywhere: AP_B = .5.
# Pool "all": FP(.95) TP(.9) FP(.8) TP(.7) TP(.6) over 3 GT: precision 0 .5 1/3 .5 .6 -> interpolated
#   .6 at every recall point: AP_pool = .6.
AP_A = (51 + 50 * 2 / 3) / 101
AP_B = 0.5
