"""Scales (paper/smoke schedules, model blocks, PCB gate) and the cost model."""

from __future__ import annotations

import math

import pytest

from ltbench.errors import LtbenchError
from ltbench.plan import cost, scales


def test_paper_schedules_per_framework():
    mm = scales.paper_schedule("1x", "mmdet", "lvis_v1")
    per_epoch = math.ceil(100170 / 16)
    assert mm["epochs"] == 12 and mm["iterations"] == 12 * per_epoch and mm["steps"] == [8 * per_epoch, 11 * per_epoch]
    assert mm["warmup_iters"] == 500 and mm["lr"] == 0.02 and mm["batch_size"] == 16
    d2 = scales.paper_schedule("1x", "detectron2", "lvis_v0.5")
    assert d2["iterations"] == 90000 and d2["steps"] == [60000, 80000] and "epochs" not in d2
    assert scales.paper_schedule("2x", "detectron2", "lvis_v1")["iterations"] == 360000
    explicit = scales.paper_schedule({"iterations": 4500, "steps": [4000], "warmup_iters": 1000}, "detectron2", "lvis_v0.5")
    assert explicit["iterations"] == 4500 and explicit["steps"] == [4000] and explicit["warmup_iters"] == 1000
    custom = scales.paper_schedule({"epochs": 12, "lr": 0.01, "steps": [8, 11]}, "mmdet", "lvis_v0.5")
    assert custom["lr"] == 0.01 and custom["steps_epochs"] == [8, 11]


def test_smoke_schedules_keep_the_shape():
    assert scales.smoke_schedule("1x", "torchvision", "lvis_v0.5")["iterations"] == 30
    two = scales.smoke_schedule("2x", "detectron2", "lvis_v1")
    assert two["iterations"] == 60 and two["steps"] == [40, 55] and two["batch_size"] == 4
    assert two["grad_clip"] == scales.SMOKE_GRAD_CLIP
    assert scales.smoke_schedule("3x", "mmdet", "lvis_v1")["iterations"] == 90  # clipped
    stage2 = scales.smoke_schedule({"iterations": 4500, "steps": [4000]}, "detectron2", "lvis_v0.5")
    assert stage2["iterations"] == 10 and stage2["steps"] == [9]  # 4000/4500 of 10 (clipped up from 3)
    assert scales.smoke_schedule({"epochs": 12, "lr": 0.01}, "mmdet", "lvis_v0.5")["lr"] == pytest.approx(0.01)


@pytest.mark.parametrize("bad", [{"epochs": float("nan")}, {"epochs": 0}, {"iterations": -5}, 3, {"name": "4x"},
                                 {"epochs": 12, "steps": ["a"]}, {"epochs": 1e-9}])
def test_bad_schedules_are_clear_errors(bad):
    with pytest.raises(LtbenchError, match="schedule"):
        scales.resolve_schedule(bad, "paper", "mmdet", "lvis_v0.5")


def test_unknown_scale():
    with pytest.raises(LtbenchError, match="did you mean 'smoke'"):
        scales.check_scale("smok")


def test_model_blocks_and_pcb_gate():
    assert scales.model_block("smoke", "r101_fpn", "torchvision")["backbone_depth"] == 18
    paper = scales.model_block("paper", "r101_fpn", "mmdet")
    assert paper["backbone_depth"] == 101 and paper["detections_per_img"] == 300 and paper["score_thresh"] == 0.0001
    gate = {"name": "pcb", "start_epoch": 17}
    assert scales.regularizer_start_iteration(gate, {"epochs": 24, "iterations": 2400}) == 1600
    assert scales.regularizer_start_iteration(gate, {"iterations": 120}) == 80
    assert scales.regularizer_start_iteration({"name": "pcb"}, {"iterations": 120}) == 0


def _config(**overrides):
    config = {"scale": "paper", "detector": "mask_rcnn", "backbone": "r50_fpn", "dataset": "lvis_v0.5",
              "sampler": {"name": "random"}, "head": {"name": "standard"}, "stage2": None,
              "schedule": scales.paper_schedule("2x", "mmdet", "lvis_v0.5")}
    config.update(overrides)
    return config


def test_cost_model_factors():
    base = cost.run_gpu_hours(_config())
    assert base == pytest.approx((24 * math.ceil(57263 / 16) * 16 * 0.30 + 5000 * 0.15) / 3600)
    assert cost.run_gpu_hours(_config(detector="cascade_mask_rcnn")) > base
    assert cost.run_gpu_hours(_config(backbone="x101_64x4d_fpn")) > cost.run_gpu_hours(_config(backbone="r101_fpn")) > base
    rfs = {"name": "rfs", "t": 0.001}
    assert cost.run_gpu_hours(_config(sampler=rfs, schedule=scales.paper_schedule("2x", "mmdet", "lvis_v0.5", rfs))) > base  # mmdet RFS enlarges epochs
    d2 = _config(sampler={"name": "rfs", "t": 0.001}, schedule=scales.paper_schedule("1x", "detectron2", "lvis_v0.5"))
    assert cost.images_seen(d2) == 90000 * 16  # iteration-based: no enlargement
    assert cost.run_gpu_hours(_config(stage2={"name": "crt"})) < base
    assert cost.estimate(_config())["cpu_hours"] == 0
    smoke = _config(scale="smoke", schedule=scales.smoke_schedule("2x", "torchvision", "lvis_v0.5"))
    assert cost.estimate(smoke, n_views=2) == {"gpu_hours": 0.0, "cpu_hours": round((60 * 0.9 + 120) / 3600, 4)}


def test_coco_lt_sizes_are_the_papers_and_cited():
    from ltbench.plan.cost import dataset_note
    from ltbench.plan.scales import DATASET_IMAGES, DATASET_SOURCES, paper_schedule

    assert DATASET_IMAGES["coco_lt_bags"] == {"train": 9100, "val": 5000}
    assert DATASET_IMAGES["coco_lt_simcal"] == {"train": 100000, "val": 5000}
    assert "9100 training images" in DATASET_SOURCES["coco_lt_bags"]
    assert "about 100k images" in DATASET_SOURCES["coco_lt_simcal"] and "no split" in DATASET_SOURCES["coco_lt_simcal"]
    for dataset in DATASET_IMAGES:  # every size says where it comes from
        assert dataset in DATASET_SOURCES
    # BAGS Table 6: 12 epochs of 9100 images at batch 16 = 12 x 569 iterations
    assert paper_schedule({"epochs": 12}, "mmdet", "coco_lt_bags")["iterations"] == 12 * 569
    assert dataset_note("coco_lt_bags").startswith("9100 train / 5000 val images (BAGS Supp. 7.4.1")
    assert "assumed" in dataset_note("imagenet_lt")


def test_paper_plan_text_lists_dataset_sizes(capsys):
    from ltbench.cli import main

    assert main(["plan", "tables/bags_table6.md", "--scale", "paper"]) == 0
    out = capsys.readouterr().out
    assert "dataset sizes in the cost model:" in out
    assert "coco_lt_bags: 9100 train / 5000 val images" in out


def test_train_scales_reach_the_model_block():
    default = scales.model_block("paper", "r50_fpn", "mmdet")
    assert default["min_size"] == [640, 672, 704, 736, 768, 800] and default["max_size"] == 1333
    assert scales.model_block("paper", "r50_fpn", "mmdet", 800)["min_size"] == 800
    assert scales.model_block("paper", "r50_fpn", "mmdet", [800])["min_size"] == 800
    assert scales.model_block("paper", "r50_fpn", "mmdet", [640, 800])["min_size"] == [640, 800]
    assert scales.model_block("smoke", "r50_fpn", "torchvision")["min_size"] == 96
    assert scales.model_block("smoke", "r50_fpn", "torchvision", 800)["min_size"] == 96
    assert scales.model_block("smoke", "r50_fpn", "torchvision", [640, 720, 800])["min_size"] == [77, 86, 96]


def test_bags_multiscale_rows_differ_from_single_scale_rows():
    from ltbench.plan import build_plan

    for scale in ("paper", "smoke"):
        plan = build_plan(["tables/bags_table3.md"], scale=scale)
        rows = {r.label.split(" ")[0]: r for r in plan.rows}
        ms = plan.runs[rows["(12)"].run_ids[0]].config
        ss = plan.runs[rows["(10)"].run_ids[0]].config
        assert isinstance(ms["model"]["min_size"], list) and isinstance(ss["model"]["min_size"], int)
        stage1 = plan.runs[ms["stage1"]].config  # the HTC X101-MS-DCN baseline, row (11)
        assert stage1["id"] == rows["(11)"].run_ids[0] and stage1["model"]["min_size"] == ms["model"]["min_size"]
    pcb = build_plan(["tables/pcb_table2.md"], scale="paper")
    assert all(r.config["model"]["min_size"] == [640, 672, 704, 736, 768, 800] for r in pcb.runs.values())


def test_ap_fixed_budget_per_scale() -> None:
    """Paper: Dave et al.'s 10,000 per class; smoke: the same detections per class per val image."""
    from ltbench.data.synth import PRESETS
    from ltbench.plan import scales

    assert scales.ap_fixed_k("paper") == 10_000
    assert scales.SMOKE_VAL_IMAGES == PRESETS["smoke"].val_images  # keep in step with the synthetic data
    k = scales.ap_fixed_k("smoke")
    assert k == 61  # ceil(10000 * 120 / 19809)
    assert abs(k / scales.SMOKE_VAL_IMAGES - 10_000 / 19_809) < 1 / scales.SMOKE_VAL_IMAGES


def test_rfs_epoch_estimates_come_from_the_category_image_counts():
    """``RFS_EPOCH_IMAGES`` (assumption rfs-epoch-size) is N + sum_c n_c (repeat(r_c) - 1) over LVIS v1's category
    image counts; LVIS v0.5 takes v1's enlargement factor."""
    import json

    from ltbench.paths import LVIS_SAMPLES_DIR

    source = LVIS_SAMPLES_DIR / "lvis_v1_categories.json"
    if not source.is_file():
        pytest.skip(f"{source} is not here")
    counts = [c["image_count"] for c in json.loads(source.read_text())]
    assert len(counts) == 1203
    for rounding in ("ceil", "stochastic"):
        v1 = scales.rfs_epoch_estimate(counts, 100170, 0.001, rounding)
        assert scales.RFS_EPOCH_IMAGES[("lvis_v1", 0.001, rounding)] == round(v1)
        assert scales.RFS_EPOCH_IMAGES[("lvis_v0.5", 0.001, rounding)] == round(57263 * v1 / 100170)
    # ceil repeats every oversampled image at least twice: more images than detectron2's expectation
    assert scales.RFS_EPOCH_IMAGES[("lvis_v1", 0.001, "ceil")] > scales.RFS_EPOCH_IMAGES[("lvis_v1", 0.001, "stochastic")] > 100170


def test_rfs_enlarges_epoch_schedules_only():
    rfs = {"name": "rfs", "t": 0.001}
    mm = scales.paper_schedule("2x", "mmdet", "lvis_v1", rfs)
    per_epoch = math.ceil(127402 / 16)
    assert mm["epoch_images"] == 127402 and mm["iterations"] == 24 * per_epoch and mm["steps"] == [16 * per_epoch, 22 * per_epoch]
    assert scales.paper_schedule("2x", "mmdet", "lvis_v1")["epoch_images"] == 100170
    stochastic = scales.paper_schedule({"epochs": 12}, "mmdet", "lvis_v1", {**rfs, "rounding": "stochastic"})
    assert stochastic["iterations"] == 12 * math.ceil(114868 / 16)
    assert scales.paper_schedule("1x", "detectron2", "lvis_v1", rfs)["iterations"] == 180000  # iteration based
    assert scales.paper_schedule({"iterations": 4500}, "mmdet", "lvis_v1", rfs)["iterations"] == 4500
    assert scales.epoch_images("lvis_v1", rfs, "detectron2") == 114868  # the framework's own rounding
    with pytest.raises(LtbenchError, match="no estimate of the RFS epoch of coco_lt_bags"):
        scales.paper_schedule({"epochs": 12}, "mmdet", "coco_lt_bags", rfs)
    assert scales.smoke_schedule("2x", "torchvision", "lvis_v1")["iterations"] == 60  # smoke scale: unchanged


def test_bags_and_simcal_paper_schedules_warm_up_from_a_third_and_clip_at_35():
    """Their mmdet-1.x configs (warmup_ratio 1/3, grad_clip max_norm 35); smoke keeps its own; other papers unset."""
    from ltbench.plan import build_plan

    paper = build_plan(papers=["bags", "simcal", "pcb"], scale="paper")
    smoke = build_plan(papers=["bags", "simcal"], scale="smoke")
    for row in paper.rows:
        if not row.run_ids or row.paper == "pcb":
            continue
        schedule = paper.runs[row.run_ids[0]].config["schedule"]
        if schedule["warmup_iters"]:  # SimCal's calibration trains without warm-up and clip (officially too)
            assert schedule["warmup_factor"] == pytest.approx(1 / 3) and schedule["grad_clip"] == 35, (row.paper, row.label)
    pcb = [paper.runs[r.run_ids[0]].config["schedule"] for r in paper.rows if r.paper == "pcb" and r.run_ids and not r.served_by]
    assert pcb and not any("warmup_factor" in s or "grad_clip" in s for s in pcb)
    for run in smoke.runs.values():
        assert "warmup_factor" not in run.config["schedule"]
        assert run.config["schedule"].get("grad_clip", scales.SMOKE_GRAD_CLIP) == scales.SMOKE_GRAD_CLIP  # post-hoc: none
