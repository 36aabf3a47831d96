"""Framework sensitivity target: tables/<paper>_table<N>_sensitivity.md (render, CLI, workflow DAG)."""

from __future__ import annotations

import pytest

from ltbench.cli import main
from ltbench.errors import LtbenchError
from ltbench.paths import PAPER_SPECS_DIR
from ltbench.plan import build_plan
from ltbench.analysis.sensitivity import parse_frameworks, render_sensitivity, sensitivity_claim
from ltbench.spec import load_paper
from ltbench.store import make_record, write_record
from ltbench import workflow as wf

FW = ["torchvision", "mmdet"]


def _fill(results_dir, seeds=None):
    """Stand-in records: baselines 20 + seed/10; '+ PCB' rows +1.0 under torchvision, -0.5 under mmdet."""
    for fw in FW:
        plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke", framework=fw, seeds=seeds)
        for row in plan.rows:
            if not row.view_id or row.group != "v0.5":
                continue
            for seed, run_id in enumerate(row.run_ids):
                assert plan.runs[run_id].config["framework"] == fw
                gain = (1.0 if fw == "torchvision" else -0.5) if "+ PCB" in row.label else 0.0
                value = 20.0 + seed / 10 + gain
                write_record(make_record(plan.runs[run_id].config, plan.view(run_id, row.view_id).view_config,
                                         {"segm.AP": value, "segm.APr": value / 2}), results_dir)


def test_frameworks_parsing_and_defaults():
    assert parse_frameworks(None, "smoke") == ["torchvision", "mmdet"]
    assert parse_frameworks(None, "paper") == ["mmdet", "detectron2"]
    assert parse_frameworks("mmdet, torchvision,mmdet", "smoke") == ["mmdet", "torchvision"]
    with pytest.raises(LtbenchError, match="did you mean 'mmdet'"):
        parse_frameworks("mmdt", "smoke")
    with pytest.raises(LtbenchError, match="no framework"):
        parse_frameworks(" , ", "smoke")


def test_claim_choice():
    pcb = load_paper(PAPER_SPECS_DIR / "pcb.yaml")
    assert sensitivity_claim(pcb, "2")["id"] == "pcb-improves-every-base"
    no_compare = next(t.id for t in pcb.tables if not any(
        c["predicate"].get("kind") == "compare" and all(str(r["table"]) == t.id for p in c["predicate"]["pairs"] for r in p)
        for c in pcb.claims))
    with pytest.raises(LtbenchError, match=f"table {no_compare} has no compare claim"):
        sensitivity_claim(pcb, no_compare)
    with pytest.raises(LtbenchError, match="no claim 'nope'"):
        sensitivity_claim(pcb, "2", "nope")


def test_zero_results_render_pending(tmp_path):
    md = render_sensitivity("pcb", "2", results_dir=tmp_path)
    assert "# PCB Table 2: framework sensitivity (torchvision, mmdet, smoke scale)" in md
    assert "## segm.AP\n" in md and "## segm.APr" not in md and "pending" in md  # the claim's metrics
    assert "## segm.APr" in render_sensitivity("pcb", "2", metrics=["segm.AP", "segm.APr"], results_dir=tmp_path)


def test_two_seeds_two_frameworks_gain_per_framework(tmp_path):
    _fill(tmp_path, seeds=2)
    md = render_sensitivity("pcb", "2", seeds=2, results_dir=tmp_path)
    block = md.split("## segm.AP\n", 1)[1]
    softmax = next(ln for ln in block.splitlines() if ln.startswith("| Softmax (LVIS v0.5)"))
    pcb = next(ln for ln in block.splitlines() if ln.startswith("| Softmax + PCB (LVIS v0.5)"))
    assert "20.1 ± 0.1 (n=2)" in softmax and softmax.count("20.1 ± 0.1 (n=2)") == 2
    cells = [c.strip() for c in pcb.split("|")[1:-1]]
    assert cells[1] == "21.1 ± 0.1 (n=2)" and cells[2].startswith("+1.0 [")
    assert cells[3] == "19.6 ± 0.1 (n=2)" and cells[4].startswith("-0.5 [")
    assert cells[5] == "no"  # the gain does not survive the change of framework
    v10 = next(ln for ln in block.splitlines() if ln.startswith("| Softmax + PCB (LVIS v1.0)"))
    assert "pending" in v10


def test_cli_writes_the_sensitivity_table(tmp_path):
    _fill(tmp_path)
    out = tmp_path / "s.md"
    assert main(["render", "--paper", "pcb", "--table", "2", "--sensitivity", "--frameworks", "torchvision,mmdet",
                 "--metric", "segm.AP", "--metric", "segm.APr", "--results-dir", str(tmp_path), "--md", str(out)]) == 0
    text = out.read_text()
    assert "## segm.APr" in text and "10.5 (n=1)" in text
    assert "| Softmax + PCB (LVIS v0.5)" in text and "+1.0" in text and "-0.5" in text
    assert main(["render", "--paper", "pcb", "--table", "2", "--frameworks", "mmdet", "--md", str(out)]) == 2
    assert main(["render", "--paper", "pcb", "--all-tables", "--sensitivity", "--md", str(out)]) == 2


def test_workflow_plans_each_frameworks_runs():
    plan = wf.WorkflowPlan.build(scale="smoke", papers=["pcb"])
    tv = plan.table_pairs("pcb", "2", framework="torchvision")
    mm = plan.table_pairs("pcb", "2", framework="mmdet")
    assert len(tv) == len(mm) and not set(tv) & set(mm)
    assert {plan.run(r).config["framework"] for r, _ in mm} == {"mmdet"}


def test_snakemake_dry_run_of_the_sensitivity_target():
    from support.workflow import jobs_of, snakemake

    proc = snakemake("--profile", "local", "-n", "-p", "--forceall", "tables/pcb_table2_sensitivity.md")
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = jobs_of(proc.stdout)
    n = len(build_plan(targets=["tables/pcb_table2.md"], scale="smoke").runs)
    assert jobs["train"] == 2 * n and jobs["render_sensitivity"] == 1
    assert "--sensitivity --frameworks torchvision,mmdet" in proc.stdout
