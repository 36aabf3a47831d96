"""Seesaw loss against its equations (mitigation, compensation, objectness, inference rule)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
import torch.nn.functional as F

from ltbench.methods.conventions import convert_columns, convert_labels
from ltbench.methods.losses.seesaw import (
    SeesawLoss,
    seesaw_adjusted_logits,
    seesaw_cross_entropy,
    seesaw_probabilities,
)


def test_mitigation_shifts_rarer_non_target_logits_down_by_p_log_ratio():
    logits = torch.zeros(2, 3, dtype=torch.float64)
    labels = torch.tensor([0, 2])
    counts = torch.tensor([100.0, 10.0, 1.0], dtype=torch.float64)
    out = seesaw_adjusted_logits(logits, labels, counts, p=0.8, q=0.0)
    # head class 0 as target: j=1 gets log((10/100)^0.8), j=2 log((1/100)^0.8); the target stays 0
    assert out[0].tolist() == pytest.approx([0.0, 0.8 * math.log(0.1), 0.8 * math.log(0.01)])
    # tail class 2 as target: every other class is more frequent -> no mitigation
    assert out[1].tolist() == pytest.approx([0.0, 0.0, 0.0])


def test_compensation_raises_non_targets_scored_above_the_target_by_q_log_ratio():
    logits = torch.tensor([[0.0, 1.0, -1.0]], dtype=torch.float64)
    counts = torch.ones(3, dtype=torch.float64)
    out = seesaw_adjusted_logits(logits, torch.tensor([0]), counts, p=0.8, q=2.0)
    # s1/s0 = e^1 > 1 -> + 2 * 1; s2 < s0 -> unchanged; equal counts -> no mitigation
    assert out[0].tolist() == pytest.approx([0.0, 3.0, -1.0])


def test_compensation_clamps_the_target_score_at_eps():
    logits = torch.tensor([[-30.0, 0.0]], dtype=torch.float64)
    out = seesaw_adjusted_logits(logits, torch.tensor([0]), torch.ones(2, dtype=torch.float64), p=0.0, q=1.0, eps=0.5)
    s = F.softmax(logits, dim=1)[0]
    assert out[0, 1].item() == pytest.approx(math.log(s[1].item() / 0.5))


def test_low_precision_logits_get_finite_factors():
    logits = torch.zeros(1, 3, dtype=torch.float16)
    counts = torch.tensor([1e9, 1.0, 5.0], dtype=torch.float64)  # (1/1e9)^0.8 underflows in fp16
    out = seesaw_adjusted_logits(logits, torch.tensor([0]), counts, p=0.8, q=2.0)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert out[0, 1].item() == pytest.approx(0.8 * math.log(1e-9), rel=1e-3)


def test_zero_counts_are_clamped_to_one():
    out = seesaw_adjusted_logits(
        torch.zeros(1, 2, dtype=torch.float64), torch.tensor([0]), torch.tensor([4.0, 0.0]), p=0.5, q=0.0
    )
    assert out[0, 1].item() == pytest.approx(0.5 * math.log(1 / 4))


@pytest.mark.parametrize("counts", [[5.0, 5.0, 5.0, 5.0], [1000.0, 50.0, 3.0, 0.0]])
def test_p_and_q_zero_equals_cross_entropy(counts):
    torch.manual_seed(0)
    logits = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 0, 2])
    got = seesaw_cross_entropy(logits, labels, torch.tensor(counts, dtype=torch.float64), p=0.0, q=0.0)
    assert torch.allclose(got, F.cross_entropy(logits, labels, reduction="none"))


def test_equal_counts_without_compensation_equals_cross_entropy():
    torch.manual_seed(1)
    logits = torch.randn(5, 3, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 1, 0])
    got = seesaw_cross_entropy(logits, labels, torch.full((3,), 7.0, dtype=torch.float64), p=0.8, q=0.0)
    assert torch.allclose(got, F.cross_entropy(logits, labels, reduction="none"))


def test_soft_target_form():
    torch.manual_seed(2)
    logits = torch.randn(3, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 3])
    counts = torch.tensor([100.0, 20.0, 5.0, 1.0], dtype=torch.float64)
    target = F.softmax(torch.randn(3, 4, dtype=torch.float64), dim=1)
    adjusted = seesaw_adjusted_logits(logits, labels, counts)
    expected = -(target * F.log_softmax(adjusted, dim=1)).sum(1)
    assert torch.allclose(seesaw_cross_entropy(logits, labels, counts, soft_target=target), expected)
    # a one-hot soft target reproduces the hard-label loss
    onehot = F.one_hot(labels, 4).double()
    assert torch.allclose(
        seesaw_cross_entropy(logits, labels, counts, soft_target=onehot), seesaw_cross_entropy(logits, labels, counts)
    )


def test_gradcheck_seesaw_cross_entropy_with_mitigation():
    # the compensation factor is computed from detached scores, so finite differences only agree with
    # autograd when it is off (q=0); mitigation factors are constants
    torch.manual_seed(3)
    logits = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 4, 2, 2])
    counts = torch.tensor([300.0, 40.0, 8.0, 2.0, 1.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: seesaw_cross_entropy(z, labels, counts, q=0.0).sum(), (logits,))


def test_gradient_treats_seesaw_factors_as_constants():
    torch.manual_seed(6)
    logits = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 4, 2, 2])
    counts = torch.tensor([300.0, 40.0, 8.0, 2.0, 1.0], dtype=torch.float64)
    seesaw_cross_entropy(logits, labels, counts, p=0.8, q=2.0).sum().backward()
    adjusted = seesaw_adjusted_logits(logits.detach(), labels, counts, p=0.8, q=2.0)
    expected = F.softmax(adjusted, dim=1) - F.one_hot(labels, 5).double()
    assert torch.allclose(logits.grad, expected)


def _labels_first(fg_labels_or_bg: list[int], num_classes: int) -> torch.Tensor:
    """-1 = background; class k -> k + 1."""
    return torch.tensor([0 if v < 0 else v + 1 for v in fg_labels_or_bg])


@pytest.mark.parametrize("background", ["first", "last"])
def test_seesaw_loss_terms_by_hand(background):
    num_classes = 3
    raw = [0, -1, 2, -1]
    labels = (
        _labels_first(raw, num_classes)
        if background == "first"
        else torch.tensor([num_classes if v < 0 else v for v in raw])
    )
    torch.manual_seed(4)
    logits = torch.randn(4, num_classes + 2, dtype=torch.float64)
    loss = SeesawLoss(num_classes, background, p=0.8, q=2.0)
    out = loss(logits, labels)
    # counts are updated before the factors: class 0 and class 2 seen once each
    assert loss.cum_samples.tolist() == [1.0, 0.0, 1.0]
    obj_targets = torch.tensor([0, 1, 0, 1])
    expected_obj = F.cross_entropy(logits[:, 3:], obj_targets, reduction="sum") / 4
    assert out["loss_cls_objectness"].item() == pytest.approx(expected_obj.item())
    pos = torch.tensor([0, 2])
    fg = torch.tensor([0, 2])
    expected_cls = seesaw_cross_entropy(logits[pos, :3], fg, loss.cum_samples).sum() / 4
    assert out["loss_cls_classes"].item() == pytest.approx(expected_cls.item())


def test_seesaw_loss_same_in_both_conventions_and_counts_in_state_dict():
    num_classes = 4
    torch.manual_seed(5)
    logits = torch.randn(8, num_classes + 2, dtype=torch.float64)
    labels_last = torch.tensor([0, 4, 1, 1, 4, 3, 0, 0])
    labels_first = convert_labels(labels_last, num_classes, "last", "first")
    a, b = SeesawLoss(num_classes, "last"), SeesawLoss(num_classes, "first")
    for _ in range(2):
        out_a, out_b = a(logits, labels_last), b(logits, labels_first)
    assert all(torch.allclose(out_a[k], out_b[k]) for k in out_a)
    assert a.cum_samples.tolist() == [6.0, 4.0, 0.0, 2.0]
    c = SeesawLoss(num_classes, "last")
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.cum_samples, a.cum_samples)


def test_seesaw_loss_without_positives_is_objectness_only_and_differentiable():
    logits = torch.randn(3, 5, requires_grad=True)
    out = SeesawLoss(3, "last")(logits, torch.tensor([3, 3, 3]))
    assert out["loss_cls_classes"].item() == 0.0
    (out["loss_cls_classes"] + out["loss_cls_objectness"]).backward()
    assert logits.grad is not None


@pytest.mark.parametrize("background", ["first", "last"])
def test_probabilities_rule_and_sum_to_one(background):
    num_classes = 3
    logits = torch.tensor([[1.0, 2.0, 0.0, 0.5, -0.5]], dtype=torch.float64)
    probs = seesaw_probabilities(logits, num_classes, background)
    p_obj = F.softmax(logits[:, 3:], dim=1)[0]
    p_cls = F.softmax(logits[:, :3], dim=1)[0] * p_obj[0]
    expected_last = torch.cat([p_cls, p_obj[1:]])
    assert torch.allclose(convert_columns(probs, background, "last")[0], expected_last)
    assert probs.sum().item() == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-30, 30), min_size=5, max_size=5),
    st.sampled_from(["first", "last"]),
)
def test_probabilities_sum_to_one_for_any_logits(values, background):
    logits = torch.tensor([values], dtype=torch.float64)  # C = 3 classes + 2 objectness
    probs = seesaw_probabilities(logits, 3, background)
    assert probs.sum().item() == pytest.approx(1.0)
    assert (probs >= 0).all()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0, 1e6), min_size=4, max_size=4),
    st.integers(0, 3),
    st.floats(0, 2),
)
def test_mitigation_never_raises_and_compensation_never_lowers_a_logit(counts, label, p):
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0]], dtype=torch.float64)
    cum = torch.tensor(counts, dtype=torch.float64)
    mitigated = seesaw_adjusted_logits(logits, torch.tensor([label]), cum, p=p, q=0.0)
    assert (mitigated <= logits + 1e-12).all()
    compensated = seesaw_adjusted_logits(logits, torch.tensor([label]), cum, p=0.0, q=2.0)
    assert (compensated >= logits - 1e-12).all()
    assert mitigated[0, label] == logits[0, label] and compensated[0, label] == logits[0, label]
