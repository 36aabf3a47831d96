"""Framework sensitivity table (ltbench.analysis.sensitivity)."""

from __future__ import annotations

import math

import pytest

from ltbench.errors import LtbenchError
from ltbench.paths import PAPER_SPECS_DIR
from ltbench.analysis.sensitivity import pairs_from_claim, sensitivity_frame, to_markdown
from ltbench.spec import load_paper

FW = ["torchvision", "mmdet"]


def test_pairs_from_pcb_claim():
    pcb = load_paper(PAPER_SPECS_DIR / "pcb.yaml")
    pairs = pairs_from_claim(pcb, "pcb-improves-every-base")
    assert pairs[:2] == [("Softmax + PCB (LVIS v0.5)", "Softmax (LVIS v0.5)"),
                         ("RFS [12] + PCB (LVIS v0.5)", "RFS [12] (LVIS v0.5)")]
    assert len(pairs) == 8 and pairs[-1][1] == "Seesaw [34] (LVIS v1.0)"
    with pytest.raises(LtbenchError, match="no claim"):
        pairs_from_claim(pcb, "nope")
    with pytest.raises(LtbenchError, match="compare predicate"):
        pairs_from_claim(pcb, "alpha-04-best-rare")


def test_frame_values_gains_and_verdicts():
    values = {
        ("Softmax", "torchvision"): [10.0, 10.2, 9.8], ("Softmax + PCB", "torchvision"): [11.0, 11.2, 10.8],
        ("Softmax", "mmdet"): [12.0, 12.4, 11.6], ("Softmax + PCB", "mmdet"): [13.5, 13.1, 13.3],
        ("RFS", "torchvision"): [10.0, 10.5], ("RFS + PCB", "torchvision"): [10.1, 10.6],  # +0.1 within spread
        ("RFS", "mmdet"): [12.0], ("RFS + PCB", "mmdet"): [12.3],
        ("EQL", "torchvision"): [10.0], ("EQL + PCB", "torchvision"): [11.0],
        ("EQL", "mmdet"): [12.0, 12.1], ("EQL + PCB", "mmdet"): [11.0, 11.1],  # loses in mmdet
        ("Seesaw", "torchvision"): [10.0], ("Seesaw + PCB", "torchvision"): [11.0],  # mmdet pending
    }
    pairs = [("Softmax + PCB", "Softmax"), ("RFS + PCB", "RFS"), ("EQL + PCB", "EQL"), ("Seesaw + PCB", "Seesaw")]
    frame = sensitivity_frame(values, pairs, FW, metric="segm.AP")
    assert list(frame.index) == ["Softmax", "Softmax + PCB", "RFS", "RFS + PCB", "EQL", "EQL + PCB", "Seesaw", "Seesaw + PCB"]
    row = frame.loc["Softmax + PCB"]
    assert row["torchvision gain"] == pytest.approx(1.0) and row["mmdet gain"] == pytest.approx(1.3)
    # Welch: sd 0.2 both sides, n=3 -> se = 0.2*sqrt(2/3) = 0.1633, df 4 -> t 2.776
    assert row["torchvision gain low"] == pytest.approx(1.0 - 2.776 * 0.16330, abs=1e-3)
    assert row["torchvision mean"] == pytest.approx(11.0) and row["torchvision n"] == 3
    assert row["gain survives"] == "yes"
    assert frame.loc["RFS + PCB", "gain survives"] == "unclear"
    assert frame.loc["EQL + PCB", "gain survives"] == "no"
    assert frame.loc["Seesaw + PCB", "gain survives"] == "—"
    assert math.isnan(frame.loc["Seesaw + PCB", "mmdet mean"]) and frame.loc["Seesaw", "gain survives"] == ""

    text = to_markdown(frame)
    lines = text.splitlines()
    assert lines[0].startswith("| method") and "torchvision segm.AP" in lines[0] and "mmdet gain" in lines[0]
    softmax_pcb = next(line for line in lines if "Softmax + PCB" in line)
    assert "11.0 ± 0.2 (n=3)" in softmax_pcb and "+1.0 [+0.5, +1.5]" in softmax_pcb and "| yes" in softmax_pcb
    seesaw = next(line for line in lines if "Seesaw + PCB" in line)
    assert "pending" in seesaw and "+1.0 " in seesaw
    assert "Welch" in text


def test_shared_baseline_appears_once_and_errors():
    values = {("A", "tv"): [1.0], ("A+x", "tv"): [2.0], ("A+y", "tv"): [0.5]}
    frame = sensitivity_frame(values, [("A+x", "A"), ("A+y", "A")], ["tv"])
    assert list(frame.index) == ["A", "A+x", "A+y"]
    assert frame.loc["A+y", "gain survives"] == "—"  # one framework cannot say
    with pytest.raises(LtbenchError, match="appears twice"):
        sensitivity_frame(values, [("A+x", "A"), ("A+x", "A")], ["tv"])
    with pytest.raises(LtbenchError, match="at least one framework"):
        sensitivity_frame(values, [("A+x", "A")], [])


def test_pcb_table2_through_torchvision_and_mmdet_from_store(tmp_path):
    """Records for the runs the planner asks of each framework at smoke scale (metrics made up: PCB gains
    +1.0 under torchvision and loses 0.5 under mmdet on v1.0 Seesaw) -> the side-by-side table."""
    from ltbench.plan import build_plan
    from ltbench.analysis.sensitivity import values_from_store
    from ltbench.spec.loader import papers_dir
    from ltbench.store import make_record, write_record

    spec = load_paper(PAPER_SPECS_DIR / "pcb.yaml")
    for fw in FW:
        plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke", framework=fw, specs={"pcb": spec},
                          directory=papers_dir())
        for row in plan.rows:
            if row.table != "2" or not row.view_id:
                continue
            view = next(v.view_config for v in plan.views if v.run_id == row.run_ids[0] and v.view_id == row.view_id)
            pcb = "+ PCB" in row.label
            gain = -0.5 if (fw == "mmdet" and row.label.startswith("Seesaw") and row.group == "v1.0") else 1.0
            for run_id in row.run_ids:
                assert plan.runs[run_id].config["framework"] == fw
                write_record(make_record(plan.runs[run_id].config, view, {"segm.AP": 20.0 + (gain if pcb else 0.0)}), tmp_path)
    values = values_from_store(spec, "2", FW, scale="smoke", results_dir=tmp_path)
    assert values[("Softmax (LVIS v0.5)", "torchvision")] == [20.0]
    frame = sensitivity_frame(values, pairs_from_claim(spec, "pcb-improves-every-base"), FW)
    assert len(frame) == 16
    assert frame.loc["Softmax + PCB (LVIS v0.5)", "gain survives"] == "yes"
    assert frame.loc["Seesaw [34] + PCB (LVIS v1.0)", "mmdet gain"] == pytest.approx(-0.5)
    assert frame.loc["Seesaw [34] + PCB (LVIS v1.0)", "gain survives"] == "no"
    text = to_markdown(frame)
    assert "| Softmax (LVIS v0.5)" in text and "20.0 (n=1)" in text
