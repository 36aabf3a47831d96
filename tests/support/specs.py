"""A small valid paper spec for the spec, plan and property tests."""

from __future__ import annotations


def minimal_spec() -> dict:
    """A small valid spec: one table, two column groups, a plain row, a view row, a cited row."""
    return {
        "paper": "pcb",
        "title": "t",
        "source": "papers/pcb.txt",
        "defaults": {
            "run": {"framework": "mmdet", "detector": "mask_rcnn", "backbone": "r50_fpn", "dataset": "lvis_v0.5",
                    "pretrain": "imagenet", "schedule": "2x", "sampler": {"name": "random"},
                    "classifier": {"name": "linear"}, "loss": {"name": "ce"}, "head": {"name": "standard"},
                    "regularizer": None, "stage2": None},
            "view": {"name": "plain"},
        },
        "assumptions": [{"id": "a-one", "text": "something ambiguous", "choice": "what we do"}],
        "tables": [{
            "id": "2", "caption": "c", "scope": "reproduce",
            "attribute_columns": ["Method"],
            "column_groups": [
                {"id": "v0.5", "label": "LVIS v0.5", "run": {"dataset": "lvis_v0.5"},
                 "columns": [{"header": "AP", "key": "segm.AP"}, {"header": "PwB", "key": "PwB", "lower_is_better": True}]},
                {"id": "v1.0", "label": "LVIS v1.0", "run": {"dataset": "lvis_v1"},
                 "columns": [{"header": "AP", "key": "segm.AP"}]},
            ],
            "rows": [
                {"label": "Softmax", "group": "v0.5", "attributes": {"Method": "Softmax"},
                 "reported": {"segm.AP": 21.9, "PwB": "7.0"}, "assumptions": ["a-one"]},
                {"label": "RFS CM", "group": "v0.5", "run": {"sampler": {"name": "rfs", "t": 0.001}},
                 "view": {"name": "cm_calibration", "source": "val"}, "reported": {"segm.AP": 28.4}},
                {"label": "RFS", "group": "v1.0", "run": {"sampler": {"name": "rfs", "t": 0.001}},
                 "cited": {"source": "[10] LOCE"}, "reported": {"segm.AP": 23.7}},
            ],
        }],
    }
