"""Closed vocabularies of the paper-spec format (one place; the JSON schema and the loader use these).

Add a name here when a paper needs it, and describe it in ``workflows/papers/FORMAT.md``.
"""

from __future__ import annotations

import functools

PAPERS = ("pcb", "disalign", "bags", "simcal")

FRAMEWORKS = ("mmdet", "detectron2", "torchvision")
DETECTORS = (
    "faster_rcnn", "mask_rcnn", "cascade_rcnn", "cascade_mask_rcnn", "htc",
    # out-of-scope tasks (DisAlign classification / semantic segmentation tables)
    "image_classifier", "fcn", "deeplabv3plus",
)
# detectors that predict instance masks: a `segm.*` column needs one (checked when a spec loads); the other
# detection detectors give boxes only, and their rows are evaluated for `bbox` alone
MASK_DETECTORS = ("mask_rcnn", "cascade_mask_rcnn", "htc")
IOU_TYPES = ("bbox", "segm")


def detector_iou_types(detector: str) -> tuple[str, ...]:
    """The IoU types a detector's detections can be evaluated for: ("bbox", "segm") or ("bbox",)."""
    return IOU_TYPES if detector in MASK_DETECTORS else ("bbox",)


BACKBONES = (
    "r18_fpn", "r50_fpn", "r101_fpn", "x101_32x8d_fpn", "x101_64x4d_fpn",
    "r50_dcn_fpn", "r101_dcn_fpn", "x101_64x4d_dcn_fpn",
    # out-of-scope tasks
    "r50", "r101", "r152", "x50", "s101",
)
DATASETS = (
    "lvis_v0.5", "lvis_v1", "coco_lt_bags", "coco_lt_simcal",
    # out-of-scope datasets (DisAlign Tables 1, 3-6)
    "imagenet_lt", "inaturalist2018", "places365_lt", "ade20k",
)
PRETRAINS = ("imagenet", "coco", "lvis", "none")
SCHEDULES = ("1x", "2x", "3x")

SAMPLERS = ("random", "rfs", "class_aware", "bilevel")
CLASSIFIERS = ("linear", "cosine", "normed_linear")
LOSSES = (
    "ce", "bce", "eql", "eqlv2", "seesaw", "focal", "reweight", "class_margin", "group_softmax",
)
HEADS = ("standard", "iterative", "dsn")
REGULARIZERS = ("pcb", "label_smoothing", "online_label_smoothing")
MASK_HEADS = ("standard", "normed")
STAGE2_METHODS = (
    "bags", "simcal", "disalign", "crt", "lws", "tau_norm", "ncm", "finetune", "finetune_tail",
)
# stage-2 methods that train nothing (tau-norm rescales the classifier weights; NCM takes class means in one
# forward pass over the training images): their runs get no schedule and no training cost
POST_HOC_STAGE2 = ("tau_norm", "ncm")
VIEWS = ("plain", "cm_calibration", "ms_calibration", "norcal", "recurrent_step", "dual_head")
# how the seeds of a row become the printed number: mean / median of each metric over seeds, or every metric
# of the one seed whose `by` metric is the median (SimCal: "median overall AP over 3 runs")
SEED_AGGREGATE_RULES = ("mean", "median", "median_run")
TABLE_SCOPES = ("reproduce", "out_of_scope", "qualitative", "statistics")

# run key -> allowed component names (components are {name: ..., params...} objects)
COMPONENT_VOCAB: dict[str, tuple[str, ...]] = {
    "sampler": SAMPLERS,
    "classifier": CLASSIFIERS,
    "loss": LOSSES,
    "head": HEADS,
    "regularizer": REGULARIZERS,
    "mask_head": MASK_HEADS,
    "stage2": STAGE2_METHODS,
}
# run key -> allowed scalar values
SCALAR_VOCAB: dict[str, tuple[str, ...]] = {
    "framework": FRAMEWORKS,
    "detector": DETECTORS,
    "backbone": BACKBONES,
    "dataset": DATASETS,
    "pretrain": PRETRAINS,
}
RUN_KEYS = (
    "framework", "detector", "backbone", "dataset", "pretrain", "schedule", "sampler", "classifier",
    "loss", "head", "regularizer", "mask_head", "class_agnostic", "fp16", "stage2", "train_scales",
)

_METRIC_SUFFIXES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AP1", "AP2", "AP3", "AP4",
                    # AP-fixed / AP-pool (Dave et al. 2021; ltbench.evaluation.ap_fixed): any table may have such a
                    # column; its rows' views then ask the adapters for per-class top-k detections
                    "APfixed", "APfixed_r", "APfixed_c", "APfixed_f", "APpool", "APpool_r", "APpool_c", "APpool_f")
# metric suffixes that need the uncapped per-class top-k detections mode of the adapters
AP_FIXED_SUFFIXES = tuple(s for s in _METRIC_SUFFIXES if s.startswith(("APfixed", "APpool")))
METRIC_KEYS: tuple[str, ...] = (
    tuple(f"{kind}.{suffix}" for kind in ("bbox", "segm") for suffix in _METRIC_SUFFIXES)
    + ("PwB",)
    + ("cls.ACC", "cls.ACC1", "cls.ACC2", "cls.ACC3", "cls.ACC4", "cls.ACCbg")
)
# Columns of tables that are not reproduced (statistics, out-of-scope tasks) use free keys under
# these prefixes, e.g. `stats.train_categories.r`, `other.top1.many`.
FREE_KEY_PREFIXES = ("stats.", "other.")

# claims (issue 8): predicate kinds, see ltbench/spec/claims.py
CLAIM_KINDS = ("compare", "difference", "correlation", "argbest", "monotonic", "all")

# Range of a reported number per metric family (inclusive bounds; None: unbounded). Every reported number
# must be finite; a key that no family below covers has no other constraint. First match wins.
# - AP family (bbox./segm. AP, APr, AP50, APfixed, ...): COCO/LVIS AP printed as a percentage, 0..100
# - cls.*: BAGS Table 1's proposal classification accuracies, percentages
# - PwB: a Frobenius norm ||M - M^T|| (PCB Eq. 4), >= 0 with no upper bound at the printed scale
# - other.top1 / other.macc / other.miou: DisAlign's top-1 accuracy, mean accuracy and mean IoU, percentages
# - stats.*: dataset statistics (category and image counts), >= 0
METRIC_RANGES: tuple[tuple[str, float | None, float | None, str], ...] = (
    ("bbox.", 0.0, 100.0, "an AP in percent"),
    ("segm.", 0.0, 100.0, "an AP in percent"),
    ("cls.", 0.0, 100.0, "an accuracy in percent"),
    ("PwB", 0.0, None, "a Frobenius norm ||M - M^T||"),
    ("other.top1.", 0.0, 100.0, "a top-1 accuracy in percent"),
    ("other.macc.", 0.0, 100.0, "a mean accuracy in percent"),
    ("other.miou.", 0.0, 100.0, "a mean IoU in percent"),
    ("stats.", 0.0, None, "a dataset statistic (a count)"),
)


@functools.lru_cache(maxsize=None)  # a few dozen keys, looked up for every reported number
def metric_range(key: str) -> tuple[float | None, float | None, str] | None:
    """``(low, high, what)`` for a metric key (see ``METRIC_RANGES``), or None when only finiteness is known.

    An entry ending in ``.`` is a family prefix (``segm.`` covers ``segm.APr``); any other is one exact key."""
    for prefix, low, high, what in METRIC_RANGES:
        if key.startswith(prefix) if prefix.endswith(".") else key == prefix:
            return low, high, what
    return None
