"""Cascade (Mask) R-CNN and HTC through the mmdet adapter on the CPU: mmdet's own three-stage models (HTC
without its semantic branch) on the LVIS data config, the ltbench BoxHead in the box head of every stage;
trained, predicted, and every stage-2 chain the embedded plan has for them trained and predicted."""

from __future__ import annotations

import copy
import json

import pytest

from adapters.mmdet.registration import mmdet_available

_OK, _REASON = mmdet_available()
pytestmark = [pytest.mark.mmdet, pytest.mark.skipif(not _OK, reason=_REASON), pytest.mark.usefixtures("one_thread")]

torch = pytest.importorskip("torch")

from adapters import get_adapter  # noqa: E402
from adapters.records import load_lvis_split  # noqa: E402
from ltbench.plan import build_plan  # noqa: E402
from support.checks import PLAIN, check_detections, check_outputs  # noqa: E402
from support.runs import BASE_RUN, tiny_run  # noqa: E402
from support.tiny_lvis import CATEGORY_IDS  # noqa: E402

CASCADES = ("cascade_rcnn", "cascade_mask_rcnn", "htc")
THREE_ITERS = {"iterations": 3, "checkpoint_period": 3, "warmup_iters": 1, "steps": [2]}


def cfg_of(detector: str, tiny_data, **overrides):
    from adapters.mmdet.config import build_config
    from adapters.mmdet.registration import register

    register()
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    return build_config(tiny_run(framework="mmdet", detector=detector, **overrides), split, tiny_data)


@pytest.mark.parametrize("detector", CASCADES)
def test_every_stage_has_the_ltbench_box_head_with_mmdets_cascade_settings(detector, tiny_data) -> None:
    cfg = cfg_of(detector, tiny_data)
    m, rh = cfg.model, cfg.model.roi_head
    assert m.type == {"cascade_rcnn": "CascadeRCNN", "cascade_mask_rcnn": "CascadeRCNN", "htc": "HybridTaskCascade"}[detector]
    assert rh.type == {"htc": "LtbenchHybridTaskCascadeRoIHead"}.get(detector, "LtbenchCascadeRoIHead")
    assert len(rh.bbox_head) == 3 and rh.num_stages == 3 and list(rh.stage_loss_weights) == [1, 0.5, 0.25]
    for head in rh.bbox_head:
        assert head.type == "LtbenchBBoxHead" and head.num_classes == len(CATEGORY_IDS)
        assert head.reg_class_agnostic is True and head.in_channels == 32 and head.hidden == 128
    # the stages' own box coders (tighter each stage) and IoU thresholds stay mmdet's
    assert [h.bbox_coder.target_stds[0] for h in rh.bbox_head] == [0.1, 0.05, 0.033]
    assert [s.assigner.pos_iou_thr for s in m.train_cfg.rcnn] == [0.5, 0.6, 0.7]
    assert all(s.sampler.num == BASE_RUN["model"]["box_batch_size_per_image"] for s in m.train_cfg.rcnn)
    assert m.backbone.depth == 18 and m.neck.out_channels == 32  # the same tiny model as the other smoke rows
    assert m.test_cfg.rcnn.max_per_img == 300 and m.test_cfg.rcnn.score_thr == pytest.approx(1e-4)
    if detector == "cascade_rcnn":
        assert "mask_head" not in rh and m.data_preprocessor.pad_mask is False
        assert all(s["type"] != "LoadAnnotations" or not s["with_mask"] for s in cfg.train_pipeline)
    else:
        heads = rh.mask_head if isinstance(rh.mask_head, list) else [rh.mask_head]
        assert all(h.num_classes == len(CATEGORY_IDS) and h.in_channels == 32 and h.conv_out_channels == 32 for h in heads)
    if detector == "htc":  # the variant without the semantic branch: LVIS has no stuff segmentation
        assert "semantic_head" not in rh and rh.interleaved and rh.mask_info_flow
        assert [h.type for h in rh.mask_head] == ["HTCMaskHead"] * 3


def test_the_run_class_agnostic_flag_reaches_every_cascade_mask_head(tiny_data) -> None:
    cfg = cfg_of("cascade_mask_rcnn", tiny_data, class_agnostic=True, mask_head={"name": "normed", "scale": 20})
    heads = cfg.model.roi_head.mask_head if isinstance(cfg.model.roi_head.mask_head, list) else [cfg.model.roi_head.mask_head]
    assert all(h.class_agnostic and h.predictor_cfg == {"type": "NormedConv2d", "tempearture": 20.0} for h in heads)


@pytest.mark.slow
@pytest.mark.parametrize("detector", CASCADES)
def test_cascades_train_and_predict_on_the_cpu(detector, tiny_data, tmp_path) -> None:
    run = tiny_run(id=f"tiny-mmdet-{detector}-00000000", framework="mmdet", detector=detector, schedule=THREE_ITERS)
    adapter = get_adapter("mmdet")
    final = adapter.train(run, tmp_path / "w", tiny_data)
    state = torch.load(final, map_location="cpu", weights_only=False)["state_dict"]
    assert {f"roi_head.bbox_head.{i}.box_head.cls_score.weight" for i in range(3)} <= set(state)
    log = (tmp_path / "w" / "log.txt").read_text()
    assert "s2.loss_cls=" in log  # the progress lines show every stage's losses
    adapter.predict(run, PLAIN, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    if detector == "cascade_rcnn":
        dets = check_outputs(tmp_path / "o")
        assert all("segmentation" not in d for d in dets)
    else:
        check_detections(tmp_path / "o" / "detections.json", tiny_data)
        check_outputs(tmp_path / "o")


def _planned_cascade_chains() -> dict[str, tuple[list[dict], list[dict]]]:
    """One chain (root first) and its views per (detector, stage-2 method, head variant) that the embedded plan
    trains through mmdet."""
    plan = build_plan(scale="smoke")
    out: dict[str, tuple[list[dict], list[dict]]] = {}
    for run in plan.runs.values():
        config = run.config
        if config["framework"] != "mmdet" or not config.get("stage2"):
            continue
        key = f"{config['detector']}-{config['stage2']['name']}-{config['stage2'].get('head', '')}-{config['classifier']['name']}"
        chain = [config]
        while chain[0].get("stage1"):
            chain.insert(0, plan.runs[chain[0]["stage1"]].config)
        out.setdefault(key.rstrip("-"), (chain, [v.view_config for v in plan.views if v.run_id == run.id]))
    return out


CHAINS = _planned_cascade_chains()


def test_the_plan_has_stage2_chains_on_every_cascade_detector() -> None:
    assert {k.split("-")[0] for k in CHAINS} == set(CASCADES)
    assert {k.split("-")[1] for k in CHAINS} == {"bags", "disalign", "simcal"}


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(CHAINS))
def test_every_planned_cascade_stage2_chain_trains_and_predicts(key, tiny_data, tmp_path) -> None:
    """Each chain at 2 iterations per stage (the test's tiny model; the bi-level sampler's classes per batch
    fit the tiny data's 4 classes), predicted through each of its planned views (SimCal: the dual head)."""
    chain, views = CHAINS[key]
    adapter = get_adapter("mmdet")
    previous = None
    for config in chain:
        config = copy.deepcopy(config)
        config["schedule"].update(iterations=2, checkpoint_period=2, warmup_iters=1, steps=[2])
        config["model"] = dict(BASE_RUN["model"])
        sampler = (config.get("stage2") or {}).get("sampler") or {}
        if sampler.get("name") == "bilevel":
            sampler["classes_per_batch"] = 2
        adapter.train(config, tmp_path / config["id"], tiny_data, stage1_workdir=previous)
        previous = tmp_path / config["id"]
    report = json.loads((previous / "stage2_init.json").read_text())
    assert report["reinitialised"] == [] and report["loaded"] == report["tensors"]
    assert any(".2.box_head." in n for n in report["stage2_new"] + report["stage2_reinitialised"])  # every stage
    for view in views:
        adapter.predict(config, view, previous, tiny_data, split="val", out_dir=tmp_path / view["id"])
        check_outputs(tmp_path / view["id"])
