"""Cost model: GPU-hours per run (paper scale) and CPU-hours (smoke scale).

Assumptions (estimates, not measurements of ours; change them here and in FORMAT.md together):

- Base cost: Mask R-CNN R-50-FPN, LVIS, 800-px multi-scale training on a V100 costs 0.30 GPU-seconds
  per training image, counting every GPU (mmdet 2.x reports ~0.5-0.6 s per iteration of 2 images per GPU
  on LVIS; 1203/1230-class heads and 300 detections make LVIS slower than COCO).
- Detector factor: Faster R-CNN 0.8, Mask R-CNN 1.0, Cascade R-CNN 1.3, Cascade Mask R-CNN 1.5, HTC 2.5.
- Backbone factor: R-18 0.7, R-50 1.0, R-101 1.3, X-101-32x8d 2.2, X-101-64x4d 2.4; DCN adds 0.15.
- Head factor: PCB's iterative head and DSN run the box head 3 times: 1.1.
- Stage-2 runs (frozen backbone, classifier retraining): 0.6 of the per-image cost.
- Images seen = iterations x batch: an RFS epoch's enlargement is already in the iterations of epoch
  schedules (``scales.epoch_images``); iteration-based schedules (detectron2) are not enlarged.
- Post-hoc stage-2 methods (``tau_norm``, ``ncm``; ``vocab.POST_HOC_STAGE2``) train nothing: zero
  iterations. NCM's class means need one forward pass over the training images, counted like evaluation
  (0.15 GPU-seconds per image; 60 CPU-seconds at smoke scale); tau-norm only rescales weights (no cost).
- Dataset sizes: ``scales.DATASET_IMAGES`` with the sentence each comes from in ``scales.DATASET_SOURCES``
  (BAGS COCO-LT 9100 train / 5000 val, BAGS Supp. 7.4.1; SimCal COCO-LT "about 100k images", SimCal Sec. 5.1,
  taken as training images since no split is given, evaluated on COCO minival, 5000 images).
- Evaluation: 0.15 GPU-seconds per validation image per view (300 detections, masks pasted).
- Smoke scale: 0.9 CPU-seconds per iteration of 4 images (tiny R-18-FPN model, research/ecosystem_facts.md)
  scaled by batch size, plus 60 CPU-seconds per view for prediction and evaluation.
"""

from __future__ import annotations

from typing import Any

from ltbench.plan.scales import train_images, val_images

SECONDS_PER_IMAGE = 0.30
DETECTOR_FACTOR = {
    "faster_rcnn": 0.8, "mask_rcnn": 1.0, "cascade_rcnn": 1.3, "cascade_mask_rcnn": 1.5, "htc": 2.5,
}
BACKBONE_FACTOR = {"r18": 0.7, "r50": 1.0, "r101": 1.3, "x101_32x8d": 2.2, "x101_64x4d": 2.4}
DCN_EXTRA = 0.15
MULTI_STEP_HEAD_FACTOR = 1.1
STAGE2_FACTOR = 0.6
EVAL_SECONDS_PER_IMAGE = 0.15
SMOKE_SECONDS_PER_ITERATION_OF_4 = 0.9
SMOKE_SECONDS_PER_VIEW = 60.0


def backbone_factor(backbone: str) -> float:
    base = backbone.replace("_fpn", "").replace("_dcn", "")
    factor = BACKBONE_FACTOR.get(base, 1.0)
    return factor + (DCN_EXTRA if "dcn" in backbone else 0.0)


def images_seen(config: dict[str, Any]) -> float:
    schedule = config["schedule"]
    return float(schedule["iterations"] * schedule["batch_size"])


def run_gpu_hours(config: dict[str, Any], n_views: int = 1) -> float:
    """Estimated GPU-hours of one run at paper scale, including evaluation of ``n_views`` views."""
    per_image = SECONDS_PER_IMAGE * DETECTOR_FACTOR.get(config["detector"], 1.0) * backbone_factor(config["backbone"])
    if (config.get("head") or {}).get("name") in ("iterative", "dsn"):
        per_image *= MULTI_STEP_HEAD_FACTOR
    if config.get("stage2"):
        per_image *= STAGE2_FACTOR
    train_seconds = images_seen(config) * per_image
    if (config.get("stage2") or {}).get("name") == "ncm":
        train_seconds += train_images(config["dataset"]) * EVAL_SECONDS_PER_IMAGE  # the class-mean pass
    eval_seconds = n_views * val_images(config["dataset"]) * EVAL_SECONDS_PER_IMAGE
    return (train_seconds + eval_seconds) / 3600.0


def run_cpu_hours(config: dict[str, Any], n_views: int = 1) -> float:
    """Estimated CPU-hours of one run at smoke scale (2 cores)."""
    schedule = config["schedule"]
    seconds = schedule["iterations"] * SMOKE_SECONDS_PER_ITERATION_OF_4 * schedule["batch_size"] / 4
    if (config.get("stage2") or {}).get("name") == "ncm":
        seconds += SMOKE_SECONDS_PER_VIEW  # the class-mean pass over the (small) training set
    return (seconds + n_views * SMOKE_SECONDS_PER_VIEW) / 3600.0


def estimate(config: dict[str, Any], n_views: int = 1) -> dict[str, float]:
    """``{"gpu_hours": ..., "cpu_hours": ...}`` for the run's scale (the other one is 0)."""
    if config.get("scale") == "paper":
        return {"gpu_hours": round(run_gpu_hours(config, n_views), 2), "cpu_hours": 0.0}
    return {"gpu_hours": 0.0, "cpu_hours": round(run_cpu_hours(config, n_views), 4)}


def dataset_note(dataset: str) -> str:
    """``"9100 train / 5000 val images (source)"``: the size the cost model uses and where it comes from."""
    from ltbench.plan.scales import DATASET_SOURCES

    source = DATASET_SOURCES.get(dataset, "no size known: 20000 train / 5000 val assumed")
    return f"{train_images(dataset)} train / {val_images(dataset)} val images ({source})"
