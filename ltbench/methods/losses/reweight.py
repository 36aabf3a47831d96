"""Inverse-frequency loss re-weighting with clamping (SimCal Sec. 4.1; BAGS supp. "Re-weight").

Class weights over the C+1 columns (background convention):

    w_j = clamp(N / N_j, lo, hi)   for foreground class j (N_j = training instance count, clamped to >= 1)
    w_bg = background_weight

SimCal: ``w = N / N_j`` clamped to [0.1, 10], N and the background weight are hyper-parameters (values not
reported). BAGS: ``1 / N_j`` divided by the mean over classes (i.e. ``N = 1 / mean_j(1 / N_j)``), clamped
to [0.01, 5], background 1. Defaults here: ``numerator="mean"`` (BAGS' normalisation, so the mean
unclamped weight is 1), SimCal's clamp [0.1, 10], background weight 1.

Loss: ``sum_r w_{y_r} * CE_r / R`` (``normalize="rois"``, SimCal's ``L = -w_i log p_i`` averaged over RoIs) or
``/ sum_r w_{y_r}`` (``normalize="weights"``, PyTorch's weighted mean, as DisAlign's re-weighting).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ltbench.methods.conventions import Background, background_index, foreground_slice


def inverse_frequency_weights(
    instance_counts: Sequence[int],
    background: Background,
    *,
    numerator: float | str = "mean",
    clamp: tuple[float, float] = (0.1, 10.0),
    background_weight: float = 1.0,
) -> torch.Tensor:
    """(C+1,) float class weights in ``background`` convention (see module docstring)."""
    counts = torch.as_tensor(list(instance_counts), dtype=torch.float64).clamp(min=1)
    inverse = 1.0 / counts
    if numerator == "mean":
        fg = inverse / inverse.mean()
    elif isinstance(numerator, (int, float)) and not isinstance(numerator, bool) and numerator > 0:
        fg = float(numerator) * inverse
    else:
        raise ValueError(f"numerator must be 'mean' or a positive number, got {numerator!r}")
    lo, hi = clamp
    num_classes = counts.numel()
    weights = torch.empty(num_classes + 1, dtype=torch.float64)
    weights[foreground_slice(num_classes, background)] = fg.clamp(lo, hi)
    weights[background_index(num_classes, background)] = background_weight
    return weights


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor, normalize: str = "rois"
) -> torch.Tensor:
    """Class-weighted CE of (R, K) logits, (R,) labels, (K,) weights; ``normalize`` in {"rois", "weights"}."""
    per_roi = F.cross_entropy(logits, labels, reduction="none")
    w = class_weights.to(logits)[labels]
    if normalize == "rois":
        return (w * per_roi).sum() / max(labels.numel(), 1)
    if normalize == "weights":
        return (w * per_roi).sum() / w.sum().clamp(min=1e-12)
    raise ValueError(f"normalize must be 'rois' or 'weights', got {normalize!r}")
