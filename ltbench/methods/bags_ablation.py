"""BAGS Table 4's ablations of the balanced group softmax (registered as ``"bags_ablation"``): without the
background group G0 and/or without the "others" logits. With both, ``build_stage2`` uses the
``group_softmax`` head of ``ltbench.methods.heads`` instead (the two are tested equal in that case).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.methods.box_head import BOX_HEADS, BoxHead, BoxHeadOutput, class_counts
from ltbench.methods.conventions import background_index, foreground_slice


@BOX_HEADS.register("bags_ablation")
class GroupSoftmaxAblationHead(BoxHead):
    """BAGS Table 4 ablations: group softmax without the background group G0 and/or without "others".

    Groups are part 1's (``GroupLayout.from_counts``: training instance counts, bins ``bin_edges``). Logit
    layout (K columns, the same in both background conventions)::

        [g0: bg, fg]  (if background_group)  then per group g: [others] (if others) + its classes

    Training: G0 sees every RoI (bg -> 0, fg -> 1). In group g a RoI of one of its classes targets its
    class; with ``others`` every other RoI targets "others", subsampled to ``int(n_pos * beta)`` (BAGS'
    sampling, weights 0 when the group has no positive); without ``others`` the other RoIs are ignored in g.
    Loss = CE_g0 / R + sum_g sum_r w CE_g / max(sum w, 1). Inference: softmax in every group, "others"
    dropped; with G0 the class scores are multiplied by P(fg) and bg = P(bg), without G0 the groups' scores
    are concatenated as they are (BAGS model (1)/(3)) and the bg column is 0. With both options true this
    is exactly part 1's ``group_softmax`` head (tested), which ``build_stage2`` uses in that case.
    """

    def __init__(
        self,
        num_classes: int,
        background: Any,
        num_box_deltas: int,
        *,
        bin_edges: Sequence[int] = (10, 100, 1000),
        beta: float = 8.0,
        background_group: bool = True,
        others: bool = True,
        **feature_kwargs: Any,
    ) -> None:
        from ltbench.methods.losses.group_softmax import GroupLayout

        super().__init__(num_classes, background, num_box_deltas, **feature_kwargs)
        counts = class_counts(self.class_stats, "instance_counts", num_classes, head="bags_ablation")
        layout = GroupLayout.from_counts(counts, tuple(bin_edges))
        self.groups = layout.group_classes
        self.background_group, self.others, self.beta = background_group, others, beta
        column = 2 if background_group else 0
        self.group_starts: list[int] = []
        for members in self.groups:
            self.group_starts.append(column)
            column += len(members) + (1 if others else 0)
        self.num_logits = column
        table0, tables = layout.label_tables(self.background)
        self.register_buffer("table0", table0, persistent=False)
        self.register_buffer("tables", tables, persistent=False)
        self.cls_score = nn.Linear(self.features.out_channels, column)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.zeros_(self.cls_score.bias)

    def _group_slice(self, g: int) -> slice:
        start = self.group_starts[g]
        return slice(start, start + len(self.groups[g]) + (1 if self.others else 0))

    def class_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.cls_score(features)

    def classification_losses(self, output: BoxHeadOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        from ltbench.methods.samplers import bags_others_weights

        logits = output.final_logits
        total = logits.sum() * 0.0
        if self.background_group:
            total = total + F.cross_entropy(logits[:, :2], self.table0[labels], reduction="sum") / max(labels.numel(), 1)
        for g in range(len(self.groups)):
            in_group = self.tables[g][labels]  # 1..n_g for members, 0 otherwise
            if self.others:
                weights, target = bags_others_weights(in_group, self.beta).to(logits), in_group
            else:
                weights, target = (in_group > 0).to(logits.dtype), (in_group - 1).clamp(min=0)
            per_roi = F.cross_entropy(logits[:, self._group_slice(g)], target, reduction="none")
            total = total + (per_roi * weights).sum() / weights.sum().clamp(min=1)
        return {"loss_cls": total}

    def probabilities(self, output: BoxHeadOutput) -> torch.Tensor:
        logits = output.final_logits
        fg_scores = logits.new_zeros(logits.shape[0], self.num_classes)
        for g, members in enumerate(self.groups):
            probs = F.softmax(logits[:, self._group_slice(g)], dim=1)
            fg_scores[:, list(members)] = probs[:, 1:] if self.others else probs
        bg = background_index(self.num_classes, self.background)
        out = logits.new_zeros(logits.shape[0], self.num_classes + 1)
        if self.background_group:
            p0 = F.softmax(logits[:, :2], dim=1)
            fg_scores = fg_scores * p0[:, 1:2]
            out[:, bg] = p0[:, 0]
        out[:, foreground_slice(self.num_classes, self.background)] = fg_scores
        return out
