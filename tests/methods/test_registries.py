"""The spec vocabulary and the methods' registries name the same things: a name a spec may use is a name
some code runs, and a registered component is reachable from a spec."""

from __future__ import annotations

import ltbench.methods as methods
from ltbench.methods import dispatch
from ltbench.methods.classifiers import CLASSIFIER_OPTIONS
from ltbench.spec import vocab


def test_stage2_methods_views_and_samplers_are_the_vocabulary():
    assert set(methods.STAGE2_METHODS.names()) == set(vocab.STAGE2_METHODS)
    assert set(methods.VIEWS.names()) == set(vocab.VIEWS)
    assert set(methods.IMAGE_SAMPLERS.names()) == set(vocab.SAMPLERS)


def test_losses_heads_regularizers_and_classifiers_are_the_vocabulary():
    assert set(dispatch.LOSS_TO_HEAD) == set(vocab.LOSSES)
    assert set(dispatch.REGULARIZER_TO_HEAD) | {"pcb"} == set(vocab.REGULARIZERS)
    assert set(CLASSIFIER_OPTIONS) == set(vocab.CLASSIFIERS)
    # every head a loss, regulariser or recurrent head maps to is registered
    targets = {*dispatch.LOSS_TO_HEAD.values(), *dispatch.REGULARIZER_TO_HEAD.values()}
    targets |= {h for h in vocab.HEADS if h != "standard"}
    assert targets <= set(methods.BOX_HEADS.names())


def test_post_hoc_stage2_methods_train_nothing():
    from ltbench.data.lvis_meta import ClassStats
    from ltbench.methods.box_head import build_box_head

    stats = ClassStats.from_counts(instance_counts=[3, 2, 1], image_counts=[3, 2, 1])
    for name in vocab.POST_HOC_STAGE2:
        stage1 = build_box_head("softmax", num_classes=3, background="last", num_box_deltas=12, in_channels=4, hidden=8)
        head = methods.build_stage2({"stage2": {"name": name}}, stage1, stats)
        assert getattr(head, "requires_training", True) is False, name
