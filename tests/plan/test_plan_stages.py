"""Planner: training stages (three-stage chains, post-hoc stage 2), pretraining from another row, instance
bins and seed aggregation."""

from __future__ import annotations

import copy
import json

import pytest

from ltbench.errors import LtbenchError
from ltbench.plan import build_plan
from ltbench.spec import validate_spec
from support.specs import minimal_spec


# ---- three training stages (NOTES item 5) and post-hoc stage 2 (NOTES item 10) -----------------------
@pytest.fixture(scope="module")
def bags_plan():
    return build_plan(["tables/bags_table5.md", "tables/bags_table1.md"], scale="smoke")


def _bags_row(plan, table, label_start):
    found = [r for r in plan.rows if r.paper == "bags" and r.table == table and r.label.startswith(label_start)]
    assert len(found) == 1, (table, label_start)
    return found[0]


def test_bags_table5_three_stages_share_the_bags_run(bags_plan):
    """Rows (3)/(4) fine-tune Table 5 (1)'s BAGS model: one BAGS run, itself after the baseline."""
    bags_run = _bags_row(bags_plan, "5", "(1)").run_ids[0]
    baseline = _bags_row(bags_plan, "1", "(1)").run_ids[0]
    assert bags_plan.runs[bags_run].stage1 == baseline
    assert bags_plan.runs[baseline].stage1 is None
    for label in ("(3)", "(4)"):
        final = bags_plan.runs[_bags_row(bags_plan, "5", label).run_ids[0]]
        assert final.config["stage2"]["name"] == "finetune" and final.stage1 == bags_run
    same_name = [r for r in bags_plan.runs.values()
                 if (r.config["stage2"] or {}).get("name") == "bags" and r.config["stage2"].get("beta") == 1
                 and r.config["stage2"].get("trainable") == "fc_cls"]
    assert [r.id for r in same_name] == [bags_run]  # no duplicate without its dependency
    order = bags_plan.tables_index()["bags/5"]["runs"]
    assert order.index(baseline) < order.index(bags_run) < order.index(_bags_row(bags_plan, "5", "(3)").run_ids[0])


def test_three_stage_chain_in_a_minimal_spec_with_seeds():
    data = minimal_spec()
    data["defaults"]["seeds"] = 2
    bags = {"name": "bags", "beta": 1, "schedule": {"epochs": 12}}
    data["tables"][0]["rows"] += [
        {"label": "BAGS", "group": "v0.5", "run": {"stage2": bags}, "reported": {"segm.AP": "23.0"}},
        {"label": "tune", "group": "v0.5", "run": {"stage2": {"name": "finetune", "schedule": {"epochs": 12}}},
         "stage1": {"stage2": bags}, "reported": {"segm.AP": "23.1"}}]
    plan = build_plan(papers=["pcb"], specs={"pcb": validate_spec(data, "pcb.yaml")})
    softmax = next(r for r in plan.rows if r.label == "Softmax (LVIS v0.5)").run_ids
    bags_ids = next(r for r in plan.rows if r.label == "BAGS (LVIS v0.5)").run_ids
    tune_ids = next(r for r in plan.rows if r.label == "tune (LVIS v0.5)").run_ids
    for seed in range(2):
        tune = plan.runs[tune_ids[seed]].config
        assert tune["seed"] == seed and tune["stage1"] == bags_ids[seed]
        assert plan.runs[bags_ids[seed]].config["stage1"] == softmax[seed]
        assert plan._with_dependencies(tune_ids[seed]) == [softmax[seed], bags_ids[seed], tune_ids[seed]]
    assert plan.counts()["stage2_runs"] == 4  # 2 seeds x (BAGS, fine-tune); no stage-1 BAGS duplicate


def test_post_hoc_stage2_runs_train_nothing():
    plan = build_plan(["tables/bags_table1.md"], scale="paper")
    by_method = {}
    for run in plan.runs.values():
        if run.config["stage2"]:
            by_method.setdefault(run.config["stage2"]["name"], []).append(run)
    for name in ("tau_norm", "ncm"):
        for run in by_method[name]:
            assert run.config["schedule"]["iterations"] == 0 and run.config["schedule"]["name"] == "post_hoc"
    tau = by_method["tau_norm"][0]
    views = sum(1 for v in plan.views if v.run_id == tau.id)
    from ltbench.plan import cost
    assert tau.gpu_hours == pytest.approx(views * 5000 * cost.EVAL_SECONDS_PER_IMAGE / 3600, abs=0.01)  # evaluation only
    ncm = by_method["ncm"][0]
    assert 0 < ncm.gpu_hours < by_method["bags"][0].gpu_hours / 5  # one forward pass over train, no training
    assert tau.gpu_hours < ncm.gpu_hours


def test_post_hoc_stage2_with_a_schedule_is_an_error():
    data = minimal_spec()
    data["tables"][0]["rows"].append({"label": "tau", "group": "v0.5",
                                      "run": {"stage2": {"name": "tau_norm", "schedule": {"epochs": 12}}},
                                      "reported": {"segm.AP": "20.0"}})
    with pytest.raises(LtbenchError, match=r"row 'tau \(LVIS v0.5\)'.*stage2.schedule.*trains nothing"):
        build_plan(papers=["pcb"], specs={"pcb": validate_spec(data, "pcb.yaml")})


# ---- pretrain: {from: {paper, table, row}} (NOTES item 6) ------------------------------------------
def test_bags_coco_lt_baselines_are_initialised_from_the_lvis_runs():
    plan = build_plan(papers=["bags"], scale="smoke")
    table1 = _bags_row(plan, "1", "(1) R50-FPN").run_ids[0]
    table3 = _bags_row(plan, "3", "(7) Mask R-CNN R50").run_ids[0]
    faster = plan.runs[_bags_row(plan, "6", "Faster R-CNN").run_ids[0]]
    mask = plan.runs[_bags_row(plan, "6", "Mask R-CNN segm").run_ids[0]]
    assert faster.init_from == table1 and mask.init_from == table3
    assert faster.config["pretrain"] == "lvis" and faster.config["dataset"] == "coco_lt_bags"
    ours = plan.runs[_bags_row(plan, "6", "Ours (Mask R-CNN segm)").run_ids[0]]
    assert ours.stage1 == mask.id and "init_from" not in ours.config  # stage 2 starts from its stage-1 run
    runs = plan.tables_index()["bags/6"]["runs"]
    assert runs.index(table3) < runs.index(mask.id) < runs.index(ours.id)
    assert "bags/1" in plan.runs[table1].tables and "bags/6" in plan.runs[table1].tables
    # planning Table 6 alone brings the LVIS runs in as dependencies
    alone = build_plan(["tables/bags_table6.md"], scale="smoke")
    assert {table1, table3} <= set(alone.runs) and alone.counts()["runs"] == 6
    data = json.loads(json.dumps(alone.to_json()))
    assert {r["init_from"] for r in data["run_list"]} == {None, table1, table3}


def _pretrain_spec(ref, extra_rows=()):
    data = minimal_spec()
    data["tables"][0]["rows"].append({"label": "init", "group": "v0.5", "run": {"pretrain": {"from": ref}},
                                      "reported": {"segm.AP": "20.0"}})
    data["tables"][0]["rows"] += list(extra_rows)
    return {"pcb": validate_spec(data, "pcb.yaml")}


def test_pretrain_from_another_row_in_a_minimal_spec():
    specs = _pretrain_spec({"paper": "pcb", "table": "2", "row": "RFS CM", "group": "v0.5"})
    plan = build_plan(papers=["pcb"], specs=specs)
    init = next(r for r in plan.rows if r.label == "init (LVIS v0.5)")
    source = next(r for r in plan.rows if r.label == "RFS CM (LVIS v0.5)")
    assert plan.runs[init.run_ids[0]].init_from == source.run_ids[0]
    assert plan.runs[init.run_ids[0]].config["pretrain"] == "lvis"


@pytest.mark.parametrize("ref, needle", [
    ({"paper": "pcb", "table": "2", "row": "RFS CN", "group": "v0.5"}, "row 'RFS CN' not found.*did you mean 'RFS CM'"),
    ({"paper": "pcb", "table": "9", "row": "RFS CM"}, "pretrain.from names 'pcb' table '9'"),
    ({"paper": "pcb", "table": "2", "row": "RFS", "group": "v1.0"}, "has no run of its own"),
    ({"paper": "pcb", "table": "2", "row": "init", "group": "v0.5"}, "pretrain.from cycle"),
])
def test_bad_pretrain_sources_are_clear_errors(ref, needle):
    with pytest.raises(LtbenchError, match=needle) as info:
        build_plan(papers=["pcb"], specs=_pretrain_spec(ref))
    assert "table 2, row" in str(info.value)


def test_pretrain_cycle_between_two_rows():
    other = {"label": "other", "group": "v0.5", "reported": {"segm.AP": "20.0"},
             "run": {"pretrain": {"from": {"paper": "pcb", "table": "2", "row": "init", "group": "v0.5"}}}}
    specs = _pretrain_spec({"paper": "pcb", "table": "2", "row": "other", "group": "v0.5"}, [other])
    with pytest.raises(LtbenchError, match=r"cycle: pcb table 2 row v0.5/init -> pcb table 2 row v0.5/other -> "):
        build_plan(papers=["pcb"], specs=specs)


def test_pretrain_reference_schema_error():
    data = minimal_spec()
    data["tables"][0]["rows"][0]["run"] = {"pretrain": {"from": {"paper": "pcb", "row": "x"}}}
    with pytest.raises(LtbenchError, match=r"rows\[0\].*run.pretrain"):
        validate_spec(data, "pcb.yaml")


# ---- instance bins (NOTES item 7) and seed aggregation (NOTES item 8) -----------------------------
def test_instance_bins_per_dataset_and_table():
    plan = build_plan(papers=["simcal", "bags"], scale="smoke")
    views = {(v.run_id, v.view_id): v for v in plan.views}
    for prow in plan.rows:
        if not prow.run_ids:
            continue
        view = views[(prow.run_ids[0], prow.view_id)]
        expected = [20, 400, 8000] if (prow.paper, prow.table) == ("simcal", "7") else [10, 100, 1000]
        assert prow.instance_bins == view.instance_bins == expected, (prow.paper, prow.table, prow.label)
        assert view.bins == ("coco-lt" if expected[0] == 20 else "lvis")
    data = json.loads(json.dumps(plan.to_json()))
    assert {v["bins"] for v in data["view_list"]} == {"lvis", "coco-lt"}


def test_instance_bins_conflict_and_validation():
    data = minimal_spec()
    data["tables"].append(copy.deepcopy(data["tables"][0]))
    data["tables"][1]["id"] = "3"
    data["tables"][1]["instance_bins"] = [20, 400, 8000]
    with pytest.raises(LtbenchError, match=r"table 3, row 'Softmax \(LVIS v0.5\)': instance_bins.*\[10, 100, 1000\]"):
        build_plan(papers=["pcb"], specs={"pcb": validate_spec(data, "pcb.yaml")})
    data["tables"][1]["instance_bins"] = [400, 20]
    with pytest.raises(LtbenchError, match=r"tables\[1\] \(table 3\).instance_bins.*not increasing"):
        validate_spec(data, "pcb.yaml")
    data["tables"][1]["instance_bins"] = [10, 100, 1000]  # the default edges, stated: no conflict
    plan = build_plan(papers=["pcb"], specs={"pcb": validate_spec(data, "pcb.yaml")})
    assert all(v.bins == "lvis" for v in plan.views)


def test_seed_aggregate_rules():
    simcal = build_plan(papers=["simcal"], scale="smoke")
    table3 = [r for r in simcal.rows if r.table == "3" and r.run_ids]
    assert {r.group for r in table3} >= {"bbox", "mask"}
    assert all(r.seed_aggregate == {"rule": "median_run", "by": "segm.AP"} for r in table3)  # one seed per run
    assert all(len(r.run_ids) == 3 for r in table3)
    pcb = build_plan(["tables/pcb_table2.md"])
    assert all(r.seed_aggregate == {"rule": "mean"} for r in pcb.rows)
    data = minimal_spec()
    data["defaults"]["seed_aggregate"] = {"rule": "median_run"}
    data["tables"][0]["rows"][1]["seed_aggregate"] = {"rule": "median", "by": "segm.AP"}
    plan = build_plan(papers=["pcb"], specs={"pcb": validate_spec(data, "pcb.yaml")})
    by_label = {r.label: r.seed_aggregate for r in plan.rows}
    assert by_label["Softmax (LVIS v0.5)"] == {"rule": "median_run", "by": "segm.AP"}
    assert by_label["RFS CM (LVIS v0.5)"] == {"rule": "median", "by": "segm.AP"}
    data["tables"][0]["seed_aggregate"] = {"rule": "median_of_runs"}
    with pytest.raises(LtbenchError, match=r"tables\[0\] \(table 2\).seed_aggregate.rule.*one of mean, median, median_run"):
        validate_spec(data, "pcb.yaml")
