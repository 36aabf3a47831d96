"""Registered box heads and classifiers: the adapter contract in both conventions, per-head specifics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ltbench.data.lvis_meta import ClassStats
from ltbench.errors import LtbenchError
from ltbench.methods.box_head import BOX_HEADS, build_box_head
from ltbench.methods.classifiers import NormalizedLinear, build_classifier
from ltbench.methods.conventions import convert_columns, convert_labels

C = 5
COUNTS = [2, 40, 400, 4000, 7]
PART1_HEADS = [
    "softmax",
    "eqlv2",
    "seesaw",
    "focal",
    "reweight",
    "class_margin",
    "label_smoothing",
    "online_label_smoothing",
    "group_softmax",
    "bce",
    "eql",
]
CLASSIFIERS = [{"name": "linear"}, {"name": "cosine", "scale": 20, "learnable": False}, {"name": "normed_linear"}]
#: options a head cannot do without besides the class statistics
REQUIRED = {"eql": {"num_images": 10000}}
NORMALISED = {"softmax", "seesaw", "focal", "reweight", "class_margin", "label_smoothing", "online_label_smoothing"}


def _head(name, background, **params):
    for key, value in REQUIRED.get(name, {}).items():
        params.setdefault(key, value)
    params["class_stats"] = ClassStats.from_counts(instance_counts=params.pop("instance_counts", COUNTS),
                                                   image_counts=params.pop("image_counts", COUNTS), num_images=params.pop("num_images", None))
    return build_box_head(
        name, num_classes=C, background=background, num_box_deltas=4 * C, hidden=16, pool_size=2, in_channels=4, **params
    )


def _labels(background):
    last = torch.tensor([0, 1, 2, 3, 4, 5, 5, 3])
    return convert_labels(last, C, "last", background)


def test_every_part1_head_is_registered():
    assert set(PART1_HEADS) <= set(BOX_HEADS.names())


@pytest.mark.parametrize("classifier", CLASSIFIERS, ids=lambda c: c["name"])
@pytest.mark.parametrize("background", ["first", "last"])
@pytest.mark.parametrize("name", PART1_HEADS)
def test_contract(name, background, classifier):
    torch.manual_seed(0)
    head = _head(name, background, classifier=classifier)
    out = head(torch.randn(8, 4, 2, 2))
    assert out.final_logits.shape[0] == 8 and out.features.shape == (8, 16)
    assert head.regression_deltas(out).shape == (8, 4 * C)
    losses = head.classification_losses(out, _labels(background))
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    weight = head.cls_score.weight
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    probs = head.probabilities(out)
    assert probs.shape == (8, C + 1)
    assert (probs >= 0).all()
    if name in NORMALISED:
        assert torch.allclose(probs.sum(1), torch.ones(8), atol=1e-5)


def _to_convention(logits_last, head):
    """Head logits in "last" layout -> the head's layout (only C+1-wide heads move a column)."""
    if head.num_logits == C + 1:
        return convert_columns(logits_last, "last", head.background)
    return logits_last


@pytest.mark.parametrize("name", [n for n in PART1_HEADS if n != "softmax"])
def test_losses_and_probabilities_agree_across_conventions(name):
    torch.manual_seed(1)
    heads = {bg: _head(name, bg, beta=100.0) if name == "group_softmax" else _head(name, bg) for bg in ("first", "last")}
    logits_last = torch.randn(8, heads["last"].num_logits, dtype=torch.float64)
    for _ in range(2):  # second round sees the stateful losses' updated state
        results = {}
        for bg, head in heads.items():
            logits = _to_convention(logits_last, head)
            losses = head.logits_loss(logits, _labels(bg))
            probs = convert_columns(head.logits_probabilities(logits), bg, "last")
            results[bg] = (sum(losses.values()).item(), probs)
        assert results["first"][0] == pytest.approx(results["last"][0])
        assert torch.allclose(results["first"][1], results["last"][1])


@pytest.mark.parametrize("name", ["reweight", "class_margin", "group_softmax"])
def test_heads_needing_instance_counts_say_so(name):
    with pytest.raises(LtbenchError, match="instance_counts"):
        build_box_head(name, num_classes=C, background="last", num_box_deltas=4)
    with pytest.raises(LtbenchError, match="instance_counts"):
        build_box_head(name, num_classes=C, background="last", num_box_deltas=4, class_stats=ClassStats.from_counts(instance_counts=[1, 2]))


def test_reweight_head_uses_clipped_inverse_frequency_weights():
    head = _head("reweight", "first", clip=(0.1, 10.0))
    mean_inverse = sum(1 / n for n in COUNTS) / C
    expected_fg = [min(10.0, max(0.1, (1 / n) / mean_inverse)) for n in COUNTS]
    assert head.class_weights.tolist() == pytest.approx([1.0, *expected_fg])
    logits = torch.randn(8, C + 1)
    labels = _labels("first")
    w = head.class_weights[labels]
    expected = (w * F.cross_entropy(logits, labels, reduction="none")).sum() / 8
    assert head.logits_loss(logits, labels)["loss_cls"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_reweight_head_spec_parameters():
    # SimCal row: N = median instance count (40), clip [0.1, 10]
    simcal = _head(
        "reweight", "last", weight="inverse_instance_count", numerator="median_instance_count", clip=[0.1, 10.0], background_weight=1.0
    )
    assert simcal.class_weights.tolist() == pytest.approx([10.0, 1.0, 0.1, 0.1, 40 / 7, 1.0], rel=1e-6)
    # BAGS row: beta 1, normalise by the mean, clip [0.01, 5]
    bags = _head("reweight", "last", weight="inverse_instance_count", beta=1.0, normalize="mean", clip=[0.01, 5.0])
    mean_inverse = sum(1 / n for n in COUNTS) / C
    assert bags.class_weights[:C].tolist() == pytest.approx([min(5.0, max(0.01, 1 / n / mean_inverse)) for n in COUNTS], rel=1e-6)
    by_images = _head("reweight", "last", weight="inverse_image_count", image_counts=[1, 1, 1, 1, 2], numerator=1.0)
    assert by_images.class_weights.tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.5, 1.0])
    with pytest.raises(LtbenchError, match="loss.weight"):
        _head("reweight", "last", weight="inverse_sqrt_count")


def test_unknown_head_option_is_a_clear_error():
    with pytest.raises(LtbenchError, match="clamp") as info:
        _head("reweight", "last", clamp=(0.1, 10.0))
    assert "clip" in str(info.value)


def test_focal_head_sigmoid_variant():
    head = _head("focal", "last", sigmoid=True, gamma=2.0, alpha=0.25)
    logits = torch.tensor([[0.0] * (C + 1)])
    labels = torch.tensor([C])  # background RoI targets the background column
    # every column: p = 0.5, (1 - p_t)^2 = 0.25, log 2; alpha_t = 0.25 for the target, 0.75 otherwise
    expected = 0.25 * math.log(2) * (0.25 + 0.75 * C)
    assert head.logits_loss(logits, labels)["loss_cls"].item() == pytest.approx(expected)
    assert torch.allclose(head.logits_probabilities(logits), torch.full((1, C + 1), 0.5))
    with pytest.raises(LtbenchError, match="alpha"):
        _head("focal", "last", sigmoid=False, alpha=0.25)


def test_eqlv2_head_without_objectness_at_test_time():
    head = _head("eqlv2", "last", test_with_obj=False)
    logits = torch.randn(3, C + 1)
    assert torch.allclose(head.logits_probabilities(logits), torch.sigmoid(logits))
    with_obj = _head("eqlv2", "last")
    assert torch.allclose(with_obj.logits_probabilities(logits)[:, :C], torch.sigmoid(logits[:, :C]) * (1 - torch.sigmoid(logits[:, C:])))


def test_class_margin_head_margins_and_inference_without_margin():
    head = _head("class_margin", "last", exponent=0.25, max_margin=0.5)
    expected = [0.5 * (2 / n) ** 0.25 for n in COUNTS] + [0.0]
    assert head.margins.tolist() == pytest.approx(expected, rel=1e-6)
    half = _head("class_margin", "last", exponent=0.5, constant=1.0)
    assert half.margins.tolist() == pytest.approx([n**-0.5 for n in COUNTS] + [0.0], rel=1e-6)
    logits = torch.randn(3, C + 1)
    assert torch.allclose(head.logits_probabilities(logits), F.softmax(logits, 1))


def test_seesaw_head_has_c_plus_2_logits_and_counts_in_state_dict():
    head = _head("seesaw", "last", classifier={"name": "normed_linear"})
    out = head(torch.randn(8, 4, 2, 2))
    assert out.final_logits.shape == (8, C + 2)
    head.classification_losses(out, _labels("last"))
    assert head.state_dict()["loss_seesaw.cum_samples"].tolist() == [1, 1, 1, 2, 1]


def test_eqlv2_head_statistics_resume_through_the_head_state_dict():
    torch.manual_seed(2)
    head = _head("eqlv2", "first")
    for _ in range(2):
        out = head(torch.randn(8, 4, 2, 2))
        head.classification_losses(out, _labels("first"))["loss_cls"].backward()
    state = head.state_dict()
    assert state["loss_eqlv2.stats.pos_neg"].lt(100).all()
    fresh = _head("eqlv2", "first")
    fresh.load_state_dict(state)
    assert torch.equal(fresh.loss_eqlv2.stats.pos_grad, head.loss_eqlv2.stats.pos_grad)


def test_online_label_smoothing_head_advances_with_set_progress():
    head = _head("online_label_smoothing", "last")
    logits = torch.zeros(2, C + 1)
    logits[0, 1] = 5.0
    head.logits_loss(logits, torch.tensor([1, 5]))
    head.set_progress(0, 4, 10, 40)
    assert int(head.ols.epoch) == 0 and head.ols.counts[1].item() == 1
    head.set_progress(1, 4, 11, 40)
    assert int(head.ols.epoch) == 1
    assert head.ols.soft_labels[1].tolist() == pytest.approx(F.softmax(logits[0], 0).tolist())


def test_eql_head_tail_classes_and_bias_prior():
    head = _head("eql", "last", num_images=10000, threshold=0.00177)
    # f = counts / 10000 = [2e-4, 4e-3, 0.04, 0.4, 7e-4]: classes 0 and 4 are below lambda
    assert head.tail_mask.tolist() == [True, False, False, False, True]
    assert head.num_logits == C
    assert torch.allclose(head.cls_score.bias, torch.full((C,), -math.log(999.0)))
    with pytest.raises(LtbenchError, match="num_images"):
        build_box_head("eql", num_classes=C, background="last", num_box_deltas=4, class_stats=ClassStats.from_counts(image_counts=COUNTS))
    with pytest.raises(LtbenchError, match="image_counts"):
        build_box_head("eql", num_classes=C, background="last", num_box_deltas=4, class_stats=None)
    bce = _head("bce", "first")
    assert not bce.tail_mask.any()


def test_group_softmax_head_width():
    head = _head("group_softmax", "first")
    assert head.num_logits == C + 2 + 4  # counts fall into all four bins
    assert head.cls_score.out_features == head.num_logits


# -- classifiers ----------------------------------------------------------------------------------
def test_cosine_classifier_is_scaled_cosine_similarity():
    layer = build_classifier({"name": "cosine", "scale": 16, "learnable": False}, 6, 3)
    x = torch.randn(4, 6)
    expected = 16 * F.normalize(x, dim=1) @ F.normalize(layer.weight, dim=1).T
    assert torch.allclose(layer(x), expected, rtol=1e-3, atol=1e-4)  # eps 1e-6 added to the tiny weight norms
    assert layer(x).abs().max() <= 16 + 1e-4
    assert "logit_scale" in dict(layer.named_buffers()) and "logit_scale" not in dict(layer.named_parameters())
    assert layer.bias is None


def test_learnable_scale_receives_gradient_and_normed_linear_keeps_bias():
    layer = build_classifier({"name": "cosine"}, 6, 3)
    assert isinstance(layer, NormalizedLinear) and layer.logit_scale.requires_grad
    assert layer.logit_scale.item() == 20.0
    layer(torch.randn(4, 6)).sum().backward()
    assert layer.logit_scale.grad is not None
    normed = build_classifier({"name": "normed_linear", "temperature": 20}, 6, 3)
    assert normed.bias is not None and not normed.learnable and float(normed.logit_scale) == 20.0
    x = torch.randn(2, 6)
    manual = F.linear(x / (x.norm(dim=1, keepdim=True) + 1e-6) * 20, normed.weight / (normed.weight.norm(dim=1, keepdim=True) + 1e-6), normed.bias)
    assert torch.allclose(normed(x), manual)


def test_linear_classifier_init_and_default():
    torch.manual_seed(0)
    layer = build_classifier(None, 512, 300)
    assert isinstance(layer, torch.nn.Linear)
    assert layer.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert layer.bias.abs().sum().item() == 0


def test_cosine_spec_spelling_from_the_paper_files():
    layer = build_classifier({"name": "cosine", "scale": 20.0, "learnable_scale": False, "cosine_background": True}, 4, 3)
    assert not layer.learnable
    with pytest.raises(LtbenchError, match="cosine_background"):
        build_classifier({"name": "cosine", "cosine_background": False}, 4, 3)
    with pytest.raises(LtbenchError, match="learnable"):
        build_classifier({"name": "cosine", "learnable": True, "learnable_scale": False}, 4, 3)


def test_classifier_errors_name_the_key():
    with pytest.raises(LtbenchError, match="classifier.name"):
        build_classifier({"name": "cosinus"}, 4, 2)
    with pytest.raises(LtbenchError, match="tempearture"):
        build_classifier({"name": "normed_linear", "tempearture": 20}, 4, 2)


def test_softmax_head_accepts_cosine_classifier():
    head = _head("softmax", "last", classifier={"name": "cosine", "scale": 10, "learnable": False})
    assert isinstance(head.cls_score, NormalizedLinear)
    out = head(torch.randn(3, 4, 2, 2))
    assert out.final_logits.abs().max() <= 10 + 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", PART1_HEADS)
def test_a_few_sgd_steps_reduce_the_loss_on_a_fixed_batch(name):
    torch.manual_seed(3)
    head = _head(name, "last", **({"beta": 100.0} if name == "group_softmax" else {}))
    pooled = torch.randn(16, 4, 2, 2)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 5, 5, 0, 1, 2, 3, 4, 5, 5, 5])
    opt = torch.optim.SGD(head.parameters(), lr=0.5 if name != "eqlv2" else 0.2)
    first = None
    for _ in range(30):
        loss = sum(head.classification_losses(head(pooled), labels).values())
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert math.isfinite(loss.item()) and loss.item() < first


@pytest.mark.parametrize("name", ["focal", "reweight", "class_margin", "label_smoothing"])
def test_a_softmax_checkpoint_loads_strictly_into_stateless_ce_family_heads(name):
    # fine-tuning a plain stage-1 model with another loss (BAGS/SimCal rows) reuses its weights as they are
    source = _head("softmax", "last")
    target = _head(name, "last")
    target.load_state_dict(source.state_dict(), strict=True)
    assert torch.equal(target.cls_score.weight, source.cls_score.weight)


@pytest.mark.parametrize("name", PART1_HEADS)
def test_an_empty_batch_gives_zero_loss_not_nan(name):
    head = _head(name, "first")
    out = head(torch.randn(0, 4, 2, 2))
    losses = head.classification_losses(out, torch.zeros(0, dtype=torch.long))
    assert all(v.item() == 0.0 for v in losses.values())
    assert head.probabilities(out).shape == (0, C + 1)
