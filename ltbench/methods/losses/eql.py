"""Equalization loss (EQL v1, Tan et al., CVPR 2020), following the official tztztztztz/eql.detectron2.

The classifier has C sigmoid logits (no background logit); targets are one-hot over the C foreground
columns and all-zero for background RoIs. Per RoI r and class j:

    w_rj = 1 - E(r) * T(f_j) * (1 - y_rj)
    E(r) = 1 for a foreground RoI, 0 for background;  T(f) = 1 if f < lambda else 0
    f_j  = image_count_j / number of training images   (lambda = 0.00177 in the official config)
    loss = sum_rj BCE(z_rj, y_rj) * w_rj / R

i.e. for foreground RoIs the negative gradients of the rare classes (f < lambda) are dropped. With
``lambda = 0`` this is plain sigmoid BCE (the "bce" baseline). Inference: ``sigmoid(z)`` for the C
classes and a dummy background score 0, as the official ``predict_probs``; scores are not normalised.
The official classifier initialises the bias to ``-log((1 - pi) / pi)`` with pi = 0.001.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ltbench.methods.conventions import Background, background_index, foreground_slice, is_foreground, to_foreground_index


def fg_one_hot(labels: torch.Tensor, num_classes: int, background: Background) -> torch.Tensor:
    """(R,) labels -> (R, C) float one-hot over the foreground classes; background rows are all zero."""
    fg = is_foreground(labels, num_classes, background)
    targets = torch.zeros(labels.shape[0], num_classes, device=labels.device)
    rows = fg.nonzero().squeeze(1)
    targets[rows, to_foreground_index(labels[rows], background)] = 1.0
    return targets


def eql_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    tail_mask: torch.Tensor,
    background: Background,
) -> torch.Tensor:
    """EQL of (R, C) logits and (R,) labels in ``background`` convention.

    Args:
        tail_mask: (C,) bool, T(f_j): classes whose frequency is below lambda.
    """
    num_classes = logits.shape[1]
    targets = fg_one_hot(labels, num_classes, background).to(logits)
    exclude = is_foreground(labels, num_classes, background).to(logits)[:, None]  # E(r)
    weights = 1 - exclude * tail_mask.to(logits)[None, :] * (1 - targets)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (bce * weights).sum() / max(logits.shape[0], 1)


def sigmoid_probabilities_with_dummy_background(logits: torch.Tensor, background: Background) -> torch.Tensor:
    """(R, C) logits -> (R, C+1): sigmoid scores for the classes, 0 in the background column."""
    num_classes = logits.shape[1]
    out = logits.new_zeros(logits.shape[0], num_classes + 1)
    out[:, foreground_slice(num_classes, background)] = torch.sigmoid(logits)
    out[:, background_index(num_classes, background)] = 0.0
    return out
