"""Balanced group softmax (BAGS, Li et al., CVPR 2020), following FishYuLi/BalancedGroupSoftmax.

Groups (by training instance count N_j of each foreground class, ``bin_edges = (10, 100, 1000)``):
group 0 is the background group with two logits ``[bg, fg]``; groups 1..4 hold the classes with
N < 10, 10 <= N < 100, 100 <= N < 1000, N >= 1000. Each foreground group has an "others" logit at
in-group index 0, then its classes in class-index (= category-id) order. Groups without classes are
left out. Logit layout (the same in both background conventions; the convention only applies to
labels and to the (R, C+1) probabilities)::

    [g0: bg, fg][g1: others, c...][g2: others, c...]...        K = 2 + sum_g (n_g + 1) = C + 2 + G

Training (per batch): group 0 sees every RoI (bg -> 0, fg -> 1); in group g a RoI of a class in g gets
its in-group index, every other RoI (background or another group's class) is "others" (0). Others are
subsampled: ``int(n_pos_g * beta)`` of them (beta = 8) without replacement, every positive kept, and the
group's weights are all 0 when it has no positive. Loss = sum_g sum_r w_gr CE_g(r) / max(sum_r w_gr, 1).

Inference: softmax inside every group; drop each group's "others"; multiply the class probabilities
by P(fg) of group 0; background = P(bg) of group 0; no renormalisation (rows need not sum to 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ltbench.methods.conventions import Background, background_index, foreground_slice

DEFAULT_BIN_EDGES: tuple[int, ...] = (10, 100, 1000)


@dataclass(frozen=True)
class GroupLayout:
    """Where each group's logits are.

    Attributes:
        num_classes: C.
        group_classes: per foreground group, the 0-based class indices it holds (ascending).
        group_starts: per foreground group, the column of its "others" logit in the K logits.
        num_logits: K.
    """

    num_classes: int
    group_classes: tuple[tuple[int, ...], ...]
    group_starts: tuple[int, ...]
    num_logits: int

    @classmethod
    def from_counts(cls, instance_counts: Sequence[int], bin_edges: Sequence[int] = DEFAULT_BIN_EDGES) -> GroupLayout:
        from ltbench.data.lvis_meta import instance_bin

        if any(b <= a for a, b in zip([0, *bin_edges], bin_edges)):
            raise ValueError(f"bin_edges must be increasing positive numbers, got {list(bin_edges)}")
        # BAGS' first group is "fewer than 10 instances", classes without any included (empty=0)
        bins = [instance_bin(int(n), bin_edges, empty=0) for n in instance_counts]
        groups = [members for b in range(len(bin_edges) + 1) if (members := tuple(k for k, g in enumerate(bins) if g == b))]
        starts, col = [], 2
        for members in groups:
            starts.append(col)
            col += len(members) + 1
        return cls(len(instance_counts), tuple(groups), tuple(starts), col)

    @property
    def num_groups(self) -> int:
        """Number of foreground groups (group 0 not counted)."""
        return len(self.group_classes)

    @property
    def class_columns(self) -> tuple[int, ...]:
        """(C,) the logit column of each foreground class k (class-index order)."""
        columns = [0] * self.num_classes
        for start, members in zip(self.group_starts, self.group_classes):
            for i, k in enumerate(members):
                columns[k] = start + 1 + i
        return tuple(columns)

    def group_slice(self, g: int) -> slice:
        """Columns of foreground group g (0-based among the foreground groups), others included."""
        start = self.group_starts[g]
        return slice(start, start + len(self.group_classes[g]) + 1)

    def label_tables(self, background: Background) -> tuple[torch.Tensor, torch.Tensor]:
        """Maps from labels in ``background`` convention (C+1 values) to in-group labels.

        Returns ``(table0 (C+1,), tables (G, C+1))``: table0 is 0 for bg and 1 for every class; row g of
        ``tables`` is the in-group index (1..n_g) for members of foreground group g and 0 ("others") otherwise.
        """
        num_classes = self.num_classes
        fg_labels = torch.arange(num_classes + 1)[foreground_slice(num_classes, background)]
        table0 = torch.zeros(num_classes + 1, dtype=torch.long)
        table0[fg_labels] = 1
        tables = []
        for members in self.group_classes:
            table = torch.zeros(num_classes + 1, dtype=torch.long)
            table[fg_labels[list(members)]] = torch.arange(1, len(members) + 1)
            tables.append(table)
        return table0, torch.stack(tables) if tables else torch.zeros(0, num_classes + 1, dtype=torch.long)


def group_softmax_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    layout: GroupLayout,
    background: Background,
    *,
    beta: float = 8.0,
    generator: torch.Generator | None = None,
    tables: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """BAGS training loss (module docstring) of (R, K) logits and (R,) labels in ``background`` convention.

    ``tables``: ``layout.label_tables(background)`` already on the labels' device (a head caches them).
    """
    from ltbench.methods.samplers import bags_others_weights

    if logits.shape[1] != layout.num_logits:
        raise ValueError(f"group softmax expects {layout.num_logits} logits, got {logits.shape[1]}")
    table0, group_tables = tables if tables is not None else layout.label_tables(background)
    labels0 = table0.to(labels.device)[labels]
    total = F.cross_entropy(logits[:, :2], labels0, reduction="sum") / max(labels.numel(), 1)
    in_groups = group_tables.to(labels.device)[:, labels]  # (G, R)
    for g in range(layout.num_groups):
        in_group = in_groups[g]
        weights = bags_others_weights(in_group, beta, generator=generator).to(logits)
        per_roi = F.cross_entropy(logits[:, layout.group_slice(g)], in_group, reduction="none")
        total = total + (per_roi * weights).sum() / weights.sum().clamp(min=1)
    return total


def group_softmax_probabilities(
    logits: torch.Tensor, layout: GroupLayout, background: Background, class_columns: torch.Tensor | None = None
) -> torch.Tensor:
    """(R, K) logits -> (R, C+1) merged scores in ``background`` convention (module docstring).

    ``class_columns``: ``layout.class_columns`` as a tensor on the logits' device (a head caches it).
    """
    num_classes = layout.num_classes
    p0 = F.softmax(logits[:, :2], dim=1)
    in_group = torch.cat([F.softmax(logits[:, layout.group_slice(g)], dim=1) for g in range(layout.num_groups)], dim=1)
    columns = class_columns if class_columns is not None else torch.tensor(layout.class_columns, device=logits.device)
    fg_scores = in_group[:, columns.to(logits.device) - 2]  # in_group starts at column 2 of the logits
    out = logits.new_empty(logits.shape[0], num_classes + 1)
    out[:, foreground_slice(num_classes, background)] = fg_scores * p0[:, 1:2]
    out[:, background_index(num_classes, background)] = p0[:, 0]
    return out
