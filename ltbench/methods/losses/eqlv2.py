"""Equalization loss v2 (Tan et al., CVPR 2021), following the official tztztztztz/eqlv2 code.

Logits: (R, C+1) sigmoid logits in ``background`` convention; the background column is an
"objectness" channel (bg RoIs target it, fg RoIs target their class column). Targets are one-hot (R, C+1).

Per-class weights come from gradient statistics accumulated since the start of training:

    |g| = t * (1 - p) + (1 - t) * p                        (p = sigmoid(z), t = target)
    pos_grad_j += sum_r |g_rj| * t_rj * w_rj ;  neg_grad_j += sum_r |g_rj| * (1 - t_rj) * w_rj
    pos_neg_j = pos_grad_j / (neg_grad_j + 1e-10)           (initialised to 100 -> weights start at 1)
    neg_w_j = sigmoid(gamma * (pos_neg_j - mu)) ;  pos_w_j = 1 + alpha * (1 - neg_w_j)
    w_rj = pos_w_j * t_rj + neg_w_j * (1 - t_rj)           (background column: weight 1)
    loss = sum_rj BCE(z_rj, t_rj) * w_rj / R

The statistics are all-reduced (summed) across processes when ``torch.distributed`` is initialised, and are
buffers, so they are part of the state dict and a resumed run continues them. Inference:
``p_fg = sigmoid(z_fg) * (1 - sigmoid(z_bg))``, ``p_bg = sigmoid(z_bg)`` (the "test_with_obj" rule).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.methods.conventions import Background, background_index, check_background, foreground_slice
from ltbench.methods.losses.distributed import all_reduce_sum


class EQLv2Weights(nn.Module):
    """The gradient-statistics state of EQL v2 and the per-RoI, per-column weights derived from it.

    Buffers (C,), foreground classes in class-index order: ``pos_grad``, ``neg_grad`` (init 0) and
    ``pos_neg`` (init 100).

    Args:
        num_classes: C.
        background: where the objectness/background column sits among the C+1 columns.
        gamma, mu, alpha: 12, 0.8, 4 (official defaults).
        distributed: all-reduce the batch statistics when torch.distributed is initialised
            (official eqlv2 does; the mmdet 3.x port does not — set False to reproduce that).
    """

    def __init__(
        self,
        num_classes: int,
        background: Background = "last",
        *,
        gamma: float = 12.0,
        mu: float = 0.8,
        alpha: float = 4.0,
        distributed: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.background: Background = check_background(background)
        self.gamma, self.mu, self.alpha = gamma, mu, alpha
        self.distributed = distributed
        self.register_buffer("pos_grad", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("neg_grad", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("pos_neg", torch.full((num_classes,), 100.0, dtype=torch.float64))

    def class_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(pos_w (C,), neg_w (C,)) from the current statistics."""
        neg_w = torch.sigmoid(self.gamma * (self.pos_neg - self.mu))
        pos_w = 1 + self.alpha * (1 - neg_w)
        return pos_w, neg_w

    def _to_columns(self, fg_values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """(C,) foreground values -> (C+1,) with 1 in the background column."""
        out = torch.ones(self.num_classes + 1, dtype=like.dtype, device=like.device)
        out[foreground_slice(self.num_classes, self.background)] = fg_values.to(like)
        return out

    def weights(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Expanded weights for targets (R, C+1): ``(pos_w, neg_w)``, each (R, C+1), background column 1.

        The per-element loss weight is ``pos_w * targets + neg_w * (1 - targets)``.
        """
        pos_w, neg_w = self.class_weights()
        rows = targets.shape[0]
        return (
            self._to_columns(pos_w, targets)[None, :].expand(rows, -1),
            self._to_columns(neg_w, targets)[None, :].expand(rows, -1),
        )

    @torch.no_grad()
    def update(self, probs: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> None:
        """Accumulate the statistics of one batch.

        Args:
            probs: (R, C+1) sigmoid probabilities (detached).
            targets: (R, C+1) targets in [0, 1] (one-hot, or PCB's soft targets).
            weights: (R, C+1) the element weights used in the loss.
        """
        probs, targets, weights = probs.double(), targets.double(), weights.double()
        grad = (targets * (probs - 1) + (1 - targets) * probs).abs()
        fg = foreground_slice(self.num_classes, self.background)
        pos = (grad * targets * weights).sum(dim=0)[fg]
        neg = (grad * (1 - targets) * weights).sum(dim=0)[fg]
        if self.distributed:
            pos = all_reduce_sum(pos.contiguous())
            neg = all_reduce_sum(neg.contiguous())
        self.pos_grad += pos.to(self.pos_grad)
        self.neg_grad += neg.to(self.neg_grad)
        self.pos_neg.copy_(self.pos_grad / (self.neg_grad + 1e-10))


def eqlv2_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(R,) labels (any convention: the label is the column) -> (R, C+1) one-hot float targets."""
    return F.one_hot(labels, num_classes + 1).float()


def eqlv2_probabilities(logits: torch.Tensor, num_classes: int, background: Background) -> torch.Tensor:
    """(R, C+1) sigmoid logits -> (R, C+1) scores: fg = sigmoid(z_fg) * (1 - sigmoid(z_bg)), bg = sigmoid(z_bg).

    Not normalised (rows need not sum to 1), as the official inference."""
    sig = torch.sigmoid(logits)
    bg = background_index(num_classes, background)
    fg = foreground_slice(num_classes, background)
    out = torch.empty_like(sig)
    out[:, fg] = sig[:, fg] * (1 - sig[:, bg : bg + 1])
    out[:, bg] = sig[:, bg]
    return out


class EQLv2Loss(nn.Module):
    """EQL v2 loss: ``forward(logits (R, C+1), labels (R,)) -> scalar`` (see module docstring).

    ``targets=`` may replace the one-hot targets (PCB's EQL v2 variant passes soft targets); the
    statistics are then collected with those targets, as the official PCB code does.
    """

    def __init__(
        self,
        num_classes: int,
        background: Background,
        *,
        gamma: float = 12.0,
        mu: float = 0.8,
        alpha: float = 4.0,
        distributed: bool = True,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.background: Background = check_background(background)
        self.loss_weight = loss_weight
        self.stats = EQLv2Weights(num_classes, background, gamma=gamma, mu=mu, alpha=alpha, distributed=distributed)

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        if targets is None:
            targets = eqlv2_targets(labels, self.num_classes).to(logits.dtype)
        pos_w, neg_w = self.stats.weights(targets)
        weight = pos_w * targets + neg_w * (1 - targets)
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        loss = (bce * weight).sum() / max(logits.shape[0], 1)
        if self.training:
            self.stats.update(torch.sigmoid(logits.detach()), targets.detach(), weight.detach())
        return self.loss_weight * loss
