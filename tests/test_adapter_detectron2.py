"""detectron2 adapter on tiny synthetic LVIS data (CPU). Skipped where detectron2 is not importable
(it is not on the package registry; CI does not have it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adapters.detectron2_adapter import GAPS, detectron2_available

_OK, _REASON = detectron2_available()
pytestmark = [pytest.mark.detectron2, pytest.mark.skipif(not _OK, reason=_REASON), pytest.mark.usefixtures("one_thread")]

torch = pytest.importorskip("torch")

from adapters import get_adapter  # noqa: E402
from adapters_support import (  # noqa: E402
    CATEGORY_IDS,
    SLOW_STARTERS,
    check_outputs,
    family_run,
    frozen_outside_head_unchanged,
    stage2_run,
    tiny_run,
)
from ltbench.errors import LtbenchError  # noqa: E402

PLAIN = {"id": "plain", "name": "plain"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    workdir = tmp_path_factory.mktemp("d2_baseline")
    run = tiny_run(id="tiny-d2-00000000", framework="detectron2", sampler={"name": "rfs", "t": 0.3})
    torch.set_num_threads(1)
    final = get_adapter("detectron2").train(run, workdir, tiny_data)
    return run, workdir, final


@pytest.mark.slow
def test_d2_train_and_predict(trained, tiny_data, tmp_path) -> None:
    from test_adapter_torchvision import check_detections

    run, workdir, final = trained
    assert final.name == "model_final.pth" and (workdir / "last_checkpoint").read_text().strip() == "model_final.pth"
    assert json.loads((workdir / "done.json").read_text())["framework"] == "detectron2"
    # checkpoint_period 2 of 4 iterations: model_0000001.pth (detectron2 counts from 0) was written, then
    # pruned (keep_checkpoints 1)
    assert sorted(p.name for p in workdir.glob("*.pth")) == ["model_final.pth"]
    summary = get_adapter("detectron2").predict(run, PLAIN, workdir, tiny_data, split="val", out_dir=tmp_path)
    dets = check_detections(tmp_path / "detections.json", tiny_data)
    assert summary["num_detections"] == len(dets) > 0
    stats = np.load(tmp_path / "proposal_stats.npz")
    assert stats["category_ids"].tolist() == list(CATEGORY_IDS)
    np.testing.assert_allclose(stats["cm_sum"].sum(axis=1), stats["cm_count"], rtol=1e-9)


@pytest.mark.slow
def test_d2_resume_reaches_identical_weights(tiny_data, tmp_path, monkeypatch) -> None:
    from detectron2.engine import SimpleTrainer

    run = tiny_run(id="tiny-d2-resume-00000000", framework="detectron2", sampler={"name": "rfs", "t": 0.3})
    adapter = get_adapter("detectron2")
    straight = adapter.train(run, tmp_path / "straight", tiny_data)
    real_run_step = SimpleTrainer.run_step

    def dying_run_step(self):
        if self.iter == 2:  # after the checkpoint of iterations 0-1
            raise KeyboardInterrupt("simulated kill")
        return real_run_step(self)

    monkeypatch.setattr(SimpleTrainer, "run_step", dying_run_step)
    workdir = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        adapter.train(run, workdir, tiny_data)
    assert not (workdir / "done.json").exists()
    monkeypatch.setattr(SimpleTrainer, "run_step", real_run_step)
    resumed = adapter.train(run, workdir, tiny_data)
    a = torch.load(straight, map_location="cpu", weights_only=False)["model"]
    b = torch.load(resumed, map_location="cpu", weights_only=False)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("family", ["eqlv2", "seesaw", "group_softmax", "pcb_ce"])
def test_d2_stage1_family(family, tiny_data, tmp_path) -> None:
    run = family_run("detectron2", family)
    adapter = get_adapter("detectron2")
    adapter.train(run, tmp_path / "w", tiny_data)
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
def test_d2_per_class_top_k_mode_lifts_the_per_image_cap(trained, tiny_data, tmp_path) -> None:
    """AP-fixed inference in detectron2: the predictor's test_topk_per_image is lifted, <= k per category."""
    from adapters_support import predict_capped_and_top_k

    run, workdir, _ = trained
    capped_run = {**run, "model": {**run["model"], "detections_per_img": 3}}
    predict_capped_and_top_k(get_adapter("detectron2"), capped_run, workdir, tiny_data, tmp_path)


def test_d2_unknown_mask_head_is_refused(tiny_data, tmp_path) -> None:
    run = tiny_run(framework="detectron2", id="tiny-d2-mask-00000000", mask_head={"name": "dilated"})
    with pytest.raises(LtbenchError, match="unknown mask head"):
        get_adapter("detectron2").train(run, tmp_path / "w", tiny_data)


@pytest.mark.slow
def test_d2_keep_checkpoints_minus_one_keeps_every_periodic_checkpoint(tiny_data, tmp_path) -> None:
    """The counterpart of the pruned default: detectron2 does write model_0000001/3 (period 2 of 4)."""
    run = tiny_run(id="tiny-d2-keepall-00000000", framework="detectron2", schedule={"keep_checkpoints": -1})
    torch.set_num_threads(1)
    get_adapter("detectron2").train(run, tmp_path / "w", tiny_data)
    assert sorted(p.name for p in (tmp_path / "w").glob("*.pth")) == ["model_0000001.pth", "model_0000003.pth", "model_final.pth"]
