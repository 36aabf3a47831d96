"""The store steps the workflow calls: emit, done, fail, record, collect (through the CLI)."""

from __future__ import annotations

import json

from ltbench.cli import main
from ltbench.io import read_json, write_json
from support.store import VIEW, fake_run


def test_emit_done_fail_record_collect_round_trip(tmp_path, capsys):
    results = tmp_path / "results"
    run = fake_run()
    run_json = results / "runs" / run["id"] / "run.json"
    assert main(["results", "emit", "--run", run["id"], "--config-json", json.dumps(run), "--out", str(run_json)]) == 0
    assert read_json(run_json) == run
    assert main(["results", "emit", "--run", "other", "--config-json", json.dumps(run), "--out", str(tmp_path / "x.json")]) == 2

    # a failed first attempt, then a finished training: the marker clears the stale note
    log = tmp_path / "train.log"
    log.write_text("ltbench: error: work/x: training diverged at iteration 3: loss is nan\n")
    assert main(["results", "fail", "--results-dir", str(results), "--run", run["id"], "--stage", "train", "--log", str(log)]) == 0
    assert (results / "failures" / run["id"] / "train.json").is_file()
    workdir = tmp_path / "work" / run["id"]
    write_json(workdir / "done.json", {"checkpoint": "model_final.pth"})
    done = results / "runs" / run["id"] / "train.done"
    assert main(["results", "done", "--run", run["id"], "--workdir", str(workdir), "--started", "2026-01-01T00:00:00+00:00",
                 "--out", str(done)]) == 0
    marker = read_json(done)
    assert marker["checkpoint"] == "model_final.pth" and marker["wall_time_s"] > 0
    assert not (results / "failures" / run["id"] / "train.json").exists()

    view_json = results / "runs" / run["id"] / "views" / "plain.json"
    write_json(view_json, VIEW)
    metrics = results / "metrics" / run["id"] / "plain.json"
    write_json(metrics, {"segm.AP": 12.5, "bbox.AP": 13.0, "segm.APr": -1})
    out = results / "records" / run["id"] / "plain.json"
    assert main(["results", "record", "--run-config", str(run_json), "--view-config", str(view_json), "--metrics",
                 str(metrics), "--train-done", str(done), "--out", str(out)]) == 0
    record = read_json(out)
    assert record["provenance"]["started"] == "2026-01-01T00:00:00+00:00"
    assert record["provenance"]["wall_time_s"] == marker["wall_time_s"] and record["train"]["checkpoint"] == "model_final.pth"
    assert record["provenance"]["ended"] == marker["ended"]

    capsys.readouterr()
    table = tmp_path / "collected.parquet"
    assert main(["results", "collect", "--results-dir", str(results), "--out", str(table)]) == 0
    import pandas as pd

    assert len(pd.read_parquet(table)) == 3 and (results / "metrics.parquet").is_file()
    assert main(["results", "--results-dir", str(results)]) == 0
    shown = capsys.readouterr().out
    assert run["id"] in shown and "12.50" in shown
