"""Background-index conventions, and conversions between them.

Every component of ``ltbench.methods`` takes ``background`` explicitly:

- ``"first"``: label 0 is background, foreground classes are 1..C
  (torchvision, mmdet v1 — the convention of the official BAGS and SimCal code).
- ``"last"``: foreground classes are 0..C-1, background is C
  (detectron2, cvpods, mmdet 2.x/3.x — the convention of the official PCB and DisAlign code).

Tensors of "C+1 columns" always hold C foreground columns plus one background column placed by the
convention. Foreground class k (0-based, in category-id order) is column ``k + 1`` for "first" and
column ``k`` for "last".
"""

from __future__ import annotations

from typing import Literal

import torch

Background = Literal["first", "last"]
BACKGROUNDS: tuple[str, ...] = ("first", "last")


def check_background(background: str) -> Background:
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be 'first' or 'last', got {background!r}")
    return background  # type: ignore[return-value]


def background_index(num_classes: int, background: Background) -> int:
    """Index of the background column/label among C+1."""
    check_background(background)
    return 0 if background == "first" else num_classes


def foreground_slice(num_classes: int, background: Background) -> slice:
    """Slice of the C foreground columns among C+1."""
    check_background(background)
    return slice(1, num_classes + 1) if background == "first" else slice(0, num_classes)


def is_foreground(labels: torch.Tensor, num_classes: int, background: Background) -> torch.Tensor:
    """Boolean mask (R,) of foreground labels."""
    return labels != background_index(num_classes, background)


def to_foreground_index(labels: torch.Tensor, background: Background) -> torch.Tensor:
    """Foreground labels -> 0-based class index 0..C-1 (only meaningful where the label is foreground)."""
    check_background(background)
    return labels - 1 if background == "first" else labels


def from_foreground_index(fg_index: torch.Tensor, background: Background) -> torch.Tensor:
    """0-based class index 0..C-1 -> label in the convention."""
    check_background(background)
    return fg_index + 1 if background == "first" else fg_index


def convert_labels(labels: torch.Tensor, num_classes: int, src: Background, dst: Background) -> torch.Tensor:
    """Relabel (R,) labels from one convention to the other."""
    if src == dst:
        return labels
    bg_src = background_index(num_classes, src)
    fg = labels != bg_src
    out = torch.full_like(labels, background_index(num_classes, dst))
    out[fg] = from_foreground_index(to_foreground_index(labels[fg], src), dst)
    return out


def convert_columns(scores: torch.Tensor, src: Background, dst: Background) -> torch.Tensor:
    """Move the background column of (..., C+1) scores from one convention to the other."""
    if src == dst:
        return scores
    if src == "first":
        return torch.cat([scores[..., 1:], scores[..., :1]], dim=-1)
    return torch.cat([scores[..., -1:], scores[..., :-1]], dim=-1)
