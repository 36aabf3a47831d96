"""Dispatch: run configs -> heads, stage-2 heads, and views (the adapters' entry points)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from ltbench.data.lvis_meta import ClassStats
from ltbench.errors import LtbenchError
from ltbench.methods import apply_view, build_stage2, head_for_run, view_probabilities
from ltbench.methods.box_head import build_box_head
from ltbench.methods.calibration import confusion_calibration, norcal
from ltbench.methods.pcb import IterativeBoxHead

SMALL = {"in_channels": 4, "pool_size": 7, "hidden": 16}
PCB_CE = {"name": "pcb", "alpha": 0.4, "momentum": 0.99, "start_epoch": 17, "statistics": "softmax_fg"}
ITERATIVE = {"name": "iterative", "steps": 3, "mlp_hidden": 512, "loss_weights": [0.2, 0.2, 0.6], "regression_step": 3, "layer_norm": False}


def run(**overrides):
    config = {
        "framework": "mmdet", "classifier": {"name": "linear"}, "loss": {"name": "ce"}, "head": {"name": "standard"},
        "regularizer": None, "stage2": None, "schedule": {"name": "2x", "epochs": 24},
    }
    config.update(overrides)
    return config


def build(name, params, background="last", num_classes=3, **stats):
    return build_box_head(name, num_classes=num_classes, background=background, num_box_deltas=4 * num_classes, **SMALL, **params, **stats)


def test_importing_ltbench_methods_registers_every_head_and_the_cli_stays_light():
    # The package imports every head (the base module box_head imports none); the CLI imports the
    # methods only inside the commands that train or predict, so `ltbench --help` stays torch-free.
    code = ("import ltbench.methods as m, ltbench.methods.dispatch as d; "
            "print(sorted({*d.LOSS_TO_HEAD.values(), *d.REGULARIZER_TO_HEAD.values(), 'iterative', 'dsn', 'pcb', 'bags_ablation'} - set(m.BOX_HEADS.names())))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    code = "import sys, ltbench.cli; print('ltbench.methods' in sys.modules or 'torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_plain_losses_map_to_part1_heads():
    assert head_for_run(run()) == ("softmax", {})
    assert head_for_run(run(loss={"name": "seesaw", "p": 0.8, "q": 2.0, "eps": 0.01})) == ("seesaw", {"p": 0.8, "q": 2.0, "eps": 0.01})
    name, params = head_for_run(run(loss={"name": "eqlv2", "gamma": 12}, classifier={"name": "cosine", "scale": 20.0}))
    assert name == "eqlv2" and params == {"gamma": 12, "classifier": {"name": "cosine", "scale": 20.0}}
    assert head_for_run(run(regularizer={"name": "label_smoothing", "epsilon": 0.1})) == ("label_smoothing", {"epsilon": 0.1})
    with pytest.raises(LtbenchError, match="unknown loss"):
        head_for_run(run(loss={"name": "softmaxx"}))
    with pytest.raises(LtbenchError, match="only defined on the softmax CE"):
        head_for_run(run(loss={"name": "seesaw"}, regularizer={"name": "label_smoothing"}))


def test_pcb_rows_of_the_spec_map_to_the_recurrent_head():
    name, params = head_for_run(run(head=ITERATIVE, regularizer=PCB_CE))
    assert name == "iterative"
    assert params == {
        "base": "softmax", "steps": 3, "step_weights": [0.2, 0.2, 0.6], "mlp_hidden": 512, "layer_norm": False,
        "pcb": {"alpha": 0.4, "momentum": 0.99, "start_epoch": 17, "gate_unit": "epoch"},
    }
    head = build(name, params, class_stats=ClassStats.from_counts(instance_counts=[3, 2, 1], image_counts=[3, 2, 1]))
    assert isinstance(head, IterativeBoxHead) and head.pcb["alpha"] == 0.4 and head.refine
    # smoke scale (iterations only) and detectron2 use the iteration gate
    smoke = run(head=ITERATIVE, regularizer=PCB_CE, schedule={"name": "2x", "iterations": 120})
    assert head_for_run(smoke)[1]["pcb"]["gate_unit"] == "iteration"
    assert head_for_run(run(framework="detectron2", head=ITERATIVE, regularizer=PCB_CE))[1]["pcb"]["gate_unit"] == "iteration"
    # PCB with the standard head = single-step PCB (Eq. 11)
    name, params = head_for_run(run(regularizer=PCB_CE))
    assert (name, params["steps"]) == ("iterative", 1)
    # DSN paradigm
    assert head_for_run(run(head={**ITERATIVE, "name": "dsn"}))[0] == "dsn"


def test_pcb_variants_and_their_statistics_are_checked():
    seesaw = run(loss={"name": "seesaw"}, head=ITERATIVE, regularizer={**PCB_CE, "alpha": 0.05, "statistics": "softmax_classes"})
    name, params = head_for_run(seesaw)
    head = build(name, params)
    assert head.variant == "seesaw" and head.pcb["alpha"] == 0.05
    with pytest.raises(LtbenchError, match="statistics"):
        head_for_run(run(loss={"name": "eqlv2"}, head=ITERATIVE, regularizer=PCB_CE))
    with pytest.raises(LtbenchError, match="regression_step"):
        head_for_run(run(head={**ITERATIVE, "regression_step": 1}))
    with pytest.raises(LtbenchError, match="unknown iterative head option"):
        head_for_run(run(head={**ITERATIVE, "refine_boxes": True}))


def test_build_stage2_for_every_method():
    base = build("softmax", {})
    counts = {"instance_counts": [100, 10, 1], "image_counts": [50, 5, 1]}
    assert type(build_stage2(run(stage2={"name": "disalign"}), base, ClassStats.from_counts(**counts))).__name__ == "DisAlignHead"
    assert build_stage2(run(stage2={"name": "simcal", "head": "2fc_rand", "epochs": 12}), build("softmax", {})).variant == "2fc_rand"
    assert build_stage2(run(stage2={"method": "simcal"}), build("softmax", {})).variant == "3fc_ft"
    bags = build_stage2(run(stage2={"name": "bags", "groups": [10, 100, 1000], "background_group": True, "others": True, "beta": 8,
                                    "epochs": 12, "trainable": "fc_cls"}), build("softmax", {}), ClassStats.from_counts(**counts))
    assert type(bags).__name__ == "GroupSoftmaxBoxHead" and bags.beta == 8.0
    assert sorted(n for n, p in bags.named_parameters() if p.requires_grad) == ["cls_score.bias", "cls_score.weight"]
    ablated = build_stage2(run(stage2={"name": "bags", "background_group": False, "others": True}), build("softmax", {}), ClassStats.from_counts(**counts))
    assert type(ablated).__name__ == "GroupSoftmaxAblationHead" and not ablated.background_group and ablated.others
    assert type(build_stage2(run(stage2={"name": "crt"}), build("softmax", {}))).__name__ == "SoftmaxBoxHead"
    assert type(build_stage2(run(stage2={"name": "lws"}), build("softmax", {}))).__name__ == "LWSHead"
    assert build_stage2(run(stage2={"name": "tau_norm", "tau": 1.0}), build("softmax", {})).tau == 1.0
    assert build_stage2(run(stage2={"name": "ncm", "feature": "roi_conv"}), build("softmax", {})).feature == "roi_conv"
    tuned = build_stage2(run(stage2={"name": "finetune", "trainable": "fc_cls"}), build("softmax", {}))
    assert sorted(n for n, p in tuned.named_parameters() if p.requires_grad) == ["cls_score.bias", "cls_score.weight"]
    focal = build_stage2(run(stage2={"name": "finetune", "loss": {"name": "focal", "gamma": 2.0}, "trainable": "fc_cls"}),
                         build("softmax", {}), ClassStats.from_counts(**counts))
    assert type(focal).__name__ == "FocalBoxHead"
    tail = build_stage2(run(stage2={"name": "finetune_tail", "tail_max_instances": 100}), build("softmax", {}))
    assert all(p.requires_grad for p in tail.parameters())
    with pytest.raises(LtbenchError, match="unknown stage-2"):
        build_stage2(run(stage2={"name": "decouple"}), base)
    with pytest.raises(LtbenchError, match="no stage2"):
        build_stage2(run(), base)


@pytest.mark.parametrize("background", ["first", "last"])
def test_apply_view_dispatches_to_the_calibrations(background):
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(4, 4, dtype=torch.float64), 1)
    m = torch.rand(3, 3, dtype=torch.float64)
    assert apply_view({"id": "plain", "name": "plain"}, probs, background) is probs
    torch.testing.assert_close(
        apply_view({"name": "cm_calibration", "source": "val"}, probs, background, {"confusion_matrix_val": m}),
        confusion_calibration(probs, m, background),
    )
    sums, count = m * 4, torch.tensor([4, 4, 4])
    torch.testing.assert_close(
        apply_view({"name": "cm_calibration", "source": "train"}, probs, background, {"cm_sum": sums, "cm_count": count}),
        confusion_calibration(probs, m, background),
    )
    ms = apply_view({"name": "ms_calibration", "source": "val"}, probs, background, {"confusion_matrix": m})
    assert float(ms.sum(1).mean()) == pytest.approx(1.0)
    torch.testing.assert_close(
        apply_view({"name": "norcal", "gamma": 0.5}, probs, background, {"image_counts": [9, 4, 1]}),
        norcal(probs, torch.tensor([9, 4, 1]), 0.5, background),
    )
    with pytest.raises(LtbenchError, match="image_counts"):
        apply_view({"name": "norcal", "gamma": 0.5}, probs, background, {})
    with pytest.raises(LtbenchError, match="unknown view"):
        apply_view({"name": "ensemble"}, probs, background, {})


def test_dual_head_and_recurrent_step_views_through_the_heads():
    torch.manual_seed(1)
    pooled = torch.randn(5, 4, 7, 7)
    recurrent = build("iterative", {})
    out = recurrent(pooled)
    step1 = view_probabilities(recurrent, out, {"name": "recurrent_step", "step": 1})
    torch.testing.assert_close(step1, recurrent.probabilities(out, step=0))
    torch.testing.assert_close(view_probabilities(recurrent, out, {"name": "plain"}), recurrent.probabilities(out))
    with pytest.raises(LtbenchError, match="1-based"):
        view_probabilities(recurrent, out, {"name": "recurrent_step", "step": 0})

    simcal = build_stage2(run(stage2={"name": "simcal", "head": "2fc_rand"}), build("softmax", {}))
    out = simcal(pooled)
    counts = {"instance_counts": [500, 150, 20]}
    got = view_probabilities(simcal, out, {"name": "dual_head", "threshold": 300, "combiner": "select"}, counts)
    original, calibrated = simcal.original_probabilities(out), simcal.probabilities(out)
    expected = original.clone()
    expected[:, 1:3] = calibrated[:, 1:3]  # classes with 150 and 20 < 300 instances (bg last)
    torch.testing.assert_close(got, expected)
    code_default = view_probabilities(simcal, out, {"name": "dual_head"}, counts)  # T = 100, replace
    expected = original.clone()
    expected[:, 2] = calibrated[:, 2]
    torch.testing.assert_close(code_default, expected)
    with pytest.raises(LtbenchError, match="combiner"):
        view_probabilities(simcal, out, {"name": "dual_head", "combiner": "max"}, counts)


def test_simcal_table4_calibration_head_trained_with_another_loss():
    from ltbench.methods.heads import ClassMarginBoxHead

    counts = {"instance_counts": [100, 10, 1], "image_counts": [50, 5, 1]}
    stage2 = {"name": "finetune", "trainable": "cls_head", "head": "3fc_ft", "loss": {"name": "class_margin", "max_margin": 0.5}}
    head = build_stage2(run(stage2=stage2), build("softmax", {}), ClassStats.from_counts(**counts))
    assert type(head).__name__ == "SimCalHead" and isinstance(head.loss_head, ClassMarginBoxHead)
    assert all(n.startswith("calibration_head.") for n, p in head.named_parameters() if p.requires_grad)
    out = head(torch.randn(4, 4, 7, 7))
    labels = torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(head.classification_losses(out, labels)["loss_cls"], head.loss_head.logits_loss(out.final_logits, labels)["loss_cls"])
    with pytest.raises(LtbenchError, match="cls_head"):
        build_stage2(run(stage2={**stage2, "trainable": "all"}), build("softmax", {}), ClassStats.from_counts(**counts))


def test_planned_pcb_start_iteration_opens_the_gate():
    config = run(head=ITERATIVE, regularizer={**PCB_CE, "start_iteration": 80}, schedule={"name": "2x", "iterations": 120})
    head = build(*head_for_run(config))
    head.confusion.seen.fill_(1)
    head.set_progress(0, 1, 79, 120)
    assert not head.gate_open()
    head.set_progress(0, 1, 80, 120)
    assert head.gate_open()


def test_every_planned_run_builds_its_head_and_stage2():
    plan_module = pytest.importorskip("ltbench.plan")
    plan = plan_module.build_plan(scale="smoke")
    counts = {"instance_counts": [1, 5, 50, 500, 5000], "image_counts": [1, 5, 50, 400, 900]}
    built = 0
    for run_plan in plan.runs.values():
        config = run_plan.config
        name, params = head_for_run(config)
        head = build(name, params, background="first", num_classes=5, class_stats=ClassStats.from_counts(**counts))
        if config.get("stage2"):
            build_stage2(config, head, ClassStats.from_counts(**counts))
        built += 1
    assert built == len(plan.runs) > 100
    for view in plan.views:
        assert view.view_config["name"] in ("plain", "cm_calibration", "ms_calibration", "norcal", "dual_head", "recurrent_step")
