"""Named assumptions whose choice a machine can check are what the planned run and view configs do.

Each check reads the resolved (run config, view config) of every planned row the assumption applies to (the
row's or its table's ``assumptions:``, or the harness assumptions the planner lists on the row) and returns
None (nothing to check on this row), True or False. Every check must have checked some row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from ltbench.methods import head_for_run
from ltbench.plan import build_plan, scales
from ltbench.spec import load_all

Check = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], "bool | None"]


def _dual_head(threshold: float) -> Check:
    """The dual head at ``threshold`` with the paper's rule N_z <= T (simcal-dual-t, simcal-cocolt)."""

    def check(run: dict, view: dict, context: dict) -> bool | None:
        if view["name"] != "dual_head" or "threshold" not in view:
            return None
        return view["threshold"] == threshold and view.get("inclusive") is True

    return check


def _pcb_start(run: dict, view: dict, context: dict) -> bool | None:
    """pcb-start-epoch: 1-based start_epoch 17 of 24 -> the gate opens at 16/24 of the run's iterations, in
    iterations, whatever the framework (the head reads the plan's start_iteration)."""
    reg = run.get("regularizer") or {}
    if reg.get("name") != "pcb":
        return None
    schedule = run["schedule"]
    epochs = schedule.get("epochs", 24)
    expected = round((reg["start_epoch"] - 1) / epochs * schedule["iterations"])
    _, params = head_for_run(run)
    return (reg["start_epoch"] == 17 and reg["start_iteration"] == expected
            and params["pcb"]["gate_unit"] == "iteration" and params["pcb"]["start_iteration"] == expected)


def _layer_norm(run: dict, view: dict, context: dict) -> bool | None:
    """pcb-eqlv2-layernorm: LayerNorm before MLP_cls on EQL v2 + PCB rows only."""
    if (run.get("regularizer") or {}).get("name") != "pcb":
        return None
    return (run["head"].get("layer_norm") is True) == ((run.get("loss") or {}).get("name") == "eqlv2")


def _rfs_epoch(run: dict, view: dict, context: dict) -> bool | None:
    """rfs-epoch-size: epochs of the RFS epoch estimate (the paper framework's rounding), LR steps the same epochs."""
    schedule = run["schedule"]
    if "epochs" not in schedule or (run.get("sampler") or {}).get("name") != "rfs" or run.get("stage2"):
        return None
    rounding = scales.sampler_rounding(run["sampler"], context["paper_framework"])
    epoch = scales.RFS_EPOCH_IMAGES[(run["dataset"], run["sampler"]["t"], rounding)]
    per_epoch = math.ceil(epoch / schedule["batch_size"])
    return (schedule["epoch_images"] == epoch and schedule["iterations"] == round(schedule["epochs"] * per_epoch)
            and schedule["steps"] == [round(s * per_epoch) for s in schedule["steps_epochs"]])


def _forced_schedule(run: dict, view: dict, context: dict) -> bool | None:
    """forced-framework-schedule: the forced run trains the paper-framework run's schedule and PCB start."""
    paper = context["paper_run"]
    if paper is None:
        return None
    return (run["framework"] != paper["framework"] and run["schedule"] == paper["schedule"]
            and run.get("regularizer") == paper.get("regularizer"))


CHECKS: dict[str, Check] = {
    "simcal-dual-t": _dual_head(300),
    "simcal-cocolt": _dual_head(400),
    "pcb-start-epoch": _pcb_start,
    "pcb-eqlv2-layernorm": _layer_norm,
    "rfs-epoch-size": _rfs_epoch,
    "forced-framework-schedule": _forced_schedule,
}


@pytest.fixture(scope="module")
def specs():
    return load_all()


def _rows(plan: Any, specs: dict) -> list[tuple[Any, set[str]]]:
    """Planned rows with the assumptions that apply to them (row, table and the planner's harness ones)."""
    out = []
    for row in plan.rows:
        if row.run_ids and row.view_id:
            out.append((row, set(row.assumptions) | set(specs[row.paper].table(row.table).assumptions)))
    return out


@pytest.mark.parametrize("framework", [None, "detectron2", "torchvision"])
def test_machine_checkable_assumptions_are_reflected_in_run_and_view_configs(specs, framework):
    paper_plan = build_plan(scale="paper")
    plan = paper_plan if framework is None else build_plan(scale="paper", framework=framework)
    paper_rows = {(r.paper, r.table, r.group, r.row_id): r for r in paper_plan.rows}
    views = {(v.run_id, v.view_id): v.view_config for v in plan.views}
    checked: dict[str, int] = {name: 0 for name in CHECKS}
    failures = []
    for row, assumptions in _rows(plan, specs):
        paper_row = paper_rows[(row.paper, row.table, row.group, row.row_id)]
        for seed, run_id in enumerate(row.run_ids):
            run = plan.runs[run_id].config
            paper_run = paper_plan.runs[paper_row.run_ids[seed]].config if framework else None
            served = specs[row.served_by.split("/")[0]] if row.served_by else specs[row.paper]
            context = {"paper_run": paper_run, "paper_framework": served.defaults_run["framework"]}
            for name in assumptions & set(CHECKS):
                verdict = CHECKS[name](run, views[(run_id, row.view_id)], context)
                if verdict is None:
                    continue
                checked[name] += 1
                if not verdict:
                    failures.append(f"{row.paper} table {row.table} {row.label!r}: {name}")
    assert not failures, failures
    expected = {name for name in CHECKS if name != "forced-framework-schedule" or framework}
    assert {name for name, n in checked.items() if n} == expected, checked


def test_forced_framework_and_rfs_epoch_assumptions_are_listed_where_they_apply():
    forced = build_plan(["tables/pcb_table2.md"], scale="paper", framework="detectron2")
    planned = [r for r in forced.rows if r.run_ids]
    assert planned and all("forced-framework-schedule" in r.assumptions for r in planned)
    same = build_plan(["tables/pcb_table2.md"], scale="paper", framework="mmdet")  # the paper's own: nothing forced
    assert not any("forced-framework-schedule" in r.assumptions for r in same.rows)
    for row in planned:
        rfs = forced.runs[row.run_ids[0]].config["sampler"]["name"] == "rfs"
        assert ("rfs-epoch-size" in row.assumptions) == rfs
    smoke = build_plan(["tables/pcb_table2.md"], scale="smoke", framework="mmdet")
    assert not any({"rfs-epoch-size", "forced-framework-schedule"} & set(r.assumptions) for r in smoke.rows)
    assert set(scales.HARNESS_ASSUMPTIONS) == {"rfs-epoch-size", "forced-framework-schedule",
                                               "torchvision-box-loss", "box-head-fc-init", "mini-one-dataset",
                                               "mini-rfs-threshold"}


def test_mini_scale_trains_each_v05_row_as_the_v1_run_and_says_so():
    smoke = build_plan(["tables/pcb_table2.md"], scale="smoke")
    mini = build_plan(["tables/pcb_table2.md"], scale="mini")
    assert len(smoke.runs) == 16 and len(mini.runs) == 8  # the v0.5 and v1.0 groups share their 8 runs
    assert {run.config["dataset"] for run in mini.runs.values()} == {"lvis_v1"}
    by_label = {row.label: row for row in mini.rows}
    assert by_label["Softmax (LVIS v0.5)"].run_ids == by_label["Softmax (LVIS v1.0)"].run_ids
    assert all("mini-one-dataset" in row.assumptions for row in mini.rows if row.run_ids)
    assert not any("mini-one-dataset" in row.assumptions for row in smoke.rows)
    # the mini model: anchors for its small objects, the synthetic backbone's batch and a converging schedule
    config = next(iter(mini.runs.values())).config
    assert config["model"]["anchor_sizes"] == [8, 16, 32, 64, 128]
    assert config["schedule"]["batch_size"] == scales.MINI_BATCH and config["schedule"]["iterations"] == 200
    assert config["schedule"]["lr"] == scales.MINI_LR


def test_mini_scale_keeps_the_rfs_threshold_in_images_and_says_so():
    """t = 0.001 of 600 synthetic images would repeat nothing: at mini scale t x 100,170 / 600 (LVIS v1's count)."""
    smoke = build_plan(["tables/pcb_table2.md"], scale="smoke")
    mini = build_plan(["tables/pcb_table2.md"], scale="mini")
    for plan, t in ((smoke, 0.001), (mini, round(0.001 * 100170 / 600, 6))):
        rfs = [run.config["sampler"] for run in plan.runs.values() if (run.config["sampler"] or {}).get("name") == "rfs"]
        assert rfs and all(s["t"] == pytest.approx(t) for s in rfs)
    for row in mini.rows:
        if row.run_ids:
            uses_rfs = (mini.runs[row.run_ids[0]].config["sampler"] or {}).get("name") == "rfs"
            assert ("mini-rfs-threshold" in row.assumptions) == uses_rfs, row.label
    assert not any("mini-rfs-threshold" in row.assumptions for row in smoke.rows)
    assert scales.mini_sampler({"name": "random"}, "lvis_v1") == {"name": "random"}
    assert scales.mini_sampler(None, "lvis_v1") is None


def test_torchvision_box_loss_and_fc_init_are_listed_where_they_apply():
    names = {"torchvision-box-loss"}
    for plan in (build_plan(["tables/pcb_table2.md"], scale="smoke"),
                 build_plan(["tables/pcb_table2.md"], scale="paper", framework="torchvision"),
                 build_plan(["tables/pcb_table2.md"], scale="paper")):
        for row in plan.rows:
            if row.run_ids:
                torchvision = plan.runs[row.run_ids[0]].config["framework"] == "torchvision"
                assert (names <= set(row.assumptions)) == torchvision, (row.label, row.assumptions)
                assert "box-head-fc-init" in row.assumptions  # ltbench's own BoxHead in every framework
