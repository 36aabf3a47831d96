"""torchvision adapter (the CPU default): Mask R-CNN / Faster R-CNN with a ResNet-FPN backbone, whose box
branch is the ltbench ``BoxHead`` of the run's method.

Background convention: ``"first"`` (torchvision's own): label 0 is background, class index k is label
k + 1. Box deltas: ``4 * (C + 1)`` per RoI (torchvision regresses the background column too).

What is torchvision's and what is ours:
- torchvision: transform (resize/normalise), backbone + FPN, RPN, RoI matching and sampling
  (``select_training_samples``), RoIAlign, the box coder, NMS, the mask branch and its loss.
- ltbench: the box head (features + classifier + classification loss + inference activation), called
  through ``LtbenchRoIHeads``; the box regression loss is torchvision's (smooth-L1, beta 1/9, summed
  over positives / number of sampled RoIs); the detection post-processing is written here because
  torchvision's ``postprocess_detections`` applies its own softmax to logits while methods give
  probabilities (sigmoid for EQL v2, group softmax, calibrated views...).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from adapters import base
from ltbench.errors import LtbenchError

BACKBONE_DEPTHS = {"r18_fpn": 18, "r34_fpn": 34, "r50_fpn": 50, "r101_fpn": 101}


def _roi_heads_class() -> type:
    """``LtbenchRoIHeads`` (defined lazily: torchvision is a heavy import)."""
    global _LTBENCH_ROI_HEADS
    if _LTBENCH_ROI_HEADS is not None:
        return _LTBENCH_ROI_HEADS
    import torch
    import torch.nn.functional as F
    from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_inference, maskrcnn_loss
    from torchvision.ops import boxes as box_ops

    class LtbenchRoIHeads(RoIHeads):
        """torchvision's RoIHeads with the box path replaced by an ltbench ``BoxHead`` (bg = 0).

        ``box_head`` is the BoxHead; ``box_predictor`` is unused (None). Hooks set by the adapter:
        ``view`` ((head, BoxHeadOutput) -> probs (R, C+1), bg first) reads a (run, view) at inference
        (None: ``head.probabilities``); ``bilevel_classes`` (one class index per image, or None) keeps
        only SimCal's bi-level RoIs in training; ``fit_pass`` makes a training forward feed
        ``head.accumulate(output, labels)`` (NCM) instead of computing losses. ``last_inference`` keeps
        the scored RoIs and their probabilities per image (resized coordinates) for proposal statistics.
        ``fast_masks`` (default True) computes at inference only each detection's own mask channel (see
        ``_mask_probs_fast``); ``keep_mask_probs`` leaves the (N, 1, M, M) mask probabilities under
        ``"mask_probs"`` instead of ``"masks"``, so that torchvision's transform does not paste them and
        the adapter pastes + encodes them in chunks (``_masks_to_rles``).
        """

        mask_chunk = 512  # RoIs through the mask branch at once when detections are uncapped

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.view = None
            self.bilevel_classes: list[int] | None = None
            self.fit_pass = False
            self.last_inference: dict | None = None
            self.fast_masks = True
            self.detection_filter = None  # inference: (scores, labels) of an image -> indices to keep
            self.keep_mask_probs = False

        def _mask_probs_fast(self, features, boxes: list, image_shapes: list, labels: list) -> list:  # noqa: ANN001
            """Per image (N_i, 1, M, M) mask probabilities of each detection's own class, or None when the
            predictor is not torchvision's standard one (normed / class-agnostic: use the generic path).

            Same arithmetic as ``maskrcnn_inference(mask_predictor(x), labels)``, written so that only the
            selected class channel of the 1x1 logits conv is computed (at LVIS scale that conv has C+1 =
            1231 output channels of which one is used) and the stride-2 2x2 transposed conv is one matrix
            product (each output pixel reads exactly one input pixel). Summation order differs from
            oneDNN's, so mask logits may differ in the last float bits; boxes and scores are untouched.
            """
            predictor = self.mask_predictor
            deconv, logits_conv = getattr(predictor, "conv5_mask", None), getattr(predictor, "mask_fcn_logits", None)
            if (
                type(logits_conv) is not torch.nn.Conv2d
                or type(deconv) is not torch.nn.ConvTranspose2d
                or tuple(deconv.kernel_size) != (2, 2)
                or tuple(deconv.stride) != (2, 2)
                or tuple(deconv.padding) != (0, 0)
                or tuple(logits_conv.kernel_size) != (1, 1)
            ):
                return None
            counts = [len(b) for b in boxes]
            if sum(counts) <= self.mask_chunk:
                return list(self._mask_probs_chunk(features, boxes, image_shapes, torch.cat(labels)).split(counts))
            # Uncapped detections (per-class top-k mode): bounded memory, one image's chunk at a time.
            out = []
            for i, (image_boxes, image_labels) in enumerate(zip(boxes, labels)):
                parts = []
                for start in range(0, max(len(image_boxes), 1), self.mask_chunk):
                    only = [b[:0] for b in boxes]
                    only[i] = image_boxes[start : start + self.mask_chunk]
                    parts.append(self._mask_probs_chunk(features, only, image_shapes, image_labels[start : start + self.mask_chunk]))
                out.append(torch.cat(parts))
            return out

        def _mask_probs_chunk(self, features, boxes: list, image_shapes: list, label_vec: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
            """(N, 1, 2S, 2S) own-class mask probabilities of the concatenated ``boxes`` (N = their total)."""
            predictor = self.mask_predictor
            deconv, logits_conv = predictor.conv5_mask, predictor.mask_fcn_logits
            x = self.mask_head(self.mask_roi_pool(features, boxes, image_shapes))  # (N, m, S, S)
            n, c_in, size, _ = x.shape
            c_out = deconv.out_channels
            # (N*S*S, m_in) @ (m_in, 4*m_out) + bias: row (n, i, j), column (a, b, o) = channel o of output
            # pixel (2i+a, 2j+b); the output channels last make the per-detection logit one batched mat-vec.
            weight_up = deconv.weight.permute(0, 2, 3, 1).reshape(c_in, 4 * c_out)
            up = torch.addmm(deconv.bias.repeat(4), x.permute(0, 2, 3, 1).reshape(-1, c_in), weight_up)
            up = up.view(n, size * size * 4, c_out).relu_()
            weight = logits_conv.weight[label_vec, :, 0, 0]  # (N, m_out): each detection's own class
            logits = torch.bmm(up, weight.unsqueeze(2)).view(n, size, size, 2, 2) + logits_conv.bias[label_vec].view(-1, 1, 1, 1, 1)
            # (N, S, S, 2, 2) -> (N, S, 2, S, 2) -> (N, 1, 2S, 2S)
            logits = logits.permute(0, 1, 3, 2, 4).reshape(n, 1, 2 * size, 2 * size)
            return logits.sigmoid()

        def box_regression_loss(self, deltas: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            """torchvision's Fast R-CNN box loss: smooth-L1 (beta 1/9) on the positive RoIs' deltas of
            their GT class, summed and divided by the number of sampled RoIs. deltas (R, D), D = 4(C+1) or 4."""
            pos = torch.where(labels > 0)[0]
            per_class = deltas.reshape(deltas.shape[0], -1, 4)
            column = labels[pos] if per_class.shape[1] > 1 else torch.zeros_like(labels[pos])
            return F.smooth_l1_loss(per_class[pos, column], targets[pos], beta=1 / 9, reduction="sum") / labels.numel()

        def _bilevel_keep(self, labels: torch.Tensor, counts: list[int]) -> torch.Tensor:
            """Indices of SimCal's calibration RoIs: positives of each image's sampled class + as many negatives."""
            from ltbench.methods.samplers import compose_bilevel_batch

            image_index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
            return compose_bilevel_batch(
                labels, image_index, self.bilevel_classes, num_classes=self.box_head.num_classes, background="first"
            )

        def postprocess(self, probs: torch.Tensor, deltas: torch.Tensor, proposals: list, image_shapes: list) -> list[dict]:
            """probs (R, C+1) bg-first, deltas (R, D) -> per image boxes/scores/labels (labels 1..C)."""
            num_columns = probs.shape[-1]
            boxes_all = self.box_coder.decode(deltas, proposals)  # (R, D/4, 4)
            if boxes_all.shape[1] == 1:
                boxes_all = boxes_all.expand(-1, num_columns, 4)
            counts = [len(p) for p in proposals]
            results = []
            for boxes, scores, shape in zip(boxes_all.split(counts), probs.split(counts), image_shapes):
                boxes = box_ops.clip_boxes_to_image(boxes, shape)
                labels = torch.arange(num_columns, device=probs.device).view(1, -1).expand_as(scores)
                boxes, scores, labels = boxes[:, 1:], scores[:, 1:], labels[:, 1:]
                boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
                keep = torch.where(scores > self.score_thresh)[0]
                boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
                keep = box_ops.remove_small_boxes(boxes, min_size=1e-2)
                boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
                keep = box_ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
                if self.detection_filter is not None:  # per-class top-k mode: before any mask is computed
                    keep = keep[torch.as_tensor(self.detection_filter(scores[keep], labels[keep]), dtype=torch.long)]
                results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
            return results

        def forward(self, features, proposals, image_shapes, targets=None):  # noqa: ANN001 - torchvision signature
            losses: dict[str, torch.Tensor] = {}
            if self.training:
                if targets is None:
                    raise ValueError("targets are required in training mode")
                proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
                pooled = self.box_roi_pool(features, proposals, image_shapes)
                label_vec = torch.cat(labels)
                target_vec = torch.cat(regression_targets)
                if self.bilevel_classes is not None:
                    keep = self._bilevel_keep(label_vec, [len(p) for p in proposals])
                    pooled, label_vec, target_vec = pooled[keep], label_vec[keep], target_vec[keep]
                output = self.box_head(pooled)
                if self.fit_pass:
                    self.box_head.accumulate(output, label_vec)
                    return [], {}
                losses.update(self.box_head.classification_losses(output, label_vec))
                losses["loss_box_reg"] = self.box_regression_loss(self.box_head.regression_deltas(output), label_vec, target_vec)
                result: list[dict] = []
            else:
                output = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
                probs = self.view(self.box_head, output) if self.view is not None else self.box_head.probabilities(output)
                result = self.postprocess(probs, self.box_head.regression_deltas(output), proposals, image_shapes)
                counts = [len(p) for p in proposals]
                self.last_inference = {"proposals": proposals, "probs": list(probs.split(counts)), "image_shapes": list(image_shapes)}

            if self.has_mask():
                if self.training:
                    mask_proposals, pos_matched = [], []
                    for props, lab, idx in zip(proposals, labels, matched_idxs):
                        pos = torch.where(lab > 0)[0]
                        mask_proposals.append(props[pos])
                        pos_matched.append(idx[pos])
                else:
                    mask_proposals = [r["boxes"] for r in result]
                fast = None
                if not self.training and self.fast_masks:
                    fast = self._mask_probs_fast(features, mask_proposals, image_shapes, [r["labels"] for r in result])
                if fast is None:
                    mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, mask_proposals, image_shapes)))
                if self.training:
                    losses["loss_mask"] = maskrcnn_loss(
                        mask_logits, mask_proposals, [t["masks"] for t in targets], [t["labels"] for t in targets], pos_matched
                    )
                else:
                    if fast is None:
                        fast = maskrcnn_inference(mask_logits, [r["labels"] for r in result])
                    key = "mask_probs" if self.keep_mask_probs else "masks"
                    for mask_probs, r in zip(fast, result):
                        r[key] = mask_probs
            return result, losses

    _LTBENCH_ROI_HEADS = LtbenchRoIHeads
    return LtbenchRoIHeads


_LTBENCH_ROI_HEADS: type | None = None


def _model_settings(run_config: dict) -> dict:
    model = dict(run_config.get("model") or {})
    backbone = run_config.get("backbone", "r50_fpn")
    depth = int(model.get("backbone_depth", BACKBONE_DEPTHS.get(backbone, 0)))
    if depth not in (18, 34, 50, 101):
        raise LtbenchError(
            f"unsupported backbone {backbone!r} (depth {depth})",
            path=base.run_label(run_config),
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
        "detections_per_img": int(model.get("detections_per_img", 300)),
        "score_thresh": float(model.get("score_thresh", 1e-4)),
        "weights": model.get("weights", run_config.get("weights")),
    }


def build_model(run_config: dict, split: base.LvisSplit) -> Any:
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
            path=base.run_label(run_config),
            key="detector",
            expected="mask_rcnn or faster_rcnn (cascade/HTC: use the mmdet adapter)",
        )
    s = _model_settings(run_config)
    weights = s["weights"]
    imagenet = _default_imagenet_weights(run_config) if not weights else None
    pretrained = bool(weights or imagenet)
    norm = misc_ops.FrozenBatchNorm2d if pretrained else torch.nn.BatchNorm2d
    resnet = getattr(torchvision.models, f"resnet{s['depth']}")(weights=imagenet, norm_layer=norm)
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
        box_detections_per_img=s["detections_per_img"],
        box_score_thresh=s["score_thresh"],
        # A placeholder predictor keeps torchvision from building a (C+1)-way one we would discard.
        box_predictor=torch.nn.Identity(),
        box_head=torch.nn.Identity(),
    )
    agnostic = bool(run_config.get("class_agnostic", False))
    if detector == "mask_rcnn":
        m = s["mask_head_channels"]
        predictor = MaskRCNNPredictor(m, m, 1 if agnostic else c + 1)
        mask_head_cfg = run_config.get("mask_head") or {"name": "standard"}
        if mask_head_cfg.get("name") == "normed":
            predictor.mask_fcn_logits = _normed_conv_class()(m, predictor.mask_fcn_logits.out_channels, float(mask_head_cfg.get("scale", 20)))
        elif mask_head_cfg.get("name") != "standard":
            raise LtbenchError(f"unknown mask head {mask_head_cfg.get('name')!r}", key="mask_head.name", expected="standard or normed")
        model = MaskRCNN(
            backbone,
            num_classes=None,
            mask_head=MaskRCNNHeads(s["fpn_channels"], (m, m, m, m), 1),
            mask_predictor=_AgnosticMask(predictor, c + 1) if agnostic else predictor,
            **common,
        )
    else:
        model = FasterRCNN(backbone, num_classes=None, **common)
    head = base.build_head(
        run_config,
        num_classes=c,
        background="first",
        num_box_deltas=4 if agnostic else 4 * (c + 1),
        split=split,
        in_channels=s["fpn_channels"],
        hidden=s["box_head_hidden"],
    )
    old = model.roi_heads
    roi_heads = _roi_heads_class()(
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


def _default_imagenet_weights(run_config: dict) -> Any:
    """torchvision's ImageNet weights for a paper-scale run with ``pretrain: imagenet`` and no
    ``weights`` path (downloaded once into the torch hub cache); None at smoke scale (random init).
    ``pretrain: coco`` (BAGS' baseline) needs the user's checkpoint."""
    if run_config.get("scale") != "paper":
        return None
    pretrain = run_config.get("pretrain", "imagenet")
    if pretrain == "imagenet":
        import torchvision

        depth = _model_settings(run_config)["depth"]
        return getattr(torchvision.models, f"ResNet{depth}_Weights").IMAGENET1K_V1
    raise LtbenchError(
        f"pretrain {pretrain!r} needs a checkpoint",
        path=base.run_label(run_config),
        key="model.weights",
        expected="a path to the COCO-trained detector's state dict in model.weights",
    )


def _normed_conv_class() -> type:
    """1x1 conv on L2-normalised inputs and weights, times ``scale`` (Seesaw's "normed mask" predictor):
    x (N, C_in, H, W) -> (N, C_out, H, W)."""
    import torch
    import torch.nn.functional as F

    class NormedConv2d(torch.nn.Conv2d):
        def __init__(self, in_channels: int, out_channels: int, scale: float, eps: float = 1e-6) -> None:
            super().__init__(in_channels, out_channels, 1)
            torch.nn.init.normal_(self.weight, std=0.01)
            torch.nn.init.zeros_(self.bias)
            self.scale, self.eps = scale, eps

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            weight = self.weight / (self.weight.norm(dim=1, keepdim=True) + self.eps)
            x = self.scale * x / (x.norm(dim=1, keepdim=True) + self.eps)
            return F.conv2d(x, weight, self.bias)

    return NormedConv2d


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


def _hflip(image: Any, target: dict) -> tuple[Any, dict]:
    w = image.shape[-1]
    image = image.flip(-1)
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
    target = {**target, "boxes": boxes}
    if "masks" in target:
        target["masks"] = target["masks"].flip(-1)
    return image, target


class TorchvisionAdapter(base.Adapter):
    name = "torchvision"
    background = "first"

    # -- training --------------------------------------------------------------------------------
    def train(
        self, run_config: dict, workdir: Path, data: base.DataPaths, *, stage1_workdir: Path | None = None, init_workdir: Path | None = None
    ) -> Path:
        import torch

        from ltbench.io import write_json

        start = base.start_training(run_config, workdir, data, stage1_workdir)
        if start.finished is not None:
            return start.finished
        workdir, split = start.workdir, start.split
        base.seed_everything(int(run_config.get("seed", 0)))
        stage2 = run_config.get("stage2")
        if stage2:
            model = self._stage2_model(run_config, split, start.stage1_config, base.load_checkpoint(start.stage1_checkpoint))
            if not getattr(model.roi_heads.box_head, "requires_training", True):
                write_json(workdir / "run_config.json", run_config)
                return self._finish_without_training(run_config, workdir, model, split)
        else:
            model = build_model(run_config, split)
            source = base.init_checkpoint(run_config, init_workdir)
            if source is not None and base.last_checkpoint(workdir) is None:
                base.load_matching(model, base.load_checkpoint(source)["model"], what=f"{source} (init_from)")
        write_json(workdir / "run_config.json", run_config)
        schedule = base.schedule_of(run_config, stage2=bool(stage2))
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise LtbenchError("the model has no trainable parameter", path=base.run_label(run_config), key="stage2")
        optimizer = torch.optim.SGD(
            params, lr=float(schedule["lr"]), momentum=float(schedule["momentum"]), weight_decay=float(schedule["weight_decay"])
        )
        sampler = run_config.get("sampler")
        if stage2 and isinstance(stage2, dict) and "sampler" in stage2:
            sampler = stage2["sampler"]
        sampler = _adapter_sampler(sampler)
        bilevel = (sampler or {}).get("name") == "bilevel"
        # The bi-level sampler draws class indices (so the sampled class is the RoI label space's).
        categories = [set(r.classes.tolist()) for r in split.images] if bilevel else [r.category_ids for r in split.images]
        order = base.make_epoch_order(sampler, categories, int(run_config.get("seed", 0)), batch_size=int(schedule["batch_size"]))
        stream = base.IndexStream(order)
        with_masks = run_config.get("detector", "mask_rcnn") == "mask_rcnn"
        head = model.roi_heads.box_head

        def step(items: list, iteration: int) -> dict:
            images, targets = [], []
            indices = [item[0] for item in items] if bilevel else items
            if bilevel:
                model.roi_heads.bilevel_classes = [int(item[1]) for item in items]
            for i in indices:
                record = split.images[i]
                image = base.read_image(record)
                target = {"boxes": torch.from_numpy(record.boxes), "labels": torch.from_numpy(record.classes) + 1}
                if with_masks:
                    target["masks"] = base.instance_masks(record)
                if torch.rand(()) < 0.5:
                    image, target = _hflip(image, target)
                images.append(image)
                targets.append(target)
            losses = model(images, targets)
            if stage2:
                # Frozen parts still produce (constant) losses: keep only what trains.
                losses = {k: v for k, v in losses.items() if v.requires_grad}
            return losses

        parts = base.LoopParts(
            model=model,
            optimizer=optimizer,
            stream=stream,
            step=step,
            set_progress=head.set_progress,
            extra_state={"framework": self.name, "category_ids": split.category_ids},
        )
        return base.run_training_loop(run_config, workdir, schedule, parts)

    def _stage2_model(self, run_config: dict, split: base.LvisSplit, stage1_config: dict, stage1_state: dict | None) -> Any:
        """The stage-1 model (built from the stage-1 run config; ``stage1_state`` loaded when given) with
        its box head replaced by ``build_stage2(run_config, stage1_head)``. Everything outside the new
        head is frozen, BatchNorm statistics included: stage 2 learns only the new head's parameters."""
        model = build_model(stage1_config, split)
        if stage1_state is not None:
            model.load_state_dict(stage1_state["model"])
        for p in model.parameters():
            p.requires_grad_(False)
        new_head = base.build_stage2_head(run_config, model.roi_heads.box_head, split)
        model.roi_heads.box_head = new_head
        trains = getattr(new_head, "requires_training", True)
        if trains and not any(p.requires_grad for p in new_head.parameters()):
            raise LtbenchError("build_stage2 returned a head without trainable parameters", key="stage2", path=base.run_label(run_config))
        base.unfreeze_for_finetune(model, run_config, "roi_heads.box_head.", ("backbone.body.conv1.", "backbone.body.bn1."), "backbone.body.layer{}.")
        base.keep_batchnorm_in_eval(model)
        return model

    def _finish_without_training(self, run_config: dict, workdir: Path, model: Any, split: base.LvisSplit) -> Path:
        """Stage-2 heads without an optimiser (tau-norm; NCM after its one statistics pass over the
        training images, in training mode so that RoIs are sampled and labelled as in training)."""
        import torch

        from ltbench.io import write_json

        head = model.roi_heads.box_head
        if getattr(head, "fit_pass", False):
            with_masks = run_config.get("detector", "mask_rcnn") == "mask_rcnn"
            model.train()
            model.roi_heads.fit_pass = True
            base.seed_everything(int(run_config.get("seed", 0)))
            with torch.no_grad():
                for record in split.images:
                    target = {"boxes": torch.from_numpy(record.boxes), "labels": torch.from_numpy(record.classes) + 1}
                    if with_masks:
                        target["masks"] = base.instance_masks(record)
                    model([base.read_image(record)], [target])
            model.roi_heads.fit_pass = False
        state = {"run_id": run_config.get("id"), "iteration": 0, "model": model.state_dict(), "framework": self.name,
                 "category_ids": split.category_ids}
        final = base.save_checkpoint(workdir, base.FINAL_CHECKPOINT, state)
        write_json(workdir / base.DONE_FILE, {"run_id": run_config.get("id"), "checkpoint": base.FINAL_CHECKPOINT, "iterations": 0})
        return final

    # -- prediction ------------------------------------------------------------------------------
    def _load_for_predict(self, run_config: dict, workdir: Path, split_for_classes: base.LvisSplit) -> Any:
        workdir = Path(workdir)
        checkpoint = base.final_checkpoint(workdir)
        state = base.load_checkpoint(checkpoint)
        if run_config.get("stage2"):
            model = self._stage2_model(run_config, split_for_classes, base._read_json_file(workdir / "stage1_run_config.json"), None)
        else:
            model = build_model(run_config, split_for_classes)
        model.load_state_dict(state["model"])
        if state.get("category_ids") and list(state["category_ids"]) != split_for_classes.category_ids:
            raise LtbenchError(
                "the model was trained on different categories than the prediction split lists",
                path=checkpoint,
                key="category_ids",
                expected=f"{len(state['category_ids'])} categories with the same ids",
            )
        model.eval()
        return model

    def predict(self, run_config: dict, view_config: dict, workdir: Path, data: base.DataPaths, *, split: str = "val", out_dir: Path) -> dict:
        import torch

        base.threads_from_env()
        view_config = view_config or {"id": "plain", "name": "plain"}
        if base.is_grid_view(view_config):
            return base.predict_grid_view(self, run_config, view_config, workdir, data, split=split, out_dir=out_dir)
        top_k = base.per_class_top_k(view_config)  # validated before any work
        ann = Path(getattr(data, split, None) or "")
        if split not in ("train", "val") or not ann.name:
            raise LtbenchError(f"unknown split {split!r}", key="split", expected="train or val")
        # The class list comes from the training file (the model's output space).
        train_split = base.load_lvis_split(Path(data.train), Path(data.image_root))
        eval_split = base.load_lvis_split(ann, Path(data.image_root), keep_empty=True)
        unknown = sorted(set(eval_split.category_ids) - set(train_split.category_ids))
        if unknown:
            raise LtbenchError(
                f"{len(unknown)} categories of the {split} file are not in the training file (first: {unknown[:5]})",
                path=ann,
                key="categories",
                expected="the same category list as the training annotations",
            )
        model = self._load_for_predict(run_config, workdir, train_split)
        roi = model.roi_heads
        if top_k is not None:
            roi.detections_per_img = base.UNCAPPED_DETECTIONS_PER_IMAGE
        stats = {
            "category_ids": train_split.category_ids,
            "instance_counts": train_split.instance_counts,
            "image_counts": train_split.image_counts,
        }
        name = view_config.get("name", "plain")
        source = base.confusion_source(view_config)
        if source is not None:
            pass_split = eval_split if source == "val" else base.load_lvis_split(Path(data.train), Path(data.image_root))
            cm = self._run_split(model, pass_split, train_split.category_ids, detections=False)["stats"]
            stats.update({"cm_sum": cm.cm_sum, "cm_count": cm.cm_count})
        roi.view = base.view_function(view_config, stats)
        # the streaming filter sees only this pass (not the confusion-matrix pass above)
        roi.detection_filter = None if top_k is None or not self.stream_top_k else base.StreamingTopK(top_k)
        try:
            with torch.no_grad():
                result = self._run_split(model, eval_split, train_split.category_ids, detections=True)
        finally:
            roi.detection_filter = None
        result["detections"] = base.keep_top_k_per_class(result["detections"], top_k)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        dets_path = base.write_detections(out_dir / "detections.json", result["detections"])
        stats_path = result["stats"].save(out_dir / "proposal_stats.npz")
        return {
            "detections": str(dets_path),
            "proposal_stats": str(stats_path),
            "num_images": len(eval_split.images),
            "num_detections": len(result["detections"]),
            "view": view_config.get("id", name),
        }

    #: Prediction fast path (class-selective mask logits, chunked paste + one RLE call per chunk). False
    #: gives the straightforward torchvision path; tests compare the two.
    fast_predict = True
    #: Per-class top-k mode: drop detections that cannot reach their class's top k before their masks are
    #: computed (``base.StreamingTopK``). False masks every detection first; tests compare the two.
    stream_top_k = True
    #: Masks pasted at once (bounds memory: a chunk is ``chunk * H * W`` floats at the original size).
    paste_chunk = 64

    def _run_split(self, model: Any, split: base.LvisSplit, category_ids: list[int], *, detections: bool, batch_size: int = 2) -> dict:
        """One pass over ``split``: LVIS detections (if asked) and the proposal statistics.

        Images go through the model ``batch_size`` at a time (the batch composition changes the padded
        input, so it is fixed: the same numbers on every run)."""
        import torch
        from torchvision.models.detection.transform import resize_boxes

        stats = base.ProposalStats(category_ids, self.background)
        index = {cid: k for k, cid in enumerate(category_ids)}
        dets: list[dict] = []
        roi = model.roi_heads
        limit = roi.detections_per_img
        roi.fast_masks = roi.keep_mask_probs = bool(self.fast_predict)
        try:
            with torch.no_grad():
                for start in range(0, len(split.images), batch_size):
                    records = split.images[start : start + batch_size]
                    outputs = model([base.read_image(r) for r in records])
                    info = roi.last_inference
                    for j, (record, out) in enumerate(zip(records, outputs)):
                        proposals = resize_boxes(info["proposals"][j], info["image_shapes"][j], (record.height, record.width))
                        gt_classes = [index[split.category_ids[k]] for k in record.classes.tolist()]
                        stats.add(proposals.numpy(), info["probs"][j].numpy(), record.boxes, gt_classes)
                        if detections:
                            masks = rles = None
                            if "mask_probs" in out:
                                rles = _masks_to_rles(out["mask_probs"], out["boxes"], (record.height, record.width), self.paste_chunk)
                            elif "masks" in out:
                                masks = (out["masks"][:, 0] > 0.5).numpy()
                            dets.extend(
                                base.detections_for_image(
                                    record.image_id,
                                    out["boxes"].numpy(),
                                    out["scores"].numpy(),
                                    (out["labels"] - 1).numpy(),
                                    category_ids,
                                    masks,
                                    limit=limit,
                                    rles=rles,
                                )
                            )
        finally:
            roi.keep_mask_probs = False
        return {"detections": dets, "stats": stats}


def _masks_to_rles(mask_probs: Any, boxes: Any, image_size: tuple[int, int], chunk: int) -> list[dict]:
    """(N, 1, M, M) mask probabilities + (N, 4) xyxy boxes at the original image size (h, w) -> N LVIS RLEs.

    torchvision's own ``paste_masks_in_image`` (identical pixels to its transform's postprocess), run on
    ``chunk`` masks at a time; each chunk is thresholded at 0.5 and encoded by one pycocotools call."""
    import numpy as np
    from pycocotools import mask as mask_utils
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    rles: list[dict] = []
    for start in range(0, len(mask_probs), chunk):
        pasted = paste_masks_in_image(mask_probs[start : start + chunk], boxes[start : start + chunk], image_size)
        binary = (pasted[:, 0] > 0.5).numpy().astype(np.uint8)  # (n, h, w)
        for rle in mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0))):
            rle["counts"] = rle["counts"].decode("ascii")
            rles.append(rle)
    return rles


def _adapter_sampler(sampler: dict | None) -> dict | None:
    """torchvision follows detectron2's RFS (stochastic rounding) unless the run says otherwise."""
    if sampler and sampler.get("name") == "rfs" and "rounding" not in sampler:
        return {**sampler, "rounding": "stochastic"}
    return sampler
