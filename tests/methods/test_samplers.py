"""Samplers against their definitions on hand-made datasets."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ltbench.errors import LtbenchError
from ltbench.methods.samplers import (
    BilevelEpisodicSampler,
    ClassAwareSampler,
    RepeatFactorSampler,
    bags_others_weights,
    category_image_fractions,
    category_repeat_factors,
    compose_bilevel_batch,
    repeat_factors,
)

# 10 images: category 1 in all, 2 in one image, 3 in four images; image 9 also has nothing else
HAND = [{1, 2}, {1, 3}, {1, 3}, {1, 3}, {1, 3}, {1}, {1}, {1}, {1}, {1}]


def test_fractions_and_repeat_factors_by_hand():
    assert category_image_fractions(HAND) == pytest.approx({1: 1.0, 2: 0.1, 3: 0.4})
    # t = 0.9: r(1) = max(1, sqrt(0.9)) = 1, r(2) = sqrt(9) = 3, r(3) = sqrt(2.25) = 1.5
    assert category_repeat_factors(HAND, 0.9) == pytest.approx({1: 1.0, 2: 3.0, 3: 1.5})
    assert repeat_factors(HAND, 0.9) == pytest.approx([3.0, 1.5, 1.5, 1.5, 1.5, 1, 1, 1, 1, 1])


def test_image_without_categories_has_factor_one():
    assert repeat_factors([set(), {7}, {8}, {8}], 0.5) == pytest.approx([1.0, math.sqrt(2), 1.0, 1.0])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sets(st.integers(0, 6), max_size=4), min_size=1, max_size=15),
    st.floats(min_value=1e-3, max_value=2.0),
)
def test_repeat_factors_match_the_formula(images, t):
    n = len(images)
    got = repeat_factors(images, t)
    for cats, r in zip(images, got):
        expected = max([max(1.0, math.sqrt(t / (sum(c in other for other in images) / n))) for c in cats], default=1.0)
        assert r == pytest.approx(expected)
        assert r >= 1.0


def test_ceil_rounding_repeats_every_epoch_the_same():
    sampler = RepeatFactorSampler(HAND, 0.9, rounding="ceil", seed=3)
    assert sampler.repeats(0).tolist() == [3, 2, 2, 2, 2, 1, 1, 1, 1, 1]
    for epoch in range(3):
        counts = Counter(sampler.epoch_indices(epoch))
        assert [counts[i] for i in range(10)] == [3, 2, 2, 2, 2, 1, 1, 1, 1, 1]
    assert sampler.expected_epoch_length() == 16
    assert sampler.epoch_indices(0) != sampler.epoch_indices(1)  # reshuffled per epoch
    assert sampler.epoch_indices(1) == RepeatFactorSampler(HAND, 0.9, seed=3).epoch_indices(1)


def test_stochastic_rounding_has_the_factor_as_expectation():
    sampler = RepeatFactorSampler(HAND, 0.9, rounding="stochastic", seed=0)
    draws = np.stack([sampler.repeats(e) for e in range(4000)])
    assert set(np.unique(draws[:, 1]).tolist()) == {1, 2}  # r = 1.5 -> 1 or 2
    assert set(np.unique(draws[:, 0]).tolist()) == {3}  # integral r is exact
    assert set(np.unique(draws[:, 5]).tolist()) == {1}
    assert draws[:, 1:5].mean() == pytest.approx(1.5, abs=0.02)
    assert sampler.expected_epoch_length() == pytest.approx(3 + 4 * 1.5 + 5)
    # reproducible for a seed, different across seeds
    again = RepeatFactorSampler(HAND, 0.9, rounding="stochastic", seed=0)
    assert again.epoch_indices(7) == sampler.epoch_indices(7)
    other = RepeatFactorSampler(HAND, 0.9, rounding="stochastic", seed=1)
    assert [other.repeats(e).tolist() for e in range(10)] != [sampler.repeats(e).tolist() for e in range(10)]


def test_ceil_oversamples_at_least_as_much_as_stochastic():
    ceil = RepeatFactorSampler(HAND, 0.9, rounding="ceil")
    stochastic = RepeatFactorSampler(HAND, 0.9, rounding="stochastic")
    assert ceil.expected_epoch_length() >= stochastic.expected_epoch_length()


def test_infinite_stream_concatenates_epochs():
    sampler = RepeatFactorSampler(HAND, 0.9, rounding="stochastic", seed=5)
    stream = iter(sampler)
    first = [next(stream) for _ in range(len(sampler.epoch_indices(0)))]
    assert first == sampler.epoch_indices(0)
    assert next(stream) == sampler.epoch_indices(1)[0]


def test_rfs_errors_name_the_key():
    with pytest.raises(LtbenchError, match="sampler.t"):
        RepeatFactorSampler(HAND, 0.0)
    with pytest.raises(LtbenchError, match="rounding"):
        RepeatFactorSampler(HAND, 0.1, rounding="floor")
    with pytest.raises(LtbenchError):
        repeat_factors([], 0.1)


def test_class_aware_sampler_balances_classes():
    # class 0: one image; class 1: ten images
    images = [{0}] + [{1}] * 10
    sampler = ClassAwareSampler(images, length=20, seed=0)
    counts = Counter(sampler.epoch_indices(0))
    assert counts[0] == 10
    # class 1 draws 10 times from its reshuffled cycle over 10 images: each exactly once
    assert all(counts[i] == 1 for i in range(1, 11))
    assert len(ClassAwareSampler(images)) == 11
    assert ClassAwareSampler(images, seed=4).epoch_indices(2) == ClassAwareSampler(images, seed=4).epoch_indices(2)


def test_class_aware_sampler_from_category_map_and_num_sample_class():
    sampler = ClassAwareSampler(cat_to_images={5: [0, 1], 9: [2], 11: []}, num_sample_class=2, length=8, seed=1)
    indices = sampler.epoch_indices(0)
    assert len(indices) == 8
    # blocks of two images from one class; classes alternate within each cycle of two visits
    blocks = [tuple(indices[i : i + 2]) for i in range(0, 8, 2)]
    assert Counter(2 in b for b in blocks) == Counter({True: 2, False: 2})
    with pytest.raises(ValueError):
        ClassAwareSampler([{1}], cat_to_images={1: [0]})


def test_bilevel_sampler_yields_pairs_of_images_containing_the_sampled_class():
    images = [{0}] * 50 + [{1}] + [{2, 0}]
    sampler = BilevelEpisodicSampler(images, classes_per_batch=2, batch_size=4, episodes=3000, seed=0)
    class_counts: Counter[int] = Counter()
    for batch in sampler.epoch_batches(0):
        assert len(batch) == 4
        # images per class come in runs of batch_size / classes_per_batch
        assert batch[0][1] == batch[1][1] and batch[2][1] == batch[3][1]
        for image, cls in batch:
            assert cls in images[image]
        class_counts.update(cls for _, cls in batch[::2])
    # classes drawn uniformly with replacement, regardless of how many images each has
    for cls in (0, 1, 2):
        assert class_counts[cls] / 6000 == pytest.approx(1 / 3, abs=0.02)
    assert len(sampler) == 3000


def test_bilevel_sampler_rejects_bad_batch_size():
    with pytest.raises(LtbenchError, match="multiple"):
        BilevelEpisodicSampler([{0}], classes_per_batch=3, batch_size=4)
    with pytest.raises(LtbenchError, match="not both"):
        BilevelEpisodicSampler([{0}], classes_per_batch=1, batch_size=4, images_per_class=4)
    with pytest.raises(LtbenchError, match="images_per_class"):
        BilevelEpisodicSampler([{0}], images_per_class=0)


def test_bilevel_sampler_spec_parameters():
    # the spec's {classes_per_batch: 16, images_per_class: 1}: 16 pairs per batch, one image per class
    sampler = BilevelEpisodicSampler([{0}, {1}, {2, 3}], classes_per_batch=16, images_per_class=1, episodes=2)
    batches = list(sampler.epoch_batches(0))
    assert len(batches) == 2 and all(len(b) == 16 for b in batches)
    two = BilevelEpisodicSampler([{0}, {1}], classes_per_batch=2, images_per_class=3, episodes=1)
    assert len(next(two.epoch_batches(0))) == 6


@pytest.mark.parametrize("background", ["first", "last"])
def test_compose_bilevel_batch_keeps_sampled_positives_and_as_many_negatives(background):
    num_classes = 3
    bg = 0 if background == "first" else num_classes
    off = 1 if background == "first" else 0
    # image 0 sampled class 2, image 1 sampled class 0
    fg_or_bg = [2, 2, 1, -1, -1, 0, 2, -1, -1, -1]
    labels = torch.tensor([bg if v < 0 else v + off for v in fg_or_bg])
    image = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    gen = torch.Generator().manual_seed(0)
    keep = compose_bilevel_batch(labels, image, [2, 0], num_classes=num_classes, background=background, generator=gen)
    positives, negatives = keep[:3].tolist(), keep[3:].tolist()
    assert positives == [0, 1, 5]
    assert len(negatives) == 3 and set(negatives) <= {3, 4, 7, 8, 9} and len(set(negatives)) == 3


def test_compose_bilevel_batch_with_few_negatives_takes_all():
    labels = torch.tensor([1, 1, 1, 0])  # "first": three positives of class 0, one background
    keep = compose_bilevel_batch(labels, torch.tensor([0, 0, 0, 0]), [0], num_classes=2, background="first")
    assert keep.tolist() == [0, 1, 2, 3]


def test_bags_others_weights():
    labels = torch.tensor([0, 0, 0, 1, 2, 0, 0])
    w1 = bags_others_weights(labels, beta=1.0, generator=torch.Generator().manual_seed(0))
    assert w1[3].item() == 1 and w1[4].item() == 1
    assert w1[labels == 0].sum().item() == 2  # int(2 * 1.0) others
    w_half = bags_others_weights(labels, beta=0.75)
    assert w_half[labels == 0].sum().item() == 1  # int(2 * 0.75) = 1
    assert bags_others_weights(labels, beta=8.0).tolist() == [1.0] * 7  # fewer others than 16: all
    assert bags_others_weights(torch.zeros(5, dtype=torch.long)).sum().item() == 0  # no positive: all zero
    a = bags_others_weights(labels, 1.0, generator=torch.Generator().manual_seed(3))
    b = bags_others_weights(labels, 1.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_build_image_sampler_from_run_config_objects():
    from ltbench.methods.samplers import RandomSampler, build_image_sampler

    random_sampler = build_image_sampler(None, HAND, seed=2)
    assert isinstance(random_sampler, RandomSampler)
    assert sorted(random_sampler.epoch_indices(0)) == list(range(10))
    assert random_sampler.epoch_indices(0) != random_sampler.epoch_indices(1)
    rfs = build_image_sampler({"name": "rfs", "t": 0.9}, HAND, default_rounding="stochastic")
    assert isinstance(rfs, RepeatFactorSampler) and rfs.rounding == "stochastic"
    assert build_image_sampler({"name": "rfs", "t": 0.9, "rounding": "ceil"}, HAND).rounding == "ceil"
    assert build_image_sampler({"name": "rfs"}, HAND).factors.tolist() == pytest.approx(repeat_factors(HAND, 1e-3))
    assert isinstance(build_image_sampler({"name": "class_aware"}, HAND), ClassAwareSampler)
    pairs = build_image_sampler({"name": "bilevel", "episodes": 3}, HAND, batch_size=2).epoch_indices(0)
    assert len(pairs) == 6 and all(cls in HAND[image] for image, cls in pairs)
    with pytest.raises(LtbenchError, match="sampler.name"):
        build_image_sampler({"name": "image_repeat"}, HAND)
    with pytest.raises(LtbenchError, match="thresh"):
        build_image_sampler({"name": "rfs", "thresh": 0.1}, HAND)
