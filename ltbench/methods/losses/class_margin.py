"""Class-aware margin loss (LDAM, Cao et al. 2019) as SimCal Sec. 4.1 adapts it:

    Delta_j = K / N_j^(1/4)                  (N_j = training instance count of class j, clamped to >= 1)
    L = -log( e^(z_y - Delta_y) / (e^(z_y - Delta_y) + sum_{c != y} e^(z_c)) )

The margin is subtracted from the target logit only during training and only for foreground targets
(background RoIs get no margin). ``exponent`` (1/4) is a named option. K is a constant: by default it is set so the largest margin equals
``max_margin = 0.5`` (LDAM's official choice); ``constant=`` gives K directly. ``scale`` multiplies the
logits after the margin (LDAM uses s = 30 with a normalised classifier; 1 = plain logits).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ltbench.methods.conventions import Background, foreground_slice


def class_margins(
    instance_counts: Sequence[int],
    *,
    max_margin: float = 0.5,
    constant: float | None = None,
    exponent: float = 0.25,
) -> torch.Tensor:
    """(C,) margins Delta_j = K / N_j^exponent (exponent 1/4) in class-index order."""
    counts = torch.as_tensor(list(instance_counts), dtype=torch.float64).clamp(min=1)
    inv_root = counts.pow(-exponent)
    k = float(constant) if constant is not None else max_margin / inv_root.max().item()
    return k * inv_root


def margin_columns(margins: torch.Tensor, background: Background) -> torch.Tensor:
    """(C,) foreground margins -> (C+1,) with 0 in the background column."""
    num_classes = margins.numel()
    out = margins.new_zeros(num_classes + 1)
    out[foreground_slice(num_classes, background)] = margins
    return out


def margin_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, margins_k: torch.Tensor, scale: float = 1.0
) -> torch.Tensor:
    """Mean CE over R RoIs of ``scale * (z - Delta_y * onehot(y))``; logits (R, K), margins_k (K,)."""
    shift = margins_k.to(logits)[labels]
    adjusted = logits.scatter_add(1, labels[:, None], -shift[:, None])
    # sum / max(R, 1): an empty batch gives 0, not NaN
    return F.cross_entropy(scale * adjusted, labels, reduction="sum") / max(labels.numel(), 1)
