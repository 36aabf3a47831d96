"""The R-CNN box branch as one module: the contract between ``ltbench.methods`` and the adapters.

Data flow inside a two-stage detector, per image batch with R sampled RoIs in total::

    pooled   (R, 256, 7, 7)   RoIAlign output (the adapter computes it)
      │  self.features: flatten -> fc6 (12544->1024) -> ReLU -> fc7 (1024->1024) -> ReLU
      ▼
    features (R, 1024)
      │  self.predict(features): method-specific classifier + box regressor
      ▼
    BoxHeadOutput: per-step class logits (R, K) and box deltas (R, D); K is method-specific
                   (C+1 for softmax CE, C+2 for Seesaw, C+1+G for group softmax, ...)

An adapter owns the RoI pooling, proposal sampling, the *box* regression loss (its framework's own
smooth-L1/L1 and normalisation) and post-processing (NMS, top-k). A ``BoxHead`` owns everything about
classification: the classifier layers, the classification loss, the inference activation, and any
recurrent refinement (PCB). Adapters only call the five methods below:

- ``forward(pooled) -> BoxHeadOutput``
- ``classification_losses(output, labels) -> dict[str, Tensor]``; labels (R,) int64 in ``background``
  convention; every value is a scalar to be summed into the total loss.
- ``regression_deltas(output) -> Tensor (R, D)``: the deltas the adapter's box loss is computed on.
- ``probabilities(output) -> Tensor (R, C+1)``: class probabilities in ``background`` convention
  (background included), used for detection scores and by post-hoc views.
- ``set_progress(epoch, max_epochs, iteration, max_iterations)``: called by the adapter's training
  loop before every iteration (epochs 0-based); methods with start gates (PCB) read it.

``num_box_deltas`` (D) follows the framework: torchvision regresses 4*(C+1) deltas (background
included), mmdet and detectron2 4*C, class-agnostic heads 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.data.lvis_meta import ClassStats
from ltbench.errors import LtbenchError
from ltbench.methods.conventions import Background, check_background
from ltbench.registry import Registry

#: Box heads by name; ``build_box_head`` looks a method's head up here.
BOX_HEADS = Registry("box head")


@dataclass
class BoxHeadOutput:
    """What a ``BoxHead`` produces for R RoIs.

    Attributes:
        class_logits: one (R, K) tensor per recurrent step; single-step heads have one.
        box_deltas: one (R, D) tensor per step.
        features: (R, 1024) box-head features (step 0), used by two-stage methods.
        extras: method-specific tensors (e.g. objectness logits).
    """

    class_logits: list[torch.Tensor]
    box_deltas: list[torch.Tensor]
    features: torch.Tensor
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def final_logits(self) -> torch.Tensor:
        return self.class_logits[-1]


class TwoFCFeatures(nn.Module):
    """Flatten -> fc6 -> ReLU -> fc7 -> ReLU: the shared 2-fc box head of mmdet/detectron2/torchvision.

    Input (R, in_channels, P, P); output (R, hidden).
    """

    def __init__(self, in_channels: int = 256, pool_size: int = 7, hidden: int = 1024) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels * pool_size * pool_size, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.out_channels = hidden

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = pooled.flatten(start_dim=1)
        return F.relu(self.fc7(F.relu(self.fc6(x))))


class BoxHead(nn.Module):
    """Base class of every box head; subclasses override ``predict``, the loss and the activation.

    Args:
        num_classes: C, foreground classes.
        background: "first" or "last" (see ``ltbench.methods.conventions``).
        num_box_deltas: D, width of the box regressor output (framework-dependent, see module doc).
        in_channels, pool_size, hidden: shape of the 2-fc feature head.
        class_stats: the training split's per-class statistics (``ltbench.data.lvis_meta.ClassStats``),
            passed to every head; the methods that need counts read them with ``class_counts``.
    """

    def __init__(
        self,
        num_classes: int,
        background: Background,
        num_box_deltas: int,
        *,
        in_channels: int = 256,
        pool_size: int = 7,
        hidden: int = 1024,
        class_stats: ClassStats | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.class_stats = class_stats
        self.background: Background = check_background(background)
        self.num_box_deltas = num_box_deltas
        self.features = TwoFCFeatures(in_channels, pool_size, hidden)
        self.bbox_pred = nn.Linear(hidden, num_box_deltas)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.bbox_pred.bias)
        self.progress = {"epoch": 0, "max_epochs": 1, "iteration": 0, "max_iterations": 1}

    # -- what subclasses implement -------------------------------------------------------------
    def class_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(R, hidden) -> (R, K) raw classification logits."""
        raise NotImplementedError

    def classification_losses(self, output: BoxHeadOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def probabilities(self, output: BoxHeadOutput) -> torch.Tensor:
        raise NotImplementedError

    # -- shared behaviour ------------------------------------------------------------------------
    def forward(self, pooled: torch.Tensor) -> BoxHeadOutput:
        features = self.features(pooled)
        return BoxHeadOutput([self.class_logits(features)], [self.bbox_pred(features)], features)

    def regression_deltas(self, output: BoxHeadOutput) -> torch.Tensor:
        return output.box_deltas[-1]

    def set_progress(self, epoch: int, max_epochs: int, iteration: int, max_iterations: int) -> None:
        self.progress = {
            "epoch": epoch,
            "max_epochs": max_epochs,
            "iteration": iteration,
            "max_iterations": max_iterations,
        }


def build_box_head(name: str, *, num_classes: int, background: Background, num_box_deltas: int, **kwargs: Any) -> BoxHead:
    """Build the registered box head ``name``; ``kwargs`` are the method's parameters (and ``class_stats``)."""
    return BOX_HEADS.get(name)(num_classes, background, num_box_deltas, **kwargs)


def class_counts(class_stats: ClassStats | None, field: str, num_classes: int, *, head: str) -> list[int]:
    """The per-class list ``field`` ("instance_counts" or "image_counts") of ``class_stats``, validated:
    C non-negative ints in class-index order; a clear error when a head needs it and it is missing."""
    expected = f"a list of {num_classes} non-negative integers in class-index order"
    values = None if class_stats is None else getattr(class_stats, field)
    if values is None:
        raise LtbenchError(f"box head {head!r} needs the class statistics {field!r}", key=field, expected=expected)
    values = list(values)
    if len(values) != num_classes or any(int(v) != v or v < 0 for v in values):
        raise LtbenchError(f"box head {head!r}: {field} has {len(values)} entries or invalid values", key=field, expected=expected)
    return [int(v) for v in values]
