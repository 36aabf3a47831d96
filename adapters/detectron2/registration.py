"""Registration of ltbench's detectron2 components (``register()``, idempotent): ``LtbenchStandardROIHeads``
in ``ROI_HEADS_REGISTRY``, whose box predictor ``LtbenchBoxPredictor`` runs the run's ltbench ``BoxHead``
(features, classifier, classification loss, probabilities, views) behind detectron2's
``FastRCNNOutputLayers`` (its ``box_reg_loss`` and ``fast_rcnn_inference`` stay detectron2's).

SimCal's bi-level sampler: (image, class) pairs packed as ``image * C + class`` through the sampler, the
class carried as the per-instance ``gt_bilevel_class`` field into ``LtbenchStandardROIHeads``, whose
``_forward_box`` keeps the ``compose_bilevel_batch`` RoIs.

detectron2 is not on the package registry; it is imported only inside functions, and
``detectron2_available()`` says in one line why it is missing. Nothing here is detectron2 code.
"""

from __future__ import annotations

import json
from typing import Any

from adapters.wiring import build_head, classification_losses
from ltbench.errors import LtbenchError

_REGISTERED = False


def detectron2_available() -> tuple[bool, str]:
    try:
        import detectron2  # noqa: F401
        from detectron2 import _C  # noqa: F401  (compiled ops)
    except Exception as exc:
        return False, f"detectron2 is not importable here ({type(exc).__name__}: {exc}); install it from its own instructions"
    return True, ""


def require_detectron2() -> None:
    ok, reason = detectron2_available()
    if not ok:
        raise LtbenchError(reason, key="framework", expected="an environment with detectron2 (built against this torch)")


def register() -> None:
    """Register ``LtbenchStandardROIHeads`` in detectron2's ``ROI_HEADS_REGISTRY`` (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    require_detectron2()
    import torch
    from detectron2.layers import ShapeSpec, cat
    from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
    from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
    from torch import nn

    class LtbenchBoxPredictor(FastRCNNOutputLayers):
        """detectron2's FastRCNNOutputLayers with classification by an ltbench ``BoxHead`` (bg last).

        ``forward(pooled (R, C_in, P, P))``: training -> (final logits (R, K), deltas (R, D)), keeping the
        ``BoxHeadOutput`` for ``losses``; eval -> (probabilities (R, C+1) through ``view``, deltas).
        ``predict_probs`` returns those probabilities (no second softmax) and records
        (proposal boxes, probs) per image in ``last_inference`` for the proposal statistics.
        """

        def __init__(self, input_shape: Any, *, box_head: nn.Module, **kwargs: Any) -> None:
            super().__init__(input_shape, **kwargs)
            del self.cls_score, self.bbox_pred  # the BoxHead owns classifier and box regressor
            self.box_head = box_head
            self._output = None
            self.view = None
            self.fit_pass = False  # NCM: training forwards feed box_head.accumulate instead of losses
            self.last_inference: list = []

        def forward(self, x: torch.Tensor) -> tuple:
            output = self.box_head(x)
            if self.training:
                self._output = output
                return output.final_logits, self.box_head.regression_deltas(output)
            probs = self.view(self.box_head, output) if self.view is not None else self.box_head.probabilities(output)
            return probs, self.box_head.regression_deltas(output)

        def losses(self, predictions: tuple, proposals: list) -> dict:
            _, deltas = predictions
            gt_classes = cat([p.gt_classes for p in proposals], dim=0)
            if self.fit_pass:
                self.box_head.accumulate(self._output, gt_classes)  # labels bg-last, as the head's convention
                self._output = None
                return {}
            proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
            gt_boxes = cat([(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals], dim=0)
            losses = dict(classification_losses(self.box_head, self._output, gt_classes))
            losses["loss_box_reg"] = self.box_reg_loss(proposal_boxes, gt_boxes, deltas, gt_classes) * self.loss_weight.get("loss_box_reg", 1.0)
            self._output = None
            return losses

        def predict_probs(self, predictions: tuple, proposals: list) -> list:
            probs, _ = predictions
            per_image = probs.split([len(p) for p in proposals])
            for p, pr in zip(proposals, per_image):
                self.last_inference.append((p.image_size, p.proposal_boxes.tensor.detach().cpu(), pr.detach().cpu()))
            return list(per_image)

    @ROI_HEADS_REGISTRY.register()
    class LtbenchStandardROIHeads(StandardROIHeads):
        """StandardROIHeads whose box head + predictor is the ltbench BoxHead of ``cfg.LTBENCH_HEAD``
        (JSON: ``wiring.head_config`` and the hidden width)."""

        @classmethod
        def _init_box_head(cls, cfg: Any, input_shape: dict) -> dict:
            ret = super()._init_box_head(cfg, input_shape)
            spec = json.loads(cfg.LTBENCH_HEAD)
            channels = input_shape[cfg.MODEL.ROI_HEADS.IN_FEATURES[0]].channels
            res = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
            c = cfg.MODEL.ROI_HEADS.NUM_CLASSES
            deltas = 4 if cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG else 4 * c
            head = build_head(spec["head"], num_classes=c, background="last", num_box_deltas=deltas, in_channels=channels,
                              pool_size=res, hidden=spec["hidden"])
            shape = ShapeSpec(channels=channels, height=res, width=res)
            kwargs = FastRCNNOutputLayers.from_config(cfg, shape)
            kwargs.pop("input_shape")
            ret["box_head"] = nn.Identity()  # pooled features go straight to the BoxHead
            ret["box_predictor"] = LtbenchBoxPredictor(shape, box_head=head, **kwargs)
            return ret

        def _forward_box(self, features: dict, proposals: list) -> Any:
            # SimCal's bi-level sampler: images carry their sampled class as ``gt_bilevel_class`` (copied to
            # every sampled RoI by label_and_sample_proposals); only the calibration RoIs reach the box head.
            if self.training and any(p.has("gt_bilevel_class") for p in proposals):
                proposals = self._bilevel_select(proposals)
            return super()._forward_box(features, proposals)

        def _bilevel_select(self, proposals: list) -> list:
            """Per image, the RoIs kept by ``compose_bilevel_batch`` (labels bg-last; -1 = no class)."""
            from ltbench.methods.samplers import compose_bilevel_batch

            counts = [len(p) for p in proposals]
            labels = cat([p.gt_classes for p in proposals], dim=0)
            image_index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
            classes = [int(p.gt_bilevel_class[0]) if len(p) and p.has("gt_bilevel_class") else -1 for p in proposals]
            keep = compose_bilevel_batch(labels, image_index, classes, num_classes=self.num_classes, background="last")
            out, offset = [], 0
            for p, n in zip(proposals, counts):
                mine = keep[(keep >= offset) & (keep < offset + n)] - offset
                out.append(p[mine])
                offset += n
            return out

    _REGISTERED = True
