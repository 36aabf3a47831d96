"""Run configs for the pretrained-weights tests."""

from __future__ import annotations


def paper_run(framework="mmdet", pretrain="imagenet", **extra):
    """A paper-scale run config with just the keys ``ltbench.weights`` reads."""
    return {"scale": "paper", "framework": framework, "detector": extra.pop("detector", "mask_rcnn"),
            "backbone": extra.pop("backbone", "r50_fpn"), "pretrain": pretrain, "model": {}, **extra}
