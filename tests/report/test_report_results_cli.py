"""``ltbench results``: --columns, --paper alone, and a non-zero exit when nothing matches."""

from __future__ import annotations

import json

from ltbench.cli import main

from support.report import fill


def _metrics(row, seed):
    return {"segm.AP": 20.0, "segm.APr": 5.0, "bbox.AP": 21.0, "PwB": 9.0}


def test_columns_choose_and_order_the_columns(tmp_path, capsys):
    fill(tmp_path, _metrics)
    assert main(["results", "--results-dir", str(tmp_path), "--paper", "pcb", "--table", "2", "--format", "csv",
                 "--columns", "bbox.AP,segm.AP,framework"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "run_id,view_id,seed,bbox.AP,segm.AP,framework"
    assert lines[1].endswith(",21.0,20.0,torchvision") and len(lines) == 17
    # patterns, and naming a key column yourself drops the automatic ones
    assert main(["results", "--results-dir", str(tmp_path), "--format", "csv", "--columns", "run_id,segm.*"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "run_id,segm.AP,segm.APr"
    # long form and JSON select too
    assert main(["results", "--results-dir", str(tmp_path), "--long", "--format", "json", "--columns", "metric,value"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert set(rows[0]) == {"run_id", "view_id", "seed", "metric", "value"} and len(rows) == 16 * 4


def test_unknown_column_is_a_user_error_listing_the_columns(tmp_path, capsys):
    fill(tmp_path, _metrics)
    assert main(["results", "--results-dir", str(tmp_path), "--columns", "segm.Ap"]) == 2
    err = capsys.readouterr().err
    assert "no column 'segm.Ap'" in err and "did you mean" in err.lower() and "segm.AP" in err


def test_paper_alone_and_no_match(tmp_path, capsys):
    fill(tmp_path, _metrics)
    assert main(["results", "--results-dir", str(tmp_path), "--paper", "pcb", "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 16  # Table 2's runs serve other PCB tables too
    assert main(["results", "--results-dir", str(tmp_path), "--paper", "bags"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "no results for any table of bags" in captured.err and "16 record(s)" in captured.err
    assert main(["results", "--results-dir", str(tmp_path), "--run", "no-such-run"]) == 1
    assert "no results for run 'no-such-run'" in capsys.readouterr().err
    assert main(["results", "--results-dir", str(tmp_path), "--table", "2"]) == 2  # --table needs --paper
