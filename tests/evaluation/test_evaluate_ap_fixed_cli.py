"""`ltbench evaluate --ap-fixed` on the hand-computed case of tests/test_ap_fixed.py; the planner's per-class
top-k view for tables with AP-fixed columns; the workflow's evaluate flags."""

from __future__ import annotations

import copy
import json

import pytest

from ltbench.cli import main
from ltbench.io import write_json
from ltbench.spec import vocab
from ltbench import workflow as wf
from support.ap_fixed_case import AP_A, AP_B, hand_case


def test_cli_adds_ap_fixed_keys_to_the_metrics(tmp_path):
    gt, dets = hand_case()
    write_json(tmp_path / "gt.json", gt)
    write_json(tmp_path / "dets.json", dets)
    base = ["evaluate", "--gt", str(tmp_path / "gt.json"), "--detections", str(tmp_path / "dets.json"), "--iou-types", "bbox"]
    assert main([*base, "--out", str(tmp_path / "plain.json")]) == 0
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert "bbox.AP" in plain and not any("APfixed" in k or "APpool" in k for k in plain)
    assert main([*base, "--ap-fixed", "--out", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["bbox.AP"] == pytest.approx(plain["bbox.AP"])  # the metrics of record are unchanged
    assert m["bbox.APfixed"] == pytest.approx(100 * (AP_A + AP_B) / 2)
    assert m["bbox.APfixed_r"] == pytest.approx(100 * AP_B) and m["bbox.APpool"] == pytest.approx(60.0)
    # a budget of one detection per class: A keeps only its 0.9 TP (recall .5), B its 0.99 one on image 3
    # (not evaluated there) -> B has no evaluated detection: AP 0
    assert main([*base, "--ap-fixed", "--dets-per-class", "1", "--out", str(tmp_path / "k1.json")]) == 0
    k1 = json.loads((tmp_path / "k1.json").read_text())
    assert k1["bbox.APfixed_f"] == pytest.approx(100 * 51 / 101) and k1["bbox.APfixed_r"] == pytest.approx(0.0)
    assert main([*base, "--dets-per-class", "5", "--out", str(tmp_path / "x.json")]) == 2


def test_ap_fixed_keys_are_spec_vocabulary():
    for iou in ("bbox", "segm"):
        for suffix in ("APfixed", "APfixed_r", "APfixed_c", "APfixed_f", "APpool", "APpool_r", "APpool_c", "APpool_f"):
            assert f"{iou}.{suffix}" in vocab.METRIC_KEYS


def test_ap_fixed_detections_file_keeps_the_standard_metrics_on_the_capped_one(tmp_path):
    """--ap-fixed-detections: AP-fixed from the top-k file, AP & co. from --detections."""
    gt, dets = hand_case()
    write_json(tmp_path / "gt.json", gt)
    write_json(tmp_path / "dets.json", dets)
    write_json(tmp_path / "fewer.json", dets[:2])
    base = ["evaluate", "--gt", str(tmp_path / "gt.json"), "--iou-types", "bbox"]
    assert main([*base, "--detections", str(tmp_path / "fewer.json"), "--ap-fixed-detections", str(tmp_path / "dets.json"),
                 "--out", str(tmp_path / "split.json")]) == 0
    assert main([*base, "--detections", str(tmp_path / "fewer.json"), "--out", str(tmp_path / "fewer_m.json")]) == 0
    assert main([*base, "--detections", str(tmp_path / "dets.json"), "--ap-fixed", "--out", str(tmp_path / "all_m.json")]) == 0
    split = json.loads((tmp_path / "split.json").read_text())
    fewer = json.loads((tmp_path / "fewer_m.json").read_text())
    full = json.loads((tmp_path / "all_m.json").read_text())
    assert split["bbox.AP"] == pytest.approx(fewer["bbox.AP"]) and split["bbox.AP"] != pytest.approx(full["bbox.AP"])
    assert split["bbox.APfixed"] == pytest.approx(full["bbox.APfixed"]) == pytest.approx(100 * (AP_A + AP_B) / 2)


def test_a_table_with_an_ap_fixed_column_predicts_a_second_top_k_view():
    from ltbench.paths import PAPER_SPECS_DIR
    from ltbench.plan import build_plan
    from ltbench.spec import validate_spec
    from ltbench.spec.loader import papers_dir
    from ltbench.spec.yaml_text import read_spec_yaml

    data = copy.deepcopy(read_spec_yaml(PAPER_SPECS_DIR / "pcb.yaml"))
    table = next(t for t in data["tables"] if str(t["id"]) == "2")
    groups = table.get("column_groups") or [table]
    groups[0]["columns"].append({"header": "AP_fixed", "key": "segm.APfixed"})
    spec = validate_spec(data, "pcb.yaml")
    plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke", specs={"pcb": spec}, directory=papers_dir())
    plain = build_plan(targets=["tables/pcb_table2.md"], scale="smoke")
    views = {v.view_id: v.view_config for v in plan.views}
    # smoke budget: ceil(10000 * 120 smoke val images / 19809 LVIS v1 val images)
    assert views and all(c.get("ap_fixed") == {"k": 61} and "detections" not in c for c in views.values())
    assert set(plan.runs) == set(plain.runs)  # the same trained runs
    # ... and the same views: the AP-fixed request adds a second prediction, it changes no detection
    assert set(views) == {v.view_id for v in plain.views}
    assert all(wf.prediction_view(views[v.view_id]) == v.view_config for v in plain.views)
    # Planned with the whole paper, the views table 2 shares with other tables keep the AP-fixed request.
    whole = build_plan(papers=["pcb"], scale="smoke", specs={"pcb": spec}, directory=papers_dir())
    table2_views = {(r, v.view_id) for v in plan.views for r in [v.run_id]}
    merged = {(v.run_id, v.view_id): v.view_config for v in whole.views}
    assert table2_views <= set(merged) and all(merged[key].get("ap_fixed") == {"k": 61} for key in table2_views)
    assert any("ap_fixed" not in c for key, c in merged.items() if key not in table2_views)
    view_id, view = next(iter(views.items()))
    top_k = wf.top_k_view(view, wf.ap_fixed_k(view))
    assert top_k["detections"] == {"mode": "per_class_top_k", "k": 61} and "ap_fixed" not in top_k
    assert top_k["id"] == f"{view_id}-topk"
    assert {k: v for k, v in top_k.items() if k not in ("detections", "id")} == {k: v for k, v in view.items() if k not in ("ap_fixed", "id")}
    path = f"{wf.top_k_dir('r', view_id)}/detections.json"
    assert wf.evaluate_ap_fixed_args(view, path) == f"--ap-fixed-detections {path} --dets-per-class 61"
    assert wf.evaluate_ap_fixed_args({"name": "plain"}, path) == ""
    assert wf.ap_fixed_k({"name": "plain"}, always=True, scale="paper") == 10_000
    assert wf.evaluate_ap_fixed_args({"name": "plain"}, path, always=True, scale="smoke").endswith("--dets-per-class 61")
