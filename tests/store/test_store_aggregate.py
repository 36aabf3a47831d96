"""Aggregation of records into results/metrics.parquet, and queries on it."""

from __future__ import annotations

import os
import time

from ltbench.store import make_record, write_record
from ltbench.store.aggregate import load_frame, query, wide, write_parquet
from support.store import fake_run


def _fill(tmp_path):
    a, b = fake_run(0), fake_run(1)
    write_record(make_record(a, {"id": "plain", "name": "plain"}, {"segm.AP": 21.9, "segm.APr": 4.6}), tmp_path)
    write_record(make_record(a, {"id": "cm-val", "name": "cm_calibration"}, {"segm.AP": 22.5}), tmp_path)
    write_record(make_record(b, {"id": "plain", "name": "plain"}, {"segm.AP": 23.0}), tmp_path)
    return a, b


def test_parquet_has_one_row_per_run_view_metric(tmp_path):
    a, b = _fill(tmp_path)
    (tmp_path / "records" / "junk-run").mkdir()
    (tmp_path / "records" / "junk-run" / "plain.json").write_text("{")
    path, loaded = write_parquet(tmp_path)
    assert path == tmp_path / "metrics.parquet" and len(loaded.corrupt) == 1
    import pandas as pd

    frame = pd.read_parquet(path)
    assert len(frame) == 4
    assert set(frame["run_id"]) == {a["id"], b["id"]}
    row = frame[(frame.run_id == a["id"]) & (frame.view_id == "plain") & (frame.metric == "segm.APr")]
    assert row["value"].tolist() == [4.6] and row["framework"].tolist() == ["torchvision"]
    assert wide(frame).loc[(a["id"], "plain", 0), "segm.AP"] == 21.9


def test_load_frame_reaggregates_when_a_record_is_newer(tmp_path):
    a, _ = _fill(tmp_path)
    write_parquet(tmp_path)
    frame, loaded = load_frame(tmp_path)
    assert loaded is None and len(frame) == 4  # fresh parquet is used as is
    past = time.time() - 100
    os.utime(tmp_path / "metrics.parquet", (past, past))
    write_record(make_record(fake_run(7), {"id": "plain", "name": "plain"}, {"segm.AP": 1.0}), tmp_path)
    frame, loaded = load_frame(tmp_path)
    assert loaded is not None and len(frame) == 5


def test_query_by_run_prefix_and_pairs(tmp_path):
    a, b = _fill(tmp_path)
    frame, _ = load_frame(tmp_path)
    assert set(query(frame, run_id=a["id"])["view_id"]) == {"plain", "cm-val"}
    assert len(query(frame, run_id="softmax")) == 4
    assert set(query(frame, pairs={(b["id"], "plain")})["run_id"]) == {b["id"]}
    assert query(frame, run_id="nothing").empty


def test_empty_store_gives_empty_frame(tmp_path):
    frame, loaded = load_frame(tmp_path)
    assert frame.empty and loaded.records == []
    path, _ = write_parquet(tmp_path)
    import pandas as pd

    assert pd.read_parquet(path).empty
