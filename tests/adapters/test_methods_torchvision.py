"""Every stage-1 method family of ltbench.methods trained and predicted through the torchvision adapter.

Families go through ``head_for_run`` from run configs (as the plan writes them); a coverage test checks
that together they reach every head registered in ``BOX_HEADS``. Stage-2 methods and views:
test_adapter_methods_stage2.py; mmdet: test_adapter_mmdet_methods.py.
"""

from __future__ import annotations

from ltbench.data.lvis_meta import ClassStats

import pytest

torch = pytest.importorskip("torch")

from adapters import get_adapter  # noqa: E402
from support.runs import SLOW_STARTERS, STAGE1_FAMILIES, STAGE2_METHODS, family_run, stage2_run  # noqa: E402
from support.checks import check_outputs  # noqa: E402


# One torch thread per test (module fixture `one_thread` in conftest.py): 2 shared CI cores.
pytestmark = pytest.mark.usefixtures("one_thread")


def test_families_cover_every_registered_head() -> None:
    """Stage-1 families (through head_for_run) and stage-2 methods (through build_stage2) reach every head
    registered in BOX_HEADS, so every registered method is trained by an adapter test."""
    from ltbench.methods import build_stage2, head_for_run
    from ltbench.methods.box_head import BOX_HEADS, build_box_head

    reached = set()
    for family in STAGE1_FAMILIES:
        name, params = head_for_run(family_run("torchvision", family))
        reached.add(name)
        if "base" in params:
            reached.add(params["base"])
    by_class = {BOX_HEADS.get(n): n for n in BOX_HEADS.names()}
    stage1_run = family_run("torchvision", "softmax")
    for method in STAGE2_METHODS:
        stage1 = build_box_head("softmax", num_classes=4, background="first", num_box_deltas=20, in_channels=8, hidden=16)
        head = build_stage2(stage2_run("torchvision", method, stage1_run), stage1,
                            ClassStats.from_counts(instance_counts=[12, 6, 3, 1], image_counts=[12, 6, 3, 1]))
        for module in head.modules():
            if type(module) in by_class:
                reached.add(by_class[type(module)])
    # "pcb" is a registered shorthand for "iterative" with the PCB regulariser (the same class with
    # defaults); head_for_run always returns "iterative", which the pcb_* families reach.
    missing = set(BOX_HEADS.names()) - reached - {"pcb"}
    assert not missing, f"registered heads without an adapter test family: {sorted(missing)}"


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(STAGE1_FAMILIES))
def test_torchvision_stage1_family_trains_and_predicts(family, tiny_data, tmp_path) -> None:
    run = family_run("torchvision", family)
    adapter = get_adapter("torchvision")
    adapter.train(run, tmp_path / "w", tiny_data)
    adapter.predict(run, {"id": "plain", "name": "plain"}, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o", expect_detections=family not in SLOW_STARTERS)


@pytest.mark.slow
def test_torchvision_class_agnostic_and_normed_mask(tiny_data, tmp_path) -> None:
    run = family_run("torchvision", "seesaw")
    run.update(class_agnostic=True, mask_head={"name": "normed", "scale": 20}, classifier={"name": "linear"})
    adapter = get_adapter("torchvision")
    final = adapter.train(run, tmp_path / "w", tiny_data)
    state = torch.load(final, weights_only=False)["model"]
    assert state["roi_heads.mask_predictor.predictor.mask_fcn_logits.weight"].shape[0] == 1  # one mask per RoI
    assert state["roi_heads.box_head.bbox_pred.weight"].shape[0] == 4  # class-agnostic deltas
    adapter.predict(run, {"id": "plain", "name": "plain"}, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o", expect_detections=False)
