"""Planner: rows -> deduplicated runs and views, scales, cost, cross-paper sharing."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from ltbench.errors import LtbenchError
from ltbench.plan import build_plan, parse_target
from ltbench.plan.canonical import canonical_json, view_id
from ltbench.spec import validate_spec
from support.specs import minimal_spec


@pytest.fixture(scope="module")
def pcb_plan():
    return build_plan(papers=["pcb"], scale="smoke")


def row(plan, table, label):
    found = [r for r in plan.rows if r.paper == "pcb" and r.table == table and r.label == label]
    assert len(found) == 1, (table, label, [r.label for r in plan.rows if r.table == table])
    return found[0]


def test_pcb_69_rows_on_about_30_runs(pcb_plan):
    counts = pcb_plan.counts()
    assert counts["rows"] == 69
    per_table = {t: sum(1 for r in pcb_plan.rows if r.table == t) for t in "12345678"}
    assert per_table == {"1": 6, "2": 16, "3": 14, "4": 9, "5": 3, "6": 6, "7": 6, "8": 9}
    # 20 on LVIS v0.5, 8 on v1.0 R-50 (3 of them the reproduced cited baselines of Table 2), 1 on v1.0 R-101
    assert counts["runs"] == 29
    assert counts["cited_rows"] == 13 and counts["reproduced_cited_rows"] == 3
    assert counts["served_cited_rows"] == 3 and counts["reported_only_rows"] == 7
    assert counts["stage2_runs"] == 0


def test_shared_rfs_baseline_across_tables(pcb_plan):
    rfs = {row(pcb_plan, "1", "RFS /").run_ids[0], row(pcb_plan, "2", "RFS [12] (LVIS v0.5)").run_ids[0],
           row(pcb_plan, "4", "N/A + N/A").run_ids[0], row(pcb_plan, "8", "RFS").run_ids[0]}
    assert len(rfs) == 1
    run = pcb_plan.runs[rfs.pop()]
    assert run.config["sampler"] == {"name": "rfs", "t": 0.001}
    assert run.config["head"] == {"name": "standard"} and run.config["regularizer"] is None
    assert run.tables == ["pcb/1", "pcb/2", "pcb/4", "pcb/8"]
    # views of that run: plain, CM/MS from val (Table 1), CM from train (Table 4), NorCal (Table 8)
    views = {r.view_id for r in pcb_plan.rows if r.run_ids == [run.id]}
    assert {"plain", "cm-val", "ms-val", "cm-train"} <= views
    assert any(v.startswith("norcal-grid") for v in views)


def test_alpha_zero_is_the_iterative_head_not_plain_rfs(pcb_plan):
    alpha0 = row(pcb_plan, "6", "α=0.0").run_ids
    assert alpha0 == row(pcb_plan, "4", "N/A + Iterative").run_ids
    assert alpha0 != row(pcb_plan, "4", "N/A + N/A").run_ids
    config = pcb_plan.runs[alpha0[0]].config
    assert config["regularizer"] is None and config["head"]["name"] == "iterative"


def test_pcb_main_run_shared_by_tables_2_4_5_6_7_8(pcb_plan):
    ids = {row(pcb_plan, t, label).run_ids[0] for t, label in [
        ("2", "RFS [12] + PCB (LVIS v0.5)"), ("4", "PCB + Iterative"), ("5", "γ=0.99"), ("6", "α=0.4"),
        ("7", "RFS [12] step 1"), ("8", "RFS + PCB")]}
    assert len(ids) == 1
    assert row(pcb_plan, "5", "γ=0.9").run_ids != row(pcb_plan, "5", "γ=0.99").run_ids


def test_step_views_are_views_of_table2_runs(pcb_plan):
    softmax_pcb = row(pcb_plan, "2", "Softmax + PCB (LVIS v0.5)")
    for step, expected_view in [(1, "step1"), (2, "step2"), (3, "plain")]:
        r = row(pcb_plan, "7", f"Softmax step {step}")
        assert r.run_ids == softmax_pcb.run_ids and r.view_id == expected_view


def test_table1_calibrations_are_views_of_the_base_runs(pcb_plan):
    base = row(pcb_plan, "1", "Random /")
    assert base.run_ids == row(pcb_plan, "2", "Softmax (LVIS v0.5)").run_ids
    for label, view in [("Random MS", "ms-val"), ("Random CM", "cm-val")]:
        r = row(pcb_plan, "1", label)
        assert r.run_ids == base.run_ids and r.view_id == view
    view = pcb_plan.view(base.run_ids[0], "cm-val")
    assert view.view_config == {"id": "cm-val", "name": "cm_calibration", "source": "val"}


def test_cited_rows(pcb_plan):
    served = row(pcb_plan, "3", "LVIS v0.5 R-50-FPN: EQL v2 [29]†")
    assert served.status == "served"
    assert served.run_ids == row(pcb_plan, "2", "EQL v2 [29] (LVIS v0.5)").run_ids
    loce = row(pcb_plan, "3", "LVIS v1.0 R-50-FPN: LOCE [10]†")
    assert loce.status == "reported_only" and loce.run_ids == [] and "[10] LOCE" in loce.reason
    rfs = row(pcb_plan, "2", "RFS [12] (LVIS v1.0)")
    assert rfs.cells["segm.AP"] == "23.7" and "PwB" not in rfs.cells


@pytest.mark.parametrize("base, with_pcb", [
    ("RFS [12] (LVIS v1.0)", "RFS [12] + PCB (LVIS v1.0)"),
    ("EQL v2 [29] (LVIS v1.0)", "EQL v2 [29] + PCB (LVIS v1.0)"),
    ("Seesaw [34] (LVIS v1.0)", "Seesaw [34] + PCB (LVIS v1.0)"),
])
def test_cited_v1_baselines_are_reproduced_with_pcbs_recipe(pcb_plan, base, with_pcb):
    """Table 2's copied v1.0 baselines get PCB's own recipe: the + PCB run without the head and regularizer."""
    cited, pcb = row(pcb_plan, "2", base), row(pcb_plan, "2", with_pcb)
    assert cited.status == "planned" and cited.cited["reproduce"] is True and cited.cited["source"]
    assert len(cited.run_ids) == 1 and cited.view_id == "plain"
    baseline, improved = pcb_plan.runs[cited.run_ids[0]].config, pcb_plan.runs[pcb.run_ids[0]].config
    assert baseline["dataset"] == "lvis_v1" and baseline["backbone"] == "r50_fpn"
    assert baseline["schedule"] == improved["schedule"]  # PCB's 2x, not the cited paper's schedule
    assert baseline["head"] == {"name": "standard"} and baseline["regularizer"] is None
    differing = {k for k in baseline if k != "id" and baseline[k] != improved[k]}
    assert differing == {"head", "regularizer"}


@pytest.mark.parametrize("table3, table2", [
    ("LVIS v1.0 R-50-FPN: Seesaw [34]‡", "Seesaw [34] (LVIS v1.0)"),
    ("LVIS v1.0 R-50-FPN: EQL v2 [29]†", "EQL v2 [29] (LVIS v1.0)"),
])
def test_table3_v1_r50_cited_rows_share_table2_reproduced_runs(pcb_plan, table3, table2):
    t3, t2 = row(pcb_plan, "3", table3), row(pcb_plan, "2", table2)
    assert t3.status == "served" and t3.run_ids == t2.run_ids and t3.view_id == t2.view_id
    assert {k: t2.cells[k] for k in ("segm.AP", "segm.APr", "bbox.AP")} == {
        k: t3.cells[k] for k in ("segm.AP", "segm.APr", "bbox.AP")}
    assert pcb_plan.runs[t2.run_ids[0]].tables == ["pcb/2", "pcb/3"]


def test_r101_cited_and_unmodelled_rows_stay_reported_only(pcb_plan):
    for label in ["LVIS v1.0 R-101-FPN: Seesaw [10]‡", "LVIS v1.0 R-101-FPN: EQL v2 [29]†",
                  "LVIS v0.5 R-50-FPN: BAGS [20]†", "LVIS v1.0 R-101-FPN: BAGS [20]†", "LVIS v0.5 R-50-FPN: LOCE [10]†"]:
        r = row(pcb_plan, "3", label)
        assert r.status == "reported_only" and r.run_ids == [], label


def test_reproduced_cited_row_in_a_minimal_spec():
    data = minimal_spec()
    data["tables"][0]["rows"][-1]["cited"]["reproduce"] = True
    plan = build_plan(papers=["pcb"], specs={"pcb": validate_spec(data, "pcb.yaml")})
    cited = next(r for r in plan.rows if r.label == "RFS (LVIS v1.0)")
    assert cited.status == "planned" and cited.cited["reproduce"]
    config = plan.runs[cited.run_ids[0]].config
    assert config["dataset"] == "lvis_v1" and config["sampler"] == {"name": "rfs", "t": 0.001}
    assert plan.counts()["runs"] == 3 and plan.counts()["reproduced_cited_rows"] == 1


def test_reproduce_and_served_by_together_is_an_error():
    data = minimal_spec()
    data["tables"][0]["rows"][-1]["cited"].update(
        reproduce=True, served_by={"paper": "pcb", "table": "2", "row": "Softmax", "group": "v0.5"})
    with pytest.raises(LtbenchError, match=r"rows\[2\] \(row 'RFS'.*cited: a cited row cannot both be reproduced and served"):
        validate_spec(data, "pcb.yaml")


def test_run_id_is_slug_plus_hash_of_canonical_config(pcb_plan):
    for run in pcb_plan.runs.values():
        body = {k: v for k, v in run.config.items() if k != "id"}
        digest = hashlib.sha256(canonical_json(body).encode()).hexdigest()[:8]
        assert run.id.endswith("-" + digest)
        assert all(c.isalnum() or c in ".-" for c in run.id)
        assert set(run.config) >= {"id", "scale", "framework", "detector", "backbone", "dataset", "pretrain", "sampler",
                                   "classifier", "loss", "head", "regularizer", "stage2", "stage1", "seed",
                                   "schedule", "model"}
    assert canonical_json({"b": 1.0, "a": [0.0, 0.5]}) == '{"a":[0,0.5],"b":1}'


def test_smoke_scale_schedule_and_pcb_gate(pcb_plan):
    config = pcb_plan.runs[row(pcb_plan, "2", "RFS [12] + PCB (LVIS v0.5)").run_ids[0]].config
    assert config["framework"] == "torchvision" and config["scale"] == "smoke"
    schedule = config["schedule"]
    assert schedule["iterations"] == 60 and schedule["steps"] == [40, 55] and schedule["batch_size"] == 4
    assert schedule["grad_clip"] == 10.0
    assert config["regularizer"]["start_iteration"] == 40  # epoch 17 of 24, 1-based -> 16/24 of the schedule
    assert config["model"]["min_size"] == 96 and config["model"]["backbone_depth"] == 18


def test_paper_scale_schedules_and_framework_override():
    plan = build_plan(["tables/pcb_table2.md"], scale="paper")
    rfs_pcb = next(r for r in plan.rows if r.label == "RFS [12] + PCB (LVIS v0.5)")
    config = plan.runs[rfs_pcb.run_ids[0]].config
    per_epoch = math.ceil(72830 / 16)  # an epoch of mmdet's ceil RFS: the plan's estimate of sum_I ceil(r(I))
    assert config["framework"] == "mmdet"
    assert config["schedule"]["epochs"] == 24 and config["schedule"]["iterations"] == 24 * per_epoch
    assert config["regularizer"]["start_iteration"] == 16 * per_epoch
    assert "rfs-epoch-size" in rfs_pcb.assumptions
    d2 = build_plan(["tables/pcb_table2.md"], scale="paper", framework="detectron2")
    v1 = next(r for r in d2.rows if r.label == "Softmax (LVIS v1.0)")
    d2_config = d2.runs[v1.run_ids[0]].config
    assert d2_config["framework"] == "detectron2"
    # the paper's 24 mmdet epochs, not detectron2's 2x (360k iterations): assumption forced-framework-schedule
    assert d2_config["schedule"]["iterations"] == 24 * math.ceil(100170 / 16)
    assert "forced-framework-schedule" in v1.assumptions
    assert set(d2.runs).isdisjoint(plan.runs)  # the framework is part of the identity of a run


def test_cost_model_orders_runs_sensibly():
    plan = build_plan(["tables/pcb_table3.md"], scale="paper")
    by_label = {r.label: r for r in plan.rows}
    r50 = plan.runs[by_label["LVIS v1.0 R-50-FPN: Seesaw + PCB"].run_ids[0]]
    r101 = plan.runs[by_label["LVIS v1.0 R-101-FPN: Seesaw + PCB"].run_ids[0]]
    v05 = plan.runs[by_label["LVIS v0.5 R-50-FPN: Seesaw + PCB"].run_ids[0]]
    assert 0 < v05.gpu_hours < r50.gpu_hours < r101.gpu_hours
    assert 50 < v05.gpu_hours < 1000  # a 2x LVIS Mask R-CNN is days on 8 GPUs, not minutes or months
    assert plan.gpu_hours == pytest.approx(sum(r.gpu_hours for r in plan.runs.values()), abs=0.1)
    assert plan.cpu_hours == 0


def test_targets():
    assert parse_target("tables/pcb_table2.md") == ("pcb", "2")
    assert parse_target("tables/simcal_table6.tex") == ("simcal", "6")
    assert parse_target("tables/pcb.md") == ("pcb", None)
    assert parse_target("tables/audit.md") == (None, None)
    with pytest.raises(LtbenchError, match="did you mean 'pcb'"):
        parse_target("tables/pbc_table2.md")
    with pytest.raises(LtbenchError, match="cannot read target"):
        parse_target("results/x.parquet")
    with pytest.raises(LtbenchError, match="has no table '9'"):
        build_plan(["tables/pcb_table9.md"])
    only2 = build_plan(["tables/pcb_table2.md"])
    assert {r.table for r in only2.rows} == {"2"} and len(only2.rows) == 16


def test_stage2_runs_depend_on_stage1_and_seeds_multiply():
    data = minimal_spec()
    data["defaults"]["seeds"] = 3
    data["tables"][0]["rows"].append({
        "label": "cRT", "group": "v0.5", "run": {"stage2": {"name": "crt", "schedule": {"epochs": 12}}},
        "reported": {"segm.AP": "22.0"}})
    data["tables"][0]["rows"].append({
        "label": "cRT from RFS", "group": "v0.5", "run": {"stage2": {"name": "crt", "schedule": {"epochs": 12}}},
        "stage1": {"sampler": {"name": "rfs"}}, "reported": {"segm.AP": "22.5"}})
    spec = validate_spec(data, "pcb.yaml")
    plan = build_plan(papers=["pcb"], specs={"pcb": spec})
    crt = next(r for r in plan.rows if r.label == "cRT (LVIS v0.5)")
    softmax = next(r for r in plan.rows if r.label == "Softmax (LVIS v0.5)")
    assert len(crt.run_ids) == 3
    for seed, rid in enumerate(crt.run_ids):
        stage2 = plan.runs[rid].config
        stage1 = plan.runs[stage2["stage1"]].config
        assert stage2["seed"] == stage1["seed"] == seed
        assert stage2["stage2"] == {"name": "crt"} and stage1["stage2"] is None
        assert stage1["id"] == softmax.run_ids[seed]  # the plain Softmax run is the stage-1 run
        assert stage2["schedule"]["iterations"] == 30  # 12 epochs -> 1 unit -> 30 smoke iterations
    from_rfs = next(r for r in plan.rows if r.label == "cRT from RFS (LVIS v0.5)")
    stage1 = plan.runs[plan.runs[from_rfs.run_ids[0]].stage1].config
    assert stage1["sampler"] == {"name": "rfs", "t": 0.001}
    table = plan.tables_index()["pcb/2"]
    assert table["runs"].index(stage1["id"]) < table["runs"].index(from_rfs.run_ids[0])
    # 3 seeds x (Softmax = cRT's stage 1, RFS = RFS CM's run = cRT-from-RFS's stage 1, two stage-2 runs);
    # the cited row has none
    assert plan.counts()["runs"] == 3 * 4
    assert plan.counts()["stage2_runs"] == 6


def _two_paper_specs(simcal_view=None, disalign_run=None):
    simcal = minimal_spec()
    simcal["paper"] = "simcal"
    simcal["tables"][0]["id"] = "3"
    simcal["tables"][0]["rows"] = [{
        "label": "r50 cal dual", "group": "v0.5",
        "run": {"schedule": "1x", "stage2": {"name": "simcal", "schedule": {"epochs": 12}}},
        "view": {"name": "dual_head", "threshold": 300, "combiner": "select"}, "reported": {"segm.AP": "23.4"}}]
    disalign = minimal_spec()
    disalign["paper"] = "disalign"
    disalign["defaults"]["run"]["framework"] = "detectron2"
    disalign["tables"][0]["id"] = "8"
    cited = {"label": "SimCal[38]", "group": "v0.5", "reported": {"segm.AP": "23.4"},
             "cited": {"source": "[38]", "served_by": {"paper": "simcal", "table": "3", "row": "r50 cal dual"}}}
    if disalign_run:
        cited["run"] = disalign_run
    if simcal_view:
        cited["view"] = simcal_view
    disalign["tables"][0]["rows"].append(cited)
    return {"simcal": validate_spec(simcal, "simcal.yaml"), "disalign": validate_spec(disalign, "disalign.yaml")}


def test_cross_paper_cited_row_served_by_the_other_papers_run():
    specs = _two_paper_specs(disalign_run={"stage2": {"name": "simcal"}})
    plan = build_plan(papers=["disalign"], specs=specs)
    cited = next(r for r in plan.rows if r.label == "SimCal[38] (LVIS v0.5)")
    assert cited.status == "served" and cited.view_id == "dual-t300-select"
    run = plan.runs[cited.run_ids[0]]
    assert run.config["stage2"]["name"] == "simcal" and run.stage1 in plan.runs
    assert any(c["paper"] == "disalign" and c["table"] == "8" for c in run.cells)
    # both papers planned: the cited row adds no run of its own
    both = build_plan(papers=["disalign", "simcal"], specs=specs)
    assert both.counts()["runs"] == plan.counts()["runs"]


def test_cross_paper_disagreement_is_reported_only_with_the_differences():
    specs = _two_paper_specs(disalign_run={"stage2": {"name": "disalign"}})
    cited = next(r for r in build_plan(papers=["disalign"], specs=specs).rows if r.label == "SimCal[38] (LVIS v0.5)")
    assert cited.status == "reported_only" and "stage2.name: 'disalign' != 'simcal'" in cited.reason
    specs = _two_paper_specs(simcal_view={"name": "dual_head", "threshold": 100, "combiner": "select"})
    cited = next(r for r in build_plan(papers=["disalign"], specs=specs).rows if r.label == "SimCal[38] (LVIS v0.5)")
    assert cited.status == "reported_only" and "view.threshold: 100 != 300" in cited.reason


def test_served_by_unknown_row_is_a_clear_error():
    specs = _two_paper_specs()
    specs["disalign"].table("8").rows[-1].cited = type(specs["disalign"].table("8").rows[-1].cited)(
        "[38]", "", {"paper": "simcal", "table": "3", "row": "r50 cal duel"})
    with pytest.raises(LtbenchError, match=r"served_by row 'r50 cal duel' not found.*did you mean 'r50 cal dual'"):
        build_plan(papers=["disalign"], specs=specs)


def test_real_specs_cross_paper_sharing():
    """DisAlign Table 8's SimCal row is SimCal Table 3's r50 calibrated dual-head (mask) row."""
    plan = build_plan(papers=["disalign"], scale="smoke")
    cited = next(r for r in plan.rows if r.paper == "disalign" and r.table == "8" and "SimCal" in r.label)
    assert cited.status == "served", cited.reason
    simcal = build_plan(["tables/simcal_table3.md"])
    served = next(r for r in simcal.rows if r.label.startswith("r50 cal dual") and r.group == "mask")
    assert cited.run_ids == served.run_ids and cited.view_id == served.view_id


def test_plan_all_is_json_serializable():
    # (how long planning takes is a benchmark's question: benchmarks/plan_speed.py)
    plan = build_plan(scale="paper")
    data = json.loads(json.dumps(plan.to_json()))
    assert data["runs"] == len(data["run_list"]) and data["rows"] == len(data["row_list"]) >= 69
    assert data["papers"] == ["pcb", "disalign", "bags", "simcal"]
    assert data["gpu_hours"] > 0
    for run in data["run_list"]:
        if run["stage1"]:
            assert run["stage1"] in {r["id"] for r in data["run_list"]}


def test_view_ids_are_filename_safe_and_distinct():
    ids = {view_id(v) for v in [
        {"name": "plain"}, {"name": "cm_calibration", "source": "val"}, {"name": "cm_calibration", "source": "train"},
        {"name": "norcal", "gamma": 0.5}, {"name": "norcal", "gamma_grid": [0.1, 0.2]},
        {"name": "norcal", "gamma_grid": [0.1, 0.3]}, {"name": "recurrent_step", "step": 1},
        {"name": "dual_head", "threshold": 300, "combiner": "replace"}]}
    assert len(ids) == 8 and all(c.isalnum() or c in ".-" for i in ids for c in i)


def test_served_by_a_cited_row_is_refused():
    specs = _two_paper_specs()
    simcal_row = specs["simcal"].table("3").rows[0]
    simcal_row.cited = type(specs["disalign"].table("8").rows[-1].cited)("[x]", "", None)
    cited = next(r for r in build_plan(papers=["disalign"], specs=specs).rows if r.label == "SimCal[38] (LVIS v0.5)")
    assert cited.status == "reported_only" and "itself a cited row" in cited.reason


def test_tables_index_lists_stage1_before_stage2_and_costs():
    plan = build_plan(["tables/pcb_table2.md"], scale="paper")
    entry = plan.tables_index()["pcb/2"]
    assert len(entry["runs"]) == 16 and len(entry["views"]) == 16
    assert entry["gpu_hours"] == pytest.approx(sum(plan.runs[r].gpu_hours for r in entry["runs"]), abs=0.1)


def test_run_ids_match_the_store_contract_check():
    """The store re-derives hash8 with a plain sorted-keys json.dumps: emitted configs must agree."""
    from ltbench.store.records import run_id_matches

    for scale in ("smoke", "paper"):
        plan = build_plan(scale=scale)
        assert all(run_id_matches(run.config) for run in plan.runs.values())
