"""``LtbenchRoIHeads``: torchvision's RoIHeads whose box path is the run's ltbench ``BoxHead``.

Background convention: ``"first"`` (torchvision's own): label 0 is background, class index k is label
k + 1. Box deltas: ``4 * (C + 1)`` per RoI (torchvision regresses the background column too).

What is torchvision's and what is ours:
- torchvision: RoI matching and sampling (``select_training_samples``), RoIAlign, the box coder, NMS, the
  mask branch and its loss.
- ltbench: the box head (features + classifier + classification loss + inference activation); the box
  regression loss is torchvision's (smooth-L1, beta 1/9, summed over positives / number of sampled RoIs);
  the detection post-processing is written here because torchvision's ``postprocess_detections`` applies
  its own softmax to logits while methods give probabilities (sigmoid for EQL v2, group softmax,
  calibrated views...).
"""

from __future__ import annotations

from typing import Any

from adapters.wiring import classification_losses

def roi_heads_class() -> type:
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
                losses.update(classification_losses(self.box_head, output, label_vec))
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
