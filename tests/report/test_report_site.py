"""The report site and the compact audit report, without a browser (tests/report/test_report_site_browser.py
looks at it in Chromium)."""

from __future__ import annotations

import re
import time

import pytest

from ltbench import paths
from ltbench.spec import load_paper

from support.report import half_finished_campaign


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from ltbench.audit.report import write_audit

    tmp = tmp_path_factory.mktemp("report")
    campaign = half_finished_campaign(tmp / "campaign", time.time())
    md = tmp / "tables" / "audit.md"
    audit = write_audit(["pcb"], md=md, html=md.with_suffix(".html"), scale="smoke", results_dir=campaign["results"],
                        work_dir=campaign["work"])
    return {"audit": audit, "md": md, "site": md.parent / "site", "campaign": campaign}


def test_audit_md_is_compact_and_links_to_the_site(report):
    text = report["md"].read_text()
    assert "## Every cell" not in text and "(site/downloads/cells.csv)" in text and "(site/index.html)" in text
    assert not [ln for ln in text.splitlines() if ln.startswith("|") and "   " in ln]  # no column padding
    assert "| pcb | 2 | reproduce | failed |" in text and "[pcb_table2.html](site/pcb_table2.html)" in text
    assert "Campaign: 156 runs" not in text and "Campaign: " in text and "CPU-hours (cost-model estimate)" in text
    assert text.count("Each cell: reproduced value") == 1  # the legends once, not per table
    assert "`pcb-start-epoch` (whole table): see Assumptions" in text and "- `pcb-start-epoch` (pcb; used by" in text
    assert len(text.encode()) < 80_000, len(text.encode())


def test_every_table_has_a_page_in_the_papers_layout(report):
    site = report["site"]
    spec = load_paper(paths.PAPER_SPECS_DIR / "pcb.yaml")
    reproduced = [t.id for t in spec.tables if t.scope == "reproduce"]
    index = (site / "index.html").read_text()
    for table_id in reproduced:
        assert f'href="pcb_table{table_id}.html"' in index and (site / f"pcb_table{table_id}.html").is_file()
    page = (site / "pcb_table2.html").read_text()
    assert '<th class="group" colspan="6">LVIS v0.5</th>' in page and '<th class="group" colspan="6">LVIS v1.0</th>' in page
    assert "AP<sub>r</sub>" in page and "AP<sup>b</sup>" in page and "<pre" not in page and "<script" not in page
    built = next(e.rendered.built for e in report["audit"].tables if e.table_id == "2")
    assert page.count('class="c v-within"') == built.summary.within > 0
    assert page.count('class="c v-worse"') > 0 and page.count('class="c st-failed"') > 0
    assert page.count('<tr class="gain">') == 4 and "↳ gain over Softmax" in page
    assert page.count('class="c g-reproduces"') == built.gain_summary.reproduces > 0
    for mark, _ in built.footnotes:
        assert f'<li id="fn-{mark}" value="{mark}">' in page
    assert "paper 21.9" in page and "Δ ±0.0" in page  # the paper's number, labelled; the difference
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (site / src).is_file(), src
    assert "plots/pcb_table2/gains.png" in page and "plots/pcb_table2/ap_by_bin.png" in page


def test_claims_status_and_downloads(report):
    import pandas as pd

    site, audit = report["site"], report["audit"]
    claims = (site / "claims.html").read_text()
    assert "<pre" not in claims and "##" not in claims
    for claim in load_paper(paths.PAPER_SPECS_DIR / "pcb.yaml").claims:
        assert f'<tr id="{claim["id"]}">' in claims
    status = (site / "status.html").read_text()
    campaign = report["campaign"]
    assert campaign["stalled"] in status and "stalled since" in status and "CUDA out of memory" in status
    cells = pd.read_csv(site / "downloads" / "cells.csv", dtype={"reported": str, "table": str})
    parquet = pd.read_parquet(site / "downloads" / "cells.parquet")
    expected = sum(1 for e in audit.tables if e.rendered for row in e.rendered.built.rows
                   for cell in row.cells.values() if cell.status != "empty")
    assert len(cells) == len(parquet) == expected
    row = cells[(cells.table == "2") & (cells.row == "Softmax") & (cells.group == "LVIS v0.5") & (cells.metric == "segm.AP")]
    assert row.iloc[0]["reported"] == "21.9" and row.iloc[0]["reproduced"] == pytest.approx(21.9)
    assert row.iloc[0]["verdict"] == "within" and row.iloc[0]["runs"].endswith("/plain")
    assert parquet["reported"].dtype == "string"  # the printed text of the paper's number, not a float
    gains = pd.read_csv(site / "downloads" / "gains.csv", dtype={"table": str})
    one = gains[(gains.table == "2") & (gains.row == "Softmax + PCB") & (gains.group == "LVIS v0.5") & (gains.metric == "segm.AP")]
    assert one.iloc[0]["reported_gain"] == pytest.approx(3.2) and one.iloc[0]["reproduced_gain"] == pytest.approx(3.2)
    assert one.iloc[0]["verdict"] == "reproduces" and one.iloc[0]["baseline"] == "Softmax"
    t2 = pd.read_csv(site / "downloads" / "pcb_table2_cells.csv", dtype={"table": str})
    assert set(t2["table"]) == {"2"} and len(t2) == 96
    assert (site / "downloads" / "status.json").is_file() and (site / "downloads" / "claims.json").is_file()


def test_audit_html_is_the_index_with_links_into_the_site(report):
    page = report["md"].with_suffix(".html").read_text()
    assert 'href="site/pcb_table2.html"' in page and 'href="site/style.css"' in page
    assert page.startswith("<!DOCTYPE html>") and "<pre" not in page


def test_seed_intervals_on_the_table_page(tmp_path):
    """With several seeds, cells show mean±std, n and the prediction interval; gains their Welch interval; the gain
    plot draws the interval."""
    from support.report import fill

    from ltbench.audit.report import write_audit

    def metrics(row, seed):
        gain = 1.0 if "+ PCB" in row.label else 0.0
        ap = 20.0 + 0.5 * seed + gain
        return {"segm.AP": ap, "segm.APr": 5 + seed, "segm.APc": ap, "segm.APf": ap, "bbox.AP": ap, "PwB": 12 - gain}

    fill(tmp_path / "results", metrics, seeds=3)
    md = tmp_path / "tables" / "audit.md"
    write_audit(["pcb"], md=md, html=None, scale="smoke", results_dir=tmp_path / "results", work_dir=tmp_path / "work",
                seeds=3, status=False)
    page = (md.parent / "site" / "pcb_table2.html").read_text()
    assert "20.5±0.5" in page and "n=3 [" in page  # Softmax v0.5 AP: mean 20.5 of 20, 20.5, 21
    assert re.search(r'<span class="m">\+1\.0<i>[^<]+</i></span><span class="p">paper \+3\.2</span><span class="x">\[-0\.1, \+2\.1\]</span>', page)
    # Welch: d = 1.0, s = 0.5 on both sides (n = 3), df = 4, t = 2.776: 1.0 ± 1.13
    assert (md.parent / "site" / "plots" / "pcb_table2" / "gains.png").is_file()
