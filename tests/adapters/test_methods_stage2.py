"""Stage-2 methods (DisAlign, SimCal with the bi-level sampler, BAGS, cRT, LWS, tau-norm, NCM, fine-tuning)
and test-time views (CM/MS calibration, NorCal, SimCal's dual head, PCB's recurrent steps) through the
torchvision adapter, from one trained softmax stage-1 run."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from adapters import get_adapter  # noqa: E402
from support.runs import STAGE2_METHODS, family_run, stage2_run, tiny_run  # noqa: E402
from support.checks import check_outputs, frozen_outside_head_unchanged  # noqa: E402


# One torch thread per test (module fixture `one_thread` in conftest.py): 2 shared CI cores.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def torchvision_stage1(tmp_path_factory, tiny_data):
    workdir = tmp_path_factory.mktemp("tv_stage1")
    run = family_run("torchvision", "softmax", schedule={"iterations": 3, "checkpoint_period": 3, "warmup_iters": 1, "steps": [3]})
    torch.set_num_threads(1)
    get_adapter("torchvision").train(run, workdir, tiny_data)
    return run, workdir


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(STAGE2_METHODS))
def test_torchvision_stage2_method(method, torchvision_stage1, tiny_data, tmp_path) -> None:
    stage1_run, stage1_dir = torchvision_stage1
    run = stage2_run("torchvision", method, stage1_run)
    adapter = get_adapter("torchvision")
    final = adapter.train(run, tmp_path / "w", tiny_data, stage1_workdir=stage1_dir)
    s1 = torch.load(stage1_dir / "model_final.pth", weights_only=False)["model"]
    s2 = torch.load(final, weights_only=False)["model"]
    frozen_outside_head_unchanged(s1, s2, "roi_heads.box_head.")
    adapter.predict(run, {"id": "plain", "name": "plain"}, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o")


@pytest.mark.slow
def test_torchvision_simcal_dual_head_views(torchvision_stage1, tiny_data, tmp_path, monkeypatch) -> None:
    from ltbench.methods import samplers

    calls = []
    real = samplers.compose_bilevel_batch

    def spy(labels, image_index, classes, **kw):
        calls.append(list(classes))
        return real(labels, image_index, classes, **kw)

    monkeypatch.setattr(samplers, "compose_bilevel_batch", spy)
    stage1_run, stage1_dir = torchvision_stage1
    run = stage2_run("torchvision", "simcal", stage1_run)
    adapter = get_adapter("torchvision")
    adapter.train(run, tmp_path / "w", tiny_data, stage1_workdir=stage1_dir)
    # one bi-level RoI composition per iteration, one sampled class per image (2 images, 2 classes)
    assert len(calls) == 2 and all(len(c) == 2 for c in calls)
    scores = {}
    for combiner in ("replace", "average"):
        view = {"id": f"dual-t2-{combiner}", "name": "dual_head", "threshold": 2, "combiner": combiner}
        adapter.predict(run, view, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / combiner)
        scores[combiner] = [d["score"] for d in check_outputs(tmp_path / combiner)]
    assert scores["replace"] != scores["average"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "view",
    [
        {"id": "cm-val", "name": "cm_calibration", "source": "val"},
        {"id": "cm-train", "name": "cm_calibration", "source": "train"},
        {"id": "ms", "name": "ms_calibration"},
        {"id": "norcal-g0.5", "name": "norcal", "gamma": 0.5},
    ],
    ids=lambda v: v["id"],
)
def test_torchvision_posthoc_views_change_scores(view, torchvision_stage1, tiny_data, tmp_path) -> None:
    run, workdir = torchvision_stage1
    adapter = get_adapter("torchvision")
    adapter.predict(run, {"id": "plain", "name": "plain"}, workdir, tiny_data, split="val", out_dir=tmp_path / "plain")
    adapter.predict(run, view, workdir, tiny_data, split="val", out_dir=tmp_path / "view")
    plain = check_outputs(tmp_path / "plain")
    viewed = check_outputs(tmp_path / "view")
    assert sorted(d["score"] for d in plain) != sorted(d["score"] for d in viewed)


@pytest.mark.slow
def test_torchvision_recurrent_step_views(tiny_data, tmp_path) -> None:
    run = family_run("torchvision", "pcb_ce")
    adapter = get_adapter("torchvision")
    adapter.train(run, tmp_path / "w", tiny_data)
    out = {}
    for step in (1, 3):
        adapter.predict(run, {"id": f"step{step}", "name": "recurrent_step", "step": step}, tmp_path / "w", tiny_data,
                        split="val", out_dir=tmp_path / f"s{step}")
        out[step] = check_outputs(tmp_path / f"s{step}")
    adapter.predict(run, {"id": "plain", "name": "plain"}, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "plain")
    # The plain view of a 3-step head is its last step.
    assert json.loads((tmp_path / "plain" / "detections.json").read_text()) == out[3]
    assert [d["score"] for d in out[1]] != [d["score"] for d in out[3]]


@pytest.mark.slow
def test_torchvision_norcal_gamma_grid_selects_by_metric(torchvision_stage1, tiny_data, tmp_path) -> None:
    run, workdir = torchvision_stage1
    view = {"id": "norcal-grid", "name": "norcal", "counts": "image", "gamma_grid": [0, 0.5, 1.0], "select_by": "bbox.AP"}
    summary = get_adapter("torchvision").predict(run, view, workdir, tiny_data, split="val", out_dir=tmp_path)
    selection = json.loads((tmp_path / "view_selection.json").read_text())
    assert set(selection["values"]) == {"0", "0.5", "1.0"}
    best = max(selection["values"].items(), key=lambda kv: kv[1])
    assert selection["gamma"] == pytest.approx(float(best[0])) == pytest.approx(summary["selected_gamma"])
    chosen = tmp_path / "grid" / f"gamma_{best[0]}" / "detections.json"
    assert (tmp_path / "detections.json").read_bytes() == chosen.read_bytes()
    check_outputs(tmp_path)


@pytest.mark.slow
def test_torchvision_finetune_with_frozen_stages_trains_beyond_the_head(torchvision_stage1, tiny_data, tmp_path) -> None:
    stage1_run, stage1_dir = torchvision_stage1
    run = tiny_run(id="tiny-tv-finetune-fs1-00000000", framework="torchvision", stage1=stage1_run["id"],
                   schedule={"iterations": 2, "checkpoint_period": 2, "warmup_iters": 1, "steps": []},
                   stage2={"name": "finetune", "frozen_stages": 1})
    final = get_adapter("torchvision").train(run, tmp_path / "w", tiny_data, stage1_workdir=stage1_dir)
    s1 = torch.load(stage1_dir / "model_final.pth", weights_only=False)["model"]
    s2 = torch.load(final, weights_only=False)["model"]
    for key in ("backbone.body.conv1.weight", "backbone.body.layer1.0.conv1.weight"):
        assert torch.equal(s1[key], s2[key]), key  # frozen stem and stage 1
    for key in ("backbone.body.layer2.0.conv1.weight", "backbone.fpn.layer_blocks.0.0.weight", "roi_heads.box_head.cls_score.weight"):
        assert not torch.equal(s1[key], s2[key]), key  # fine-tuned
    assert torch.equal(s1["backbone.body.layer2.0.bn1.running_mean"], s2["backbone.body.layer2.0.bn1.running_mean"])
