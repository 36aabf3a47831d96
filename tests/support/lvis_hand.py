"""A hand-checked LVIS case (4 images, 3 categories) whose federated AP is computed by hand in
tests/evaluation/test_eval_lvis.py; also used by the confusion-matrix tests."""

from __future__ import annotations


def square(x: float, y: float, s: float) -> list[float]:
    return [x, y, x + s, y, x + s, y + s, x, y + s]


def rle(box: list[float], h: int = 100, w: int = 100) -> dict:
    import pycocotools.mask as mask_utils

    x, y, bw, bh = box
    rle = mask_utils.frPyObjects([[x, y, x + bw, y, x + bw, y + bh, x, y + bh]], h, w)[0]
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def hand_gt() -> dict:
    """4 images, 3 categories; only category 1 (frequent) has ground truth.

    I1: GT cat 1 at A.  I2: no GT, cat 1 is a verified negative.  I3: GT cat 1 at C, cat 1 not
    exhaustively annotated.  I4: no GT, nothing known about cat 1.
    """
    img = lambda i, neg, nex: {"id": i, "height": 100, "width": 100, "neg_category_ids": neg,  # noqa: E731
                               "not_exhaustive_category_ids": nex}
    return {
        "images": [img(1, [], []), img(2, [1], []), img(3, [], [1]), img(4, [], [])],
        "categories": [{"id": 1, "name": "one", "frequency": "f"}, {"id": 2, "name": "two", "frequency": "r"},
                       {"id": 3, "name": "three", "frequency": "c"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 10, 10], "area": 100,
             "segmentation": [square(10, 10, 10)]},
            {"id": 2, "image_id": 3, "category_id": 1, "bbox": [50, 50, 10, 10], "area": 100,
             "segmentation": [square(50, 50, 10)]},
        ],
    }


def det(image_id: int, cat: int, box: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": cat, "bbox": box, "score": score, "segmentation": rle(box)}


def hand_dets() -> list[dict]:
    return [
        det(1, 1, [10, 10, 10, 10], 0.9),  # TP on A
        det(2, 1, [30, 30, 10, 10], 0.8),  # FP: cat 1 is a verified negative of I2
        det(3, 1, [5, 70, 10, 10], 0.95),  # unmatched, but cat 1 is not exhaustive in I3: ignored
        det(3, 1, [50, 50, 10, 10], 0.7),  # TP on C
        det(4, 1, [20, 20, 10, 10], 0.99),  # cat 1 neither in I4's GT nor its negatives: dropped
        det(1, 3, [10, 10, 10, 10], 0.6),  # cat 3 not evaluated in I1 either
    ]
