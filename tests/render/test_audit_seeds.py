"""The audit lists every claim with its verdict on the current results (every seed) and shows seed statistics."""

from __future__ import annotations

import pytest

from ltbench.cli import main
from ltbench.plan import build_plan
from ltbench.store import make_record, write_record


def _fill(results_dir, gain: float, seeds: int = 3):
    """PCB Table 2 stand-in records: every row, ``seeds`` seeds; '+ PCB' rows are ``gain`` above their base."""
    plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke", seeds=seeds)
    for row in plan.rows:
        if not row.view_id:
            continue
        for seed, run_id in enumerate(row.run_ids):
            ap = 20.0 + 0.5 * (seed - 1) + (gain if "+ PCB" in row.label else 0.0)
            metrics = {"segm.AP": ap, "segm.APr": ap / 4, "segm.APc": ap, "segm.APf": ap, "bbox.AP": ap, "PwB": 30 - ap}
            write_record(make_record(plan.runs[run_id].config, plan.view(run_id, row.view_id).view_config, metrics),
                         results_dir)
    return plan


@pytest.mark.parametrize(("gain", "verdict"), [(1.0, "✓ holds"), (-1.0, "✗ fails")])
def test_audit_claims_and_seed_statistics(tmp_path, gain, verdict):
    from ltbench.spec import load_paper
    from ltbench.paths import PAPER_SPECS_DIR

    _fill(tmp_path / "results", gain)
    md = tmp_path / "audit.md"
    assert main(["audit", "--paper", "pcb", "--seeds", "3", "--results-dir", str(tmp_path / "results"),
                 "--md", str(md)]) == 0
    text = md.read_text()
    claims = text.split("## Claims", 1)[1].split("\n## ", 1)[0]
    for claim in load_paper(PAPER_SPECS_DIR / "pcb.yaml").claims:  # every claim, with a verdict
        assert f"| {claim['id']} " in claims
    line = next(ln for ln in claims.splitlines() if ln.startswith("| pcb-improves-every-base "))
    assert f"{verdict} (smoke)" in line
    # the evidence: cells with their seed values
    assert "pcb T2/v0.5 'Softmax' segm.AP = 20.00 ± 0.50 (n=3)" in claims
    seeds = text.split("## Seed statistics", 1)[1].split("\n## ", 1)[0]
    assert "measured cells:" in seeds and "with n = 3" in seeds and "with n = 1" not in seeds
    assert "20.00 ± 0.50 (n=3)" in seeds and "[" in seeds
    assert "Seed statistics" in (tmp_path / "audit.html").read_text()


def test_audit_without_seed_override_reads_seed_0_and_warns_about_single_runs(tmp_path):
    _fill(tmp_path / "results", 1.0)
    md = tmp_path / "audit.md"
    assert main(["audit", "--paper", "pcb", "--results-dir", str(tmp_path / "results"), "--md", str(md)]) == 0
    seeds = md.read_text().split("## Seed statistics", 1)[1].split("\n## ", 1)[0]
    assert "with n = 1" in seeds and "with n = 3" not in seeds
    assert "LVIS APr is noisy" in seeds
