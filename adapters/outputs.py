"""What prediction writes: LVIS detections and the proposal statistics of a (run, view).

- ``detections.json``: LVIS results, ``{"image_id", "category_id", "bbox" [x, y, w, h], "score",
  "segmentation" (RLE, counts as str) for mask detectors}``, at most the per-image cap per image, grouped by
  image. ``DetectionsWriter`` streams them to disk image by image (a full LVIS v1 val set is ~6M entries).
- ``proposal_stats.npz``: the confusion-matrix sums and classification outcomes of the scored RoIs
  (docs/CONTRACTS.md), accumulated by ``ProposalStats``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


def encode_mask(mask: "np.ndarray") -> dict:
    """(H, W) bool/uint8 -> LVIS RLE with ``counts`` as str."""
    import numpy as np
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def detections_for_image(
    image_id: int, boxes_xyxy: Any, scores: Any, classes: Any, category_ids: list[int], masks: Any = None, *,
    limit: int | None = 300, rles: list[dict] | None = None,
) -> list[dict]:
    """LVIS results entries for one image: top ``limit`` by score (None: all); ``classes`` are class
    indices. Segmentation from ``masks`` (N, H, W) bool, or from ready ``rles`` (N RLE dicts) when given."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")[:limit]
    out = []
    for i in order.tolist():
        x0, y0, x1, y1 = (float(v) for v in boxes_xyxy[i])
        det = {
            "image_id": int(image_id),
            "category_id": int(category_ids[int(classes[i])]),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "score": float(scores[i]),
        }
        if rles is not None:
            det["segmentation"] = rles[i]
        elif masks is not None:
            det["segmentation"] = encode_mask(np.asarray(masks[i]))
        out.append(det)
    return out


def box_iou_numpy(a: "np.ndarray", b: "np.ndarray") -> "np.ndarray":
    import numpy as np

    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(axis=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


class ProposalStats:
    """Accumulates ``proposal_stats.npz`` over images (format in docs/CONTRACTS.md).

    ``add(proposals (R,4) xyxy, probs (R, C+1) in ``background`` convention, gt_boxes (G,4), gt_classes (G,))``:
    each proposal takes the label of its best-IoU GT box when IoU >= 0.5, else -1 (background). The CM
    row of a matched proposal gets the foreground probabilities renormalised to sum 1 -- for a softmax
    head exactly the softmax over the C foreground logits, and the same quantity for any other head.
    The sums are ``ltbench.evaluation.confusion.accumulate``'s, the evaluator's own definition.
    """

    def __init__(self, category_ids: list[int], background: str) -> None:
        import numpy as np

        self.category_ids = list(category_ids)
        self.background = background
        c = len(category_ids)
        self.cm_sum = np.zeros((c, c), dtype=np.float64)
        self.cm_count = np.zeros(c, dtype=np.int64)
        self.cls_pred: list = []
        self.cls_target: list = []

    def add(self, proposals: Any, probs: Any, gt_boxes: Any, gt_classes: Any) -> None:
        import numpy as np

        from ltbench.methods.conventions import foreground_slice

        probs = np.asarray(probs, dtype=np.float64)
        c = len(self.category_ids)
        fg = probs[:, foreground_slice(c, self.background)]
        target = np.full(len(probs), -1, dtype=np.int64)
        gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
        if len(gt_boxes) and len(probs):
            iou = box_iou_numpy(proposals, gt_boxes)
            best = iou.argmax(axis=1)
            matched = iou[np.arange(len(best)), best] >= 0.5
            target[matched] = np.asarray(gt_classes, dtype=np.int64)[best[matched]]
        argmax = probs.argmax(axis=1)
        bg_index = 0 if self.background == "first" else c
        pred = np.where(argmax == bg_index, -1, argmax - (1 if self.background == "first" else 0)).astype(np.int64)
        sel = target >= 0
        matched_fg = fg[sel] / np.maximum(fg[sel].sum(axis=1, keepdims=True), 1e-12)
        from ltbench.evaluation.confusion import accumulate

        part = accumulate(matched_fg, target[sel], pred, target, c, background=None, category_ids=self.category_ids)
        self.cm_sum += part["cm_sum"]
        self.cm_count += part["cm_count"]
        self.cls_pred.append(part["cls_pred"])
        self.cls_target.append(part["cls_target"])

    def arrays(self) -> dict:
        import numpy as np

        return {
            "category_ids": np.asarray(self.category_ids, dtype=np.int64),
            "cm_sum": self.cm_sum,
            "cm_count": self.cm_count,
            "cls_pred": np.concatenate(self.cls_pred) if self.cls_pred else np.zeros(0, dtype=np.int64),
            "cls_target": np.concatenate(self.cls_target) if self.cls_target else np.zeros(0, dtype=np.int64),
        }

    def save(self, path: Path) -> Path:
        import numpy as np

        from ltbench.io import atomic_open

        with atomic_open(path, "wb") as handle:
            np.savez(handle, **self.arrays())
        return Path(path)


class DetectionsWriter:
    """``detections.json`` written image by image: the same bytes as ``json.dump(all_detections)``, without
    holding them all; the file appears atomically at ``close`` (a killed job leaves no half file)."""

    def __init__(self, path: Path) -> None:
        from ltbench.io import atomic_open

        self.path = Path(path)
        self._context = atomic_open(self.path, "w")
        self._handle = self._context.__enter__()
        self._handle.write("[")
        self.count = 0

    def write(self, detections: list[dict]) -> None:
        for det in detections:
            self._handle.write((", " if self.count else "") + json.dumps(det))
            self.count += 1

    def close(self) -> Path:
        self._handle.write("]")
        self._context.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; ``path`` is left as it was."""
        error = RuntimeError("prediction aborted")
        self._context.__exit__(RuntimeError, error, None)


def write_detections(path: Path, detections: list[dict]) -> Path:
    writer = DetectionsWriter(path)
    writer.write(detections)
    return writer.close()
