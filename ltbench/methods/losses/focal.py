"""Multi-class (softmax) focal loss, SimCal Sec. 4.1: ``L = -(1 - p_y)^gamma * log(p_y)``.

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
