"""Stage-2 heads: DisAlign, SimCal, BAGS/cRT retraining, LWS, tau-norm, NCM, fine-tuning (both conventions)."""

from __future__ import annotations

from ltbench.data.lvis_meta import ClassStats

import pytest
import torch
import torch.nn.functional as F

from ltbench.errors import LtbenchError
from ltbench.methods import two_stage
from ltbench.methods.box_head import build_box_head
from ltbench.methods.conventions import background_index, foreground_slice

SMALL = {"in_channels": 4, "pool_size": 7, "hidden": 16}
BOTH = pytest.mark.parametrize("background", ["first", "last"])


def stage1(background="last", num_classes=3, name="softmax", **params):
    torch.manual_seed(0)
    head = build_box_head(name, num_classes=num_classes, background=background, num_box_deltas=4 * num_classes, **SMALL, **params)
    with torch.no_grad():  # a "trained" classifier with non-trivial weights
        head.cls_score.weight.normal_(std=0.5)
        head.cls_score.bias.normal_(std=0.5)
    return head


def trainable_names(head):
    return sorted(n for n, p in head.named_parameters() if p.requires_grad)


@BOTH
def test_disalign_is_identity_at_init_and_trains_only_its_parameters(background):
    base = stage1(background)
    head = two_stage.DisAlignHead(base, counts=[100, 10, 1])
    assert trainable_names(head) == ["confidence_layer.bias", "confidence_layer.weight", "logit_bias", "logit_scale"]
    pooled = torch.randn(5, 4, 7, 7)
    out = head(pooled)
    torch.testing.assert_close(out.final_logits, base(pooled).final_logits)
    torch.testing.assert_close(head.probabilities(out), base.probabilities(base(pooled)))
    torch.testing.assert_close(head.original_probabilities(out), base.probabilities(base(pooled)))
    assert head.regression_deltas(out) is out.extras["stage1"].box_deltas[-1]
    # identity whatever the confidence: a huge confidence weight changes nothing while alpha=1, beta=0
    with torch.no_grad():
        head.confidence_layer.weight.fill_(3.0)
    torch.testing.assert_close(head(pooled).final_logits, base(pooled).final_logits)


@BOTH
def test_disalign_calibration_formula_and_background_untouched(background):
    base = stage1(background)
    head = two_stage.DisAlignHead(base, counts=[100, 10, 1])
    with torch.no_grad():
        head.logit_scale.copy_(torch.tensor([2.0, 0.5, 1.5]))
        head.logit_bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        head.confidence_layer.weight.normal_()
    pooled = torch.randn(4, 4, 7, 7)
    first = base(pooled)
    z, x = first.final_logits, first.features
    sigma = torch.sigmoid(head.confidence_layer(x))
    fg = foreground_slice(3, background)
    expected = z.clone()
    expected[:, fg] = sigma * (z[:, fg] * head.logit_scale + head.logit_bias) + (1 - sigma) * z[:, fg]
    got = head(pooled).final_logits
    torch.testing.assert_close(got, expected)
    bg = background_index(3, background)
    torch.testing.assert_close(got[:, bg], z[:, bg])


@BOTH
def test_disalign_generalised_reweighting(background):
    head = two_stage.DisAlignHead(stage1(background), counts=[100, 10, 1], rho=0.8)
    n = torch.tensor([100.0, 10.0, 1.0], dtype=torch.float64)
    w = (n / n.sum()) ** -0.8
    w = w / w.sum() * 3
    expected = torch.ones(4, dtype=torch.float64)
    expected[foreground_slice(3, background)] = w
    torch.testing.assert_close(head.class_weight, expected.float())
    assert float(head.class_weight[foreground_slice(3, background)].sum()) == pytest.approx(3.0)
    logits = torch.randn(5, 4)
    labels = torch.tensor([0, 1, 2, 3, 3])
    out = two_stage.BoxHeadOutput([logits], [torch.zeros(5, 12)], torch.zeros(5, 16))
    loss = head.classification_losses(out, labels)["loss_cls"]
    per = F.cross_entropy(logits, labels, reduction="none")
    weights = head.class_weight[labels]
    torch.testing.assert_close(loss, (per * weights).sum() / weights.sum())  # PyTorch weighted mean
    with pytest.raises(LtbenchError, match="counts"):
        two_stage.DisAlignHead(stage1(background), counts=None)


@BOTH
def test_simcal_3fc_ft_starts_as_the_detector_head_and_2fc_rand_is_new(background):
    base = stage1(background)
    head = two_stage.SimCalHead(base, variant="3fc_ft")
    pooled = torch.randn(6, 4, 7, 7)
    out = head(pooled)
    torch.testing.assert_close(out.final_logits, base(pooled).final_logits)  # same weights, same function
    assert all(n.startswith("calibration_head.") for n in trainable_names(head))
    head.calibration_head[0].weight.data.add_(1.0)  # a copy, not the detector's own tensor
    assert not torch.equal(head.calibration_head[0].weight, base.features.fc6.weight)
    labels = torch.tensor([0, 1, -1, 2, 3, -1])
    keep = labels >= 0
    loss = head.classification_losses(out, labels)["loss_cls"]
    torch.testing.assert_close(loss, F.cross_entropy(out.final_logits[keep], labels[keep]))
    rand = two_stage.SimCalHead(stage1(background), variant="2fc_rand")
    assert len(rand.calibration_head) == 3 and rand.calibration_head[-1].out_features == 4
    with pytest.raises(LtbenchError, match="SimCal head"):
        two_stage.SimCalHead(stage1(background), variant="4fc")


def test_simcal_3fc_needs_a_linear_classifier():
    cosine = build_box_head("softmax", num_classes=3, background="last", num_box_deltas=12, classifier={"name": "cosine"}, **SMALL)
    with pytest.raises(LtbenchError, match="linear C\\+1 classifier"):
        two_stage.SimCalHead(cosine, variant="3fc_ft")


@BOTH
def test_lws_identity_at_init_then_scales_logits(background):
    base = stage1(background)
    head = two_stage.LWSHead(base)
    assert trainable_names(head) == ["scale"]
    pooled = torch.randn(3, 4, 7, 7)
    torch.testing.assert_close(head(pooled).final_logits, base(pooled).final_logits)
    with torch.no_grad():
        head.scale.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(head(pooled).final_logits, base(pooled).final_logits * torch.tensor([1.0, 2.0, 3.0, 4.0]))


@BOTH
def test_tau_norm_head(background):
    base = stage1(background)
    head = two_stage.TauNormHead(base, tau=1.0)
    assert not head.requires_training and trainable_names(head) == []
    pooled = torch.randn(3, 4, 7, 7)
    feats = base(pooled).features
    w = base.cls_score.weight
    expected = feats @ (w / w.norm(dim=1, keepdim=True)).t() + base.cls_score.bias
    torch.testing.assert_close(head(pooled).final_logits, expected)
    zero = two_stage.TauNormHead(base, tau=0.0, bias="drop")
    torch.testing.assert_close(zero(pooled).final_logits, feats @ w.t())
    fg_only = two_stage.TauNormHead(base, tau=1.0, rows="foreground")
    bg = background_index(3, background)
    torch.testing.assert_close(fg_only(pooled).final_logits[:, bg], base(pooled).final_logits[:, bg])
    with pytest.raises(LtbenchError, match="no training step"):
        head.classification_losses(head(pooled), torch.tensor([0, 1, 2]))


@BOTH
def test_ncm_class_means_and_background_from_stage1(background):
    base = stage1(background)
    head = two_stage.NCMHead(base, feature="fc")
    assert head.fit_pass and not head.requires_training
    pooled = torch.randn(6, 4, 7, 7)
    bg_label = background_index(3, background)
    labels = torch.tensor([1, 1, 2, 3, 0, 2]) if background == "first" else torch.tensor([0, 0, 1, 2, 3, 1])
    out = head(pooled)
    head.accumulate(out, labels)
    feats = out.features
    fg_mask = labels != bg_label
    assert head.class_counts.tolist() == [2, 2, 1]
    means = torch.stack([feats[(labels == lab) & fg_mask].mean(0) for lab in sorted(set(labels[fg_mask].tolist()))])
    probs = head.probabilities(head(pooled))
    cos = F.normalize(feats, dim=1) @ F.normalize(means, dim=1).t()
    original = base.probabilities(base(pooled))
    expected = torch.empty_like(original)
    expected[:, foreground_slice(3, background)] = F.softmax(cos, 1) * (1 - original[:, bg_label : bg_label + 1])
    expected[:, bg_label] = original[:, bg_label]
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs.sum(1), torch.ones(6))
    conv = two_stage.NCMHead(base, feature="roi_conv")
    assert conv.class_sums.shape == (3, 4 * 49)


@BOTH
def test_retrain_classifier_crt_and_finetune(background):
    base = stage1(background)
    crt = two_stage.retrain_classifier(base, "softmax", trainable="fc_cls")
    assert trainable_names(crt) == ["cls_score.bias", "cls_score.weight"]
    assert torch.equal(crt.features.fc6.weight, base.features.fc6.weight)
    assert torch.equal(crt.bbox_pred.weight, base.bbox_pred.weight)
    assert not torch.equal(crt.cls_score.weight, base.cls_score.weight)  # re-initialised
    kept = two_stage.retrain_classifier(base, "softmax", trainable="head", keep_classifier=True)
    assert torch.equal(kept.cls_score.weight, base.cls_score.weight)
    assert "bbox_pred.weight" not in trainable_names(kept) and "features.fc6.weight" in trainable_names(kept)
    tuned = two_stage.set_trainable(stage1(background), "all")
    assert len(trainable_names(tuned)) == len(list(tuned.parameters()))
    with pytest.raises(LtbenchError):
        two_stage.set_trainable(base, "backbone")


@BOTH
def test_bags_stage2_trains_only_the_new_group_softmax_classifier(background):
    base = stage1(background, num_classes=4)
    head = two_stage.retrain_classifier(base, "group_softmax", trainable="fc_cls", class_stats=ClassStats.from_counts(instance_counts=[5, 50, 500, 5000]))
    assert trainable_names(head) == ["cls_score.bias", "cls_score.weight"]
    assert head.cls_score.out_features != base.cls_score.out_features  # C+2+G: not loaded from stage 1
    assert torch.equal(head.features.fc7.weight, base.features.fc7.weight)
    out = head(torch.randn(3, 4, 7, 7))
    probs = head.probabilities(out)
    assert probs.shape == (3, 5)


def test_frozen_stage1_builds_no_graph_but_new_parameters_get_gradients():
    head = two_stage.DisAlignHead(stage1("last"), counts=[10, 5, 1])
    with torch.no_grad():
        head.confidence_layer.weight.normal_()
    out = head(torch.randn(4, 4, 7, 7))
    assert out.extras["stage1"].final_logits.grad_fn is None
    head.classification_losses(out, torch.tensor([0, 1, 2, 3]))["loss_cls"].backward()
    assert head.logit_scale.grad is not None and head.confidence_layer.weight.grad is not None
    assert all(p.grad is None for p in head.stage1.parameters())


COUNTS4 = [5, 50, 500, 5000]  # one class per BAGS bin


def ablation(background, **flags):
    return build_box_head("bags_ablation", num_classes=4, background=background, num_box_deltas=16,
                          class_stats=ClassStats.from_counts(instance_counts=COUNTS4), **SMALL, **flags)


@BOTH
def test_bags_ablation_with_both_parts_is_part1_group_softmax(background):
    from ltbench.methods.losses.group_softmax import GroupLayout, group_softmax_loss, group_softmax_probabilities

    head = ablation(background)
    layout = GroupLayout.from_counts(COUNTS4)
    assert head.num_logits == layout.num_logits == 4 + 2 + 4
    logits = torch.randn(6, head.num_logits)
    out = two_stage.BoxHeadOutput([logits], [torch.zeros(6, 16)], torch.zeros(6, 16))
    torch.testing.assert_close(head.probabilities(out), group_softmax_probabilities(logits, layout, background))
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    torch.manual_seed(3)
    ours = head.classification_losses(out, labels)["loss_cls"]
    torch.manual_seed(3)
    torch.testing.assert_close(ours, group_softmax_loss(logits, labels, layout, background))


@BOTH
def test_bags_ablation_without_background_group_and_others_by_hand(background):
    head = ablation(background, background_group=False, others=False)
    assert head.num_logits == 4  # one class per group, nothing else
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    out = two_stage.BoxHeadOutput([logits], [torch.zeros(1, 16)], torch.zeros(1, 16))
    probs = head.probabilities(out)  # softmax over a single class = 1 in every group, bg column 0
    bg = background_index(4, background)
    assert float(probs[0, bg]) == 0.0 and torch.equal(probs[0, foreground_slice(4, background)], torch.ones(4))
    labels = torch.tensor([bg])
    assert float(head.classification_losses(out, labels)["loss_cls"]) == 0.0  # background RoIs train nothing


@BOTH
def test_bags_ablation_background_group_without_others(background):
    counts = [5, 6, 5000]  # classes 0, 1 share the <10 group
    head = build_box_head("bags_ablation", num_classes=3, background=background, num_box_deltas=12,
                          class_stats=ClassStats.from_counts(instance_counts=counts), others=False, **SMALL)
    assert head.num_logits == 2 + 2 + 1
    logits = torch.tensor([[0.0, 1.0, 2.0, 0.0, 5.0]])  # [bg, fg | c0, c1 | c2]
    out = two_stage.BoxHeadOutput([logits], [torch.zeros(1, 12)], torch.zeros(1, 16))
    p_fg = torch.sigmoid(torch.tensor(1.0))
    expected_fg = torch.cat([torch.softmax(torch.tensor([2.0, 0.0]), 0), torch.ones(1)]) * p_fg
    probs = head.probabilities(out)
    torch.testing.assert_close(probs[0, foreground_slice(3, background)], expected_fg)
    torch.testing.assert_close(probs[0, background_index(3, background)], 1 - p_fg)
    # a RoI of class 1: G0 CE(fg) + CE over [c0, c1] with target c1; group of c2 ignores it
    label = torch.tensor([2 if background == "first" else 1])
    expected = F.cross_entropy(logits[:, :2], torch.tensor([1])) + F.cross_entropy(logits[:, 2:4], torch.tensor([1]))
    torch.testing.assert_close(head.classification_losses(out, label)["loss_cls"], expected)


def test_retrain_classifier_from_a_recurrent_stage1_copies_the_shared_head():
    import ltbench.methods.pcb  # noqa: F401  (registers "iterative")

    recurrent = build_box_head("iterative", num_classes=3, background="last", num_box_deltas=12, **SMALL)
    crt = two_stage.retrain_classifier(recurrent, "softmax")
    assert torch.equal(crt.features.fc6.weight, recurrent.base.features.fc6.weight)
    assert torch.equal(crt.bbox_pred.bias, recurrent.base.bbox_pred.bias)
