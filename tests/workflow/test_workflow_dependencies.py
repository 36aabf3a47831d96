"""The DAG orders training through stage1 (three-stage chains too) and init_from, and passes views' bins."""

from __future__ import annotations

import re

import pytest

from ltbench.plan import build_plan
from ltbench import workflow as wf


@pytest.fixture(scope="module")
def dry_run():
    from support.workflow import snakemake

    proc = snakemake("--profile", "local", "-n", "-p", "--forceall", "tables/bags_table5.md", "tables/bags_table6.md")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _jobs(text: str, rule: str) -> list[str]:
    return [block for block in re.split(r"\n(?=rule \w+:)", text) if block.startswith(f"rule {rule}:")]


def test_train_jobs_wait_for_stage1_and_init_runs_and_get_their_workdirs(dry_run):
    plan = build_plan(targets=["tables/bags_table5.md", "tables/bags_table6.md"], scale="smoke")
    jobs = {re.search(r"results/runs/([^/]+)/train.done", b.split("output:", 1)[1]).group(1): b
            for b in _jobs(dry_run, "train")}
    assert set(jobs) == set(plan.runs)
    three_stage = [r for r in plan.runs.values() if r.stage1 and plan.runs[r.stage1].stage1]
    with_init = [r for r in plan.runs.values() if r.init_from]
    assert three_stage and with_init  # BAGS Table 5 (3)/(4); Table 6 initialised from LVIS runs
    for run in plan.runs.values():
        inputs = jobs[run.id].split("input:", 1)[1].split("\n", 1)[0]
        shell = jobs[run.id]
        for parent, flag in ((run.stage1, "--stage1-workdir"), (run.init_from, "--init-workdir")):
            if parent:
                assert wf.train_done(parent) in inputs, (run.id, parent)
                assert f"{flag} work/{parent}" in shell
            else:
                assert flag not in shell
    for run in three_stage:  # the chain: final <- stage 1 <- stage 0, each a marker dependency
        middle = plan.runs[run.stage1]
        middle_inputs = jobs[middle.id].split("input:", 1)[1].split("\n", 1)[0]
        assert wf.train_done(middle.stage1) in middle_inputs


def test_evaluate_gets_the_views_bins(dry_run):
    plan = build_plan(targets=["tables/bags_table5.md", "tables/bags_table6.md"], scale="smoke")
    evaluate = _jobs(dry_run, "evaluate")
    assert len(evaluate) == len({(v.run_id, v.view_id) for v in plan.views})
    for view in plan.views:
        block = next(b for b in evaluate if f"results/metrics/{view.run_id}/{view.view_id}.json" in b)
        assert f"--bins {view.bins}" in block
    assert all(v.bins in ("lvis", "coco-lt") for v in plan.views)


def test_evaluate_asks_only_for_the_iou_types_the_view_gets(dry_run):
    """Faster R-CNN views (BAGS Tables 5, 6) are evaluated for bbox alone: their detections have no masks."""
    full = build_plan(scale="smoke")  # the workflow plans every configured paper: a view's columns in all tables
    types = {(v.run_id, v.view_id): v.iou_types for v in full.views}
    asked = {}
    for block in _jobs(dry_run, "evaluate"):
        run_id, view_id = re.search(r"results/metrics/([^/\s]+)/([^/\s]+)\.json", block).groups()
        asked[(run_id, view_id)] = re.search(r"--iou-types (\S+)", block).group(1)
        assert asked[(run_id, view_id)] == ",".join(types[(run_id, view_id)])
    detectors = {full.runs[r].config["detector"]: a for (r, _), a in asked.items()}
    assert detectors["faster_rcnn"] == "bbox" and detectors["mask_rcnn"] in ("bbox,segm", "segm")
