"""Background conventions: conversions are inverse of each other and place background correctly."""

from __future__ import annotations

import torch

from ltbench.methods.box_head import build_box_head
from ltbench.methods.heads import SoftmaxBoxHead
from ltbench.methods.conventions import (
    background_index,
    convert_columns,
    convert_labels,
    foreground_slice,
)


def test_background_index_and_slices():
    assert background_index(5, "first") == 0 and background_index(5, "last") == 5
    assert foreground_slice(5, "first") == slice(1, 6) and foreground_slice(5, "last") == slice(0, 5)


def test_label_and_column_conversion_round_trip():
    labels_first = torch.tensor([0, 1, 3, 5, 0])
    labels_last = convert_labels(labels_first, 5, "first", "last")
    assert labels_last.tolist() == [5, 0, 2, 4, 5]
    assert convert_labels(labels_last, 5, "last", "first").tolist() == labels_first.tolist()

    scores_first = torch.arange(12.0).reshape(2, 6)  # column 0 = background
    scores_last = convert_columns(scores_first, "first", "last")
    assert scores_last[:, -1].tolist() == scores_first[:, 0].tolist()
    assert torch.equal(convert_columns(scores_last, "last", "first"), scores_first)


def test_softmax_head_shapes_and_probabilities():
    torch.manual_seed(0)
    head = build_box_head("softmax", num_classes=4, background="last", num_box_deltas=16)
    assert isinstance(head, SoftmaxBoxHead)
    out = head(torch.randn(6, 256, 7, 7))
    assert out.final_logits.shape == (6, 5) and head.regression_deltas(out).shape == (6, 16)
    probs = head.probabilities(out)
    assert torch.allclose(probs.sum(-1), torch.ones(6))
    loss = head.classification_losses(out, torch.tensor([4, 0, 1, 2, 3, 4]))["loss_cls"]
    loss.backward()
    assert head.cls_score.weight.grad is not None
