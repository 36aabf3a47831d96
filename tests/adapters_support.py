"""Helpers for the adapter tests: a tiny synthetic LVIS-format dataset and tiny run configs.

Not a conftest: the adapter tests import it explicitly, so nothing here runs for other test files.
The dataset is deliberately minimal (a handful of 64-px images, 4 categories with non-contiguous LVIS
ids) so that a few training iterations of an R-18 Mask R-CNN take seconds on one CPU thread. Once
``ltbench data synth`` exists the end-to-end tests may use it too; these helpers stay because they make
the category-id mapping (ids 1, 3, 7, 12: not 1..C) and the federated image lists explicit.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: LVIS category ids of the synthetic classes: deliberately not contiguous, so that an adapter that
#: confuses class index and category id produces wrong ``category_id``s in detections.json.
CATEGORY_IDS = (1, 3, 7, 12)
#: One RGB colour per category: classes are visually distinct, so a few iterations can learn them.
COLOURS = ((230, 40, 40), (40, 200, 40), (40, 60, 230), (230, 200, 30))
#: Instances per category in the train split: long-tailed (frequent ... rare).
TRAIN_SHAPE = (12, 6, 3, 1)


@dataclass(frozen=True)
class TinyData:
    """The three paths the adapters consume (same attributes as ``ltbench.data.datasets.DatasetPaths``)."""

    train: Path
    val: Path
    image_root: Path


def _polygon_rect(x0: float, y0: float, w: float, h: float) -> list[float]:
    return [x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h]


def _polygon_diamond(x0: float, y0: float, w: float, h: float) -> list[float]:
    cx, cy = x0 + w / 2, y0 + h / 2
    return [cx, y0, x0 + w, cy, cx, y0 + h, x0, cy]


def _draw(image: np.ndarray, category_index: int, x0: int, y0: int, w: int, h: int) -> list[float]:
    """Paint one object; even class indices are rectangles, odd ones diamonds. Returns its polygon."""
    from PIL import Image, ImageDraw

    poly = (_polygon_rect if category_index % 2 == 0 else _polygon_diamond)(x0, y0, w, h)
    pil = Image.fromarray(image)
    ImageDraw.Draw(pil).polygon([(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)], fill=COLOURS[category_index])
    image[...] = np.asarray(pil)
    return poly


def _split(root: Path, split: str, per_class: tuple[int, ...], size: int, seed: int, first_image_id: int) -> dict:
    from PIL import Image

    rng = np.random.default_rng(seed)
    # One object per image keeps the geometry trivial; each class gets `per_class[k]` images.
    plan = [k for k, n in enumerate(per_class) for _ in range(n)]
    rng.shuffle(plan)
    images, annotations = [], []
    for i, k in enumerate(plan):
        image_id = first_image_id + i
        pixels = np.full((size, size, 3), 90, dtype=np.uint8)
        pixels += rng.integers(0, 20, size=pixels.shape, dtype=np.uint8)
        w, h = (int(v) for v in rng.integers(size // 3, size // 2 + 1, size=2))
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        poly = _draw(pixels, k, x0, y0, w, h)
        file_name = f"{split}/{image_id:06d}.png"
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / "images" / file_name)
        others = [c for j, c in enumerate(CATEGORY_IDS) if j != k]
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": size,
                "height": size,
                # Federated lists: the other classes are verified absent, none is non-exhaustive.
                "neg_category_ids": others[:2],
                "not_exhaustive_category_ids": [],
            }
        )
        area = float(w * h) if k % 2 == 0 else float(w * h) / 2
        annotations.append(
            {
                "id": len(annotations) + 1 + first_image_id * 10,
                "image_id": image_id,
                "category_id": CATEGORY_IDS[k],
                "bbox": [float(x0), float(y0), float(w), float(h)],
                "area": area,
                "segmentation": [poly],
                "iscrowd": 0,
            }
        )
    return {"images": images, "annotations": annotations}


def make_tiny_lvis(root: Path, *, size: int = 64, seed: int = 0, val_per_class: int = 2) -> TinyData:
    """Write ``root/annotations/{train,val}.json`` and ``root/images/{train,val}/*.png``.

    Train: 22 images (12/6/3/1 per class, one object each), val: ``val_per_class`` images per class.
    Categories carry LVIS metadata (``frequency``, ``image_count``, ``instance_count``, ``synset``).
    """
    root = Path(root)
    train = _split(root, "train", TRAIN_SHAPE, size, seed, first_image_id=100)
    val = _split(root, "val", (val_per_class,) * len(CATEGORY_IDS), size, seed + 1, first_image_id=900)
    categories = []
    for k, cid in enumerate(CATEGORY_IDS):
        n = TRAIN_SHAPE[k]
        categories.append(
            {
                "id": cid,
                "name": f"class_{cid}",
                "synset": f"class_{cid}.n.01",
                "frequency": "f" if n > 10 else ("c" if n > 2 else "r"),
                "image_count": n,
                "instance_count": n,
            }
        )
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train), ("val", val)):
        doc = {"info": {"description": "ltbench adapter test data"}, "licenses": [], "categories": categories, **split}
        (root / "annotations" / f"{name}.json").write_text(json.dumps(doc))
    return TinyData(root / "annotations" / "train.json", root / "annotations" / "val.json", root / "images")


BASE_RUN = {
    "id": "tiny-softmax-00000000",
    "scale": "smoke",
    "framework": "torchvision",
    "detector": "mask_rcnn",
    "backbone": "r50_fpn",
    "dataset": "tiny",
    "pretrain": "imagenet",
    "sampler": {"name": "random"},
    "classifier": {"name": "linear"},
    "loss": {"name": "ce"},
    "head": {"name": "standard"},
    "regularizer": None,
    "stage2": None,
    "stage1": None,
    "seed": 0,
    "schedule": {
        "name": "tiny",
        "iterations": 4,
        "batch_size": 2,
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 0.0001,
        "warmup_iters": 2,
        "steps": [3],
        "checkpoint_period": 2,
    },
    "model": {
        "min_size": 64,
        "max_size": 64,
        "backbone_depth": 18,
        "fpn_channels": 32,
        "box_head_hidden": 128,
        "mask_head_channels": 32,
        "rpn_pre_nms_top_n_train": 100,
        "rpn_post_nms_top_n_train": 50,
        "rpn_pre_nms_top_n_test": 100,
        "rpn_post_nms_top_n_test": 50,
        "box_batch_size_per_image": 32,
        "detections_per_img": 300,
        "score_thresh": 0.0001,
    },
}


def tiny_run(**overrides: object) -> dict:
    """A deep copy of ``BASE_RUN`` with top-level keys replaced; ``schedule``/``model`` dicts are merged."""
    run = copy.deepcopy(BASE_RUN)
    for key, value in overrides.items():
        if key in ("schedule", "model") and isinstance(value, dict):
            run[key].update(value)
        else:
            run[key] = copy.deepcopy(value)
    return run


def write_json(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


# ----------------------------------------------------------------------------------------------
# Method families (shared by test_adapter_methods*.py and test_adapter_mmdet_methods.py)
# ----------------------------------------------------------------------------------------------
TWO_ITERS = {"iterations": 2, "checkpoint_period": 2, "warmup_iters": 1, "steps": [2]}

#: family id -> run-config overrides (vocabulary of workflows/papers/FORMAT.md).
STAGE1_FAMILIES: dict[str, dict] = {
    "softmax": {},
    "cosine": {"classifier": {"name": "cosine"}},
    "eqlv2": {"loss": {"name": "eqlv2"}},
    "seesaw": {"loss": {"name": "seesaw"}, "classifier": {"name": "normed_linear"}},
    "group_softmax": {"loss": {"name": "group_softmax", "bin_edges": [2, 5]}},
    "focal": {"loss": {"name": "focal"}},
    "bce": {"loss": {"name": "bce"}},
    "eql": {"loss": {"name": "eql"}},
    "reweight": {"loss": {"name": "reweight"}},
    "class_margin": {"loss": {"name": "class_margin"}},
    "label_smoothing": {"regularizer": {"name": "label_smoothing"}},
    "online_label_smoothing": {"regularizer": {"name": "online_label_smoothing"}},
    "pcb_ce": {"head": {"name": "iterative", "steps": 3}, "regularizer": {"name": "pcb", "start_fraction": 0.0}},
    "pcb_eqlv2": {"loss": {"name": "eqlv2"}, "head": {"name": "iterative", "steps": 3},
                  "regularizer": {"name": "pcb", "start_fraction": 0.0}},
    "pcb_seesaw": {"loss": {"name": "seesaw"}, "head": {"name": "iterative", "steps": 3},
                   "regularizer": {"name": "pcb", "start_fraction": 0.0}},
    "pcb_single_step": {"regularizer": {"name": "pcb", "start_fraction": 0.0}},
    "dsn": {"head": {"name": "dsn", "steps": 3}},
}
#: families whose scaled-cosine classifiers (scale 20) start with the background at p ~ 1: after two
#: iterations every foreground score may legitimately be below the 1e-4 threshold.
SLOW_STARTERS = {"cosine", "seesaw"}
MMDET_FAMILIES = ("eqlv2", "seesaw", "group_softmax", "pcb_ce")

#: stage-2 method -> stage2 block (+ run overrides)
STAGE2_METHODS: dict[str, dict] = {
    "disalign": {"stage2": {"name": "disalign"}},
    "simcal": {"stage2": {"name": "simcal"}, "sampler": {"name": "bilevel", "classes_per_batch": 2, "episodes": 4}},
    "bags": {"stage2": {"name": "bags", "groups": [2, 5]}},
    "bags_no_others": {"stage2": {"name": "bags", "groups": [2, 5], "others": False}},
    "bags_no_bg_group": {"stage2": {"name": "bags", "groups": [2, 5], "background_group": False}},
    "crt": {"stage2": {"name": "crt"}, "sampler": {"name": "class_aware"}},
    "lws": {"stage2": {"name": "lws"}},
    "tau_norm": {"stage2": {"name": "tau_norm", "tau": 1.0}},
    "ncm": {"stage2": {"name": "ncm"}},
    "finetune_tail": {"stage2": {"name": "finetune_tail", "trainable": "fc_cls"}},
}
MMDET_STAGE2 = ("disalign", "tau_norm", "ncm")

def family_run(framework: str, family: str, schedule: dict | None = None) -> dict:
    return tiny_run(id=f"tiny-{framework}-{family}-00000000", framework=framework, schedule={**TWO_ITERS, **(schedule or {})},
                    **STAGE1_FAMILIES.get(family, {}))

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

def stage2_run(framework: str, method: str, stage1_run: dict) -> dict:
    overrides = dict(STAGE2_METHODS[method])
    return tiny_run(id=f"tiny-{framework}-{method}-00000000", framework=framework, schedule=TWO_ITERS,
                    stage1=stage1_run["id"], **overrides)


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
    from test_adapter_torchvision import PLAIN, check_detections  # that module imports this one

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
