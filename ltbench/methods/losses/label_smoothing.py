"""Label smoothing (Szegedy et al.; Müller et al. 2019, the "LS" row of PCB Table 4).

Target over the K = C+1 columns: ``(1 - epsilon) * onehot(y) + epsilon / K`` (background is one of the K
classes and is smoothed like any other). Loss: mean soft-target CE over the R RoIs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smoothed_targets(labels: torch.Tensor, num_columns: int, epsilon: float) -> torch.Tensor:
    """(R,) labels -> (R, K) smoothed targets (rows sum to 1)."""
    onehot = F.one_hot(labels, num_columns).float()
    return (1 - epsilon) * onehot + epsilon / num_columns


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-(targets * log_softmax(logits)).sum(1)``; logits and targets (R, K)."""
    return -(targets.to(logits) * F.log_softmax(logits, dim=1)).sum(dim=1).sum() / max(logits.shape[0], 1)


def label_smoothing_loss(logits: torch.Tensor, labels: torch.Tensor, epsilon: float = 0.1) -> torch.Tensor:
    return soft_cross_entropy(logits, smoothed_targets(labels, logits.shape[1], epsilon))
