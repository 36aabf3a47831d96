"""The adapter contract (adapters/interface.py), checked against every framework: training writes its
checkpoints, pointer, progress log and done.json; a run killed between two steps resumes to the same
weights; prediction writes valid LVIS results and proposal statistics, deterministically, capped per image
(or per class in the AP-fixed mode); mistakes are clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from support.adapters import interrupt_at, model_state, optimizer_state
from support.checks import PLAIN, check_detections, predict_capped_and_top_k
from support.runs import tiny_run
from support.tiny_lvis import CATEGORY_IDS

torch = pytest.importorskip("torch")

from adapters import get_adapter  # noqa: E402
from ltbench.errors import LtbenchError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_train_writes_checkpoint_pointer_log_and_done(framework, trained) -> None:
    run, workdir, final = trained
    done = json.loads((workdir / "done.json").read_text())
    assert final == workdir / done["checkpoint"] and final.is_file()
    assert done["run_id"] == run["id"] and done["iterations"] == 4 and done["framework"] == framework
    # checkpoint_period 2 of 4 iterations: the periodic checkpoint was written, then pruned (keep_checkpoints 1)
    assert [p.name for p in workdir.glob("*.pth")] == [final.name]
    # the same progress lines from every framework (adapters.engine.progress)
    log = (workdir / "log.txt").read_text().splitlines()
    assert log[-1].startswith("iter 4/4 loss=") and " lr=" in log[-1] and "eta=" in log[-1]
    assert model_state(framework, final)


@pytest.mark.slow
def test_resume_after_a_kill_reaches_identical_weights(framework, tiny_data, tmp_path, monkeypatch) -> None:
    """4 iterations straight == killed at iteration 2 (after the checkpoint of 2), resumed to 4: every model
    tensor and every momentum buffer bit-identical."""
    run = tiny_run(id=f"tiny-{framework}-resume-00000000", framework=framework, sampler={"name": "rfs", "t": 0.3},
                   schedule={"iterations": 4, "checkpoint_period": 2})
    adapter = get_adapter(framework)
    straight = adapter.train(run, tmp_path / "straight", tiny_data)
    with monkeypatch.context() as patch:
        interrupt_at(framework, patch, 2)
        with pytest.raises(KeyboardInterrupt):
            adapter.train(run, tmp_path / "resumed", tiny_data)
    assert not (tmp_path / "resumed" / "done.json").exists()
    assert (tmp_path / "resumed" / "last_checkpoint").is_file()
    resumed = adapter.train(run, tmp_path / "resumed", tiny_data)
    a, b = model_state(framework, straight), model_state(framework, resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    if framework != "detectron2":  # detectron2's final checkpoint keeps no optimizer state
        for sa, sb in zip(optimizer_state(straight)["state"].values(), optimizer_state(resumed)["state"].values()):
            assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])


@pytest.mark.slow
def test_predict_writes_valid_lvis_results_and_proposal_stats(framework, trained, tiny_data, tmp_path) -> None:
    run, workdir, _ = trained
    summary = get_adapter(framework).predict(run, PLAIN, workdir, tiny_data, split="val", out_dir=tmp_path)
    dets = check_detections(tmp_path / "detections.json", tiny_data)
    assert summary["num_detections"] == len(dets) > 0
    stats = np.load(tmp_path / "proposal_stats.npz")
    c = len(CATEGORY_IDS)
    assert stats["category_ids"].tolist() == list(CATEGORY_IDS)
    assert stats["cm_sum"].shape == (c, c) and stats["cm_count"].shape == (c,)
    assert stats["cls_pred"].shape == stats["cls_target"].shape
    assert stats["cm_count"].sum() == (stats["cls_target"] >= 0).sum() > 0
    np.testing.assert_allclose(stats["cm_sum"].sum(axis=1), stats["cm_count"], rtol=1e-9)
    assert set(np.unique(stats["cls_pred"])) <= set(range(-1, c))


@pytest.mark.slow
def test_predict_is_deterministic(framework, trained, tiny_data, tmp_path) -> None:
    run, workdir, _ = trained
    adapter = get_adapter(framework)
    adapter.predict(run, PLAIN, workdir, tiny_data, split="val", out_dir=tmp_path / "a")
    adapter.predict(run, PLAIN, workdir, tiny_data, split="val", out_dir=tmp_path / "b")
    assert (tmp_path / "a" / "detections.json").read_bytes() == (tmp_path / "b" / "detections.json").read_bytes()


@pytest.mark.slow
def test_detection_cap_is_respected(framework, trained, tiny_data, tmp_path) -> None:
    run, workdir, _ = trained
    capped = {**run, "model": {**run["model"], "detections_per_img": 5}}
    get_adapter(framework).predict(capped, PLAIN, workdir, tiny_data, split="val", out_dir=tmp_path)
    check_detections(tmp_path / "detections.json", tiny_data, limit=5)


@pytest.mark.slow
def test_per_class_top_k_mode_lifts_the_per_image_cap(framework, trained, tiny_data, tmp_path) -> None:
    """AP-fixed inference (Dave et al. 2021): no per-image cap, at most k per category over the split."""
    run, workdir, _ = trained
    capped_run = {**run, "model": {**run["model"], "detections_per_img": 3}}
    predict_capped_and_top_k(get_adapter(framework), capped_run, workdir, tiny_data, tmp_path)


@pytest.mark.slow
def test_recurrent_step_of_a_single_step_head_is_an_error(framework, trained, tiny_data, tmp_path) -> None:
    run, workdir, _ = trained
    with pytest.raises(LtbenchError, match="step_probabilities"):
        get_adapter(framework).predict(run, {"id": "step2", "name": "recurrent_step", "step": 2}, workdir, tiny_data,
                                       split="val", out_dir=tmp_path)


def test_predict_without_training_is_a_clear_error(framework, tiny_data, tmp_path) -> None:
    run = tiny_run(framework=framework)
    with pytest.raises(LtbenchError, match="training has not finished"):
        get_adapter(framework).predict(run, PLAIN, tmp_path, tiny_data, split="val", out_dir=tmp_path / "o")


def test_stage2_without_stage1_workdir_is_a_clear_error(framework, tiny_data, tmp_path) -> None:
    run = tiny_run(framework=framework, stage2={"method": "crt"}, stage1="tiny-softmax-00000000")
    with pytest.raises(LtbenchError, match="--stage1-workdir"):
        get_adapter(framework).train(run, tmp_path, tiny_data)


def test_unknown_detections_mode_is_a_clear_error(framework, tiny_data, tmp_path) -> None:
    with pytest.raises(LtbenchError, match="detections mode"):
        get_adapter(framework).predict(tiny_run(framework=framework), {"id": "v", "detections": {"mode": "top_k"}}, tmp_path,
                                       tiny_data, split="val", out_dir=tmp_path / "o")


def test_unknown_mask_head_is_refused(framework, tiny_data, tmp_path) -> None:
    run = tiny_run(framework=framework, id=f"tiny-{framework}-mask-00000000", mask_head={"name": "dilated"})
    with pytest.raises(LtbenchError, match="unknown mask head"):
        get_adapter(framework).train(run, tmp_path / "w", tiny_data)
