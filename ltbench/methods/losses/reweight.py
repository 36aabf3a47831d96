"""Inverse-frequency loss re-weighting with clipping (SimCal Sec. 4.1; BAGS supp. "Re-weight").

Class weights over the C+1 columns (background convention), from per-class counts N_j (training
instance counts by default, clamped to >= 1):

    raw_j = 1 / N_j                                 (beta = 1)
    raw_j = (1 - beta) / (1 - beta^N_j)             (beta < 1: "effective number" of Cui et al.; BAGS tried 0.9..0.999)
    w_j   = clip(N * raw_j, lo, hi)                 with N = ``numerator`` (SimCal: a hyper-parameter, the
                                                    spec uses the median instance count), or
    w_j   = clip(raw_j / mean_k raw_k, lo, hi)      ``normalize="mean"`` (BAGS)
    w_bg  = background_weight

SimCal: ``w = N / N_j`` clipped to [0.1, 10]. BAGS: ``1 / N_j`` divided by its mean, clipped to [0.01, 5],
background 1. Defaults: ``normalize="mean"`` when no numerator is given, clip [0.1, 10], background 1.

Loss: ``sum_r w_{y_r} * CE_r / R`` (``reduction="rois"``, SimCal's ``L = -w_i log p_i`` averaged over RoIs) or
``/ sum_r w_{y_r}`` (``reduction="weights"``, PyTorch's weighted mean).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ltbench.errors import LtbenchError
from ltbench.methods.conventions import Background, background_index, foreground_slice

NAMED_NUMERATORS = ("median_instance_count", "mean_instance_count")


def inverse_frequency_weights(
    counts: Sequence[int],
    background: Background,
    *,
    numerator: float | str | None = None,
    normalize: str | None = None,
    beta: float = 1.0,
    clip: Sequence[float] = (0.1, 10.0),
    background_weight: float = 1.0,
) -> torch.Tensor:
    """(C+1,) float64 class weights in ``background`` convention (see module docstring).

    ``numerator``: a positive number, or "median_instance_count" / "mean_instance_count" (of ``counts``);
    ``normalize``: "mean" or None; exactly one of the two applies (``normalize="mean"`` when neither is given).
    """
    n = torch.as_tensor(list(counts), dtype=torch.float64).clamp(min=1)
    if not 0 < beta <= 1:
        raise LtbenchError(f"re-weighting beta must be in (0, 1], got {beta!r}", key="loss.beta", expected="0 < beta <= 1")
    raw = 1.0 / n if beta == 1 else (1 - beta) / (1 - torch.pow(torch.tensor(beta, dtype=torch.float64), n))
    if numerator is not None and normalize is not None:
        raise LtbenchError(
            "re-weighting takes a numerator or normalize, not both", key="loss", expected="numerator: N or normalize: mean"
        )
    if numerator is None:
        if normalize not in (None, "mean"):
            raise LtbenchError(f"unknown normalize {normalize!r}", key="loss.normalize", expected="'mean'")
        fg = raw / raw.mean()
    elif numerator == "median_instance_count":
        # lower median for an even count, as torch.median
        fg = n.median() * raw
    elif numerator == "mean_instance_count":
        fg = n.mean() * raw
    elif isinstance(numerator, (int, float)) and not isinstance(numerator, bool) and numerator > 0:
        fg = float(numerator) * raw
    else:
        raise LtbenchError(
            f"unknown re-weighting numerator {numerator!r}",
            key="loss.numerator",
            expected="a positive number or one of " + ", ".join(NAMED_NUMERATORS),
        )
    lo, hi = clip
    num_classes = n.numel()
    weights = torch.empty(num_classes + 1, dtype=torch.float64)
    weights[foreground_slice(num_classes, background)] = fg.clamp(lo, hi)
    weights[background_index(num_classes, background)] = background_weight
    return weights


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor, reduction: str = "rois"
) -> torch.Tensor:
    """Class-weighted CE of (R, K) logits, (R,) labels, (K,) weights; ``reduction`` in {"rois", "weights"}."""
    per_roi = F.cross_entropy(logits, labels, reduction="none")
    w = class_weights.to(logits)[labels]
    if reduction == "rois":
        return (w * per_roi).sum() / max(labels.numel(), 1)
    if reduction == "weights":
        return (w * per_roi).sum() / w.sum().clamp(min=1e-12)
    raise ValueError(f"reduction must be 'rois' or 'weights', got {reduction!r}")
