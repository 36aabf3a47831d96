"""Post-hoc calibrations: functions on (R, C+1) probabilities with an explicit background column.

Every function takes ``background`` ("first" | "last", see ``ltbench.methods.conventions``) and returns a
new (R, C+1) tensor in the same convention; nothing is trained. Class statistics are in class-index order
(0-based foreground index, ascending LVIS category id).

| function | source | background | rows sum to 1 |
|---|---|---|---|
| ``confusion_calibration`` | PCB Eq. 4-6 + Sec. 3.2 renormalisation | kept | yes |
| ``mean_score_calibration`` | PCB Eq. 7-8 + Sec. 3.2 | kept | yes |
| ``norcal`` | NorCal (tydpan/NorCal ``predict_probs``) | untouched | with ``renormalize`` |
| ``dual_head`` | SimCal Eq. 2 (replace/select), average, BAGS tau-norm-select | from the original | no (replace) |
| ``tau_normalize`` | Kang et al. / BAGS (tau-norm): ``w_i / ||w_i||^tau`` | weights, not probabilities | - |

Confusion-matrix statistics (PCB Eq. 3) are (C, C), row = GT class, column = predicted class; they come
from ``ltbench.evaluation.confusion`` (``soft_confusion_matrix(cm_sum, cm_count)`` of ``proposal_stats.npz``).
"""

from __future__ import annotations

from typing import Literal

import torch

from ltbench.methods.conventions import Background, background_index, foreground_slice


def _split(probs: torch.Tensor, background: Background) -> tuple[torch.Tensor, torch.Tensor, int, slice]:
    if probs.dim() != 2 or probs.shape[1] < 2:
        raise ValueError(f"probabilities must be (R, C+1), got {tuple(probs.shape)}")
    num_classes = probs.shape[1] - 1
    fg = foreground_slice(num_classes, background)
    bg = background_index(num_classes, background)
    return probs[:, fg], probs[:, bg], bg, fg


def _assemble(fg_probs: torch.Tensor, bg_probs: torch.Tensor, background: Background) -> torch.Tensor:
    out = fg_probs.new_empty(fg_probs.shape[0], fg_probs.shape[1] + 1)
    out[:, foreground_slice(fg_probs.shape[1], background)] = fg_probs
    out[:, background_index(fg_probs.shape[1], background)] = bg_probs
    return out


def _rescale_foreground(calibrated_fg: torch.Tensor, bg_probs: torch.Tensor, background: Background) -> torch.Tensor:
    """PCB Sec. 3.2: divide the fg probabilities by their sum, then multiply by ``1 - p_bg``; bg kept."""
    total = calibrated_fg.sum(dim=1, keepdim=True)
    normalised = calibrated_fg / total.clamp_min(torch.finfo(calibrated_fg.dtype).tiny)
    return _assemble(normalised * (1.0 - bg_probs)[:, None], bg_probs, background)


def confusion_calibration(probs: torch.Tensor, confusion: torch.Tensor, background: Background) -> torch.Tensor:
    """Confusion-matrix calibration (PCB Eq. 4-6, background kept, renormalised as Sec. 3.2).

    ``p_hat`` = fg probabilities renormalised over the C fg classes (Eq. 1);
    ``M_hat[i, j] = M[i, j] / sum_k M[k, j]`` (Eq. 5); ``p_tilde_i = sum_j M_hat[i, j] p_hat_j`` (Eq. 6);
    then fg divided by its sum and multiplied by ``1 - p_bg``.
    A column j with zero total (class j never predicted in the statistics) keeps ``p_hat_j`` on class j
    (identity column) instead of dropping its mass.

    Args:
        probs: (R, C+1) probabilities.
        confusion: (C, C) M, row = GT, column = prediction.
    """
    fg, bg, _, _ = _split(probs, background)
    num_classes = fg.shape[1]
    if confusion.shape != (num_classes, num_classes):
        raise ValueError(f"confusion matrix must be ({num_classes}, {num_classes}), got {tuple(confusion.shape)}")
    m = confusion.to(fg.dtype)
    total = m.sum(dim=0, keepdim=True)
    eye = torch.eye(num_classes, dtype=fg.dtype, device=fg.device)
    m_hat = torch.where(total > 0, m / total.clamp_min(torch.finfo(fg.dtype).tiny), eye)
    p_hat = fg / fg.sum(dim=1, keepdim=True).clamp_min(torch.finfo(fg.dtype).tiny)
    return _rescale_foreground(p_hat @ m_hat.t(), bg, background)


def mean_score_calibration(probs: torch.Tensor, mean_scores: torch.Tensor, background: Background) -> torch.Tensor:
    """Mean-classification-score calibration (PCB Eq. 7-8; LOCE's statistic, ``s_i = M[i, i]``).

    ``p_tilde_i = (p_hat_i / s_i) / sum_k (p_hat_k / s_k)``, then scaled by ``1 - p_bg`` (bg kept). Classes
    with ``s_i = 0`` (no statistic) are left uncalibrated (factor 1).

    Args:
        probs: (R, C+1); mean_scores: (C,).
    """
    fg, bg, _, _ = _split(probs, background)
    s = mean_scores.to(fg.dtype)
    if s.shape != (fg.shape[1],):
        raise ValueError(f"mean_scores must be ({fg.shape[1]},), got {tuple(s.shape)}")
    factor = torch.where(s > 0, 1.0 / s.clamp_min(torch.finfo(fg.dtype).tiny), torch.ones_like(s))
    return _rescale_foreground(fg * factor, bg, background)


def norcal(
    probs: torch.Tensor, image_counts: torch.Tensor, gamma: float, background: Background, *, renormalize: bool = True
) -> torch.Tensor:
    """NorCal: ``p_c / N_c^gamma`` on the foreground, background untouched, then (default) rows / row sum.

    The official code scales ``exp(logits)``; after renormalisation that equals scaling the softmax
    probabilities (the partition function cancels). ``N_c`` = training *image* counts per class (clamped to
    >= 1). ``gamma = 0`` is the identity (up to the renormalisation of rows that did not sum to 1).

    Args:
        probs: (R, C+1); image_counts: (C,).
    """
    fg, bg, _, _ = _split(probs, background)
    counts = torch.as_tensor(image_counts, dtype=fg.dtype, device=fg.device)
    if counts.shape != (fg.shape[1],):
        raise ValueError(f"image_counts must be ({fg.shape[1]},), got {tuple(counts.shape)}")
    out = _assemble(fg / counts.clamp_min(1).pow(gamma), bg, background)
    if renormalize:
        out = out / out.sum(dim=1, keepdim=True).clamp_min(torch.finfo(out.dtype).tiny)
    return out


Combiner = Literal["replace", "select", "average", "select_by_original_background"]


def dual_head(
    original: torch.Tensor,
    calibrated: torch.Tensor,
    background: Background,
    *,
    instance_counts: torch.Tensor | None = None,
    threshold: float = 100,
    combiner: Combiner = "replace",
    inclusive: bool = False,
) -> torch.Tensor:
    """Combine the original and a calibrated head's (R, C+1) probabilities.

    - ``"replace"`` or ``"select"`` (SimCal Eq. 2, the paper's "sel"): fg class z takes the calibrated probability when its training
      instance count ``N_z < threshold`` (official code, T=100) or ``N_z <= threshold`` (``inclusive=True``,
      the paper's Eq. 2; the paper uses T=300); background and all other classes from the original; no
      renormalisation.
    - ``"average"``: mean of the two distributions over all C+1 columns (SimCal Table 5 "avg").
    - ``"select_by_original_background"``: per RoI, the original row where the original's argmax is background, else the calibrated
      row (BAGS Table 1 "tau-norm-select").
    """
    if original.shape != calibrated.shape:
        raise ValueError(f"shapes differ: {tuple(original.shape)} vs {tuple(calibrated.shape)}")
    num_classes = original.shape[1] - 1
    if combiner == "average":
        return (original + calibrated) / 2
    if combiner == "select_by_original_background":
        is_bg = original.argmax(dim=1) == background_index(num_classes, background)
        return torch.where(is_bg[:, None], original, calibrated)
    if combiner not in ("replace", "select"):
        raise ValueError(f"combiner must be replace/select, average or select_by_original_background, got {combiner!r}")
    if instance_counts is None:
        raise ValueError("the replace combiner needs instance_counts")
    counts = torch.as_tensor(instance_counts, device=original.device)
    if counts.shape != (num_classes,):
        raise ValueError(f"instance_counts must be ({num_classes},), got {tuple(counts.shape)}")
    tail = counts <= threshold if inclusive else counts < threshold
    columns = torch.zeros(num_classes + 1, dtype=torch.bool, device=original.device)
    columns[foreground_slice(num_classes, background)] = tail
    return torch.where(columns[None, :], calibrated, original)


def tau_normalize(weight: torch.Tensor, tau: float, *, rows: slice | None = None) -> torch.Tensor:
    """tau-normalisation of classifier weights (K, d): ``w_i / ||w_i||_2 ^ tau`` for the given rows.

    ``rows=None`` normalises every row (background included, BAGS Table 1 model (12)); pass the fg slice to
    leave the background row alone. ``tau = 0`` is the identity. Rows of zero norm are left as they are.
    """
    out = weight.clone()
    selected = out if rows is None else out[rows]
    norms = selected.norm(dim=1, keepdim=True)
    scaled = torch.where(norms > 0, selected / norms.clamp_min(torch.finfo(out.dtype).tiny).pow(tau), selected)
    if rows is None:
        return scaled
    out[rows] = scaled
    return out
