"""Tables from the real paper specs + plan + a hand-made store; the audit report; ltbench results/render CLI."""

from __future__ import annotations

import json

import pytest

from ltbench.cli import main
from ltbench.render.tables import render_table, write_paper
from ltbench.store import make_record, write_failure, write_record
from ltbench import workflow as wf


@pytest.fixture(scope="module")
def pcb2_served():
    return wf.row_pairs("pcb", "2", scale="smoke", framework=None)


def _fill(results_dir, served, value_of):
    """A record for every served (run, view) of the table, with metrics chosen by ``value_of(row key)``."""
    from ltbench.plan import build_plan

    plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke")
    for key, serve in served.items():
        for run_id, view_id in serve.pairs:
            metrics = value_of(key)
            if metrics is None:
                continue
            write_record(make_record(plan.runs[run_id].config, plan.view(run_id, view_id).view_config, metrics), results_dir)


def test_pcb_table2_with_zero_results_is_all_pending_in_paper_order(tmp_path):
    rendered = render_table("pcb", "2", scale="smoke", results_dir=tmp_path)
    md, claims = rendered.markdown.split("### Claims on this table")  # the table ends with the claims that read it
    assert "7 claims: 0 hold, 0 fail, 7 undetermined" in claims
    s = rendered.built.summary
    assert s.reproduced == 0 and s.total == s.pending > 0
    body = [ln for ln in md.splitlines() if ln.startswith("| ") and "Method" not in ln and not ln.startswith("| ↳")]
    methods = [ln.split("|")[1].split("†")[0].split("*")[0].strip() for ln in body]
    gains = [ln.split("|")[1].strip() for ln in md.splitlines() if ln.startswith("| ↳")]  # under each "+ PCB" row
    assert gains == ["↳ gain over Softmax", "↳ gain over RFS [12]", "↳ gain over EQL v2 [29]", "↳ gain over Seesaw [34]"]
    assert methods == ["Softmax", "Softmax", "RFS [12]", "RFS [12]", "EQL v2 [29]", "EQL v2 [29]", "Seesaw [34]", "Seesaw [34]"]
    assert [ln.split("|")[2].strip()[0] for ln in body] == ["✗", "✓"] * 4
    header = md.splitlines()[[i for i, ln in enumerate(md.splitlines()) if ln.startswith("| Method")][0]]
    assert header.index("LVIS v0.5 AP ") < header.index("LVIS v0.5 PwB") < header.index("LVIS v1.0 AP ")
    assert "pending (21.9)" in md and "pending (13.8)" in md  # Softmax v0.5 AP and PwB as printed
    assert "\\toprule" in rendered.latex


def test_pcb_table2_filled_cells_have_value_delta_and_verdict(tmp_path, pcb2_served):
    def value_of(key):
        return {"segm.AP": 22.0, "segm.APr": 4.65, "segm.APc": 10.0, "segm.APf": 28.9, "bbox.AP": 21.9, "PwB": 13.0}

    _fill(tmp_path, pcb2_served, value_of)
    rendered = render_table("pcb", "2", scale="smoke", results_dir=tmp_path)
    md = rendered.markdown
    softmax = next(ln for ln in md.splitlines() if ln.startswith("| Softmax") and "✗" in ln)
    cells = [c.strip() for c in softmax.split("|")[1:-1]]
    assert cells[2:8] == ["22.0 (+0.1) ✓", "4.7 (+0.1) ✓", "10.0 (-11.7) ✗", "28.9 (±0.0) ✓", "21.9 (±0.0) ✓", "13.0 (-0.8) ✓"]
    s = rendered.built.summary
    assert s.pending == 0 and s.reproduced == s.total
    assert "Provenance: ltbench commit" in md and "torchvision" in md


def test_failures_and_corrupt_records_show_up(tmp_path, pcb2_served):
    first_run = pcb2_served[("v0.5", "softmax")].pairs[0][0]
    write_failure(first_run, "train", "RuntimeError: loss is NaN", results_dir=tmp_path)
    bad = tmp_path / "records" / "x-run"
    bad.mkdir(parents=True)
    (bad / "plain.json").write_text("{oops")
    rendered = render_table("pcb", "2", scale="smoke", results_dir=tmp_path)
    assert "failed: train: RuntimeError: loss is NaN (21.9)" in rendered.markdown
    assert rendered.built.summary.failed == 6
    assert "corrupt record" in rendered.markdown and "x-run/plain.json" in rendered.markdown


def test_paper_file_has_every_reproduced_table(tmp_path):
    out = tmp_path / "pcb.md"
    rendered = write_paper("pcb", md=out, scale="smoke", results_dir=tmp_path)
    text = out.read_text()
    assert len(rendered) >= 2
    for r in rendered:
        assert f"## PCB Table {r.built.layout.table_id}" in text


def test_audit_renders_all_papers_with_zero_results(tmp_path):
    from ltbench.audit.report import write_audit

    md, html = tmp_path / "audit.md", tmp_path / "audit.html"
    audit = write_audit(["pcb"], md=md, html=html, scale="smoke", results_dir=tmp_path / "results")
    text = md.read_text()
    assert "## Assumptions" in text and "pcb-start-epoch" in text
    assert "## Every cell" not in text and "(site/downloads/cells.csv)" in text  # every cell is a download of the site
    assert "## Claims" in text
    assert audit.status_counts()["reproduced"] == 0 and audit.status_counts()["pending"] > 0
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table" in page and "PCB Table 2" in page
    assert "<script" not in page


def test_audit_reports_a_broken_spec_instead_of_failing(tmp_path, monkeypatch):
    from ltbench import paths
    from ltbench.audit.report import write_audit

    specs = tmp_path / "papers"
    specs.mkdir()
    (specs / "pcb.yaml").write_text((paths.PAPER_SPECS_DIR / "pcb.yaml").read_text())
    (specs / "bags.yaml").write_text("paper: bags\ntables: 3\n")
    monkeypatch.setattr(paths, "PAPER_SPECS_DIR", specs)
    md = tmp_path / "audit.md"
    audit = write_audit(["bags", "pcb"], md=md, html=None, scale="smoke", results_dir=tmp_path / "results")
    assert len(audit.spec_errors) == 1 and audit.spec_errors[0].startswith("bags: ")
    assert "Specs that do not load" in md.read_text() and any(t.paper == "pcb" for t in audit.tables)


def test_audit_plots_and_provenance_with_results(tmp_path, pcb2_served):
    from ltbench.audit.report import write_audit

    results = tmp_path / "results"
    _fill(results, pcb2_served, lambda key: {"segm.AP": 20.0, "bbox.AP": 21.0})
    md = tmp_path / "tables" / "audit.md"
    audit = write_audit(["pcb"], md=md, html=md.with_suffix(".html"), scale="smoke", results_dir=results)
    assert audit.runs and audit.plots and (md.parent / audit.plots[0]["plots"][0]["path"]).is_file()
    assert "reproduced_vs_reported.png" in md.read_text()


def test_cli_render_and_results(tmp_path, pcb2_served, capsys):
    _fill(tmp_path, pcb2_served, lambda key: {"segm.AP": 20.0 + len(key[1]) / 10})
    assert main(["render", "--paper", "pcb", "--table", "2", "--results-dir", str(tmp_path), "--md", str(tmp_path / "t.md")]) == 0
    assert (tmp_path / "t.md").is_file() and (tmp_path / "t.tex").is_file()
    capsys.readouterr()
    assert main(["results", "--results-dir", str(tmp_path), "--paper", "pcb", "--table", "2", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("run_id,view_id,seed") and len(out.splitlines()) == 1 + len(
        {p for s in pcb2_served.values() for p in s.pairs})
    run_id = pcb2_served[("v0.5", "softmax")].pairs[0][0]
    assert main(["results", "--results-dir", str(tmp_path), "--run", run_id, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["run_id"] for r in rows} == {run_id} and rows[0]["metric"] == "segm.AP"
    assert main(["results", "--results-dir", str(tmp_path), "--table", "2"]) == 2  # --table without --paper is a user error
