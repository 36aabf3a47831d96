"""Online label smoothing (OLS; Zhang et al., "Delving deep into label smoothing", TIP 2021), the "OLS"
row of PCB Table 4.

A K x K soft-label matrix S (K = C+1 columns, background included at its convention index) is kept:

- during epoch t, every RoI whose argmax prediction equals its label y adds ``softmax(z)`` (detached) to
  row y of an accumulator, and increments ``count[y]``;
- at the end of epoch t, ``S[y] = accumulator[y] / count[y]`` for every y with ``count[y] > 0``; rows with
  no correct prediction keep their previous value (``empty_rows="keep"``) or become zero
  (``empty_rows="zero"``: such classes then get no soft term);
- the loss at epoch t+1 is ``alpha * CE(z, y) + (1 - alpha) * soft_CE(z, S[y])`` (alpha = 0.5).

S starts as the label-smoothing matrix ``(1 - e) I + e / K`` (``initial_smoothing=e``, 0.1). All of S,
the accumulator, the counts and the current epoch are buffers, so a resumed run continues them. With
``torch.distributed`` initialised the accumulator and counts are summed over processes when an epoch
closes (``distributed=True``), so every process uses the same S.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.methods.losses.distributed import all_reduce_sum
from ltbench.methods.losses.label_smoothing import soft_cross_entropy


class OnlineLabelSmoothing(nn.Module):
    """OLS state and loss over K columns; ``forward(logits (R, K), labels (R,)) -> scalar``."""

    def __init__(
        self,
        num_columns: int,
        *,
        alpha: float = 0.5,
        initial_smoothing: float = 0.1,
        empty_rows: str = "keep",
        distributed: bool = True,
    ) -> None:
        super().__init__()
        if empty_rows not in ("keep", "zero"):
            raise ValueError(f"empty_rows must be 'keep' or 'zero', got {empty_rows!r}")
        self.num_columns, self.alpha, self.empty_rows = num_columns, alpha, empty_rows
        self.distributed = distributed
        eye = torch.eye(num_columns, dtype=torch.float64)
        self.register_buffer("soft_labels", (1 - initial_smoothing) * eye + initial_smoothing / num_columns)
        self.register_buffer("accumulator", torch.zeros(num_columns, num_columns, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(num_columns, dtype=torch.float64))
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def accumulate(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add the softmax of the correctly classified RoIs to their label's accumulator row."""
        correct = logits.argmax(dim=1) == labels
        if correct.any():
            probs = F.softmax(logits[correct].double(), dim=1)
            self.accumulator.index_add_(0, labels[correct], probs.to(self.accumulator))
            self.counts += torch.bincount(labels[correct], minlength=self.num_columns).to(self.counts)

    @torch.no_grad()
    def next_epoch(self) -> None:
        """Close the epoch: turn the accumulated statistics into the soft labels for the next one."""
        if self.distributed:
            all_reduce_sum(self.accumulator)
            all_reduce_sum(self.counts)
        seen = self.counts > 0
        new = torch.zeros_like(self.soft_labels)
        new[seen] = self.accumulator[seen] / self.counts[seen, None]
        if self.empty_rows == "keep":
            new[~seen] = self.soft_labels[~seen]
        self.soft_labels.copy_(new)
        self.accumulator.zero_()
        self.counts.zero_()
        self.epoch += 1

    def set_epoch(self, epoch: int) -> None:
        """Advance to ``epoch`` (0-based), closing the current epoch once if it changed."""
        if epoch > int(self.epoch):
            self.next_epoch()
            self.epoch.fill_(epoch)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hard = F.cross_entropy(logits, labels, reduction="sum") / max(labels.numel(), 1)
        soft = soft_cross_entropy(logits, self.soft_labels[labels])
        if self.training:
            self.accumulate(logits.detach(), labels)
        return self.alpha * hard + (1 - self.alpha) * soft
