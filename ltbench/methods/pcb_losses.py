"""PCB's confusion-matrix statistics, fight-back soft targets and losses (megvii-research/PCB @ 066cd92);
the recurrent head that uses them is ``ltbench.methods.pcb``.

- ``ConfusionMatrixEMA``: the train-time soft confusion matrix M (C, C), row = ground-truth class, column =
  predicted class (paper Eq. 3 and 9), updated from the foreground RoIs of a batch, summed across processes.
- ``fightback_targets``: ``q_i = M[i, y] / sum_k M[k, y]`` (Eq. 5 and 10; the raw column for EQL v2).
- ``pcb_ce_loss``, ``pcb_seesaw_losses``, ``pcb_eqlv2_loss``: Eq. 11 and the variants of the official code.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.methods.conventions import Background, foreground_slice, is_foreground, to_foreground_index


def step_alpha(alpha: float, step: int, steps: int) -> float:
    """Per-step regularisation weight ``alpha_r = alpha * r / (R - 1)`` for 0-based step r of R.

    Step 0 gets 0 (never regularised), the last step gets ``alpha``. A single-step head (PCB without the
    recurrent paradigm, Eq. 11) gets ``alpha``.
    """
    if steps < 1 or not 0 <= step < steps:
        raise ValueError(f"step must be in [0, {steps}), got {step}")
    if steps == 1:
        return float(alpha)
    return float(alpha) * step / (steps - 1)


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    if _world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class ConfusionMatrixEMA(nn.Module):
    """PCB's train-time confusion matrix (Eq. 3 with the EMA of Eq. 9).

    Buffers: ``matrix`` (C, C) float32, row = GT class index, column = predicted class index (0-based
    foreground indices, no background); ``seen`` (C,) int64, foreground RoIs seen per GT class so far.

    Args:
        num_classes: C.
        momentum: gamma of Eq. 9 (official 0.99).
        renormalize_rows: divide each updated row by its sum (CE and Seesaw variants; not EQL v2).
        distributed: sum the batch sums and counts over processes when torch.distributed is initialised
            (every process must then call ``update`` the same number of times, as the official code does).
    """

    def __init__(
        self, num_classes: int, *, momentum: float = 0.99, renormalize_rows: bool = True, distributed: bool = True
    ) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.num_classes = num_classes
        self.momentum = momentum
        self.renormalize_rows = renormalize_rows
        self.distributed = distributed
        self.register_buffer("matrix", torch.zeros(num_classes, num_classes))
        self.register_buffer("seen", torch.zeros(num_classes, dtype=torch.int64))

    @property
    def all_seen(self) -> bool:
        """True once every class has appeared as a foreground RoI (PCB's second gate condition)."""
        return bool((self.seen > 0).all())

    @torch.no_grad()
    def update(self, fg_probs: torch.Tensor, labels_fg: torch.Tensor) -> torch.Tensor:
        """One EMA update from the foreground RoIs of a batch.

        Args:
            fg_probs: (P, C) per-RoI distribution over the C foreground classes (any P >= 0).
            labels_fg: (P,) int64 0-based GT class index of each RoI.
        Returns:
            (C,) bool mask of the rows that were updated.
        """
        num_classes = self.num_classes
        if fg_probs.dim() != 2 or fg_probs.shape[1] != num_classes or labels_fg.shape != fg_probs.shape[:1]:
            raise ValueError(
                f"expected fg_probs (P, {num_classes}) and labels_fg (P,), got {tuple(fg_probs.shape)} "
                f"and {tuple(labels_fg.shape)}"
            )
        probs = fg_probs.detach().to(self.matrix.dtype)
        if self.distributed and _world_size() > 1:
            # every process contributes a full (C, C) sum so that all_reduce shapes agree
            sums = F.one_hot(labels_fg, num_classes).to(probs.dtype).t() @ probs
            counts = torch.bincount(labels_fg, minlength=num_classes).to(self.seen)
            sums = _all_reduce_sum(sums)
            counts = _all_reduce_sum(counts)
            rows = torch.nonzero(counts > 0).flatten()
            sums, row_counts = sums[rows], counts[rows]
        else:
            # only the rows present in the batch: (U, C) instead of (C, C)
            rows, inverse = torch.unique(labels_fg, return_inverse=True)
            sums = F.one_hot(inverse, max(rows.numel(), 1))[:, : rows.numel()].to(probs.dtype).t() @ probs
            row_counts = torch.bincount(inverse, minlength=rows.numel()).to(self.seen)
            counts = torch.zeros_like(self.seen).index_add_(0, rows, row_counts)
        if rows.numel():
            means = sums / row_counts[:, None].to(sums.dtype)
            updated = self.momentum * self.matrix[rows] + (1.0 - self.momentum) * means
            if self.renormalize_rows:
                updated = updated / updated.sum(dim=1, keepdim=True).clamp_min(torch.finfo(updated.dtype).tiny)
            self.matrix[rows] = updated
        self.seen += counts
        return counts > 0


def fightback_targets(matrix: torch.Tensor, labels_fg: torch.Tensor, *, normalize_columns: bool = True) -> torch.Tensor:
    """Soft targets for positive RoIs of GT class y: column y of M, column-normalised (Eq. 5, 10).

    ``q[k, i] = M[i, y_k] / sum_j M[j, y_k]`` (CE and Seesaw variants); with ``normalize_columns=False``
    ``q[k, i] = M[i, y_k]`` (the EQL v2 variant). A column with zero total gives all-zero targets instead of
    the official code's NaN (it cannot happen once the gate is open: every row then holds positive mass).

    Args:
        matrix: (C, C) confusion matrix (detached here).
        labels_fg: (P,) int64 0-based class index.
    Returns:
        (P, C) targets.
    """
    columns = matrix.detach()[:, labels_fg]  # (C, P); only the columns needed, not the whole matrix
    if normalize_columns:
        total = columns.sum(dim=0, keepdim=True)
        columns = torch.where(total > 0, columns / total.clamp_min(torch.finfo(columns.dtype).tiny), torch.zeros_like(columns))
    return columns.t()


def foreground_distribution(logits: torch.Tensor, num_classes: int, background: Background, variant: str) -> torch.Tensor:
    """Per-RoI distribution over the C foreground classes used for the confusion matrix.

    ``logits`` (R, K): (R, C+1) for "ce" (softmax over the fg columns, bg excluded) and "eqlv2"
    (sigmoid of the fg columns, not normalised); (R, C+2) ``[C classes | obj_fg | obj_bg]`` for "seesaw"
    (softmax over the C class logits). Returns (R, C).
    """
    if variant == "seesaw":
        return F.softmax(logits[:, :num_classes], dim=1)
    fg = logits[:, foreground_slice(num_classes, background)]
    if variant == "eqlv2":
        return torch.sigmoid(fg)
    return F.softmax(fg, dim=1)


def pcb_ce_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft_targets: torch.Tensor,
    alpha: float,
    *,
    background: Background,
    form: Literal["official", "paper"] = "official",
) -> torch.Tensor:
    """CE + PCB loss (Eq. 11), normalised by the number of sampled RoIs R.

    ``[sum_neg CE + (1 - alpha) sum_pos CE + alpha sum_pos L_PCB] / R`` where, per positive RoI,
    L_PCB is ``KL(q ⊕ 0_bg || softmax(z over C+1))`` (``form="official"``) or
    ``-sum_i q_i log softmax(z_fg)_i`` (``form="paper"``, Eq. 10 with Eq. 1's fg-only softmax).

    Args:
        logits: (R, C+1) in ``background`` convention.
        labels: (R,) int64 in ``background`` convention.
        soft_targets: (P, C) fight-back targets of the P positive RoIs, in their order in ``labels``.
        alpha: alpha_r of this step.
    Returns:
        scalar loss.
    """
    num_classes = logits.shape[1] - 1
    num_rois = max(labels.numel(), 1)
    positive = is_foreground(labels, num_classes, background)
    ce = F.cross_entropy(logits, labels, reduction="none")
    loss = (ce * torch.where(positive, 1.0 - alpha, 1.0)).sum() / num_rois
    if alpha > 0 and bool(positive.any()):
        fg = foreground_slice(num_classes, background)
        if form == "official":
            target = logits.new_zeros(int(positive.sum()), num_classes + 1)
            target[:, fg] = soft_targets.to(logits.dtype)
            term = F.kl_div(F.log_softmax(logits[positive], dim=1), target, reduction="sum")
        elif form == "paper":
            term = -(soft_targets.to(logits.dtype) * F.log_softmax(logits[positive][:, fg], dim=1)).sum()
        else:
            raise ValueError(f"form must be 'official' or 'paper', got {form!r}")
        loss = loss + alpha * term / num_rois
    return loss


def pcb_seesaw_losses(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft_targets: torch.Tensor,
    alpha: float,
    seesaw: nn.Module,
) -> dict[str, torch.Tensor]:
    """Seesaw + PCB (official ``SeesawPCBLoss``) on (R, C+2) logits ``[C classes | obj_fg | obj_bg]``.

    ``loss_cls_objectness`` unchanged; ``loss_cls_classes`` = (1 - alpha) x seesaw CE of the positives;
    ``loss_cls_pcb`` = alpha x seesaw soft CE with targets ``soft_targets`` (P, C) (the seesaw factors are
    computed w.r.t. the hard label); all summed and divided by R. Increments ``seesaw.cum_samples`` like
    the plain loss (so 3 times per iteration in the 3-step head, as the official code).

    ``seesaw`` is a ``ltbench.methods.losses.seesaw.SeesawLoss`` (its p, q, eps, cum_samples, background).
    """
    from ltbench.methods.losses.seesaw import seesaw_cross_entropy, split_seesaw_logits

    num_classes = seesaw.num_classes
    class_logits, obj_logits = split_seesaw_logits(logits, num_classes)
    seesaw.update_counts(labels)
    num_rois = max(labels.numel(), 1)
    positive = is_foreground(labels, num_classes, seesaw.background)
    loss_obj = F.cross_entropy(obj_logits, (~positive).long(), reduction="sum") / num_rois
    if bool(positive.any()):
        labels_fg = to_foreground_index(labels[positive], seesaw.background)
        args = (class_logits[positive], labels_fg, seesaw.cum_samples, seesaw.p, seesaw.q, seesaw.eps)
        loss_cls = (1.0 - alpha) * seesaw_cross_entropy(*args).sum() / num_rois
        loss_pcb = alpha * seesaw_cross_entropy(*args, soft_target=soft_targets.to(logits.dtype)).sum() / num_rois
    else:
        loss_cls = loss_pcb = class_logits.sum() * 0.0
    weight = getattr(seesaw, "loss_weight", 1.0)
    return {
        "loss_cls_objectness": weight * loss_obj,
        "loss_cls_classes": weight * loss_cls,
        "loss_cls_pcb": weight * loss_pcb,
    }


def pcb_eqlv2_targets(labels: torch.Tensor, raw_column: torch.Tensor, alpha: float, num_classes: int, background: Background) -> torch.Tensor:
    """EQL v2 + PCB targets (R, C+1): one-hot, with positives' fg columns ``alpha*M[:, y] + (1-alpha)*onehot``.

    The background/objectness target of a positive stays 0. ``raw_column`` (P, C) = ``M[:, y_k]^T`` (no
    column normalisation, the paper's "discarding Eq. 5" for BCE).
    """
    targets = F.one_hot(labels, num_classes + 1).to(raw_column.dtype if raw_column.is_floating_point() else torch.float32)
    positive = is_foreground(labels, num_classes, background)
    fg = foreground_slice(num_classes, background)
    pos_rows = targets[positive]
    pos_rows[:, fg] = alpha * raw_column.to(targets.dtype) + (1.0 - alpha) * pos_rows[:, fg]
    targets[positive] = pos_rows
    return targets


def pcb_eqlv2_loss(logits: torch.Tensor, labels: torch.Tensor, raw_column: torch.Tensor, alpha: float, eqlv2: nn.Module) -> torch.Tensor:
    """EQL v2 + PCB: the EQL v2 loss (and its statistics update) with ``pcb_eqlv2_targets`` soft targets.

    ``eqlv2`` is a ``ltbench.methods.losses.eqlv2.EQLv2Loss``; logits (R, C+1) sigmoid logits.
    """
    targets = pcb_eqlv2_targets(labels, raw_column, alpha, eqlv2.num_classes, eqlv2.background).to(logits.dtype)
    return eqlv2(logits, labels, targets=targets)
