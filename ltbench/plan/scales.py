"""Scales: the same spec at ``paper`` scale (paper schedules, full data, GPUs) or ``smoke`` scale (CPU).

A scale fills a run config's ``framework`` (unless overridden), ``schedule`` and ``model`` blocks; it
never changes which methods or views a table needs.

Paper schedules, per framework (facts: research/ecosystem_facts.md, official_implementations.md §0.1):

- mmdet / torchvision (epoch based): ``1x`` = 12 epochs (LR steps 8, 11), ``2x`` = 24 (16, 22),
  ``3x`` = 36 (27, 33); SGD lr 0.02 momentum 0.9 wd 1e-4, batch 16, linear warm-up 500 iterations
  (from 0.001 unless the schedule states ``warmup_factor``; no gradient clip unless it states ``grad_clip``:
  BAGS and SimCal's mmdet-1.x configs warm up from 1/3 and clip at 35).
  ``iterations`` is epochs x ceil(epoch images / batch), i.e. one pass of the sampler's real epoch per
  epoch (``epoch_images``): the training images, or under repeat-factor sampling sum_I repeat(I) over the
  training images (mmdet's ``ClassBalancedDataset`` repeats each image ceil(r(I)) times; detectron2's
  stochastic rounding gives sum_I r(I) in expectation). That sum needs every image's categories, which the
  plan does not read; it is the estimate ``RFS_EPOCH_IMAGES`` (assumption ``rfs-epoch-size``, below), and
  the adapters record the exact epoch of the data they train on (``adapters.engine.schedule.epoch_note``).
  LR steps are the same epochs of that epoch length (16, 22 of 24 for 2x).
- detectron2 (iteration based): LVIS v1 ``1x`` = 180k iterations (steps 120k, 160k), LVIS v0.5 ``1x``
  = 90k (60k, 80k); ``2x``/``3x`` scale both; batch 16, lr 0.02, warm-up 1000. Other datasets: the same
  number of epochs as LVIS v0.5's 1x (90k x 16 / 57,263 = 25.1 epochs).
- The convention is the *paper's* framework (the spec's ``framework``): a run forced onto another
  framework (``--framework`` / ``framework=...``) trains the paper's schedule -- the same iterations, batch,
  images seen, LR steps and warm-up -- not that framework's default (assumption ``forced-framework-schedule``,
  ``HARNESS_ASSUMPTIONS``). The forced framework's own sampler (e.g. detectron2's stochastic RFS) fills
  those iterations.
- An explicit schedule ``{epochs: E}`` or ``{iterations: N}`` (stage-2 schedules) keeps its numbers;
  given steps are epochs for ``epochs`` schedules and iterations for ``iterations`` schedules.

Mini scale (``MINI_*``): the smoke data and model with anchors for its objects, 8-image batches, 1x = 100
iterations at lr 0.04, from a ResNet-18 pre-trained on the synthetic classes; LVIS v0.5 rows share the v1.0 runs.

Smoke schedule: ``iterations = clip(round(30 x L), 10, 90)`` where L is the schedule's length in
units of 12 epochs (1x -> 30, 2x -> 60, a 4.5k-iteration stage 2 on LVIS v0.5 -> 10), batch 4,
LR steps at the same fractions of the schedule as at paper scale, and a tiny R-18-FPN-like model
(96-px images, 64 FPN channels, few proposals) so PCB Table 2's 16 models train, predict and evaluate
in about 10 minutes on 2 CPU cores (~0.5 s per iteration with one thread per job).
Smoke-only deviations, each for CPU time or stability, never for which method runs: the paper's
lr 0.02 is kept at batch 4 with gradient-norm clipping at 10 (without it the recurrent PCB head's raw
multiplicative gate and Seesaw diverged to NaN within 20-80 iterations; a paper schedule's own
``warmup_factor`` / ``grad_clip`` are not used at smoke scale), and 100 instead of 300
detections per image (mask pasting and RLE encoding of 300 near-random detections dominated
prediction time). Paper scale keeps every paper setting.
"""

from __future__ import annotations

import math
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean
from ltbench.evaluation.ap_fixed import DETS_PER_CLASS

SCALES = ("smoke", "mini", "paper")
#: the scales that run on a CPU on generated data (everything but ``paper``)
EMBEDDED_SCALES = ("smoke", "mini")
SMOKE_FRAMEWORK = "torchvision"
# Smoke-scale frameworks in order of preference: a row trains through the first whose adapter builds its
# detector (torchvision for Mask / Faster R-CNN; mmdet, on the CPU too, for Cascade (Mask) R-CNN and HTC),
# with the same tiny model and schedule either way. A `--framework` override is tried first.
SMOKE_FRAMEWORKS = (SMOKE_FRAMEWORK, "mmdet")

# Training / validation images per dataset (the cost model and paper-scale epoch lengths use them).
# LVIS counts are the official annotation files'; the COCO-LT sizes are the papers' own (DATASET_SOURCES).
DATASET_IMAGES: dict[str, dict[str, int]] = {
    "lvis_v0.5": {"train": 57263, "val": 5000},
    "lvis_v1": {"train": 100170, "val": 19809},
    "coco_lt_bags": {"train": 9100, "val": 5000},
    "coco_lt_simcal": {"train": 100000, "val": 5000},
}
# Where each size comes from (quoted), and what is assumed where the paper is vague.
DATASET_SOURCES: dict[str, str] = {
    "lvis_v0.5": "lvis_v0.5_train.json / lvis_v0.5_val.json image counts",
    "lvis_v1": "lvis_v1_train.json / lvis_v1_val.json image counts",
    "coco_lt_bags": (
        "BAGS Supp. 7.4.1: 'COCO-LT only contains 9100 training images of 80 categories, which includes 64504 "
        "training instances. For validation, we use the same validation set as COCO val 2017 split, which "
        "includes 5000 images.'"
    ),
    "coco_lt_simcal": (
        "SimCal Sec. 5.1: 'COCO-LT contains 80 classes and about 100k images.' The paper gives no split; "
        "assumed: about 100k training images (the COCO train2017 subset it samples), and 5000 validation images "
        "(Table 7: 'evaluated on minival set', COCO minival = 5000 images)."
    ),
}

# Training-instance edges of the AP1..AP4 bins per dataset (a table's `instance_bins:` overrides):
# LVIS 10/100/1000 (SimCal Sec. 5.1); SimCal COCO-LT 20/400/8000 (SimCal Table 7 caption); BAGS COCO-LT
# states none: the LVIS edges are assumed (assumption bags-cocolt).
DEFAULT_INSTANCE_BINS = [10, 100, 1000]
DATASET_INSTANCE_BINS: dict[str, list[int]] = {
    "lvis_v0.5": [10, 100, 1000], "lvis_v1": [10, 100, 1000],
    "coco_lt_simcal": [20, 400, 8000], "coco_lt_bags": [10, 100, 1000],
}
# `ltbench evaluate --bins` scheme names of the edges it knows
BIN_SCHEMES = {(10, 100, 1000): "lvis", (20, 400, 8000): "coco-lt"}


def instance_bins(dataset: str, table_bins: list[int] | None = None) -> list[int]:
    return list(table_bins) if table_bins else list(DATASET_INSTANCE_BINS.get(dataset, DEFAULT_INSTANCE_BINS))


EPOCH_SCHEDULES: dict[str, dict[str, Any]] = {
    "1x": {"epochs": 12, "steps": [8, 11]},
    "2x": {"epochs": 24, "steps": [16, 22]},
    "3x": {"epochs": 36, "steps": [27, 33]},
}
DETECTRON2_1X_ITERATIONS = {"lvis_v1": (180000, [120000, 160000]), "lvis_v0.5": (90000, [60000, 80000])}
DETECTRON2_DEFAULT_EPOCHS_1X = 90000 * 16 / 57263
NAMED_MULTIPLIER = {"1x": 1, "2x": 2, "3x": 3}

PAPER_OPTIMIZER = {"lr": 0.02, "batch_size": 16, "momentum": 0.9, "weight_decay": 0.0001}

SMOKE_ITERATIONS_PER_1X = 30
SMOKE_MIN_ITERATIONS = 10
SMOKE_MAX_ITERATIONS = 90
SMOKE_BATCH = 4
SMOKE_GRAD_CLIP = 10.0
# Mini scale: long enough for the detectors to converge on the synthetic data from the synthetic backbone
# (ltbench.data.backbone), on a CPU in minutes: 1x = 100 iterations of 8 images (1.3 epochs of the 600 images),
# at twice the paper's lr (measured, Softmax on the v1-like data, 2x = 200 iterations, one seed: segm AP 19.7 at
# lr 0.02, 26.0 at 0.04; 33.9 after 300 iterations at 0.02).
MINI_ITERATIONS_PER_1X = 100
MINI_MIN_ITERATIONS = 30
MINI_MAX_ITERATIONS = 300
MINI_BATCH = 8
MINI_LR = 0.04
#: per embedded scale: (iterations per 12 epochs, min, max, batch, warm-up cap, lr at the paper's lr 0.02)
EMBEDDED_SCHEDULES: dict[str, tuple[int, int, int, int, int, float]] = {
    "smoke": (SMOKE_ITERATIONS_PER_1X, SMOKE_MIN_ITERATIONS, SMOKE_MAX_ITERATIONS, SMOKE_BATCH, 10, 0.02),
    "mini": (MINI_ITERATIONS_PER_1X, MINI_MIN_ITERATIONS, MINI_MAX_ITERATIONS, MINI_BATCH, 20, MINI_LR),
}

SMOKE_MODEL: dict[str, Any] = {
    "min_size": 96, "max_size": 128, "backbone_depth": 18, "fpn_channels": 64,
    "rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 100,
    "rpn_pre_nms_top_n_test": 200, "rpn_post_nms_top_n_test": 100,
    "box_batch_size_per_image": 32, "detections_per_img": 100, "score_thresh": 0.0001,
}
# Mini scale: the smoke model with anchors sized for its objects (10-27 px at 96 px, where torchvision's
# default 32..512 anchors of 800-px images match few of them), starting from the synthetic backbone.
# ``synthetic_backbone``: the version of ltbench.data.backbone's training, so that a new backbone makes new runs.
MINI_MODEL: dict[str, Any] = {**SMOKE_MODEL, "anchor_sizes": [8, 16, 32, 64, 128], "synthetic_backbone": 1}
# mmdet LVIS configs (1333, 640..800, 'value') and detectron2 LVIS MIN_SIZE_TRAIN (research/official_implementations.md)
DEFAULT_TRAIN_SCALES = (640, 672, 704, 736, 768, 800)
_BACKBONE_DEPTH = {"r18": 18, "r50": 50, "r101": 101, "x101": 101, "r152": 152, "x50": 50}


def is_embedded(scale: str | None) -> bool:
    """True for the CPU scales on synthetic data (``smoke``, ``mini``): a tiny model, one framework per detector."""
    return scale in EMBEDDED_SCALES


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise LtbenchError(f"unknown scale {scale!r}{did_you_mean(scale, SCALES)}", key="--scale",
                           expected="one of " + ", ".join(SCALES))
    return scale


def smoke_framework(detector: str, requested: str | None = None) -> str:
    """The framework a smoke-scale run of ``detector`` trains through: ``requested`` (the override) when its
    adapter builds the detector, else the first of ``SMOKE_FRAMEWORKS`` that does (the adapters'
    ``SUPPORTED_DETECTORS``; no framework is imported)."""
    from adapters import adapter_class

    candidates = ((requested,) if requested else ()) + SMOKE_FRAMEWORKS
    for framework in candidates:
        if detector in adapter_class(framework).SUPPORTED_DETECTORS:
            return framework
    raise LtbenchError(f"no smoke-scale framework builds detector {detector!r}", key="detector",
                       expected="a detector of " + ", ".join(f"{fw}: {'/'.join(adapter_class(fw).SUPPORTED_DETECTORS)}"
                                                             for fw in SMOKE_FRAMEWORKS))


def train_images(dataset: str) -> int:
    """Training images of ``dataset`` (20000 for a dataset without a known size: out-of-scope ones)."""
    return DATASET_IMAGES.get(dataset, {"train": 20000})["train"]


def val_images(dataset: str) -> int:
    return DATASET_IMAGES.get(dataset, {"val": 5000})["val"]


# AP-fixed / AP-pool (Dave et al. 2021): the top 10,000 detections of each class over LVIS v1 val (19,809
# images), about one per class per two images. At smoke scale the same budget per image (the smoke val
# split has SMOKE_VAL_IMAGES images), so the metric means the same thing and prediction stays cheap.
AP_FIXED_DETS_PER_CLASS = DETS_PER_CLASS  # the evaluator's default budget
AP_FIXED_REFERENCE_IMAGES = DATASET_IMAGES["lvis_v1"]["val"]
SMOKE_VAL_IMAGES = 120  # ltbench.data.synth's "smoke" preset


def ap_fixed_k(scale: str) -> int:
    """Detections kept per class in the per-class top-k inference mode of ``scale``."""
    if check_scale(scale) == "paper":
        return AP_FIXED_DETS_PER_CLASS
    return max(1, math.ceil(AP_FIXED_DETS_PER_CLASS * SMOKE_VAL_IMAGES / AP_FIXED_REFERENCE_IMAGES))


# Repeat-factor sampling (RFS) enlarges an epoch to sum_I repeat(I) images. The exact sum needs every training
# image's categories (the annotation file, which the plan does not read); the plan uses this estimate from the
# category image counts n_c (assumption rfs-epoch-size): N + sum_c n_c (repeat(r_c) - 1), r_c = max(1,
# sqrt(t N / n_c)), repeat = ceil (mmdet) or r itself (detectron2's stochastic rounding, in expectation). It is
# exact when no image holds two oversampled categories and an upper bound otherwise. LVIS v1: from the v1.0
# training image counts of all 1203 categories (../shared/data/lvis/lvis_v1_categories.json, detectron2's
# lvis_v1_category_image_count.py; tests/plan recompute it). A public mmdet log of the LVIS v1 RFS config
# (open-mmlab/mmdetection#7439: 7674 iterations of 16 images per epoch, i.e. at most 122,784 images) is 3.6%
# below the ceil estimate. LVIS v0.5: no per-category image counts are shipped; v1's enlargement factor
# (1.2719 ceil, 1.1467 stochastic) is applied to v0.5's 57,263 images. Other datasets: no estimate (a clear error).
RFS_EPOCH_IMAGES: dict[tuple[str, float, str], int] = {
    ("lvis_v1", 0.001, "ceil"): 127402,
    ("lvis_v1", 0.001, "stochastic"): 114868,
    ("lvis_v0.5", 0.001, "ceil"): 72830,
    ("lvis_v0.5", 0.001, "stochastic"): 65665,
}
# The repeat-factor rounding of each framework's own RFS (adapters: mmdet ClassBalancedDataset; detectron2's
# RepeatFactorTrainingSampler; the torchvision adapter follows detectron2).
FRAMEWORK_RFS_ROUNDING = {"mmdet": "ceil", "detectron2": "stochastic", "torchvision": "stochastic"}

# Assumptions of the harness itself (not of one paper): the planner lists them on the rows they apply to.
HARNESS_ASSUMPTIONS: dict[str, dict[str, str]] = {
    "rfs-epoch-size": {
        "text": (
            "An epoch of repeat-factor sampling has sum_I repeat(I) images (mmdet: ceil(r(I)) copies of each image; "
            "detectron2: r(I) in expectation). The exact sum needs every training image's categories, which the plan "
            "does not read."
        ),
        "choice": (
            "Epoch schedules with RFS count epochs of the estimate N + sum_c n_c (repeat(r_c) - 1) from the category "
            "image counts (an upper bound; LVIS v0.5 uses LVIS v1's enlargement factor); LR steps and PCB's start are "
            "the same epochs of it; the adapters record the exact epoch of the data they train on."
        ),
        "source": "ltbench/plan/scales.py RFS_EPOCH_IMAGES; research/official_implementations.md §0.1",
    },
    "forced-framework-schedule": {
        "text": (
            "A run forced onto another framework than the paper's (framework=...) could train that framework's "
            "default schedule (e.g. detectron2's 180k-iteration LVIS v1 1x) or the paper's."
        ),
        "choice": (
            "The paper's schedule: the same iterations, batch, images seen, LR steps (the same fractions of the run), "
            "warm-up and PCB start as under the paper's framework; only the framework (and its own sampler "
            "rounding) changes."
        ),
        "source": "ltbench/plan/scales.py paper_schedule",
    },
    "torchvision-box-loss": {
        "text": (
            "The papers' box regression loss of the Fast R-CNN head is mmdet's L1 (detectron2: smooth-L1 with beta 0, "
            "i.e. L1); torchvision's fastrcnn_loss is smooth-L1 with beta 1/9."
        ),
        "choice": "Runs trained through torchvision keep torchvision's smooth-L1 (beta 1/9) box loss.",
        "source": "adapters/torchvision/roi_heads.py; research/official_implementations.md (torchvision fastrcnn_loss)",
    },
    "box-head-fc-init": {
        "text": (
            "The box head's fc6/fc7 are Xavier-initialised in mmdet's Shared2FCBBoxHead (detectron2: c2_xavier); "
            "torchvision's TwoMLPHead keeps PyTorch's default nn.Linear initialisation (kaiming-uniform)."
        ),
        "choice": (
            "Every framework trains ltbench's shared BoxHead (ltbench/methods/box_head.py), whose fc6/fc7 keep "
            "PyTorch's default nn.Linear initialisation (kaiming-uniform, a = sqrt(5)), torchvision's convention."
        ),
        "source": "ltbench/methods/box_head.py; adapters/mmdet/registration.py LtbenchBBoxHead",
    },
}
# At mini scale the LVIS v0.5 and v1.0 rows train on one synthetic dataset (their synthetic files share images
# and instances): a v0.5 row is planned as the v1.0 run of the same config, so each model trains once.
MINI_SHARED_DATASETS = {"lvis_v0.5": "lvis_v1"}
HARNESS_ASSUMPTIONS["mini-one-dataset"] = {
    "text": (
        "The synthetic LVIS v0.5-like and v1.0-like annotation files hold the same images and instances (only the "
        "category ids and names differ), so their runs would train the same model twice."
    ),
    "choice": (
        "At mini scale a v0.5 row is served by the v1.0 run of the same config: the v0.5 and v1.0 column groups "
        "show the same measured models (one training each); they differ only at paper scale."
    ),
    "source": "ltbench/plan/scales.py MINI_SHARED_DATASETS",
}
# Repeat-factor sampling's threshold t is a fraction of the training images: LVIS v1's t = 0.001 repeats the
# classes in fewer than 100 of its 100,170 images (r = sqrt(100 / n) for a class in n images). Of the 600
# synthetic training images that is 0.6 of an image, so RFS would repeat nothing (measured: 8.4-8.7 % of the
# images drawn over a mini run hold a rare class, with RFS and without). At mini scale the threshold keeps its
# number of images: t x (the dataset's paper training images) / MINI_TRAIN_IMAGES.
MINI_TRAIN_IMAGES = 600  # ltbench.data.synth's "smoke" preset, the data of both embedded scales
HARNESS_ASSUMPTIONS["mini-rfs-threshold"] = {
    "text": (
        "RFS's threshold t = 0.001 is a fraction of LVIS's training images (a class in fewer than t x N images is "
        "repeated); on the 600 synthetic training images it would repeat no class at all."
    ),
    "choice": (
        "At mini scale t is scaled to keep its number of images: t x N_paper / 600 (LVIS v1: 0.001 x 100,170 / 600 "
        "= 0.167, so a class in n < 100 of the 600 images is repeated sqrt(100 / n) times, as in LVIS v1)."
    ),
    "source": "ltbench/plan/scales.py mini_sampler",
}


def mini_sampler(sampler: dict[str, Any] | None, dataset: str) -> dict[str, Any] | None:
    """The sampler a mini-scale run of ``dataset`` uses: RFS with its threshold kept in images (see above)."""
    if not isinstance(sampler, dict) or sampler.get("name") != "rfs" or "t" not in sampler:
        return sampler
    return {**sampler, "t": round(float(sampler["t"]) * train_images(dataset) / MINI_TRAIN_IMAGES, 6)}


#: harness assumptions of every run a framework trains (listed on its rows at both scales); "*": every run
FRAMEWORK_ASSUMPTIONS: dict[str, tuple[str, ...]] = {"*": ("box-head-fc-init",), "torchvision": ("torchvision-box-loss",)}


def rfs_epoch_estimate(image_counts: list[int], num_images: int, t: float, rounding: str) -> float:
    """The plan's estimate of an RFS epoch: N + sum_c n_c (repeat(r_c) - 1) (see ``RFS_EPOCH_IMAGES``)."""
    total = float(num_images)
    for n in image_counts:
        if n <= 0:
            continue
        r = max(1.0, math.sqrt(t * num_images / n))
        total += n * ((math.ceil(r) if rounding == "ceil" else r) - 1.0)
    return total


def sampler_rounding(sampler: dict[str, Any] | None, framework: str) -> str:
    """The repeat-factor rounding a run's RFS sampler uses: its own ``rounding``, else the framework's."""
    rounding = sampler.get("rounding") if isinstance(sampler, dict) else None
    return str(rounding or FRAMEWORK_RFS_ROUNDING.get(framework, "ceil"))


def epoch_images(dataset: str, sampler: dict[str, Any] | None = None, framework: str = "mmdet") -> int:
    """Images in one epoch of ``sampler`` on ``dataset``: the training images, or the RFS estimate
    ``RFS_EPOCH_IMAGES`` (with ``framework``'s rounding unless the sampler states one)."""
    sampler = sampler if isinstance(sampler, dict) else {"name": sampler}
    if sampler.get("name") != "rfs":
        return train_images(dataset)
    t = sampler.get("t", 0.001)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
        raise LtbenchError(f"RFS threshold t is {t!r}", key="sampler.t", expected="a number > 0 (0.001 in every LVIS config)")
    key = (dataset, float(t), sampler_rounding(sampler, framework))
    if key not in RFS_EPOCH_IMAGES:
        raise LtbenchError(f"no estimate of the RFS epoch of {dataset} (t = {t}, {key[2]} rounding)", key="sampler",
                           expected="one of " + ", ".join(f"{d} t={tt} {r}" for d, tt, r in RFS_EPOCH_IMAGES),
                           hint="add it to ltbench.plan.scales.RFS_EPOCH_IMAGES (sum_I repeat(I) over the training images)")
    return RFS_EPOCH_IMAGES[key]


def paper_schedule(schedule: str | dict[str, Any], framework: str, dataset: str,
                   sampler: dict[str, Any] | None = None) -> dict[str, Any]:
    """The paper-scale schedule block: name, epochs and epoch_images (epoch-based only), iterations, steps
    (iterations), optimizer. ``framework`` is the paper's (its schedule convention); ``sampler`` the run's
    training sampler (an RFS epoch is enlarged, ``epoch_images``)."""
    if not isinstance(schedule, (str, dict)):
        raise LtbenchError(f"schedule {schedule!r} is neither a name nor a mapping", key="schedule",
                           expected="1x, 2x, 3x, or {epochs: E} / {iterations: N}")
    spec = {"name": schedule} if isinstance(schedule, str) else dict(schedule)
    for key in ("epochs", "iterations", "batch_size", "lr", "warmup_factor", "grad_clip"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and math.isfinite(value) and value > 0):
            raise LtbenchError(f"schedule {key} is {value!r}", key=f"schedule.{key}", expected="a finite number > 0")
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) for s in spec.get("steps", [])):
        raise LtbenchError(f"schedule steps {spec.get('steps')!r}", key="schedule.steps", expected="a list of numbers")
    if "epochs" in spec and "iterations" in spec:
        raise LtbenchError(f"schedule {schedule!r} states both epochs and iterations", key="schedule",
                           expected="either epochs or iterations")
    name = spec.get("name")
    epoch_based = "epochs" in spec or ("iterations" not in spec and name in EPOCH_SCHEDULES and framework != "detectron2")
    images = epoch_images(dataset, sampler, framework) if epoch_based else train_images(dataset)
    per_epoch = math.ceil(images / spec.get("batch_size", PAPER_OPTIMIZER["batch_size"]))
    out: dict[str, Any] = {"name": name or "custom"}
    if "iterations" in spec:
        out["iterations"] = int(spec["iterations"])
        out["steps"] = [int(s) for s in spec.get("steps", [])]
    elif "epochs" in spec:
        epochs = spec["epochs"]
        out["epochs"] = epochs
        out["epoch_images"] = images
        out["iterations"] = int(round(epochs * per_epoch))
        out["steps_epochs"] = list(spec.get("steps", []))
        out["steps"] = [int(round(s * per_epoch)) for s in spec.get("steps", [])]
    elif epoch_based:
        base = EPOCH_SCHEDULES[name]
        out["epochs"] = base["epochs"]
        out["epoch_images"] = images
        out["iterations"] = base["epochs"] * per_epoch
        out["steps_epochs"] = list(base["steps"])
        out["steps"] = [s * per_epoch for s in base["steps"]]
    elif name in NAMED_MULTIPLIER:  # detectron2
        mult = NAMED_MULTIPLIER[name]
        if dataset in DETECTRON2_1X_ITERATIONS:
            iters, steps = DETECTRON2_1X_ITERATIONS[dataset]
        else:
            iters = int(round(DETECTRON2_DEFAULT_EPOCHS_1X * per_epoch, -3))
            steps = [int(iters * 2 / 3), int(iters * 8 / 9)]
        out["iterations"] = iters * mult
        out["steps"] = [s * mult for s in steps]
    else:
        raise LtbenchError(f"schedule {schedule!r} has neither a known name nor epochs/iterations",
                           key="schedule", expected="1x, 2x, 3x, or {epochs: E} / {iterations: N}")
    out["batch_size"] = spec.get("batch_size", PAPER_OPTIMIZER["batch_size"])
    out["lr"] = spec.get("lr", PAPER_OPTIMIZER["lr"])
    out["momentum"] = spec.get("momentum", PAPER_OPTIMIZER["momentum"])
    out["weight_decay"] = spec.get("weight_decay", PAPER_OPTIMIZER["weight_decay"])
    out["warmup_iters"] = spec.get("warmup_iters", 1000 if framework == "detectron2" else 500)
    # the official recipe's warm-up start and gradient clip, where the spec states them (BAGS, SimCal: 1/3 and
    # 35); only when set, so every other run's config (and id) is unchanged. The adapters read both keys.
    for key in ("warmup_factor", "grad_clip"):
        if spec.get(key) is not None:
            out[key] = spec[key]
    if out["iterations"] < 1:
        raise LtbenchError(f"schedule {schedule!r} gives {out['iterations']} iterations", key="schedule",
                           expected="at least one iteration")
    out["checkpoint_period"] = max(1, out["iterations"] // 12)
    return out


def schedule_units(paper: dict[str, Any], dataset: str) -> float:
    """Length of a paper schedule in units of 12 epochs (images seen / (12 x train images))."""
    return paper["iterations"] * paper["batch_size"] / (12 * train_images(dataset))


def smoke_schedule(schedule: str | dict[str, Any], framework: str, dataset: str, scale: str = "smoke") -> dict[str, Any]:
    """A tiny CPU schedule of an embedded ``scale`` with the paper schedule's shape (LR steps at the same
    fractions): ``EMBEDDED_SCHEDULES[scale]`` gives its iterations per 12 epochs, their bounds and the batch."""
    per_1x, least, most, batch, warmup, lr = EMBEDDED_SCHEDULES[scale]
    if isinstance(schedule, str) and schedule in NAMED_MULTIPLIER:
        units = float(NAMED_MULTIPLIER[schedule])  # framework-independent at the embedded scales
        paper = paper_schedule(schedule, "mmdet", dataset)
    else:
        paper = paper_schedule(schedule, framework, dataset)
        units = schedule_units(paper, dataset)
    iterations = min(most, max(least, int(round(per_1x * units))))
    fractions = [s / paper["iterations"] for s in paper["steps"]]
    return {
        "name": paper["name"],
        "iterations": iterations,
        "batch_size": batch,
        "lr": lr * paper["lr"] / PAPER_OPTIMIZER["lr"],
        "momentum": paper["momentum"],
        "weight_decay": paper["weight_decay"],
        "warmup_iters": min(warmup, iterations // 6),
        "steps": [int(round(f * iterations)) for f in fractions],
        "checkpoint_period": max(10, iterations // 3),
        "grad_clip": SMOKE_GRAD_CLIP,
        # smoke only: at mini scale a v0.5 row's run is the v1.0 row's, whose paper schedules differ in length
        **({"fraction_of_paper": round(iterations / paper["iterations"], 8)} if scale == "smoke" else {}),
    }


def post_hoc_schedule(scale: str) -> dict[str, Any]:
    """The schedule block of a stage-2 run that trains nothing (``vocab.POST_HOC_STAGE2``): zero iterations.

    Every key the adapters read is present; adapters finish such runs without an optimiser (tau-norm) or
    after one statistics pass over the training images (NCM).
    """
    check_scale(scale)
    return {
        "name": "post_hoc", "iterations": 0, "batch_size": EMBEDDED_SCHEDULES[scale][3] if is_embedded(scale) else PAPER_OPTIMIZER["batch_size"],
        "lr": 0, "momentum": 0, "weight_decay": 0, "warmup_iters": 0, "steps": [], "checkpoint_period": 1,
    }


def resolve_schedule(schedule: str | dict[str, Any], scale: str, framework: str, dataset: str,
                     sampler: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's schedule block. ``framework``: the paper's (a forced framework keeps the paper's schedule);
    ``sampler``: the training sampler (paper scale: an RFS epoch is enlarged; smoke scale ignores it)."""
    check_scale(scale)
    if scale == "paper":
        return paper_schedule(schedule, framework, dataset, sampler)
    return smoke_schedule(schedule, framework, dataset, scale)


def model_block(scale: str, backbone: str, framework: str, train_scales: int | list[int] | None = None) -> dict[str, Any]:
    """Model-size settings the adapters read; paper scale follows the frameworks' LVIS configs.

    ``train_scales`` (the run key): training short side(s); one number = single scale, a list = multi-scale
    (``min_size`` as a list; adapters test at the largest). Paper scale default: the mmdet/detectron2 LVIS
    multi-scale 640..800. Smoke scale: the default keeps the tiny model's 96 px; an explicit value is scaled
    by 96/800, so single- and multi-scale runs stay different runs there too.
    """
    check_scale(scale)
    if is_embedded(scale):
        block = dict(MINI_MODEL if scale == "mini" else SMOKE_MODEL)
        if train_scales is not None:
            sides = train_scales if isinstance(train_scales, list) else [train_scales]
            small = sorted({max(16, int(round(s * SMOKE_MODEL["min_size"] / 800))) for s in sides})
            block["min_size"] = small if len(small) > 1 else small[0]
        return block
    if train_scales is None:
        train_scales = list(DEFAULT_TRAIN_SCALES)
    min_size = list(train_scales) if isinstance(train_scales, list) and len(train_scales) > 1 else (
        train_scales[0] if isinstance(train_scales, list) else train_scales)
    depth = _BACKBONE_DEPTH.get(backbone.split("_")[0], 50)
    return {
        "min_size": min_size, "max_size": 1333, "backbone_depth": depth, "fpn_channels": 256,
        "rpn_pre_nms_top_n_train": 2000, "rpn_post_nms_top_n_train": 1000,
        "rpn_pre_nms_top_n_test": 1000, "rpn_post_nms_top_n_test": 1000,
        "box_batch_size_per_image": 512, "detections_per_img": 300, "score_thresh": 0.0001,
    }


def regularizer_start_iteration(regularizer: dict[str, Any], schedule: dict[str, Any], paper_epochs: float = 24) -> int:
    """PCB's start gate at the same fraction of the schedule (assumption pcb-start-epoch: 1-based epochs).

    ``start_epoch: 17`` of 24 epochs -> the regularizer is active from iteration 16/24 of the schedule.
    """
    start_epoch = regularizer.get("start_epoch")
    if start_epoch is None:
        return 0
    epochs = schedule.get("epochs", paper_epochs)
    fraction = max(0.0, (float(start_epoch) - 1.0) / float(epochs))
    return int(round(fraction * schedule["iterations"]))
