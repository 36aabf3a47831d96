"""Cross-checks against mmdetection 3.3 / mmengine, where they implement the same method (mmdet extra).

These compare numbers, not code: Seesaw loss and its inference rule, EQL v2 (mmdet's port, i.e. without
the all-reduce), mmdet's NormedLinear, and mmengine's ClassBalancedDataset repeat factors.
"""

from __future__ import annotations

import math

import pytest
import torch

pytestmark = pytest.mark.mmdet

mmdet_losses = pytest.importorskip("mmdet.models.losses", reason="needs the mmdet extra")

from ltbench.methods.classifiers import build_classifier  # noqa: E402
from ltbench.methods.losses.eqlv2 import EQLv2Loss, eqlv2_probabilities  # noqa: E402
from ltbench.methods.losses.seesaw import SeesawLoss, seesaw_probabilities  # noqa: E402
from ltbench.methods.samplers import RepeatFactorSampler, repeat_factors  # noqa: E402

C = 6


def _batches(num_logits: int, steps: int = 3, rois: int = 12):
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        logits = torch.randn(rois, num_logits, generator=gen, dtype=torch.float64) * 2
        labels = torch.randint(0, C + 1, (rois,), generator=gen)  # "last": C = background
        yield logits, labels


def test_seesaw_matches_mmdet_over_several_steps():
    theirs = mmdet_losses.SeesawLoss(p=0.8, q=2.0, num_classes=C, eps=1e-2, loss_weight=1.0, return_dict=True)
    ours = SeesawLoss(C, "last", p=0.8, q=2.0, eps=1e-2)
    for logits, labels in _batches(C + 2):
        a = ours(logits, labels)
        b = theirs(logits.clone(), labels.clone(), label_weights=torch.ones(len(labels)), avg_factor=len(labels))
        assert a["loss_cls_objectness"].item() == pytest.approx(b["loss_cls_objectness"].item(), rel=1e-6)
        assert a["loss_cls_classes"].item() == pytest.approx(b["loss_cls_classes"].item(), rel=1e-6)
    assert ours.cum_samples.tolist() == theirs.cum_samples[:C].tolist()
    logits = next(_batches(C + 2))[0]
    assert torch.allclose(seesaw_probabilities(logits, C, "last"), theirs.get_activation(logits.clone()))


def test_eqlv2_matches_mmdet_port_over_several_steps():
    theirs = mmdet_losses.EQLV2Loss(num_classes=C, use_distributed=False, gamma=12, mu=0.8, alpha=4.0)
    theirs.pos_grad, theirs.neg_grad, theirs.pos_neg = (t.double() for t in (theirs.pos_grad, theirs.neg_grad, theirs.pos_neg))
    ours = EQLv2Loss(C, "last", distributed=False)
    for logits, labels in _batches(C + 1):
        a = ours(logits, labels)
        b = theirs(logits.clone(), labels.clone())
        assert a.item() == pytest.approx(b.item(), rel=1e-6)
    assert torch.allclose(ours.stats.pos_neg, theirs.pos_neg)
    logits = next(_batches(C + 1))[0]
    assert torch.allclose(eqlv2_probabilities(logits, C, "last"), theirs.get_activation(logits.clone()))


def test_normed_linear_matches_mmdet():
    from mmdet.models.layers import NormedLinear

    ours = build_classifier({"name": "normed_linear", "temperature": 20}, 8, 5)
    theirs = NormedLinear(8, 5, tempearture=20)
    theirs.load_state_dict({"weight": ours.weight.detach().clone(), "bias": torch.randn(5)})
    with torch.no_grad():
        ours.bias.copy_(theirs.bias)
    x = torch.randn(4, 8)
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)


class _FakeDataset:
    def __init__(self, image_categories):
        self.image_categories = image_categories

    def __len__(self) -> int:
        return len(self.image_categories)

    def get_cat_ids(self, idx: int) -> list[int]:
        return sorted(self.image_categories[idx])


def test_repeat_factors_and_ceil_repeats_match_mmengine():
    from mmengine.dataset import ClassBalancedDataset

    gen = torch.Generator().manual_seed(1)
    images = [set(torch.randint(0, 30, (int(torch.randint(0, 4, (1,), generator=gen)),), generator=gen).tolist()) for _ in range(200)]
    fake = _FakeDataset(images)
    wrapper = ClassBalancedDataset.__new__(ClassBalancedDataset)
    wrapper.dataset = fake
    theirs = wrapper._get_repeat_factors(fake, 0.05)
    assert repeat_factors(images, 0.05) == pytest.approx(theirs)
    expected_counts = [math.ceil(r) for r in theirs]
    assert RepeatFactorSampler(images, 0.05, rounding="ceil").repeats().tolist() == expected_counts
