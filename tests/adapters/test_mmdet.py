"""mmdet 3.3 adapter: training through mmengine's Runner and prediction on tiny synthetic LVIS data (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.mmdet.registration import mmdet_available

_OK, _REASON = mmdet_available()
pytestmark = [pytest.mark.mmdet, pytest.mark.skipif(not _OK, reason=_REASON), pytest.mark.usefixtures("one_thread")]

torch = pytest.importorskip("torch")

from adapters import get_adapter  # noqa: E402
from support.runs import tiny_run  # noqa: E402
from support.tiny_lvis import CATEGORY_IDS  # noqa: E402
from ltbench.errors import LtbenchError  # noqa: E402

PLAIN = {"id": "plain", "name": "plain"}


def mm_run(**overrides):
    return tiny_run(framework="mmdet", id=overrides.pop("id", "tiny-mmdet-00000000"), **overrides)


@pytest.fixture
def trained(trained_baselines):
    return trained_baselines("mmdet")


@pytest.mark.slow
def test_mmdet_checkpoint_holds_the_ltbench_head_in_mmdets_roi_head(trained) -> None:
    run, workdir, final = trained
    assert final.name == "iter_4.pth" and final.is_file()  # mmengine's name; the rest: test_contract.py
    # The model in the checkpoint has the ltbench box head inside mmdet's RoI head.
    state = torch.load(final, map_location="cpu", weights_only=False)["state_dict"]
    assert "roi_head.bbox_head.box_head.cls_score.weight" in state or any(
        k.startswith("roi_head.bbox_head.box_head.") for k in state
    )
    assert state["roi_head.mask_head.conv_logits.weight"].shape[0] == len(CATEGORY_IDS)


def test_mmdet_unknown_sampler_is_refused_clearly(tiny_data, tmp_path) -> None:
    run = mm_run(sampler={"name": "episodic"})
    with pytest.raises(LtbenchError, match="not wired in the mmdet adapter"):
        get_adapter("mmdet").train(run, tmp_path, tiny_data)


@pytest.mark.slow
def test_mmdet_class_aware_stream_sampler_resumes_exactly(tiny_data, tmp_path, monkeypatch) -> None:
    """ltbench's class-aware sampler inside mmengine's loop: straight == killed at 2 + resumed."""
    from mmdet.registry import LOOPS

    from adapters.mmdet.registration import register

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
    from adapters.records import load_lvis_split
    from adapters.mmdet.config import base_config_path, build_config
    from adapters.mmdet.registration import register

    register()
    run = mm_run(dataset="lvis_v0.5")
    assert base_config_path(run).name == "mask-rcnn_r50_fpn_sample1e-3_ms-2x_lvis-v0.5.py"
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    cfg = build_config(run, split, tiny_data)
    assert cfg.model.backbone.depth == 18 and cfg.model.neck.out_channels == 32
    assert cfg.model.roi_head.bbox_head.type == "LtbenchBBoxHead"
    assert cfg.model.roi_head.bbox_head.num_classes == len(CATEGORY_IDS)
    assert cfg.model.test_cfg.rcnn.score_thr == pytest.approx(1e-4) and cfg.model.test_cfg.rcnn.max_per_img == 300
    assert cfg.model.roi_head.bbox_head.loss_bbox.type == "L1Loss"  # mmdet's own box loss is kept


def test_mmdet_multiscale_pipeline_from_min_size_list(tiny_data) -> None:
    from adapters.records import load_lvis_split
    from adapters.mmdet.config import build_config
    from adapters.mmdet.registration import register

    register()
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    cfg = build_config(mm_run(model={"min_size": [48, 56, 64], "max_size": 80}), split, tiny_data)
    (train_resize,) = [s for s in cfg.train_pipeline if s["type"] == "RandomChoiceResize"]
    (test_resize,) = [s for s in cfg.test_pipeline if s["type"] == "Resize"]
    assert [tuple(x) for x in train_resize["scales"]] == [(80, 48), (80, 56), (80, 64)]
    assert tuple(test_resize["scale"]) == (80, 64)


def test_mmdet_paper_scale_starts_from_the_weight_cache_and_never_downloads(tiny_data, tmp_path, monkeypatch) -> None:
    """Paper scale: the ImageNet backbone comes from the weight cache (or the user's file for its weight id),
    never from mmdet's torchvision:// download; a missing file is an error naming `ltbench weights fetch`."""
    from adapters.records import load_lvis_split
    from adapters.mmdet.config import build_config
    from adapters.mmdet.registration import register

    register()
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    monkeypatch.setenv("LTBENCH_WEIGHTS", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("LTBENCH_WEIGHT_FILES", raising=False)
    run = mm_run(scale="paper", backbone="r50_fpn", model={"backbone_depth": 50})
    with pytest.raises(LtbenchError, match="ltbench weights fetch"):
        build_config(run, split, tiny_data)
    mine = tmp_path / "resnet50.pth"
    mine.write_bytes(b"weights")
    monkeypatch.setenv("LTBENCH_WEIGHT_FILES", f"mmdet/imagenet/r50={mine}")
    cfg = build_config(run, split, tiny_data)
    assert cfg.model.backbone.init_cfg == {"type": "Pretrained", "checkpoint": str(mine)}
    assert cfg.model.backbone.frozen_stages == 1 and cfg.model.backbone.norm_eval is True
    with pytest.raises(LtbenchError, match="mmdet/coco/mask_rcnn_r50_fpn"):
        build_config(mm_run(scale="paper", pretrain="coco"), split, tiny_data)


def test_mmdet_config_class_agnostic_and_normed_mask(tiny_data) -> None:
    from adapters.records import load_lvis_split
    from adapters.mmdet.config import build_config
    from adapters.mmdet.registration import register

    register()
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    cfg = build_config(mm_run(class_agnostic=True, mask_head={"name": "normed", "scale": 20}), split, tiny_data)
    rh = cfg.model.roi_head
    assert rh.bbox_head.reg_class_agnostic is True and rh.mask_head.class_agnostic is True
    assert rh.mask_head.predictor_cfg == {"type": "NormedConv2d", "tempearture": 20.0}




def test_pcb_gate_opens_at_the_planned_iteration_in_torchvision_and_mmdet() -> None:
    """The same planned run config (PCB Table 2, RFS + PCB, paper scale) under torchvision and mmdet opens PCB's
    gate at the plan's ``regularizer.start_iteration``, through each adapter's own ProgressGate hook and
    whatever epoch length that framework's sampler has (torchvision stochastic RFS, mmdet's enlarged ceil)."""
    from types import SimpleNamespace

    from mmdet.registry import HOOKS

    from adapters.engine import hooks
    from adapters.mmdet.registration import register
    from adapters.wiring import build_head, head_config
    from ltbench.data.lvis_meta import ClassStats
    from ltbench.plan import build_plan

    register()
    plan = build_plan(["tables/pcb_table2.md"], scale="paper")
    row = next(r for r in plan.rows if r.label == "RFS [12] + PCB (LVIS v0.5)")
    planned = plan.runs[row.run_ids[0]].config
    start, total = planned["regularizer"]["start_iteration"], planned["schedule"]["iterations"]
    assert start == 16 * total // 24 and planned["schedule"]["epochs"] == 24
    stats = ClassStats.from_counts(instance_counts=[50, 5, 1], image_counts=[40, 4, 1])
    epoch_images = planned["schedule"]["epoch_images"]
    opened: dict[str, list[int]] = {}
    for framework, background, epoch_length in (("torchvision", "first", int(epoch_images * 0.9)),
                                                ("mmdet", "last", epoch_images), ("mmdet", "last", int(epoch_images * 1.3))):
        config = {**planned, "framework": framework}
        head = build_head(head_config(config, stats), num_classes=3, background=background, num_box_deltas=12,
                          in_channels=8, hidden=16)
        head.confusion.seen.fill_(1)  # every class seen: only the schedule point gates
        if framework == "torchvision":
            state = SimpleNamespace(iter=0, max_iter=total)
            gate = hooks.ProgressGate(head.set_progress, 16, epoch_length)
            gate.trainer = SimpleNamespace(state=state)

            def step(i, state=state, gate=gate):
                state.iter = i
                gate.before_step()
        else:
            runner = SimpleNamespace(iter=0, max_iters=total,
                                     model=SimpleNamespace(roi_head=SimpleNamespace(bbox_head=SimpleNamespace(box_head=head))))
            gate = HOOKS.build(dict(type="ProgressGate", batch_size=16, epoch_length=epoch_length))

            def step(i, runner=runner, gate=gate):
                runner.iter = i
                gate.before_train_iter(runner, i)
        seen = []
        for i in (0, start - 1, start, start + 1, total - 1):
            step(i)
            seen.append(head.gate_open())
        opened.setdefault(framework, []).append(seen)
    expected = [False, False, True, True, True]
    assert all(seen == expected for runs in opened.values() for seen in runs), opened


def test_mmdet_anchor_sizes_of_the_mini_model(tiny_data) -> None:
    """The mini model's anchors (one size per FPN level) become mmdet's anchor scale: size = scale x stride."""
    from adapters.records import load_lvis_split
    from adapters.mmdet.config import build_config
    from adapters.mmdet.registration import register

    register()
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    cfg = build_config(mm_run(model={"anchor_sizes": [8, 16, 32, 64, 128]}), split, tiny_data)
    assert list(cfg.model.rpn_head.anchor_generator.strides) == [4, 8, 16, 32, 64]
    assert list(cfg.model.rpn_head.anchor_generator.scales) == [2]
    with pytest.raises(LtbenchError, match="not one multiple of the FPN strides"):
        build_config(mm_run(model={"anchor_sizes": [8, 16, 32, 64, 100]}), split, tiny_data)
