"""Which IoU types a row can be evaluated for: a column that needs masks (``segm.*``) on a row whose detector
predicts boxes only (Faster R-CNN, Cascade R-CNN) is a spec error at load time, naming the file and the row;
the plan evaluates each (run, view) for what its columns need and its detector produces."""

from __future__ import annotations

import pytest

from ltbench.errors import LtbenchError
from ltbench.spec import extra_columns, validate_spec, vocab
from support.specs import minimal_spec


def box_only_spec(columns: list[dict]) -> dict:
    data = minimal_spec()
    table = data["tables"][0]
    table["column_groups"] = [{"id": "main", "label": "LVIS v0.5", "columns": columns}]
    table["rows"] = [
        {"label": "Mask", "reported": {}},
        {"label": "Faster", "run": {"detector": "faster_rcnn"}, "reported": {}},
    ]
    return data


def test_segm_column_on_a_box_only_row_names_file_row_and_column() -> None:
    data = box_only_spec([{"header": "AP", "key": "bbox.AP"}, {"header": "mask AP", "key": "segm.AP"}])
    with pytest.raises(LtbenchError) as info:
        validate_spec(data, "workflows/papers/pcb.yaml")
    text = str(info.value)
    assert "workflows/papers/pcb.yaml" in text
    assert "tables[0] (table 2).rows[1] (row 'Faster')" in text
    assert "'faster_rcnn' predicts boxes only" in text and "'segm.AP'" in text and "mask detector" in text


@pytest.mark.parametrize("detector", ["cascade_rcnn", "faster_rcnn"])
def test_box_only_rows_load_where_their_columns_are_bbox(detector: str) -> None:
    data = box_only_spec([{"header": "AP", "key": "bbox.AP"}, {"header": "acc", "key": "cls.ACC"}])
    data["tables"][0]["rows"][1]["run"]["detector"] = detector
    spec = validate_spec(data, "workflows/papers/pcb.yaml")
    assert spec.row_run(spec.table("2").rows[1])["detector"] == detector


def test_every_mask_detector_produces_segm_and_the_others_bbox_only() -> None:
    assert vocab.detector_iou_types("mask_rcnn") == vocab.detector_iou_types("htc") == ("bbox", "segm")
    assert vocab.detector_iou_types("cascade_mask_rcnn") == ("bbox", "segm")
    assert vocab.detector_iou_types("faster_rcnn") == vocab.detector_iou_types("cascade_rcnn") == ("bbox",)


def test_extra_segm_columns_stay_out_of_groups_with_a_box_only_row() -> None:
    spec = validate_spec(box_only_spec([{"header": "AP", "key": "bbox.AP"}]), "workflows/papers/pcb.yaml")
    extended = extra_columns.apply(spec, ["segm.APfixed", "bbox.APfixed"])
    assert [c.key for c in extended.table("2").column_groups[0].columns] == ["bbox.AP", "bbox.APfixed"]
    masks_only = validate_spec(minimal_spec(), "workflows/papers/pcb.yaml")
    keys = [c.key for c in extra_columns.apply(masks_only, ["segm.APfixed"]).table("2").column_groups[0].columns]
    assert keys[-1] == "segm.APfixed"


def test_plan_evaluates_what_the_columns_need_and_the_detector_produces() -> None:
    from ltbench.plan import build_plan

    data = box_only_spec([{"header": "AP", "key": "bbox.AP"}])
    data["tables"][0]["column_groups"].append({"id": "mask", "label": "masks", "columns": [{"header": "AP", "key": "segm.AP"}]})
    data["tables"][0]["rows"].append({"label": "Mask", "group": "mask", "reported": {}})
    for row in data["tables"][0]["rows"][:2]:
        row["group"] = "main"
    spec = validate_spec(data, "workflows/papers/pcb.yaml")
    plan = build_plan(scale="smoke", specs={"pcb": spec})
    types = {plan.runs[v.run_id].config["detector"]: v.iou_types for v in plan.views}
    # the Mask R-CNN run is read by a bbox column and a segm column: both; Faster R-CNN: bbox
    assert types == {"mask_rcnn": ["bbox", "segm"], "faster_rcnn": ["bbox"]}
    assert all(v.to_json()["iou_types"] == v.iou_types for v in plan.views)
