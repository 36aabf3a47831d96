"""The torchvision Mask R-CNN / Faster R-CNN of a run: a ResNet-FPN backbone, torchvision's RPN and mask
branch, and ``LtbenchRoIHeads`` with the run's ``BoxHead`` (bg first, ``4 * (C + 1)`` box deltas).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from adapters.interface import run_label
from adapters.records import LvisSplit
from adapters.torchvision.roi_heads import roi_heads_class
from adapters.wiring import build_head, head_config, mask_head_name, normed_conv_class
from ltbench.errors import LtbenchError
from ltbench.weights import resolve as resolve_weights

BACKBONE_DEPTHS = {"r18_fpn": 18, "r34_fpn": 34, "r50_fpn": 50, "r101_fpn": 101}


def model_settings(run_config: dict) -> dict:
    model = dict(run_config.get("model") or {})
    backbone = run_config.get("backbone", "r50_fpn")
    depth = int(model.get("backbone_depth", BACKBONE_DEPTHS.get(backbone, 0)))
    if depth not in (18, 34, 50, 101):
        raise LtbenchError(
            f"unsupported backbone {backbone!r} (depth {depth})",
            path=run_label(run_config),
            key="backbone",
            expected="r18_fpn, r34_fpn, r50_fpn or r101_fpn (or model.backbone_depth 18/34/50/101)",
        )
    fpn = int(model.get("fpn_channels", 256))
    return {
        "depth": depth,
        "fpn_channels": fpn,
        # A list means multi-scale training (a random choice per image); testing uses the last entry.
        "min_size": tuple(int(v) for v in model["min_size"]) if isinstance(model.get("min_size"), list) else int(model.get("min_size", 800)),
        "max_size": int(model.get("max_size", 1333)),
        "box_head_hidden": int(model.get("box_head_hidden", 1024)),
        "mask_head_channels": int(model.get("mask_head_channels", min(256, fpn))),
        "rpn_pre_nms_top_n_train": int(model.get("rpn_pre_nms_top_n_train", 2000)),
        "rpn_post_nms_top_n_train": int(model.get("rpn_post_nms_top_n_train", 2000)),
        "rpn_pre_nms_top_n_test": int(model.get("rpn_pre_nms_top_n_test", 1000)),
        "rpn_post_nms_top_n_test": int(model.get("rpn_post_nms_top_n_test", 1000)),
        "box_batch_size_per_image": int(model.get("box_batch_size_per_image", 512)),
        "rpn_batch_size_per_image": int(model.get("rpn_batch_size_per_image", 256)),
        "detections_per_img": int(model.get("detections_per_img", 300)),
        "score_thresh": float(model.get("score_thresh", 1e-4)),
        "weights": model.get("weights", run_config.get("weights")),
        # one anchor size per FPN level (P2..P6); None: torchvision's 32..512, sized for 800-px images
        "anchor_sizes": tuple(int(v) for v in model["anchor_sizes"]) if model.get("anchor_sizes") else None,
    }


def build_model(run_config: dict, split: LvisSplit) -> Any:
    """A torchvision Mask R-CNN / Faster R-CNN for ``run_config`` whose box branch is the run's BoxHead.

    Random initialisation unless a ``weights`` path is given (``model.weights`` or top-level
    ``weights``): an ImageNet ResNet state dict (loaded into the backbone body) or a full detector
    state dict. BatchNorm is frozen with given weights (detection practice) and trainable otherwise
    (a randomly initialised ResNet does not train with identity-frozen BN).
    """
    import torch
    import torchvision
    from torchvision.models.detection import FasterRCNN, MaskRCNN
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import misc as misc_ops
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    detector = run_config.get("detector", "mask_rcnn")
    if detector not in ("mask_rcnn", "faster_rcnn"):
        raise LtbenchError(
            f"detector {detector!r} is not available in the torchvision adapter",
            path=run_label(run_config),
            key="detector",
            expected="mask_rcnn or faster_rcnn (cascade/HTC: use the mmdet adapter)",
        )
    s = model_settings(run_config)
    # The run's pretrained file: a path in its config, else at paper scale the weight cache's file (ImageNet
    # ResNet or COCO detector), fetched beforehand by `ltbench weights fetch`: never downloaded in a job.
    weights = next(iter(resolve_weights(run_config).values()), None)
    pretrained = bool(weights)
    norm = misc_ops.FrozenBatchNorm2d if pretrained else torch.nn.BatchNorm2d
    resnet = getattr(torchvision.models, f"resnet{s['depth']}")(weights=None, norm_layer=norm)
    if weights:
        _load_weights(resnet, weights, part="backbone")
    if pretrained:
        # Detection practice with pretrained weights: conv1 and layer1 stay frozen.
        for name, p in resnet.named_parameters():
            if not name.startswith(("layer2", "layer3", "layer4")):
                p.requires_grad_(False)
    widths = [64, 128, 256, 512] if s["depth"] < 50 else [256, 512, 1024, 2048]
    backbone = BackboneWithFPN(
        resnet,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=widths,
        out_channels=s["fpn_channels"],
        extra_blocks=LastLevelMaxPool(),
    )
    c = split.num_classes
    common = dict(
        min_size=s["min_size"],
        max_size=s["max_size"],
        rpn_pre_nms_top_n_train=s["rpn_pre_nms_top_n_train"],
        rpn_post_nms_top_n_train=s["rpn_post_nms_top_n_train"],
        rpn_pre_nms_top_n_test=s["rpn_pre_nms_top_n_test"],
        rpn_post_nms_top_n_test=s["rpn_post_nms_top_n_test"],
        box_batch_size_per_image=s["box_batch_size_per_image"],
        rpn_batch_size_per_image=s["rpn_batch_size_per_image"],
        box_detections_per_img=s["detections_per_img"],
        box_score_thresh=s["score_thresh"],
        # A placeholder predictor keeps torchvision from building a (C+1)-way one we would discard.
        box_predictor=torch.nn.Identity(),
        box_head=torch.nn.Identity(),
    )
    if s["anchor_sizes"]:
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        common["rpn_anchor_generator"] = AnchorGenerator(tuple((a,) for a in s["anchor_sizes"]), ((0.5, 1.0, 2.0),) * len(s["anchor_sizes"]))
    agnostic = bool(run_config.get("class_agnostic", False))
    if detector == "mask_rcnn":
        m = s["mask_head_channels"]
        predictor = MaskRCNNPredictor(m, m, 1 if agnostic else c + 1)
        if mask_head_name(run_config) == "normed":
            scale = float((run_config.get("mask_head") or {}).get("scale", 20))
            predictor.mask_fcn_logits = normed_conv_class()(m, predictor.mask_fcn_logits.out_channels, scale)
        model = MaskRCNN(
            backbone,
            num_classes=None,
            mask_head=MaskRCNNHeads(s["fpn_channels"], (m, m, m, m), 1),
            mask_predictor=_AgnosticMask(predictor, c + 1) if agnostic else predictor,
            **common,
        )
    else:
        model = FasterRCNN(backbone, num_classes=None, **common)
    head = build_head(head_config(run_config, split.class_stats), num_classes=c, background="first",
                      num_box_deltas=4 if agnostic else 4 * (c + 1), in_channels=s["fpn_channels"], hidden=s["box_head_hidden"])
    old = model.roi_heads
    roi_heads = roi_heads_class()(
        old.box_roi_pool,
        head,
        None,
        0.5,
        0.5,
        s["box_batch_size_per_image"],
        0.25,
        None,
        s["score_thresh"],
        0.5,
        s["detections_per_img"],
        mask_roi_pool=old.mask_roi_pool,
        mask_head=old.mask_head,
        mask_predictor=old.mask_predictor,
    )
    model.roi_heads = roi_heads
    if weights:
        _load_weights(model, weights, part="detector")
    return model


class _AgnosticMask:
    """Marker replaced in ``__new__`` by a torch module (kept lazy: torch is imported inside functions)."""

    def __new__(cls, predictor: Any, num_columns: int) -> Any:  # noqa: D102
        import torch

        class ClassAgnosticMaskPredictor(torch.nn.Module):
            """One mask per RoI, shown to torchvision's loss/inference as (N, C+1, M, M) by broadcasting,
            so that its per-class indexing picks the single mask whatever the label."""

            def __init__(self) -> None:
                super().__init__()
                self.predictor = predictor

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                logits = self.predictor(x)
                return logits.expand(-1, num_columns, -1, -1)

        return ClassAgnosticMaskPredictor()


def _load_weights(module: Any, weights: str, *, part: str) -> None:
    """Load a user's weights: ``part="backbone"`` takes a plain ResNet state dict (``fc.*`` ignored);
    ``part="detector"`` takes a full detector state dict (keys ``backbone.*`` ...), skipped otherwise."""
    import torch

    path = Path(weights).expanduser()
    if not path.is_file():
        raise LtbenchError("weights file not found", path=path, key="model.weights", expected="a PyTorch state dict file")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    is_detector = any(k.startswith("backbone.") for k in state)
    if part == "backbone" and not is_detector:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = module.load_state_dict(state, strict=False)
        if unexpected or len(missing) == len(module.state_dict()):
            raise LtbenchError(
                "weights do not fit the ResNet backbone", path=path, key="model.weights", expected="a torchvision ResNet state dict of the same depth"
            )
    elif part == "detector" and is_detector:
        own = module.state_dict()
        fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        module.load_state_dict(fitting, strict=False)
        print(f"loaded {len(fitting)}/{len(own)} tensors from {path}", file=sys.stderr)
