"""No spec can plan a row that cannot run: every table of every paper planned at the embedded (smoke) scale,
each row's runs (with the stage-1 and init runs they start from) go to an adapter that declares their
detector, backbone, sampler, stage-2 method and view (``Adapter.unsupported``), their box head resolves to a
registered head, and the IoU types each (run, view) is evaluated for cover its row's columns."""

from __future__ import annotations

import pytest

from adapters import adapter_class
from adapters.stage1 import stage1_architecture
from ltbench.errors import LtbenchError
from ltbench.plan import build_plan, scales
from ltbench.plan.model import PLANNED, SERVED
from ltbench.spec import load_all, vocab


def _closure(plan, run_id: str) -> list[str]:
    out = [run_id]
    for parent in (plan.runs[run_id].config.get("stage1"), plan.runs[run_id].config.get("init_from")):
        if parent:
            out += _closure(plan, parent)
    return out


def _stage1_chain(plan, run_id: str) -> list[dict]:
    """The configs of the runs that made ``run_id``'s model through stage-1 links, root first."""
    chain = [plan.runs[run_id].config]
    while chain[0].get("stage1"):
        chain.insert(0, plan.runs[chain[0]["stage1"]].config)
    return chain


def _gaps(plan) -> list[str]:
    from ltbench.methods import head_for_run

    specs = load_all()
    gaps = []
    views = {(v.run_id, v.view_id): v for v in plan.views}
    for row in plan.rows:
        if row.status not in (PLANNED, SERVED):
            continue
        where = f"{row.paper} table {row.table} row {row.label!r}"
        group = specs[row.paper].table(row.table).group(row.group)
        needed = {c.key.split(".", 1)[0] for c in group.columns} & set(vocab.IOU_TYPES)
        for run_id in row.run_ids:
            view = views[(run_id, row.view_id)]
            for rid in _closure(plan, run_id):
                config = plan.runs[rid].config
                adapter = adapter_class(config["framework"])
                for gap in adapter.unsupported(config, view.view_config if rid == run_id else None):
                    gaps.append(f"{where}: run {rid} through {config['framework']}: {gap}")
                if config.get("stage1"):  # the stage-1 model it starts from can be built (keep_head names its method)
                    try:
                        stage1_architecture(config, _stage1_chain(plan, config["stage1"]))
                    except LtbenchError as exc:
                        gaps.append(f"{where}: run {rid}: stage-1 model: {exc.message}")
                try:
                    head_for_run(config)
                except Exception as exc:  # noqa: BLE001 - reported per row
                    gaps.append(f"{where}: run {rid}: box head: {exc}")
            if not needed <= set(view.iou_types):
                gaps.append(f"{where}: evaluated for {view.iou_types}, columns need {sorted(needed)}")
    return gaps


@pytest.fixture(scope="module")
def smoke_plan():
    return build_plan(scale="smoke")


def test_every_planned_row_of_every_table_can_run_at_the_embedded_scale(smoke_plan) -> None:
    assert set(smoke_plan.papers) == set(vocab.PAPERS)
    planned = [r for r in smoke_plan.rows if r.status in (PLANNED, SERVED)]
    assert len(planned) > 150
    assert _gaps(smoke_plan) == []


def test_each_detector_trains_through_the_first_smoke_framework_that_builds_it(smoke_plan) -> None:
    frameworks = {}
    for run in smoke_plan.runs.values():
        frameworks.setdefault(run.config["detector"], set()).add(run.config["framework"])
    assert frameworks == {"mask_rcnn": {"torchvision"}, "faster_rcnn": {"torchvision"}, "cascade_rcnn": {"mmdet"},
                          "cascade_mask_rcnn": {"mmdet"}, "htc": {"mmdet"}}
    # every run of one detector has the same tiny model and the scale's schedule, whichever framework
    assert {str(r.config["model"]) for r in smoke_plan.runs.values() if not r.config.get("train_scales")} >= {str(scales.SMOKE_MODEL)}
    assert all(r.config["model"]["backbone_depth"] == scales.SMOKE_MODEL["backbone_depth"] for r in smoke_plan.runs.values())


@pytest.mark.parametrize("framework", ["torchvision", "mmdet"])
def test_a_framework_override_plans_only_rows_that_can_run(framework) -> None:
    """``--config framework=X`` at smoke scale: X where its adapter builds the detector, else the default."""
    plan = build_plan(scale="smoke", framework=framework)
    assert _gaps(plan) == []
    used = {(r.config["detector"], r.config["framework"]) for r in plan.runs.values()}
    if framework == "mmdet":
        assert {fw for _, fw in used} == {"mmdet"}
    else:
        assert ("htc", "mmdet") in used and ("mask_rcnn", "torchvision") in used


def test_unsupported_names_each_gap() -> None:
    torchvision = adapter_class("torchvision")
    run = {"scale": "paper", "detector": "htc", "backbone": "x101_64x4d_fpn", "sampler": {"name": "rfs"},
           "stage2": {"name": "simcal", "sampler": {"name": "episodic"}}}
    gaps = torchvision.unsupported(run, {"name": "mystery"})
    assert [g.split(" ")[0] for g in gaps] == ["detector", "backbone", "sampler", "view"]
    assert "'htc' (the torchvision adapter builds mask_rcnn, faster_rcnn)" in gaps[0]
    # at smoke scale the tiny stand-in backbone is what is built
    assert adapter_class("mmdet").unsupported({**run, "scale": "smoke", "model": {"backbone_depth": 18},
                                               "stage2": {"name": "simcal"}}) == []
    assert "cascade_mask_rcnn" in adapter_class("mmdet").SUPPORTED_DETECTORS
    assert "cascade_mask_rcnn" not in adapter_class("detectron2").SUPPORTED_DETECTORS


def test_the_check_catches_the_rows_that_failed_before(monkeypatch) -> None:
    """With every smoke row sent to torchvision (the behaviour of issue 16) the check names the cascade and
    HTC rows; and a view evaluated for fewer IoU types than its row's columns need."""
    monkeypatch.setattr(scales, "smoke_framework", lambda detector, requested=None: "torchvision")
    plan = build_plan(targets=["tables/disalign_table7.md", "tables/bags_table3.md", "tables/bags_table6.md"], scale="smoke")
    gaps = _gaps(plan)
    assert any("disalign table 7" in g and "detector 'cascade_mask_rcnn'" in g for g in gaps)
    assert any("bags table 3" in g and "detector 'htc'" in g for g in gaps)
    # a view evaluated for fewer IoU types than its columns need
    mask_view = next(v for v in plan.views if plan.runs[v.run_id].config["detector"] == "mask_rcnn"
                     and any(c["table"] == "6" and any(k.startswith("segm.") for k in c["columns"]) for c in v.cells))
    mask_view.iou_types = ["bbox"]
    assert any("columns need ['bbox', 'segm']" in g or "columns need ['segm']" in g for g in _gaps(plan))
