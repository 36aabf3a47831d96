"""Balanced group softmax: layout, label remapping, loss and the inference merge, in both conventions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
import torch.nn.functional as F

from ltbench.methods.conventions import convert_columns, convert_labels
from ltbench.methods.losses.group_softmax import GroupLayout, group_softmax_loss, group_softmax_probabilities

COUNTS = [5, 50, 500, 5000, 3, 999]  # classes 0..5


def test_layout_by_hand():
    layout = GroupLayout.from_counts(COUNTS)
    assert layout.group_classes == ((0, 4), (1,), (2, 5), (3,))
    assert layout.group_starts == (2, 5, 7, 10)
    assert layout.num_logits == 12 == len(COUNTS) + 2 + layout.num_groups
    assert layout.group_slice(2) == slice(7, 10)
    assert layout.class_columns == (3, 6, 8, 11, 4, 9)


def test_empty_bins_are_left_out_and_edges_are_configurable():
    layout = GroupLayout.from_counts([1, 2, 2000])
    assert layout.group_classes == ((0, 1), (2,))
    assert layout.num_logits == 2 + 3 + 2
    assert GroupLayout.from_counts([1, 2, 2000], bin_edges=(2,)).group_classes == ((0,), (1, 2))
    with pytest.raises(ValueError):
        GroupLayout.from_counts([1], bin_edges=(100, 10))


@pytest.mark.parametrize("background", ["first", "last"])
def test_label_tables(background):
    layout = GroupLayout.from_counts(COUNTS)
    table0, tables = layout.label_tables(background)
    off = 1 if background == "first" else 0
    bg = 0 if background == "first" else 6
    assert table0[bg].item() == 0 and table0.sum().item() == 6
    # class 4 is the second member of group 1 (classes 0, 4); others -> 0
    assert tables[0][4 + off].item() == 2 and tables[0][0 + off].item() == 1
    assert tables[0][bg].item() == 0 and tables[0][1 + off].item() == 0
    assert tables[2][5 + off].item() == 2


def _direct_merge(logits: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
    """The BAGS merge written out element by element, background last."""
    rows = []
    for z in logits:
        p0 = torch.softmax(z[:2], 0)
        row = [0.0] * (layout.num_classes + 1)
        for g, members in enumerate(layout.group_classes):
            p = torch.softmax(z[layout.group_slice(g)], 0)
            for i, k in enumerate(members):
                row[k] = (p[i + 1] * p0[1]).item()
        row[-1] = p0[0].item()
        rows.append(row)
    return torch.tensor(rows, dtype=logits.dtype)


@pytest.mark.parametrize("background", ["first", "last"])
def test_merge_equals_direct_computation(background):
    layout = GroupLayout.from_counts(COUNTS)
    torch.manual_seed(0)
    logits = torch.randn(5, layout.num_logits, dtype=torch.float64)
    probs = group_softmax_probabilities(logits, layout, background)
    assert torch.allclose(convert_columns(probs, background, "last"), _direct_merge(logits, layout))
    # no renormalisation: rows sum to P(bg) + P(fg) * sum_g (1 - P_g(others)), not 1 in general
    assert not torch.allclose(probs.sum(1), torch.ones(5, dtype=torch.float64))


def test_merge_with_single_class_groups_and_certain_others_rows():
    layout = GroupLayout.from_counts([1, 20])  # one class per group
    logits = torch.tensor([[0.0, 0.0, -50.0, 50.0, -50.0, 50.0]], dtype=torch.float64)
    probs = group_softmax_probabilities(logits, layout, "last")
    # group 0: P(bg) = P(fg) = 0.5; each class gets P_g(class) ~ 1 times 0.5
    assert probs[0].tolist() == pytest.approx([0.5, 0.5, 0.5])


def _direct_loss(logits, labels_last, layout):
    """Sum of per-group CEs when every "others" RoI is kept (beta large), background last."""
    num_classes = layout.num_classes
    total = F.cross_entropy(logits[:, :2], (labels_last != num_classes).long())
    for g, members in enumerate(layout.group_classes):
        in_group = torch.tensor([members.index(y) + 1 if y in members else 0 for y in labels_last.tolist()])
        if (in_group > 0).any():
            total = total + F.cross_entropy(logits[:, layout.group_slice(g)], in_group)
    return total


@pytest.mark.parametrize("background", ["first", "last"])
def test_loss_equals_direct_sum_of_group_cross_entropies(background):
    layout = GroupLayout.from_counts(COUNTS)
    torch.manual_seed(1)
    logits = torch.randn(8, layout.num_logits, dtype=torch.float64)
    labels_last = torch.tensor([0, 6, 4, 6, 2, 2, 6, 1])  # no RoI of group 4 (class 3): that group adds 0
    labels = convert_labels(labels_last, 6, "last", background)
    got = group_softmax_loss(logits, labels, layout, background, beta=100.0)
    assert got.item() == pytest.approx(_direct_loss(logits, labels_last, layout).item())


def test_others_are_subsampled_with_beta():
    layout = GroupLayout.from_counts([1, 20])
    # 1 positive of class 0 (group 1), 9 background RoIs; beta = 2 -> 2 "others" kept in group 1
    labels = torch.tensor([0] + [2] * 9)
    logits = torch.zeros(10, layout.num_logits, dtype=torch.float64)
    logits[1:, 2] = 2.0  # background RoIs favour group 1's "others": each costs log(1 + e^-2)
    got = group_softmax_loss(logits, labels, layout, "last", beta=2.0, generator=torch.Generator().manual_seed(0))
    ce_g0 = F.cross_entropy(logits[:, :2], (labels != 2).long())
    pos_cost = F.cross_entropy(logits[:1, 2:4], torch.tensor([1])).item()
    other_cost = torch.log1p(torch.exp(torch.tensor(-2.0, dtype=torch.float64))).item()
    # kept: the positive and int(1 * 2) = 2 others, averaged over 3; group 2 has no positive
    assert got.item() == pytest.approx(ce_g0.item() + (pos_cost + 2 * other_cost) / 3)


def test_gradcheck_loss():
    layout = GroupLayout.from_counts([2, 30, 300])
    torch.manual_seed(2)
    z = torch.randn(6, layout.num_logits, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 3, 0])
    assert torch.autograd.gradcheck(lambda x: group_softmax_loss(x, labels, layout, "last", beta=100.0), (z,))


def test_wrong_width_is_rejected():
    layout = GroupLayout.from_counts([2, 30])
    with pytest.raises(ValueError, match="logits"):
        group_softmax_loss(torch.zeros(2, 3), torch.tensor([0, 1]), layout, "last")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 5000), min_size=1, max_size=8),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["first", "last"]),
)
def test_merge_equals_direct_computation_for_any_counts(counts, seed, background):
    layout = GroupLayout.from_counts(counts)
    assert layout.num_logits == len(counts) + 2 + layout.num_groups
    assert sorted(k for members in layout.group_classes for k in members) == list(range(len(counts)))
    logits = torch.randn(3, layout.num_logits, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    probs = group_softmax_probabilities(logits, layout, background)
    assert torch.allclose(convert_columns(probs, background, "last"), _direct_merge(logits, layout))
    # each class score is at most P(fg) of the background group
    p_fg = torch.softmax(logits[:, :2], 1)[:, 1:]
    fg = convert_columns(probs, background, "last")[:, :-1]
    assert (fg <= p_fg + 1e-12).all()
