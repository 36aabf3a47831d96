"""Focal losses: the multi-class (softmax) form of SimCal Sec. 4.1, ``L = -(1 - p_y)^gamma * log(p_y)``,
and the sigmoid form BAGS applies at proposal level (``sigmoid_focal_loss``).

``p = softmax(logits)`` over all K = C+1 columns (background included, at its convention index; the
loss itself does not depend on where the background column is). ``gamma = 0`` is plain CE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softmax_focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, gamma: float = 2.0, reduction: str = "mean"
) -> torch.Tensor:
    """Focal loss of (R, K) logits and (R,) int64 labels; ``reduction`` in {"mean", "sum", "none"}.

    The modulating factor ``(1 - p_y)^gamma`` is differentiated through (as Lin et al.), not detached.
    """
    log_p = F.log_softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    loss = -((1 - log_p.exp()).pow(gamma)) * log_p
    if reduction == "mean":
        return loss.sum() / max(loss.numel(), 1)
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float | None = 0.25
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al.) applied per RoI and column, summed, divided by R.

    ``FL = -alpha_t (1 - p_t)^gamma log p_t`` with ``p = sigmoid(z)``, ``p_t = p`` where the target is 1 and
    ``1 - p`` where it is 0, ``alpha_t = alpha`` / ``1 - alpha`` likewise (``alpha=None``: no alpha term).
    Logits and targets are (R, K); the BAGS "focal loss at proposal level" rows use one-hot targets over
    the C+1 columns (background RoIs target the background column).
    """
    targets = targets.to(logits)
    prob = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = bce * (1 - p_t).pow(gamma)
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.sum() / max(logits.shape[0], 1)
