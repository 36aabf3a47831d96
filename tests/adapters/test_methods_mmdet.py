"""Method families through the mmdet adapter: one representative per family (each mmdet run costs a
Runner start-up): EQL v2, Seesaw, group softmax, PCB; stage 2 (DisAlign, tau-norm, NCM) with the dual-head
view; the CM-calibration view."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from adapters import get_adapter  # noqa: E402
from adapters.mmdet.registration import mmdet_available  # noqa: E402
from support.runs import MMDET_FAMILIES, MMDET_STAGE2, family_run, stage2_run  # noqa: E402
from support.checks import check_outputs, check_regulariser_record, frozen_outside_head_unchanged  # noqa: E402


MMDET_OK, MMDET_REASON = mmdet_available()
pytestmark = [pytest.mark.mmdet, pytest.mark.skipif(not MMDET_OK, reason=MMDET_REASON), pytest.mark.usefixtures("one_thread")]


@pytest.mark.slow
@pytest.mark.parametrize("family", MMDET_FAMILIES)
def test_mmdet_stage1_family_trains_and_predicts(family, tiny_data, tmp_path) -> None:
    run = family_run("mmdet", family)
    adapter = get_adapter("mmdet")
    adapter.train(run, tmp_path / "w", tiny_data)
    check_regulariser_record(tmp_path / "w", family)
    adapter.predict(run, {"id": "plain", "name": "plain"}, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o")


@pytest.fixture(scope="module")
def mmdet_stage1(tmp_path_factory, tiny_data):
    workdir = tmp_path_factory.mktemp("mm_stage1")
    run = family_run("mmdet", "softmax")
    torch.set_num_threads(1)
    get_adapter("mmdet").train(run, workdir, tiny_data)
    return run, workdir


@pytest.mark.slow
@pytest.mark.parametrize("method", MMDET_STAGE2)
def test_mmdet_stage2_method(method, mmdet_stage1, tiny_data, tmp_path) -> None:
    stage1_run, stage1_dir = mmdet_stage1
    run = stage2_run("mmdet", method, stage1_run)
    adapter = get_adapter("mmdet")
    final = adapter.train(run, tmp_path / "w", tiny_data, stage1_workdir=stage1_dir)
    s1 = torch.load(stage1_dir / "iter_2.pth", weights_only=False)["state_dict"]
    s2 = torch.load(final, weights_only=False)["state_dict"]
    frozen_outside_head_unchanged(s1, s2, "roi_head.bbox_head.box_head.")
    view = {"id": "dual-t2-average", "name": "dual_head", "threshold": 2, "combiner": "average"}
    adapter.predict(run, view, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o")


@pytest.mark.slow
def test_mmdet_posthoc_view_and_recurrent_step(mmdet_stage1, tiny_data, tmp_path) -> None:
    run, workdir = mmdet_stage1
    adapter = get_adapter("mmdet")
    adapter.predict(run, {"id": "plain", "name": "plain"}, workdir, tiny_data, split="val", out_dir=tmp_path / "plain")
    adapter.predict(run, {"id": "cm-val", "name": "cm_calibration", "source": "val"}, workdir, tiny_data, split="val",
                    out_dir=tmp_path / "cm")
    plain, cm = check_outputs(tmp_path / "plain"), check_outputs(tmp_path / "cm")
    assert sorted(d["score"] for d in plain) != sorted(d["score"] for d in cm)


@pytest.mark.slow
def test_mmdet_class_agnostic_and_normed_mask(tiny_data, tmp_path) -> None:
    run = family_run("mmdet", "eqlv2")
    run.update(class_agnostic=True, mask_head={"name": "normed", "scale": 20})
    adapter = get_adapter("mmdet")
    final = adapter.train(run, tmp_path / "w", tiny_data)
    state = torch.load(final, map_location="cpu", weights_only=False)["state_dict"]
    assert state["roi_head.mask_head.conv_logits.weight"].shape[0] == 1
    assert state["roi_head.bbox_head.box_head.bbox_pred.weight"].shape[0] == 4
    adapter.predict(run, {"id": "plain", "name": "plain"}, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o", expect_detections=False)


@pytest.mark.slow
def test_mmdet_simcal_bilevel_stage2(mmdet_stage1, tiny_data, tmp_path, monkeypatch) -> None:
    """SimCal through mmdet: bi-level image stream, sampled class in the data samples, RoIs composed by
    compose_bilevel_batch (checked by spying on it), dual-head view at predict time."""
    from ltbench.methods import samplers

    calls = []
    real = samplers.compose_bilevel_batch

    def spy(labels, image_index, classes, **kw):
        calls.append(list(classes))
        return real(labels, image_index, classes, **kw)

    monkeypatch.setattr(samplers, "compose_bilevel_batch", spy)
    stage1_run, stage1_dir = mmdet_stage1
    run = stage2_run("mmdet", "simcal", stage1_run)
    adapter = get_adapter("mmdet")
    adapter.train(run, tmp_path / "w", tiny_data, stage1_workdir=stage1_dir)
    assert len(calls) == 2 and all(len(c) == 2 and all(0 <= k < 4 for k in c) for c in calls)
    view = {"id": "dual-t2-replace", "name": "dual_head", "threshold": 2, "combiner": "replace"}
    adapter.predict(run, view, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o")


def test_mmdet_finetune_frozen_stages_requires_grad(tiny_data) -> None:
    from adapters.records import load_lvis_split

    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    stage1 = family_run("mmdet", "softmax")
    run = dict(stage1, id="tiny-mmdet-ft-00000000", stage1=stage1["id"], stage2={"name": "finetune", "frozen_stages": 1})
    model, _ = get_adapter("mmdet")._build_model(run, split, tiny_data, stage1=([stage1], None))
    grads = {name: p.requires_grad for name, p in model.named_parameters()}
    assert not grads["backbone.conv1.weight"] and not grads["backbone.layer1.0.conv1.weight"]
    assert grads["backbone.layer2.0.conv1.weight"] and grads["neck.lateral_convs.0.conv.weight"]
    assert grads["roi_head.mask_head.conv_logits.weight"] and grads["roi_head.bbox_head.box_head.cls_score.weight"]
