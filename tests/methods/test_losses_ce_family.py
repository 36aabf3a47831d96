"""Softmax-CE family losses against their equations: focal, re-weighting, class margin, label smoothing, OLS."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ltbench.errors import LtbenchError
from ltbench.methods.conventions import convert_columns, convert_labels
from ltbench.methods.losses.class_margin import class_margins, margin_columns, margin_cross_entropy
from ltbench.methods.losses.focal import sigmoid_focal_loss, softmax_focal_loss
from ltbench.methods.losses.label_smoothing import label_smoothing_loss, smoothed_targets
from ltbench.methods.losses.online_label_smoothing import OnlineLabelSmoothing
from ltbench.methods.losses.reweight import inverse_frequency_weights, weighted_cross_entropy


# -- focal ---------------------------------------------------------------------------------------
def test_focal_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)  # p = (1/4, 3/4)
    got = softmax_focal_loss(logits, torch.tensor([1]), gamma=2.0)
    assert got.item() == pytest.approx(-(0.25**2) * math.log(0.75))
    got0 = softmax_focal_loss(logits, torch.tensor([0]), gamma=1.0, reduction="none")
    assert got0.tolist() == pytest.approx([-(0.75) * math.log(0.25)])


def test_focal_gamma_zero_is_cross_entropy_and_convention_free():
    torch.manual_seed(0)
    logits = torch.randn(7, 5, dtype=torch.float64)
    labels = torch.tensor([0, 1, 4, 4, 2, 3, 0])
    assert softmax_focal_loss(logits, labels, gamma=0.0).item() == pytest.approx(F.cross_entropy(logits, labels).item())
    moved = softmax_focal_loss(convert_columns(logits, "last", "first"), convert_labels(labels, 4, "last", "first"))
    assert moved.item() == pytest.approx(softmax_focal_loss(logits, labels).item())


def test_sigmoid_focal_by_hand_and_gamma_zero_is_bce():
    z = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    p0, p1 = torch.sigmoid(z)[0].tolist()
    expected = 0.25 * (1 - p0) ** 2 * -math.log(p0) + 0.75 * p1**2 * -math.log(1 - p1)
    assert sigmoid_focal_loss(z, t, gamma=2.0, alpha=0.25).item() == pytest.approx(expected)
    torch.manual_seed(5)
    z = torch.randn(4, 3, dtype=torch.float64)
    t = F.one_hot(torch.tensor([0, 2, 1, 2]), 3).double()
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="sum") / 4
    assert sigmoid_focal_loss(z, t, gamma=0.0, alpha=None).item() == pytest.approx(bce.item())
    x = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: sigmoid_focal_loss(v, t, 2.0, 0.25), (x,))


def test_focal_gradcheck():
    torch.manual_seed(1)
    z = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 2, 1, 2])
    assert torch.autograd.gradcheck(lambda x: softmax_focal_loss(x, labels, gamma=2.0), (z,))


# -- re-weighting --------------------------------------------------------------------------------
@pytest.mark.parametrize("background", ["first", "last"])
def test_inverse_frequency_weights_by_hand(background):
    w = inverse_frequency_weights([1, 10, 100], background, normalize="mean", clip=(0.1, 10.0))
    mean_inverse = (1 + 0.1 + 0.01) / 3
    fg = [1 / mean_inverse, 0.1 / mean_inverse, 0.1]  # 0.01 / mean = 0.027 -> clipped to 0.1
    expected = [1.0, *fg] if background == "first" else [*fg, 1.0]
    assert w.tolist() == pytest.approx(expected)
    assert inverse_frequency_weights([1, 10, 100], background, clip=(0.1, 10.0)).tolist() == pytest.approx(expected)
    w2 = inverse_frequency_weights([1, 10, 100, 0], background, numerator=10.0, clip=(0.01, 5.0), background_weight=0.5)
    fg2 = [5.0, 1.0, 0.1, 5.0]  # zero count treated as 1 -> 10, clipped to 5
    assert w2.tolist() == pytest.approx([0.5, *fg2] if background == "first" else [*fg2, 0.5])


def test_named_numerators_and_effective_number():
    # median of [1, 10, 100] is 10 -> w = 10 / N_j
    w = inverse_frequency_weights([1, 10, 100], "last", numerator="median_instance_count", clip=(0.0, 100.0))
    assert w.tolist() == pytest.approx([10.0, 1.0, 0.1, 1.0])
    w_mean = inverse_frequency_weights([1, 10, 100], "last", numerator="mean_instance_count", clip=(0.0, 100.0))
    assert w_mean[:3].tolist() == pytest.approx([37.0, 3.7, 0.37])
    # beta < 1: (1 - beta) / (1 - beta^N), normalised by the mean
    beta = 0.9
    raw = [(1 - beta) / (1 - beta**n) for n in (1, 10, 100)]
    eff = inverse_frequency_weights([1, 10, 100], "last", beta=beta, clip=(0.0, 100.0))
    assert eff[:3].tolist() == pytest.approx([r / (sum(raw) / 3) for r in raw])
    with pytest.raises(LtbenchError, match="numerator"):
        inverse_frequency_weights([1], "last", numerator="median")
    with pytest.raises(LtbenchError, match="not both"):
        inverse_frequency_weights([1], "last", numerator=2.0, normalize="mean")
    with pytest.raises(LtbenchError, match="beta"):
        inverse_frequency_weights([1], "last", beta=0.0)


def test_weighted_cross_entropy_normalisations():
    torch.manual_seed(2)
    logits = torch.randn(5, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 3, 3, 2])
    weights = torch.tensor([2.0, 0.5, 1.0, 3.0], dtype=torch.float64)
    ce = F.cross_entropy(logits, labels, reduction="none")
    w = weights[labels]
    assert weighted_cross_entropy(logits, labels, weights, "rois").item() == pytest.approx((w * ce).sum().item() / 5)
    assert weighted_cross_entropy(logits, labels, weights, "weights").item() == pytest.approx(
        F.cross_entropy(logits, labels, weight=weights).item()
    )
    z = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: weighted_cross_entropy(x, labels, weights), (z,))


# -- class-aware margin --------------------------------------------------------------------------
def test_class_margins_by_hand():
    assert class_margins([1, 16, 81], max_margin=0.5).tolist() == pytest.approx([0.5, 0.25, 0.5 / 3])
    assert class_margins([1, 16, 81], constant=2.0).tolist() == pytest.approx([2.0, 1.0, 2.0 / 3])
    assert class_margins([0, 16]).tolist() == pytest.approx([0.5, 0.25])  # zero count treated as 1
    assert class_margins([1, 4], constant=1.0, exponent=0.5).tolist() == pytest.approx([1.0, 0.5])


@pytest.mark.parametrize("background", ["first", "last"])
def test_margin_cross_entropy_matches_the_equation(background):
    margins = class_margins([1, 16, 81], constant=1.0)  # [1, 0.5, 1/3]
    cols = margin_columns(margins, background)
    bg = 0 if background == "first" else 3
    assert cols[bg].item() == 0.0
    z = torch.tensor([[0.2, -0.3, 1.0, 0.5], [0.1, 0.4, -0.2, 0.0]], dtype=torch.float64)
    fg_label = 1  # class index 1 -> margin 0.5
    labels = torch.tensor([fg_label + (1 if background == "first" else 0), bg])
    got = margin_cross_entropy(z, labels, cols)
    y0 = labels[0].item()
    num = math.exp(z[0, y0].item() - 0.5)
    den = num + sum(math.exp(z[0, c].item()) for c in range(4) if c != y0)
    loss0 = -math.log(num / den)
    loss1 = F.cross_entropy(z[1:], labels[1:]).item()  # background target: no margin
    assert got.item() == pytest.approx((loss0 + loss1) / 2)
    x = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: margin_cross_entropy(t, labels, cols, scale=2.0), (x,))


# -- label smoothing -----------------------------------------------------------------------------
def test_label_smoothing_targets_and_loss():
    t = smoothed_targets(torch.tensor([2, 0]), 4, 0.2)
    assert t[0].tolist() == pytest.approx([0.05, 0.05, 0.85, 0.05])
    assert t.sum(1).tolist() == pytest.approx([1.0, 1.0])
    torch.manual_seed(3)
    logits = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 3, 1])
    assert label_smoothing_loss(logits, labels, 0.1).item() == pytest.approx(
        F.cross_entropy(logits, labels, label_smoothing=0.1).item()
    )
    assert label_smoothing_loss(logits, labels, 0.0).item() == pytest.approx(F.cross_entropy(logits, labels).item())


# -- online label smoothing ----------------------------------------------------------------------
def test_ols_initial_matrix_and_loss():
    ols = OnlineLabelSmoothing(3, alpha=0.5, initial_smoothing=0.3)
    assert ols.soft_labels[0].tolist() == pytest.approx([0.8, 0.1, 0.1])
    logits = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)
    loss = ols(logits, torch.tensor([0]))
    log_p = F.log_softmax(logits, dim=1)[0]
    expected = 0.5 * -log_p[0] + 0.5 * -(0.8 * log_p[0] + 0.1 * log_p[1] + 0.1 * log_p[2])
    assert loss.item() == pytest.approx(expected.item())


@pytest.mark.parametrize("empty_rows", ["keep", "zero"])
def test_ols_accumulates_correct_predictions_and_uses_them_next_epoch(empty_rows):
    ols = OnlineLabelSmoothing(3, initial_smoothing=0.3, empty_rows=empty_rows)
    logits = torch.tensor(
        [[2.0, 0.0, 0.0], [3.0, 1.0, 0.0], [0.0, 2.0, 0.0], [5.0, 0.0, 0.0]], dtype=torch.float64
    )
    labels = torch.tensor([0, 0, 1, 2])  # last one is wrong (predicted 0): not accumulated
    before = ols.soft_labels.clone()
    ols(logits, labels)
    assert torch.equal(ols.soft_labels, before)  # used only from the next epoch
    assert ols.counts.tolist() == [2.0, 1.0, 0.0]
    ols.set_epoch(1)
    p = F.softmax(logits, dim=1)
    assert ols.soft_labels[0].tolist() == pytest.approx(((p[0] + p[1]) / 2).tolist())
    assert ols.soft_labels[1].tolist() == pytest.approx(p[2].tolist())
    expected_row2 = before[2].tolist() if empty_rows == "keep" else [0.0, 0.0, 0.0]
    assert ols.soft_labels[2].tolist() == pytest.approx(expected_row2)
    assert ols.counts.sum().item() == 0 and int(ols.epoch) == 1
    ols.set_epoch(1)  # same epoch again: no change
    assert ols.soft_labels[0].tolist() == pytest.approx(((p[0] + p[1]) / 2).tolist())


def test_ols_state_dict_round_trip():
    ols = OnlineLabelSmoothing(4)
    torch.manual_seed(4)
    for _ in range(3):
        ols(torch.randn(8, 4) * 3, torch.randint(0, 4, (8,)))
    ols.set_epoch(1)
    ols(torch.randn(8, 4) * 3, torch.randint(0, 4, (8,)))
    restored = OnlineLabelSmoothing(4)
    restored.load_state_dict(ols.state_dict())
    for name in ("soft_labels", "accumulator", "counts", "epoch"):
        assert torch.equal(getattr(restored, name), getattr(ols, name))
