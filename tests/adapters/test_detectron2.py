"""detectron2 adapter on tiny synthetic LVIS data (CPU). Skipped where detectron2 is not importable
(it is not on the package registry; CI does not have it)."""

from __future__ import annotations

import json

import pytest

from adapters.detectron2.adapter import GAPS
from adapters.detectron2.registration import detectron2_available

_OK, _REASON = detectron2_available()
pytestmark = [pytest.mark.detectron2, pytest.mark.skipif(not _OK, reason=_REASON), pytest.mark.usefixtures("one_thread")]

torch = pytest.importorskip("torch")

from adapters import get_adapter  # noqa: E402
from support.runs import SLOW_STARTERS, family_run, stage2_run, tiny_run  # noqa: E402
from support.checks import check_outputs, check_regulariser_record, frozen_outside_head_unchanged  # noqa: E402
from support.tiny_lvis import CATEGORY_IDS  # noqa: E402
from ltbench.errors import LtbenchError  # noqa: E402

PLAIN = {"id": "plain", "name": "plain"}


@pytest.fixture
def trained(trained_baselines):
    return trained_baselines("detectron2")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["eqlv2", "seesaw", "group_softmax", "pcb_ce"])
def test_d2_stage1_family(family, tiny_data, tmp_path) -> None:
    run = family_run("detectron2", family)
    adapter = get_adapter("detectron2")
    adapter.train(run, tmp_path / "w", tiny_data)
    check_regulariser_record(tmp_path / "w", family)  # what PCB's regulariser did (done.json training.pcb)
    adapter.predict(run, PLAIN, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o", expect_detections=family not in SLOW_STARTERS)


@pytest.mark.slow
def test_d2_disalign_stage2_and_views(trained, tiny_data, tmp_path) -> None:
    stage1_run, stage1_dir, _ = trained
    run = stage2_run("detectron2", "disalign", stage1_run)
    adapter = get_adapter("detectron2")
    final = adapter.train(run, tmp_path / "w", tiny_data, stage1_workdir=stage1_dir)
    s1 = torch.load(stage1_dir / "model_final.pth", weights_only=False)["model"]
    s2 = torch.load(final, weights_only=False)["model"]
    frozen_outside_head_unchanged(s1, s2, "roi_heads.box_predictor.box_head.")
    for view in ({"id": "dual-t2-average", "name": "dual_head", "threshold": 2, "combiner": "average"},
                 {"id": "cm-val", "name": "cm_calibration", "source": "val"}):
        adapter.predict(run, view, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / view["id"])
        check_outputs(tmp_path / view["id"])


@pytest.mark.slow
def test_d2_simcal_stage2_composes_bilevel_rois(trained, tiny_data, tmp_path, monkeypatch) -> None:
    """SimCal stage 2: every training step's box head sees only compose_bilevel_batch's RoIs (positives of
    each image's sampled class + as many negatives), and the run predicts."""
    import ltbench.methods.samplers as samplers

    assert "bi-level" not in " ".join(GAPS)
    stage1_run, stage1_dir, _ = trained
    calls = []
    original = samplers.compose_bilevel_batch

    def spy(labels, image_index, classes, **kwargs):
        keep = original(labels, image_index, classes, **kwargs)
        c = kwargs["num_classes"]
        kept = labels[keep]
        positives = kept[kept < c]
        sampled = torch.as_tensor(classes)[image_index[keep][kept < c]]
        assert kwargs["background"] == "last" and torch.equal(positives, sampled)
        assert (kept == c).sum() <= len(positives)
        calls.append((list(classes), len(keep)))
        return keep

    monkeypatch.setattr(samplers, "compose_bilevel_batch", spy)
    run = stage2_run("detectron2", "simcal", stage1_run)
    adapter = get_adapter("detectron2")
    adapter.train(run, tmp_path / "w", tiny_data, stage1_workdir=stage1_dir)
    assert calls and all(all(0 <= k < len(CATEGORY_IDS) for k in classes) for classes, _ in calls)
    adapter.predict(run, PLAIN, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o", expect_detections=False)


def test_d2_skip_reason_is_one_line() -> None:
    ok, reason = detectron2_available()
    assert ok or ("\n" not in reason and "detectron2" in reason)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tau_norm", "ncm"])
def test_d2_stage2_without_optimiser(method, trained, tiny_data, tmp_path) -> None:
    """tau-norm / NCM: no training step; NCM's class means come from one pass over the training RoIs."""
    stage1_run, stage1_dir, _ = trained
    run = stage2_run("detectron2", method, stage1_run)
    adapter = get_adapter("detectron2")
    final = adapter.train(run, tmp_path / "w", tiny_data, stage1_workdir=stage1_dir)
    assert json.loads((tmp_path / "w" / "done.json").read_text())["iterations"] == 0
    state = torch.load(final, weights_only=False)["model"]
    if method == "ncm":
        counts = state["roi_heads.box_predictor.box_head.class_counts"]
        assert counts.sum() > 0 and state["roi_heads.box_predictor.box_head.class_sums"].abs().sum() > 0
    frozen_outside_head_unchanged(torch.load(stage1_dir / "model_final.pth", weights_only=False)["model"], state,
                                  "roi_heads.box_predictor.box_head.")
    adapter.predict(run, PLAIN, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o")


@pytest.mark.slow
def test_d2_normed_mask_head_trains_and_predicts(tiny_data, tmp_path) -> None:
    run = tiny_run(framework="detectron2", id="tiny-d2-normed-00000000", mask_head={"name": "normed", "scale": 20})
    adapter = get_adapter("detectron2")
    final = adapter.train(run, tmp_path / "w", tiny_data)
    state = torch.load(final, weights_only=False)["model"]
    assert state["roi_heads.mask_head.predictor.weight"].shape[0] == len(CATEGORY_IDS)
    adapter.predict(run, PLAIN, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o")


@pytest.mark.slow
def test_d2_keep_checkpoints_minus_one_keeps_every_periodic_checkpoint(tiny_data, tmp_path) -> None:
    """The counterpart of the pruned default: detectron2 does write model_0000001/3 (period 2 of 4)."""
    run = tiny_run(id="tiny-d2-keepall-00000000", framework="detectron2", schedule={"keep_checkpoints": -1})
    torch.set_num_threads(1)
    get_adapter("detectron2").train(run, tmp_path / "w", tiny_data)
    assert sorted(p.name for p in (tmp_path / "w").glob("*.pth")) == ["model_0000001.pth", "model_0000003.pth", "model_final.pth"]
