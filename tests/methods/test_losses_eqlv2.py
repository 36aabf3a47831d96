"""EQL v2 against its equations: weights from gradient statistics, loss, inference rule, resume."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
import torch.nn.functional as F

from ltbench.methods.conventions import convert_columns, convert_labels
from ltbench.methods.losses.eqlv2 import EQLv2Loss, EQLv2Weights, eqlv2_probabilities
from ltbench.methods.losses.online_label_smoothing import OnlineLabelSmoothing


def test_initial_weights_are_one_so_the_loss_is_plain_bce_summed_over_columns_over_rois():
    torch.manual_seed(0)
    logits = torch.randn(5, 4, dtype=torch.float64)
    labels = torch.tensor([0, 3, 1, 3, 2])  # background "last": 3
    loss = EQLv2Loss(3, "last")(logits, labels)
    targets = F.one_hot(labels, 4).double()
    expected = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / 5
    assert loss.item() == pytest.approx(expected.item())


def test_statistics_and_weights_by_hand():
    stats = EQLv2Weights(2, "last", gamma=12, mu=0.8, alpha=4)
    # two RoIs: class 0 and background (column 2)
    probs = torch.tensor([[0.6, 0.2, 0.1], [0.3, 0.5, 0.9]], dtype=torch.float64)
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    weights = torch.ones(2, 3, dtype=torch.float64)
    stats.update(probs, targets, weights)
    # class 0: pos |g| = 1 - 0.6 = 0.4 ; neg |g| = 0.3 ; class 1: pos 0 ; neg 0.2 + 0.5
    assert stats.pos_grad.tolist() == pytest.approx([0.4, 0.0])
    assert stats.neg_grad.tolist() == pytest.approx([0.3, 0.7])
    assert stats.pos_neg.tolist() == pytest.approx([0.4 / 0.3, 0.0])
    pos_w, neg_w = stats.weights(targets)
    nw0 = 1 / (1 + math.exp(-12 * (0.4 / 0.3 - 0.8)))
    nw1 = 1 / (1 + math.exp(-12 * (0.0 - 0.8)))
    assert neg_w[0].tolist() == pytest.approx([nw0, nw1, 1.0])
    assert pos_w[1].tolist() == pytest.approx([1 + 4 * (1 - nw0), 1 + 4 * (1 - nw1), 1.0])
    # a second batch accumulates (no decay)
    stats.update(probs, targets, 2 * weights)
    assert stats.pos_grad.tolist() == pytest.approx([1.2, 0.0])
    assert stats.neg_grad.tolist() == pytest.approx([0.9, 2.1])


def test_weighted_update_uses_the_element_weights():
    stats = EQLv2Weights(1, "first")
    probs = torch.tensor([[0.5, 0.25]], dtype=torch.float64)  # column 0 = background
    targets = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    stats.update(probs, targets, torch.tensor([[1.0, 3.0]], dtype=torch.float64))
    assert stats.pos_grad.tolist() == pytest.approx([0.75 * 3])
    assert stats.neg_grad.tolist() == pytest.approx([0.0])


def test_rare_class_with_little_positive_gradient_gets_small_negative_and_large_positive_weight():
    loss = EQLv2Loss(3, "last")
    torch.manual_seed(1)
    for _ in range(5):  # class 2 never positive
        loss(torch.randn(8, 4), torch.tensor([0, 0, 1, 3, 3, 0, 1, 3]))
    pos_w, neg_w = loss.stats.class_weights()
    assert neg_w[2].item() < 1e-3 and pos_w[2].item() > 3.99


@pytest.mark.parametrize("background", ["first", "last"])
def test_loss_is_the_same_in_both_conventions_over_several_steps(background):
    num_classes = 3
    torch.manual_seed(2)
    logits_last = [torch.randn(6, 4, dtype=torch.float64) for _ in range(3)]
    labels_last = torch.tensor([0, 3, 1, 3, 2, 0])
    ref, other = EQLv2Loss(num_classes, "last"), EQLv2Loss(num_classes, background)
    for z in logits_last:
        a = ref(z, labels_last)
        b = other(convert_columns(z, "last", background), convert_labels(labels_last, num_classes, "last", background))
        assert a.item() == pytest.approx(b.item())
    assert torch.allclose(ref.stats.pos_neg, other.stats.pos_neg)


def test_state_survives_state_dict_round_trip_and_resume_continues():
    torch.manual_seed(3)
    batches = [(torch.randn(6, 5, dtype=torch.float64), torch.randint(0, 5, (6,))) for _ in range(4)]
    straight = EQLv2Loss(4, "last")
    for z, y in batches:
        last = straight(z, y)
    first_half = EQLv2Loss(4, "last")
    for z, y in batches[:2]:
        first_half(z, y)
    state = first_half.state_dict()
    assert {"stats.pos_grad", "stats.neg_grad", "stats.pos_neg"} <= set(state)
    resumed = EQLv2Loss(4, "last")
    resumed.load_state_dict(state)
    for z, y in batches[2:]:
        last_resumed = resumed(z, y)
    assert last_resumed.item() == pytest.approx(last.item())
    assert torch.allclose(resumed.stats.pos_neg, straight.stats.pos_neg)


def test_eval_mode_does_not_collect_statistics():
    loss = EQLv2Loss(2, "last").eval()
    loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 2]))
    assert loss.stats.pos_grad.sum().item() == 0.0


def test_soft_targets_replace_one_hot_and_drive_the_statistics():
    loss = EQLv2Loss(2, "last")
    logits = torch.zeros(1, 3, dtype=torch.float64)
    targets = torch.tensor([[0.7, 0.3, 0.0]], dtype=torch.float64)
    value = loss(logits, torch.tensor([0]), targets=targets)
    assert value.item() == pytest.approx(3 * math.log(2))  # BCE(0, t) = log 2 for any t
    # |g| = t (p - 1) + (1 - t) p with p = 0.5 -> |1/2 - t|
    assert loss.stats.pos_grad.tolist() == pytest.approx([0.7 * 0.2, 0.3 * 0.2])
    assert loss.stats.neg_grad.tolist() == pytest.approx([0.3 * 0.2, 0.7 * 0.2])


def test_gradcheck_with_non_trivial_weights():
    torch.manual_seed(4)
    loss = EQLv2Loss(3, "first")
    for _ in range(3):
        loss(torch.randn(6, 4, dtype=torch.float64), torch.tensor([1, 0, 0, 2, 0, 1]))
    loss.eval()  # freeze the statistics so the function is deterministic
    z = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 0])
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (z,))


@pytest.mark.parametrize("background", ["first", "last"])
def test_inference_rule(background):
    z_last = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)  # 2 classes + objectness
    probs = eqlv2_probabilities(convert_columns(z_last, "last", background), 2, background)
    s = torch.sigmoid(z_last)[0]
    expected = [s[0] * (1 - s[2]), s[1] * (1 - s[2]), s[2]]
    assert convert_columns(probs, background, "last")[0].tolist() == pytest.approx([v.item() for v in expected])


def _distributed_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        for all_reduce in (True, False):
            stats = EQLv2Weights(2, "last", distributed=all_reduce)
            probs = torch.full((1, 3), 0.5, dtype=torch.float64)
            # rank 0 sees a class-0 RoI, rank 1 a class-1 RoI
            targets = F.one_hot(torch.tensor([rank]), 3).double()
            stats.update(probs, targets, torch.ones(1, 3, dtype=torch.float64))
            torch.save(stats.state_dict(), f"{out_dir}/rank{rank}-{all_reduce}.pt")
        # online label smoothing closes an epoch with the statistics of both processes
        ols = OnlineLabelSmoothing(3, initial_smoothing=0.0)
        logits = torch.full((1, 3), -5.0)
        logits[0, rank] = 5.0
        ols(logits, torch.tensor([rank]))
        ols.set_epoch(1)
        torch.save(ols.state_dict(), f"{out_dir}/ols{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_statistics_are_all_reduced_across_processes(tmp_path):
    """EQL v2 statistics (and online label smoothing's epoch statistics) are summed over 2 gloo processes."""
    import torch.multiprocessing as mp

    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    reduced = [torch.load(tmp_path / f"rank{r}-True.pt") for r in range(2)]
    for state in reduced:  # both ranks hold the sum: pos 0.5 per class, neg 0.5 per class
        assert state["pos_grad"].tolist() == pytest.approx([0.5, 0.5])
        assert state["neg_grad"].tolist() == pytest.approx([0.5, 0.5])
    ols = [torch.load(tmp_path / f"ols{r}.pt") for r in range(2)]
    for state in ols:  # rows 0 and 1 learnt from rank 0 and rank 1 respectively, on both ranks
        assert state["soft_labels"][0].argmax().item() == 0 and state["soft_labels"][1].argmax().item() == 1
        assert state["soft_labels"][2].tolist() == [0.0, 0.0, 1.0]  # no correct prediction: kept
    assert torch.equal(ols[0]["soft_labels"], ols[1]["soft_labels"])
    local = [torch.load(tmp_path / f"rank{r}-False.pt") for r in range(2)]
    assert local[0]["pos_grad"].tolist() == pytest.approx([0.5, 0.0])
    assert local[1]["pos_grad"].tolist() == pytest.approx([0.0, 0.5])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 50), min_size=3, max_size=3), st.lists(st.floats(0, 50), min_size=3, max_size=3))
def test_weights_stay_in_their_ranges(pos, neg):
    stats = EQLv2Weights(3, "last")
    stats.pos_grad.copy_(torch.tensor(pos, dtype=torch.float64))
    stats.neg_grad.copy_(torch.tensor(neg, dtype=torch.float64))
    stats.pos_neg.copy_(stats.pos_grad / (stats.neg_grad + 1e-10))
    pos_w, neg_w = stats.class_weights()
    assert ((neg_w >= 0) & (neg_w <= 1)).all()
    assert ((pos_w >= 1) & (pos_w <= 1 + stats.alpha)).all()
    assert torch.allclose(pos_w, 1 + stats.alpha * (1 - neg_w))
