"""Seesaw loss (Wang et al., CVPR 2021) as used by mmdetection and PCB's Seesaw variant.

The classifier produces K = C + 2 logits per RoI laid out as ``[C class logits | obj_fg | obj_bg]``
(the same layout in both background conventions; the convention only applies to ``labels`` and to the
(R, C+1) probabilities). The loss is the sum of

- ``loss_cls_objectness``: 2-way CE over the objectness logits for every RoI (target 0 = foreground,
  1 = background), and
- ``loss_cls_classes``: CE over the C class logits for the positive RoIs only, after the seesaw
  log-shift of the non-target logits (``seesaw_adjusted_logits``),

both summed and divided by ``avg_factor`` = number of RoIs (mmdet's ``avg_factor`` with all label
weights 1). Inference: ``p(class j) = softmax(class logits)_j * p_obj(fg)``, ``p(bg) = p_obj(bg)``.

``cum_samples`` (C,) counts the sampled foreground RoI labels seen so far (per process, not all-reduced,
as mmdet); it is a buffer, so it is saved in the checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.methods.conventions import Background, background_index, check_background, foreground_slice


def seesaw_adjusted_logits(
    class_logits: torch.Tensor,
    labels_fg: torch.Tensor,
    cum_samples: torch.Tensor,
    p: float = 0.8,
    q: float = 2.0,
    eps: float = 1e-2,
) -> torch.Tensor:
    """Class logits with the seesaw factors applied to the non-target classes.

    For a RoI of class i and a non-target class j the logit z_j becomes ``z_j + log(M_ij * C_ij)``:

    - mitigation ``M_ij = (N_j / N_i) ** p`` if ``N_j < N_i`` else 1 (N = ``cum_samples`` clamped to >= 1);
    - compensation ``C_ij = (s_j / s_i) ** q`` if ``s_j > s_i`` else 1, with ``s = softmax(z)`` computed on
      detached logits and ``s_i`` clamped to >= ``eps``.

    The target logit is unchanged. ``p = 0`` disables mitigation, ``q = 0`` compensation.

    Args:
        class_logits: (R, C) logits over the foreground classes (no background/objectness column).
        labels_fg: (R,) int64, 0-based foreground class index of each (positive) RoI.
        cum_samples: (C,) accumulated sample counts per class.
    Returns:
        (R, C) adjusted logits, differentiable w.r.t. ``class_logits`` (the factors are constants).
    """
    num_rois, num_classes = class_logits.shape
    if labels_fg.shape != (num_rois,):
        raise ValueError(f"labels_fg must have shape ({num_rois},), got {tuple(labels_fg.shape)}")
    if cum_samples.shape != (num_classes,):
        raise ValueError(f"cum_samples must have shape ({num_classes},), got {tuple(cum_samples.shape)}")
    # factors in at least float32: (N_j/N_i)^p underflows and its log is -inf in fp16 for large counts
    work_dtype = torch.promote_types(class_logits.dtype, torch.float32)
    detached = class_logits.detach().to(work_dtype)
    onehot = F.one_hot(labels_fg, num_classes).to(work_dtype)
    log_factor = torch.zeros_like(detached)
    if p > 0:
        counts = cum_samples.to(work_dtype).clamp(min=1)
        ratio = counts[None, :] / counts[labels_fg][:, None]  # (R, C): N_j / N_i for the RoI's class i
        mitigation = torch.where(ratio < 1, ratio.pow(p), torch.ones_like(ratio))
        log_factor = log_factor + mitigation.log()
    if q > 0:
        scores = F.softmax(detached, dim=1)
        self_scores = scores.gather(1, labels_fg[:, None]).clamp(min=eps)
        score_ratio = scores / self_scores
        compensation = torch.where(score_ratio > 1, score_ratio.pow(q), torch.ones_like(score_ratio))
        log_factor = log_factor + compensation.log()
    return class_logits + (log_factor * (1 - onehot)).to(class_logits.dtype)


def seesaw_cross_entropy(
    class_logits: torch.Tensor,
    labels_fg: torch.Tensor,
    cum_samples: torch.Tensor,
    p: float = 0.8,
    q: float = 2.0,
    eps: float = 1e-2,
    soft_target: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-RoI seesaw CE, (R,). With ``soft_target`` (R, C) the CE is ``-(t * log_softmax(adjusted)).sum(1)``
    (PCB's Seesaw variant: the factors are still computed w.r.t. the hard label ``labels_fg``)."""
    adjusted = seesaw_adjusted_logits(class_logits, labels_fg, cum_samples, p, q, eps)
    if soft_target is None:
        return F.cross_entropy(adjusted, labels_fg, reduction="none")
    return -(soft_target * F.log_softmax(adjusted, dim=1)).sum(dim=1)


def split_seesaw_logits(logits: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, C+2) -> class logits (R, C) and objectness logits (R, 2) ``[fg, bg]``."""
    if logits.shape[-1] != num_classes + 2:
        raise ValueError(f"Seesaw logits must have C+2 = {num_classes + 2} columns, got {logits.shape[-1]}")
    return logits[:, :num_classes], logits[:, num_classes:]


def seesaw_probabilities(logits: torch.Tensor, num_classes: int, background: Background) -> torch.Tensor:
    """(R, C+2) Seesaw logits -> (R, C+1) probabilities in ``background`` convention (rows sum to 1)."""
    class_logits, obj_logits = split_seesaw_logits(logits, num_classes)
    obj = F.softmax(obj_logits, dim=1)
    probs = logits.new_empty(logits.shape[0], num_classes + 1)
    probs[:, foreground_slice(num_classes, background)] = F.softmax(class_logits, dim=1) * obj[:, :1]
    probs[:, background_index(num_classes, background)] = obj[:, 1]
    return probs


class SeesawLoss(nn.Module):
    """Seesaw loss over (R, C+2) logits with labels in ``background`` convention.

    Args:
        num_classes: C.
        background: convention of ``labels``.
        p, q, eps: mitigation exponent (0.8), compensation exponent (2.0), score clamp (1e-2).
        loss_weight: multiplies both terms (mmdet default 1.0).

    ``forward(logits (R, C+2), labels (R,)) -> {"loss_cls_objectness", "loss_cls_classes"}``; updates
    ``cum_samples`` with the foreground labels of the batch before computing the factors (as mmdet).
    """

    def __init__(
        self,
        num_classes: int,
        background: Background,
        *,
        p: float = 0.8,
        q: float = 2.0,
        eps: float = 1e-2,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.background: Background = check_background(background)
        self.p, self.q, self.eps, self.loss_weight = p, q, eps, loss_weight
        self.register_buffer("cum_samples", torch.zeros(num_classes, dtype=torch.float64))

    def update_counts(self, labels: torch.Tensor) -> None:
        """Add the foreground labels (R,) of one batch (``background`` convention) to ``cum_samples``."""
        bg = background_index(self.num_classes, self.background)
        fg = labels[labels != bg]
        fg_index = fg - 1 if self.background == "first" else fg
        self.cum_samples += torch.bincount(fg_index, minlength=self.num_classes).to(self.cum_samples)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        class_logits, obj_logits = split_seesaw_logits(logits, self.num_classes)
        self.update_counts(labels)
        bg = background_index(self.num_classes, self.background)
        positive = labels != bg
        avg_factor = max(labels.numel(), 1)
        obj_labels = (~positive).long()  # 0 = foreground, 1 = background
        loss_obj = F.cross_entropy(obj_logits, obj_labels, reduction="sum") / avg_factor
        labels_fg = labels[positive] - 1 if self.background == "first" else labels[positive]
        if positive.any():
            per_roi = seesaw_cross_entropy(
                class_logits[positive], labels_fg, self.cum_samples, self.p, self.q, self.eps
            )
            loss_cls = per_roi.sum() / avg_factor
        else:
            loss_cls = class_logits.sum() * 0.0  # keeps the graph connected for DDP
        return {
            "loss_cls_objectness": self.loss_weight * loss_obj,
            "loss_cls_classes": self.loss_weight * loss_cls,
        }
