"""PCB against the paper's equations and the official code's behaviour (official_implementations.md §1)."""

from __future__ import annotations

from ltbench.data.lvis_meta import ClassStats

import math

import pytest
import torch
import torch.nn.functional as F

from ltbench.errors import LtbenchError
from ltbench.methods import pcb
from ltbench.methods.box_head import build_box_head
from ltbench.methods.conventions import convert_columns, convert_labels, from_foreground_index

SMALL = {"in_channels": 4, "pool_size": 7, "hidden": 16}


def labels_in(fg_or_bg: list[int | None], background: str, num_classes: int) -> torch.Tensor:
    """[class index or None for background] -> (R,) labels in the convention."""
    bg = 0 if background == "first" else num_classes
    return torch.tensor([bg if k is None else (k + 1 if background == "first" else k) for k in fg_or_bg])


# -- alpha schedule ---------------------------------------------------------------------------------------
def test_step_alpha_is_linear_from_zero():
    assert [pcb.step_alpha(0.4, r, 3) for r in range(3)] == [0.0, 0.2, 0.4]
    assert pcb.step_alpha(0.05, 1, 3) == pytest.approx(0.025)
    assert [pcb.step_alpha(0.3, r, 4) for r in range(4)] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert pcb.step_alpha(0.4, 0, 1) == 0.4  # plain paradigm: Eq. 11 with alpha
    with pytest.raises(ValueError):
        pcb.step_alpha(0.4, 3, 3)


# -- confusion matrix -------------------------------------------------------------------------------------
def test_confusion_first_update_of_a_row_is_the_batch_mean_then_ema():
    cm = pcb.ConfusionMatrixEMA(3, momentum=0.5, distributed=False)
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.6, 0.2], [0.7, 0.2, 0.1]])
    labels = torch.tensor([0, 1, 0])
    updated = cm.update(probs, labels)
    assert updated.tolist() == [True, True, False]
    # row 0: 0.5*0 + 0.5*mean([.6,.3,.1],[.7,.2,.1]) = [.325,.125,.05] -> renormalised = [.65,.25,.1]
    torch.testing.assert_close(cm.matrix[0], torch.tensor([0.65, 0.25, 0.10]))
    torch.testing.assert_close(cm.matrix[1], torch.tensor([0.2, 0.6, 0.2]))
    assert cm.matrix[2].abs().sum() == 0  # absent row untouched
    assert cm.seen.tolist() == [2, 1, 0] and not cm.all_seen
    cm.update(torch.tensor([[0.05, 0.05, 0.9]]), torch.tensor([1]))
    # EMA on row 1 only: 0.5*[.2,.6,.2] + 0.5*[.05,.05,.9] = [.125,.325,.55] (sums to 1 already)
    torch.testing.assert_close(cm.matrix[1], torch.tensor([0.125, 0.325, 0.55]))
    torch.testing.assert_close(cm.matrix[0], torch.tensor([0.65, 0.25, 0.10]))  # absent now: untouched


def test_confusion_rows_absent_are_untouched_with_default_momentum():
    cm = pcb.ConfusionMatrixEMA(4, distributed=False)
    cm.matrix.copy_(torch.full((4, 4), 0.25))
    before = cm.matrix.clone()
    cm.update(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([2]))
    assert torch.equal(cm.matrix[[0, 1, 3]], before[[0, 1, 3]])
    torch.testing.assert_close(cm.matrix[2], torch.tensor([0.2575, 0.2475, 0.2475, 0.2475]))
    cm.update(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))  # empty batch: no change
    assert cm.seen.tolist() == [0, 0, 1, 0]


def test_confusion_eqlv2_rows_not_renormalised():
    cm = pcb.ConfusionMatrixEMA(2, momentum=0.9, renormalize_rows=False, distributed=False)
    cm.update(torch.tensor([[0.5, 0.5]]), torch.tensor([0]))
    torch.testing.assert_close(cm.matrix[0], torch.tensor([0.05, 0.05]))


def test_foreground_distribution_per_variant_and_convention():
    z = torch.tensor([[1.0, 2.0, 0.5, -1.0]])  # C = 3 plus one bg column
    last = pcb.foreground_distribution(z, 3, "last", "ce")
    torch.testing.assert_close(last, F.softmax(z[:, :3], 1))
    first = pcb.foreground_distribution(convert_columns(z, "last", "first"), 3, "first", "ce")
    torch.testing.assert_close(first, last)
    torch.testing.assert_close(pcb.foreground_distribution(z, 3, "last", "eqlv2"), torch.sigmoid(z[:, :3]))
    seesaw = torch.tensor([[1.0, 2.0, 0.5, 3.0, -3.0]])  # C+2, objectness last in both conventions
    torch.testing.assert_close(pcb.foreground_distribution(seesaw, 3, "first", "seesaw"), F.softmax(seesaw[:, :3], 1))


# -- fight-back targets -----------------------------------------------------------------------------------
def test_fightback_targets_column_normalised():
    m = torch.tensor([[0.8, 0.2], [0.5, 0.5]])
    q = pcb.fightback_targets(m, torch.tensor([0, 1, 0]))
    torch.testing.assert_close(q[0], torch.tensor([0.8 / 1.3, 0.5 / 1.3]))
    torch.testing.assert_close(q[1], torch.tensor([0.2 / 0.7, 0.5 / 0.7]))
    torch.testing.assert_close(q[2], q[0])
    raw = pcb.fightback_targets(m, torch.tensor([1]), normalize_columns=False)
    torch.testing.assert_close(raw, torch.tensor([[0.2, 0.5]]))
    zero = pcb.fightback_targets(torch.zeros(2, 2), torch.tensor([0]))
    assert torch.equal(zero, torch.zeros(1, 2))  # no NaN


# -- PCB CE loss ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("background", ["first", "last"])
def test_pcb_ce_loss_matches_hand_computation(background):
    torch.manual_seed(0)
    logits_last = torch.randn(4, 3)  # C = 2, bg last
    labels_last = torch.tensor([0, 2, 1, 0])
    q = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])  # for positives 0, 2, 3
    alpha = 0.3
    logp = F.log_softmax(logits_last, 1)
    expected = 0.0
    qi = 0
    for r in range(4):
        y = int(labels_last[r])
        ce = -float(logp[r, y])
        if y == 2:
            expected += ce
            continue
        target = q[qi]
        qi += 1
        kl = sum(float(t) * (math.log(float(t)) - float(logp[r, i])) for i, t in enumerate(target))
        expected += (1 - alpha) * ce + alpha * kl
    expected /= 4
    logits = convert_columns(logits_last, "last", background)
    labels = convert_labels(labels_last, 2, "last", background)
    got = pcb.pcb_ce_loss(logits, labels, q, alpha, background=background)
    assert float(got) == pytest.approx(expected, rel=1e-5)

    # paper form: soft CE against the fg-only softmax (Eq. 1, 10)
    fg_logp = F.log_softmax(logits_last[:, :2], 1)
    positives = [0, 2, 3]
    paper = sum(-(1 - alpha) * float(logp[r, labels_last[r]]) for r in positives) - float(logp[1, 2])
    paper += alpha * sum(-(q[i] * fg_logp[r]).sum().item() for i, r in enumerate(positives))
    got_paper = pcb.pcb_ce_loss(logits, labels, q, alpha, background=background, form="paper")
    assert float(got_paper) == pytest.approx(paper / 4, rel=1e-5)


def test_pcb_ce_loss_alpha_zero_is_mean_ce_and_gradcheck():
    torch.manual_seed(1)
    logits = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 3, 1, 2, 3])
    q = torch.softmax(torch.randn(3, 3, dtype=torch.float64), 1)
    torch.testing.assert_close(pcb.pcb_ce_loss(logits, labels, q, 0.0, background="last"), F.cross_entropy(logits, labels))
    for form in ("official", "paper"):
        assert torch.autograd.gradcheck(
            lambda z: pcb.pcb_ce_loss(z, labels, q, 0.4, background="last", form=form), (logits,)
        )


def test_pcb_pulls_probability_towards_the_fightback_target():
    # One positive of class 0 with a confident prediction; target puts mass on class 1 -> gradient raises z_1.
    logits = torch.tensor([[5.0, 0.0, 0.0]], requires_grad=True)
    loss = pcb.pcb_ce_loss(logits, torch.tensor([0]), torch.tensor([[0.5, 0.5]]), 1.0, background="last")
    loss.backward()
    assert logits.grad[0, 1] < 0 < logits.grad[0, 0]


# -- EQL v2 and Seesaw variants (part-1 loss modules) -------------------------------------------------------
@pytest.mark.parametrize("background", ["first", "last"])
def test_pcb_eqlv2_targets(background):
    labels = labels_in([1, None, 0], background, 2)
    column = torch.tensor([[0.3, 0.6], [0.9, 0.1]])  # M[:, y]^T for the two positives
    t = pcb.pcb_eqlv2_targets(labels, column, 0.5, 2, background)
    t_last = convert_columns(t, background, "last")
    torch.testing.assert_close(t_last, torch.tensor([[0.15, 0.8, 0.0], [0.0, 0.0, 1.0], [0.95, 0.05, 0.0]]))


def test_pcb_seesaw_alpha_zero_equals_seesaw_loss():
    seesaw_mod = pytest.importorskip("ltbench.methods.losses.seesaw")
    torch.manual_seed(2)
    logits = torch.randn(6, 5)  # C = 3
    labels = torch.tensor([0, 3, 1, 2, 3, 0])
    reference = seesaw_mod.SeesawLoss(3, "last")
    under_test = seesaw_mod.SeesawLoss(3, "last")
    expected = reference(logits, labels)
    got = pcb.pcb_seesaw_losses(logits, labels, torch.full((4, 3), 1 / 3), 0.0, under_test)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value)
    assert float(got["loss_cls_pcb"]) == 0.0
    assert torch.equal(reference.cum_samples, under_test.cum_samples)
    # with alpha the pcb term is alpha * soft seesaw CE / R
    soft = torch.softmax(torch.randn(4, 3), 1)
    got = pcb.pcb_seesaw_losses(logits, labels, soft, 0.25, seesaw_mod.SeesawLoss(3, "last"))
    fresh = seesaw_mod.SeesawLoss(3, "last")
    fresh.update_counts(labels)
    pos = labels != 3
    per_roi = seesaw_mod.seesaw_cross_entropy(logits[pos, :3], labels[pos], fresh.cum_samples, soft_target=soft)
    torch.testing.assert_close(got["loss_cls_pcb"], 0.25 * per_roi.sum() / 6)


# -- the gate ---------------------------------------------------------------------------------------------
def make_head(background="last", num_classes=3, **params):
    params = {**SMALL, **params}
    return build_box_head("pcb", num_classes=num_classes, background=background, num_box_deltas=4 * num_classes, **params)


def test_gate_epoch_one_and_zero_based_and_all_classes_seen():
    head = make_head(pcb={"alpha": 0.4})
    head.confusion.seen.fill_(1)
    head.set_progress(15, 24, 0, 100)  # 16th epoch (1-based)
    assert not head.gate_open()
    head.set_progress(16, 24, 0, 100)  # 17th epoch
    assert head.gate_open()
    head.confusion.seen[1] = 0  # a class never seen -> closed
    assert not head.gate_open()

    zero = make_head(pcb={"epoch_indexing": "zero_based"})
    zero.confusion.seen.fill_(1)
    zero.set_progress(16, 24, 0, 100)
    assert not zero.gate_open()
    zero.set_progress(17, 24, 0, 100)
    assert zero.gate_open()


def test_gate_iteration_fraction():
    head = make_head(pcb={"gate_unit": "iteration"})  # default fraction 16/24
    head.confusion.seen.fill_(1)
    head.set_progress(0, 1, 79, 120)
    assert not head.gate_open()
    head.set_progress(0, 1, 80, 120)
    assert head.gate_open()
    custom = make_head(pcb={"gate_unit": "iteration", "start_fraction": 0.5})
    custom.confusion.seen.fill_(1)
    custom.set_progress(0, 1, 60, 120)
    assert custom.gate_open()


def test_unknown_pcb_parameter_is_a_clear_error():
    with pytest.raises(LtbenchError, match="unknown PCB parameter"):
        make_head(pcb={"alpah": 0.4})
    with pytest.raises(LtbenchError, match="step weights"):
        make_head(steps=4)


# -- the recurrent head -----------------------------------------------------------------------------------
@pytest.mark.parametrize("background", ["first", "last"])
def test_matrix_updated_once_per_step_and_step0_gets_no_pcb(background, monkeypatch):
    torch.manual_seed(3)
    head = make_head(background, pcb={"alpha": 0.4})
    calls = []
    original_update = head.confusion.update
    monkeypatch.setattr(head.confusion, "update", lambda p, y: calls.append(len(y)) or original_update(p, y))
    alphas = []
    original_loss = pcb.pcb_ce_loss
    monkeypatch.setattr(pcb, "pcb_ce_loss", lambda *a, **k: alphas.append(a[3]) or original_loss(*a, **k))
    labels = labels_in([0, 1, 2, None, None, 1], background, 3)
    head.set_progress(20, 24, 0, 1)
    out = head(torch.randn(6, 4, 7, 7))
    head.classification_losses(out, labels)
    assert calls == [4, 4, 4]  # 3 updates per iteration, foreground RoIs only
    assert head.confusion.seen.tolist() == [3, 6, 3]
    assert alphas == pytest.approx([0.2, 0.4])  # step 0 never regularised
    head.eval()
    head.classification_losses(out, labels)
    assert len(calls) == 3  # no statistics outside training


@pytest.mark.parametrize("background", ["first", "last"])
def test_pcb_head_loss_equals_weighted_hand_computed_step_losses(background):
    torch.manual_seed(4)
    head = make_head(background, pcb={"alpha": 0.4, "momentum": 0.0})  # momentum 0: M = last step's batch means
    head.set_progress(20, 24, 0, 1)
    fg_index = torch.tensor([0, 1, 2, -1, -1, 1])  # -1 = background
    labels = labels_in([None if k < 0 else int(k) for k in fg_index], background, 3)
    out = head(torch.randn(6, 4, 7, 7))
    got = head.classification_losses(out, labels)["loss_cls"]
    expected = 0.2 * F.cross_entropy(out.class_logits[0], labels)
    pos = fg_index >= 0
    fg_cols = slice(1, 4) if background == "first" else slice(0, 3)
    for step, alpha in ((1, 0.2), (2, 0.4)):
        z = out.class_logits[step]
        probs = F.softmax(z[pos][:, fg_cols], 1)
        y = fg_index[pos]
        m = torch.zeros(3, 3).index_add_(0, y, probs.detach()) / torch.bincount(y, minlength=3)[:, None]
        q = (m / m.sum(0, keepdim=True))[:, y].t()
        expected = expected + (0.2 if step == 1 else 0.6) * pcb.pcb_ce_loss(z, labels, q, alpha, background=background)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("background", ["first", "last"])
def test_regulariser_statistics_count_what_the_regulariser_used(background, monkeypatch):
    """training.pcb in done.json: iterations with the regulariser on, (RoI, step) targets, and the mean share
    of a target's mass off the ground-truth class, by hand from the same M; one-hot targets give 0."""
    torch.manual_seed(8)
    head = make_head(background, pcb={"alpha": 0.4, "momentum": 0.0})
    fg_index = torch.tensor([0, 1, 2, -1, 1])
    labels = labels_in([None if k < 0 else int(k) for k in fg_index], background, 3)
    head.set_progress(0, 24, 0, 1)  # gate closed: nothing regularised
    head.classification_losses(head(torch.randn(5, 4, 7, 7)), labels)
    # the regulariser never ran: no off-label share to report
    assert head.regulariser_statistics() == {"regularised_iterations": 0, "targets": 0, "classes_never_seen": []}
    head.set_progress(20, 24, 0, 1)
    used = []
    original = pcb.fightback_targets
    monkeypatch.setattr(pcb, "fightback_targets", lambda m, y, **k: used.append((original(m, y, **k), y)) or used[-1][0])
    head.classification_losses(head(torch.randn(5, 4, 7, 7)), labels)
    assert len(used) == 2  # steps 1 and 2 (step 0 has alpha 0)
    shares = torch.cat([1 - q.gather(1, y[:, None]).squeeze(1) / q.sum(1) for q, y in used])
    stats = head.regulariser_statistics()
    assert stats["regularised_iterations"] == 1 and stats["targets"] == 8
    assert stats["offlabel_pct"] == pytest.approx(100 * shares.mean().item(), abs=1e-3)
    assert 0 < stats["offlabel_pct"] < 100
    head.eval()  # no counting outside training
    head.classification_losses(head(torch.randn(5, 4, 7, 7)), labels)
    assert head.regulariser_statistics() == stats
    restored = make_head(background, pcb={"alpha": 0.4, "momentum": 0.0})
    restored.load_state_dict(head.state_dict())  # buffers: a resumed run reports its whole training
    assert restored.regulariser_statistics() == stats
    one_hot = make_head(background, pcb={"alpha": 0.4, "momentum": 0.0})
    one_hot.set_progress(20, 24, 0, 1)
    monkeypatch.setattr(pcb, "fightback_targets", lambda m, y, **k: F.one_hot(y, m.shape[1]).to(m.dtype))
    one_hot.classification_losses(one_hot(torch.randn(5, 4, 7, 7)), labels)
    assert one_hot.regulariser_statistics() == {"regularised_iterations": 1, "targets": 8, "offlabel_pct": 0.0, "classes_never_seen": []}
    unseen = make_head(background, num_classes=4, pcb={"alpha": 0.4})  # class 3 never a foreground RoI: gate stays shut
    unseen.set_progress(20, 24, 0, 1)
    unseen.classification_losses(unseen(torch.randn(5, 4, 7, 7)), labels_in([0, 1, 2, None, 1], background, 4))
    assert unseen.regulariser_statistics() == {"regularised_iterations": 0, "targets": 0, "classes_never_seen": [3]}
    plain = build_box_head("iterative", num_classes=3, background=background, num_box_deltas=12, **SMALL)
    assert plain.regulariser_statistics() == {}  # no PCB: nothing to report


def test_gate_closed_loss_is_weighted_plain_ce():
    torch.manual_seed(5)
    head = make_head(pcb={})
    head.set_progress(0, 24, 0, 1000)
    labels = torch.tensor([0, 1, 2, 3])
    out = head(torch.randn(4, 4, 7, 7))
    got = head.classification_losses(out, labels)["loss_cls"]
    expected = sum(w * F.cross_entropy(z, labels) for w, z in zip((0.2, 0.2, 0.6), out.class_logits))
    torch.testing.assert_close(got, expected)


def test_confusion_matrix_saved_and_restored_via_state_dict():
    torch.manual_seed(6)
    head = make_head(pcb={})
    out = head(torch.randn(5, 4, 7, 7))
    head.classification_losses(out, torch.tensor([0, 1, 2, 0, 3]))
    state = head.state_dict()
    assert "confusion.matrix" in state and "confusion.seen" in state
    restored = make_head(pcb={})
    restored.load_state_dict(state)
    assert torch.equal(restored.confusion.matrix, head.confusion.matrix)
    assert restored.confusion.seen.tolist() == [6, 3, 3]


def test_recurrent_head_refines_shares_weights_and_backpropagates_through_steps():
    torch.manual_seed(7)
    head = build_box_head("iterative", num_classes=3, background="last", num_box_deltas=12, **SMALL)
    assert head.pcb is None
    assert head.mlp_cls[0].in_features == 4 and head.mlp_cls[-1].out_features == 4  # K=C+1 -> in_channels
    assert head.mlp_loc[0].in_features == 12 and head.mlp_loc[-1].out_features == 49
    assert head.features is head.base.features  # one shared 2-fc head
    pooled = torch.randn(5, 4, 7, 7)
    out = head(pooled)
    assert len(out.class_logits) == 3 and not torch.allclose(out.class_logits[0], out.class_logits[2])
    torch.testing.assert_close(out.class_logits[0], head.base.class_logits(head.base.features(pooled)))
    # step 1 by hand: X1 = X0 * MLP_loc(b0).view(7x7) + MLP_cls(z0).view(C,1,1)
    x1 = pooled * head.mlp_loc(out.box_deltas[0]).view(-1, 1, 7, 7) + head.mlp_cls(out.class_logits[0]).view(-1, 4, 1, 1)
    torch.testing.assert_close(out.class_logits[1], head.base.class_logits(head.base.features(x1)))
    assert head.regression_deltas(out) is out.box_deltas[-1]
    torch.testing.assert_close(head.probabilities(out), F.softmax(out.class_logits[2], 1))
    torch.testing.assert_close(head.probabilities(out, step=0), F.softmax(out.class_logits[0], 1))
    assert len(head.step_probabilities(out)) == 3
    # the last step's loss reaches the MLPs and the step-0 prediction (nothing detached)
    loss = F.cross_entropy(out.class_logits[2], torch.tensor([0, 1, 2, 3, 3]))
    loss.backward()
    assert head.mlp_cls[0].weight.grad.abs().sum() > 0 and head.mlp_loc[0].weight.grad.abs().sum() > 0
    assert head.base.cls_score.weight.grad.abs().sum() > 0


def test_layer_norm_option_and_dsn_variant():
    head = build_box_head("iterative", num_classes=3, background="first", num_box_deltas=16, layer_norm=True, **SMALL)
    assert isinstance(head.mlp_cls[0], torch.nn.LayerNorm) and not isinstance(head.mlp_loc[0], torch.nn.LayerNorm)
    dsn = build_box_head("dsn", num_classes=3, background="first", num_box_deltas=16, pcb={}, **SMALL)
    assert not hasattr(dsn, "mlp_cls")
    out = dsn(torch.randn(3, 4, 7, 7))
    assert out.class_logits[0] is out.class_logits[2]
    labels = torch.tensor([0, 1, 2])
    losses = dsn.classification_losses(out, labels)
    torch.testing.assert_close(losses["loss_cls"], F.cross_entropy(out.class_logits[0], labels))  # weights sum to 1
    assert dsn.confusion.seen.sum() == 6  # still one update per step


def test_plain_paradigm_single_step_pcb_uses_full_alpha(monkeypatch):
    head = make_head(steps=1, pcb={"alpha": 0.4})
    head.confusion.seen.fill_(1)
    head.set_progress(20, 24, 0, 1)
    alphas = []
    original_loss = pcb.pcb_ce_loss
    monkeypatch.setattr(pcb, "pcb_ce_loss", lambda *a, **k: alphas.append(a[3]) or original_loss(*a, **k))
    out = head(torch.randn(4, 4, 7, 7))
    head.classification_losses(out, torch.tensor([0, 1, 2, 3]))
    assert alphas == [0.4]


def test_read_step_option_and_statistics_passthrough():
    head = make_head(read_step=0, class_stats=ClassStats.from_counts(instance_counts=[5, 3, 1]))  # passed to the base head
    out = head(torch.randn(2, 4, 7, 7))
    torch.testing.assert_close(head.probabilities(out), F.softmax(out.class_logits[0], 1))
    with pytest.raises(LtbenchError):
        make_head(read_step=3)


def test_pcb_ce_variant_rejects_incompatible_base():
    head = make_head()
    head.confusion.seen.fill_(1)
    head.set_progress(20, 24, 0, 1)
    with pytest.raises(LtbenchError, match="C\\+1"):
        head._step_losses(torch.zeros(2, 7), torch.tensor([0, 3]), 0.4, True, None)


def test_labels_helper():
    assert labels_in([0, None], "first", 3).tolist() == [1, 0]
    assert from_foreground_index(torch.tensor([0]), "first").tolist() == [1]


# -- PCB on the Seesaw and EQL v2 heads of part 1 ----------------------------------------------------------
@pytest.mark.parametrize("background", ["first", "last"])
def test_pcb_seesaw_head_statistics_and_loss_terms(background):
    torch.manual_seed(8)
    head = build_box_head("pcb", num_classes=3, background=background, num_box_deltas=12, base="seesaw", **SMALL)
    assert head.variant == "seesaw" and head.pcb["alpha"] == 0.05 and head.confusion.renormalize_rows
    assert head.mlp_cls[0].in_features == 5  # C+2 logits
    labels = labels_in([0, 1, 2, None], background, 3)
    head.set_progress(20, 24, 0, 1)
    out = head(torch.randn(4, 4, 7, 7))
    losses = head.classification_losses(out, labels)
    assert set(losses) >= {"loss_cls_objectness", "loss_cls_classes"}
    torch.testing.assert_close(head.confusion.matrix.sum(1), torch.ones(3))
    # every class now seen -> next call regularises steps 1 and 2
    losses = head.classification_losses(out, labels)
    assert float(losses["loss_cls_pcb"].detach()) > 0
    seesaw_loss = head._find_loss("seesaw")
    assert float(seesaw_loss.cum_samples.sum()) == 2 * 3 * 3  # counts incremented once per step


@pytest.mark.parametrize("background", ["first", "last"])
def test_pcb_eqlv2_head_uses_raw_sigmoid_statistics(background):
    from ltbench.methods.losses.eqlv2 import EQLv2Loss

    torch.manual_seed(9)
    head = build_box_head(
        "pcb", num_classes=2, background=background, num_box_deltas=8, base="eqlv2", layer_norm=True,
        pcb={"momentum": 0.0}, **SMALL,
    )
    assert head.variant == "eqlv2" and head.pcb["alpha"] == 0.2 and not head.confusion.renormalize_rows
    labels = labels_in([0, 1, None], background, 2)
    head.set_progress(20, 24, 0, 1)
    out = head(torch.randn(3, 4, 7, 7))
    head.classification_losses(out, labels)
    fg = slice(1, 3) if background == "first" else slice(0, 2)
    pos = torch.tensor([True, True, False])
    torch.testing.assert_close(head.confusion.matrix, torch.sigmoid(out.class_logits[2][pos][:, fg]).detach())
    # the step-2 loss is EQL v2 with targets alpha*M[:, y] + (1-alpha)*onehot (checked on a fresh loss)
    m = head.confusion.matrix.clone()
    z = out.class_logits[2]
    reference = EQLv2Loss(2, background)
    targets = pcb.pcb_eqlv2_targets(labels, m[:, [0, 1]].t(), 0.2, 2, background)
    expected = reference(z, labels, targets=targets)
    got = pcb.pcb_eqlv2_loss(z, labels, m[:, [0, 1]].t(), 0.2, EQLv2Loss(2, background))
    torch.testing.assert_close(got, expected)


def test_pcb_refused_on_heads_without_an_official_variant():
    with pytest.raises(LtbenchError, match="not on the 'focal' head"):
        build_box_head("pcb", num_classes=3, background="last", num_box_deltas=12, base="focal", **SMALL)
    # the recurrent paradigm alone works with any base head (K = C+2+G logits for group softmax)
    head = build_box_head(
        "iterative", num_classes=3, background="last", num_box_deltas=12, base="group_softmax",
        class_stats=ClassStats.from_counts(instance_counts=[5, 50, 5000]), **SMALL,
    )
    out = head(torch.randn(2, 4, 7, 7))
    assert head.mlp_cls[0].in_features == out.class_logits[0].shape[1] > 4
    assert head.probabilities(out).shape == (2, 4)


@pytest.mark.parametrize("background", ["first", "last"])
def test_confusion_rows_stay_distributions_under_random_updates(background):
    torch.manual_seed(10)
    head = make_head(background, pcb={"momentum": 0.9})
    for _ in range(5):
        labels = torch.randint(0, 4, (8,))
        out = head(torch.randn(8, 4, 7, 7))
        head.classification_losses(out, labels)
    seen = head.confusion.seen > 0
    torch.testing.assert_close(head.confusion.matrix[seen].sum(1), torch.ones(int(seen.sum())))
    assert bool((head.confusion.matrix[~seen] == 0).all())


def test_confusion_matrix_stays_float32_under_low_precision_probabilities():
    cm = pcb.ConfusionMatrixEMA(3, momentum=0.5, distributed=False)
    cm.update(torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.bfloat16), torch.tensor([2]))
    assert cm.matrix.dtype == torch.float32
    torch.testing.assert_close(cm.matrix[2], torch.tensor([0.5, 0.25, 0.25]))


def test_pcb_seesaw_soft_term_gradcheck():
    seesaw_mod = pytest.importorskip("ltbench.methods.losses.seesaw")
    torch.manual_seed(11)
    logits = torch.randn(5, 5, dtype=torch.float64, requires_grad=True)  # C = 3, C+2 columns
    labels = torch.tensor([0, 1, 3, 2, 3])
    soft = torch.softmax(torch.randn(3, 3, dtype=torch.float64), 1)
    # q = 0: the compensation factor uses detached scores (a constant for autograd, not for finite differences)
    loss_module = seesaw_mod.SeesawLoss(3, "last", q=0.0)
    loss_module.cum_samples.copy_(torch.tensor([50.0, 5.0, 1.0], dtype=torch.float64))

    def total(z):
        module = seesaw_mod.SeesawLoss(3, "last", q=0.0)
        module.cum_samples.copy_(loss_module.cum_samples)
        return sum(pcb.pcb_seesaw_losses(z, labels, soft, 0.3, module).values())

    assert torch.autograd.gradcheck(total, (logits,))
