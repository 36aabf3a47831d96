"""mmdet 3.3 adapter: training through mmengine's Runner and prediction on tiny synthetic LVIS data (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adapters.mmdet_adapter import mmdet_available

_OK, _REASON = mmdet_available()
pytestmark = [pytest.mark.mmdet, pytest.mark.skipif(not _OK, reason=_REASON), pytest.mark.usefixtures("one_thread")]

torch = pytest.importorskip("torch")

from adapters import get_adapter  # noqa: E402
from adapters_support import CATEGORY_IDS, tiny_run  # noqa: E402
from ltbench.errors import LtbenchError  # noqa: E402

PLAIN = {"id": "plain", "name": "plain"}


def mm_run(**overrides):
    return tiny_run(framework="mmdet", id=overrides.pop("id", "tiny-mmdet-00000000"), **overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    workdir = tmp_path_factory.mktemp("mm_baseline")
    run = mm_run(sampler={"name": "rfs", "t": 0.3, "rounding": "ceil"})
    torch.set_num_threads(1)
    final = get_adapter("mmdet").train(run, workdir, tiny_data)
    return run, workdir, final


@pytest.mark.slow
def test_mmdet_train_checkpoints_and_done(trained) -> None:
    run, workdir, final = trained
    assert final.name == "iter_4.pth" and final.is_file()
    assert sorted(p.name for p in workdir.glob("*.pth")) == ["iter_4.pth"]  # iter_2 pruned: keep_checkpoints 1
    done = json.loads((workdir / "done.json").read_text())
    assert done == {"run_id": run["id"], "checkpoint": "iter_4.pth", "iterations": 4, "framework": "mmdet"}
    # The model in the checkpoint has the ltbench box head inside mmdet's RoI head.
    state = torch.load(final, map_location="cpu", weights_only=False)["state_dict"]
    assert "roi_head.bbox_head.box_head.cls_score.weight" in state or any(
        k.startswith("roi_head.bbox_head.box_head.") for k in state
    )
    assert state["roi_head.mask_head.conv_logits.weight"].shape[0] == len(CATEGORY_IDS)


@pytest.mark.slow
def test_mmdet_predict_writes_valid_lvis_results(trained, tiny_data, tmp_path) -> None:
    from test_adapter_torchvision import check_detections

    run, workdir, _ = trained
    summary = get_adapter("mmdet").predict(run, PLAIN, workdir, tiny_data, split="val", out_dir=tmp_path)
    dets = check_detections(tmp_path / "detections.json", tiny_data)
    assert summary["num_detections"] == len(dets) > 0
    stats = np.load(tmp_path / "proposal_stats.npz")
    assert stats["category_ids"].tolist() == list(CATEGORY_IDS)
    assert stats["cm_count"].sum() == (stats["cls_target"] >= 0).sum() > 0
    np.testing.assert_allclose(stats["cm_sum"].sum(axis=1), stats["cm_count"], rtol=1e-9)


@pytest.mark.slow
def test_mmdet_resume_reaches_identical_weights(tiny_data, tmp_path, monkeypatch) -> None:
    """4 iterations straight == killed after the checkpoint at 2, then resumed to 4 (bit-identical)."""
    from mmdet.registry import LOOPS

    from adapters.mmdet_adapter import register

    register()
    adapter = get_adapter("mmdet")
    run = mm_run(id="tiny-mmdet-resume-00000000", sampler={"name": "rfs", "t": 0.3, "rounding": "ceil"})
    straight = adapter.train(run, tmp_path / "straight", tiny_data)

    loop_cls = LOOPS.get("LtbenchIterBasedTrainLoop")
    real_run_iter = loop_cls.run_iter

    def dying_run_iter(self, data_batch):
        if self._iter == 2:
            raise KeyboardInterrupt("simulated kill")
        return real_run_iter(self, data_batch)

    monkeypatch.setattr(loop_cls, "run_iter", dying_run_iter)
    workdir = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        adapter.train(run, workdir, tiny_data)
    assert Path((workdir / "last_checkpoint").read_text().strip()).name == "iter_2.pth"
    assert not (workdir / "done.json").exists()
    monkeypatch.setattr(loop_cls, "run_iter", real_run_iter)
    resumed = adapter.train(run, workdir, tiny_data)
    a = torch.load(straight, map_location="cpu", weights_only=False)
    b = torch.load(resumed, map_location="cpu", weights_only=False)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])


def test_mmdet_unknown_sampler_is_refused_clearly(tiny_data, tmp_path) -> None:
    run = mm_run(sampler={"name": "episodic"})
    with pytest.raises(LtbenchError, match="not wired in the mmdet adapter"):
        get_adapter("mmdet").train(run, tmp_path, tiny_data)


@pytest.mark.slow
def test_mmdet_class_aware_stream_sampler_resumes_exactly(tiny_data, tmp_path, monkeypatch) -> None:
    """ltbench's class-aware sampler inside mmengine's loop: straight == killed at 2 + resumed."""
    from mmdet.registry import LOOPS

    from adapters.mmdet_adapter import register

    register()
    adapter = get_adapter("mmdet")
    run = mm_run(id="tiny-mmdet-ca-00000000", sampler={"name": "class_aware"})
    straight = adapter.train(run, tmp_path / "straight", tiny_data)
    loop_cls = LOOPS.get("LtbenchIterBasedTrainLoop")
    real_run_iter = loop_cls.run_iter

    def dying_run_iter(self, data_batch):
        if self._iter == 2:
            raise KeyboardInterrupt("simulated kill")
        return real_run_iter(self, data_batch)

    monkeypatch.setattr(loop_cls, "run_iter", dying_run_iter)
    with pytest.raises(KeyboardInterrupt):
        adapter.train(run, tmp_path / "resumed", tiny_data)
    monkeypatch.setattr(loop_cls, "run_iter", real_run_iter)
    resumed = adapter.train(run, tmp_path / "resumed", tiny_data)
    a = torch.load(straight, map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(resumed, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mmdet_config_starts_from_the_wheels_lvis_config(tiny_data) -> None:
    from adapters import base
    from adapters.mmdet_adapter import base_config_path, build_config, register

    register()
    run = mm_run(dataset="lvis_v0.5")
    assert base_config_path(run).name == "mask-rcnn_r50_fpn_sample1e-3_ms-2x_lvis-v0.5.py"
    split = base.load_lvis_split(tiny_data.train, tiny_data.image_root)
    cfg = build_config(run, split, tiny_data)
    assert cfg.model.backbone.depth == 18 and cfg.model.neck.out_channels == 32
    assert cfg.model.roi_head.bbox_head.type == "LtbenchBBoxHead"
    assert cfg.model.roi_head.bbox_head.num_classes == len(CATEGORY_IDS)
    assert cfg.model.test_cfg.rcnn.score_thr == pytest.approx(1e-4) and cfg.model.test_cfg.rcnn.max_per_img == 300
    assert cfg.model.roi_head.bbox_head.loss_bbox.type == "L1Loss"  # mmdet's own box loss is kept


def test_mmdet_multiscale_pipeline_from_min_size_list(tiny_data) -> None:
    from adapters import base
    from adapters.mmdet_adapter import build_config, register

    register()
    split = base.load_lvis_split(tiny_data.train, tiny_data.image_root)
    cfg = build_config(mm_run(model={"min_size": [48, 56, 64], "max_size": 80}), split, tiny_data)
    (train_resize,) = [s for s in cfg.train_pipeline if s["type"] == "RandomChoiceResize"]
    (test_resize,) = [s for s in cfg.test_pipeline if s["type"] == "Resize"]
    assert [tuple(x) for x in train_resize["scales"]] == [(80, 48), (80, 56), (80, 64)]
    assert tuple(test_resize["scale"]) == (80, 64)


def test_mmdet_paper_scale_keeps_mmdets_imagenet_init(tiny_data) -> None:
    from adapters import base
    from adapters.mmdet_adapter import build_config, register

    register()
    split = base.load_lvis_split(tiny_data.train, tiny_data.image_root)
    cfg = build_config(mm_run(scale="paper", backbone="r50_fpn", model={"backbone_depth": 50}), split, tiny_data)
    assert cfg.model.backbone.init_cfg == {"type": "Pretrained", "checkpoint": "torchvision://resnet50"}
    assert cfg.model.backbone.frozen_stages == 1 and cfg.model.backbone.norm_eval is True
    with pytest.raises(LtbenchError, match="pretrain 'coco' needs a checkpoint"):
        build_config(mm_run(scale="paper", pretrain="coco"), split, tiny_data)


def test_mmdet_config_class_agnostic_and_normed_mask(tiny_data) -> None:
    from adapters import base
    from adapters.mmdet_adapter import build_config, register

    register()
    split = base.load_lvis_split(tiny_data.train, tiny_data.image_root)
    cfg = build_config(mm_run(class_agnostic=True, mask_head={"name": "normed", "scale": 20}), split, tiny_data)
    rh = cfg.model.roi_head
    assert rh.bbox_head.reg_class_agnostic is True and rh.mask_head.class_agnostic is True
    assert rh.mask_head.predictor_cfg == {"type": "NormedConv2d", "tempearture": 20.0}


@pytest.mark.slow
def test_mmdet_per_class_top_k_mode_lifts_the_per_image_cap(trained, tiny_data, tmp_path) -> None:
    """AP-fixed inference in mmdet: the RoI head's max_per_img is lifted, at most k per category."""
    from adapters_support import predict_capped_and_top_k

    run, workdir, _ = trained
    capped_run = {**run, "model": {**run["model"], "detections_per_img": 3}}
    predict_capped_and_top_k(get_adapter("mmdet"), capped_run, workdir, tiny_data, tmp_path)
