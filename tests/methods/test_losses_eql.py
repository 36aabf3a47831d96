"""EQL v1 and the sigmoid BCE baseline against their equations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ltbench.methods.conventions import convert_labels
from ltbench.methods.losses.eql import eql_loss, fg_one_hot, sigmoid_probabilities_with_dummy_background


@pytest.mark.parametrize("background", ["first", "last"])
def test_fg_one_hot_has_all_zero_background_rows(background):
    labels = convert_labels(torch.tensor([0, 2, 3]), 3, "last", background)  # class 0, class 2, bg
    assert fg_one_hot(labels, 3, background).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize("background", ["first", "last"])
def test_eql_drops_rare_negatives_of_foreground_rois_only(background):
    z = torch.zeros(2, 3, dtype=torch.float64)
    labels = convert_labels(torch.tensor([0, 3]), 3, "last", background)  # a class-0 RoI and a background RoI
    tail = torch.tensor([False, True, False])
    got = eql_loss(z, labels, tail, background)
    # every BCE term is log 2; the fg RoI loses its class-1 negative term: 2 + 3 terms kept, / 2 RoIs
    assert got.item() == pytest.approx(5 * math.log(2) / 2)
    # a rare class's own positive is kept
    labels_rare = convert_labels(torch.tensor([1]), 3, "last", background)
    assert eql_loss(z[:1], labels_rare, tail, background).item() == pytest.approx(3 * math.log(2))


def test_no_tail_classes_is_plain_bce():
    torch.manual_seed(0)
    z = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([0, 4, 1, 3, 4, 2])  # "last": 4 = bg
    targets = F.one_hot(labels, 5)[:, :4].double()
    expected = F.binary_cross_entropy_with_logits(z, targets, reduction="sum") / 6
    assert eql_loss(z, labels, torch.zeros(4, dtype=torch.bool), "last").item() == pytest.approx(expected.item())


def test_eql_gradcheck_and_zero_gradient_on_dropped_terms():
    torch.manual_seed(1)
    z = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 4, 2])
    tail = torch.tensor([False, True, False, True])
    assert torch.autograd.gradcheck(lambda x: eql_loss(x, labels, tail, "last"), (z,))
    eql_loss(z, labels, tail, "last").backward()
    assert z.grad[0, 1].item() == 0.0 and z.grad[0, 3].item() == 0.0  # fg RoI, rare negatives
    assert z.grad[1, 1].item() != 0.0  # background RoI still suppresses rare classes


@pytest.mark.parametrize("background", ["first", "last"])
def test_probabilities_have_a_zero_background_column(background):
    z = torch.tensor([[0.0, 2.0]])
    probs = sigmoid_probabilities_with_dummy_background(z, background)
    s = torch.sigmoid(z)[0].tolist()
    assert probs[0].tolist() == pytest.approx([0.0, *s] if background == "first" else [*s, 0.0])
