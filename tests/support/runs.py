"""Tiny run configs for the adapter tests: ``tiny_run`` and the method families every adapter trains."""

from __future__ import annotations

import copy
import json
from pathlib import Path

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


def stage2_run(framework: str, method: str, stage1_run: dict) -> dict:
    overrides = dict(STAGE2_METHODS[method])
    return tiny_run(id=f"tiny-{framework}-{method}-00000000", framework=framework, schedule=TWO_ITERS,
                    stage1=stage1_run["id"], **overrides)
