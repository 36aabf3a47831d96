"""Tables: half-up rounding, signed differences, verdicts, pending/failed cells, layout, LaTeX safety."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ltbench.render.latex import render_latex, tex_escape
from ltbench.render.markdown import render_markdown
from ltbench.render.model import (
    BETTER,
    WITHIN,
    WORSE,
    Column,
    ColumnGroup,
    LayoutRow,
    TableLayout,
    build_table,
    make_cell,
    tolerance_for,
)
from ltbench.render.numbers import decimals_of, fmt, fmt_signed, round_half_up


@pytest.mark.parametrize(
    ("value", "precision", "text"),
    [(27.25, 1, "27.3"), (27.35, 1, "27.4"), (0.05, 1, "0.1"), (2.675, 2, "2.68"), (-0.04, 1, "0.0"), (21.949999, 1, "21.9"), (7, 0, "7")],
)
def test_half_up_rounding_is_not_float_formatting(value, precision, text):
    assert fmt(value, precision) == text


def test_float_format_would_have_rounded_differently():
    assert f"{27.25:.1f}" == "27.2" and fmt(27.25, 1) == "27.3"  # the reason numbers.py exists


def test_signed_difference_and_decimals():
    assert fmt_signed(Decimal("0.4"), 1) == "+0.4"
    assert fmt_signed(Decimal("-1.25"), 1) == "-1.3"
    assert fmt_signed(Decimal("0.04"), 1) == "±0.0"
    assert decimals_of("21.9") == 1 and decimals_of("7") == 0 and decimals_of("0.125") == 3
    assert round_half_up("1.005", 2) == Decimal("1.01")


def test_tolerance_lookup_order():
    tol = {"default": 1.0, "APr": 2.0, "segm.APr": 2.5}
    assert tolerance_for("segm.APr", tol) == 2.5
    assert tolerance_for("bbox.APr", tol) == 2.0
    assert tolerance_for("segm.AP", tol) == 1.0


def _cell(values, reported="21.9", **kw):
    args = dict(reported=reported, values=values, failures=[], n_expected=kw.pop("n", 1), precision=1, tolerance=1.0,
                lower_is_better=False, statistic="mean")
    args.update(kw)
    return make_cell(**args)


def test_cell_difference_uses_the_rounded_values_and_paper_precision():
    c = _cell([22.85])  # 22.85 -> 22.9 (half up); 22.9 - 21.9 = +1.0: within a tolerance of 1.0
    assert c.status == "measured" and c.delta == "+1.0" and c.verdict == WITHIN
    assert c.text() == "22.9 (+1.0) ✓"
    assert _cell([23.0]).verdict == BETTER
    assert _cell([20.0]).verdict == WORSE and _cell([20.0]).text() == "20.0 (-1.9) ✗"
    # lower is better (PwB): a much lower value is an improvement
    assert _cell([10.0], reported="13.8", lower_is_better=True).verdict == BETTER
    # the paper's own precision wins over the default
    assert _cell([1.234], reported="1.20").text() == "1.23 (+0.03) ✓"


def test_cell_states():
    assert _cell([]).text() == "pending (21.9)"
    assert _cell([22.0], n=3).text() == "pending 1/3 seeds (21.9)"
    assert _cell([], failures=["train: CUDA out of memory"]).text() == "failed: train: CUDA out of memory (21.9)"
    assert _cell([-1.0]).status == "undefined"
    assert _cell([], not_reproducible="test server closed").text() == "n/a (21.9)"
    assert _cell([22.0], reported=None).text() == "22.0 (paper: –)"
    seeds = _cell([21.0, 22.0, 23.0], n=3)
    assert seeds.text() == "22.0 ± 1.0 (n=3) (+0.1) ✓"
    median = _cell([21.0, 22.0, 29.0], n=3, statistic="median")
    assert str(median.value) == "22.0"


COLS = (Column("AP", "segm.AP"), Column("AP_r", "segm.APr"), Column("PwB ↓", "PwB", lower_is_better=True))


def pcb_like_layout(pairs=True) -> TableLayout:
    """The shape of PCB Table 2: v0.5 | v1.0 side by side, rows Softmax/RFS x PCB, one cited row."""

    def row(label, method, pcb, group, reported, run, **kw):
        return LayoutRow(label, group, {"Method": method, "PCB": pcb}, reported, [(run, "plain")] if pairs else [], **kw)

    return TableLayout(
        paper="pcb",
        table_id="2",
        caption="Results on LVIS v0.5 and v1.0 (R-50) & more_",
        precision=1,
        column_groups=[ColumnGroup("v0.5", "LVIS v0.5", COLS), ColumnGroup("v1.0", "LVIS v1.0", COLS)],
        attribute_columns=["Method", "PCB"],
        rows=[
            row("Softmax", "Softmax", "✗", "v0.5", {"segm.AP": "21.9", "segm.APr": "4.6", "PwB": "13.8"}, "sm05"),
            row("Softmax+PCB", "", "✓", "v0.5", {"segm.AP": "25.1", "segm.APr": "12.6", "PwB": "8.4"}, "pcb05", assumptions=["pcb-start"]),
            row("Softmax", "Softmax", "✗", "v1.0", {"segm.AP": "19.0", "segm.APr": "1.3", "PwB": "14.5"}, "sm1"),
            row("Softmax+PCB", "", "✓", "v1.0", {"segm.AP": "22.6", "segm.APr": "7.7", "PwB": "8.8"}, "pcb1"),
            row("RFS", "RFS [12]", "✗", "v1.0", {"segm.AP": "23.7", "segm.APr": "13.5"}, "rfs1", cited={"from": "[10]", "note": "LOCE"}),
        ],
        assumptions={"pcb-start": "start_epoch read as 1-based"},
    )


def test_zero_results_render_all_pending():
    built = build_table(pcb_like_layout(), {})
    md = render_markdown(built)
    assert built.summary.reproduced == 0 and built.summary.total == 15 and built.summary.pending == 15
    assert "0 cells within tolerance / 0 reproduced / 15 total (15 pending, 0 failed)" in md
    assert md.count("pending") >= 15
    assert "n/a" not in md
    render_latex(built)  # renders too


def test_layout_mirrors_paper_rows_and_side_by_side_groups():
    results = {(r, "plain"): {"segm.AP": 20.0, "segm.APr": 5.0, "PwB": 12.0} for r in ("sm05", "pcb05", "sm1", "pcb1", "rfs1")}
    built = build_table(pcb_like_layout(), results, tolerances={"default": 1.0})
    md = render_markdown(built)
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert lines[0].split("|")[1].strip() == "Method"
    assert "LVIS v0.5 AP" in lines[0] and lines[0].index("LVIS v0.5 AP") < lines[0].index("LVIS v1.0 AP")
    assert lines[1].count("---:") == 6 and lines[1].startswith("|:")  # metric columns right-aligned
    body = lines[2:]
    assert [b.split("|")[1].strip() for b in body] == ["Softmax", "", "RFS [12] †2"]
    assert body[1].split("|")[2].strip() == "✓ *1"  # continuation row: Method blank as in the paper
    # RFS has no v0.5 row: those cells are empty, and not counted
    rfs = [c.strip() for c in body[2].split("|")[1:-1]]
    assert rfs[2:5] == ["–", "–", "–"] and rfs[5] == "20.0 (-3.7) ✗" and rfs[7] == "12.0 (paper: –)"
    assert built.summary.total == 15 and built.summary.reproduced == 15
    assert built.summary.within == 2  # Softmax v0.5 AP_r (+0.4) and v1.0 AP (+1.0, at the tolerance)
    assert "1. pcb-start: start_epoch read as 1-based" in md and "2. copied from [10] (LOCE) [LVIS v1.0]" in md


def test_failed_runs_show_reason_and_count():
    results = {("sm05", "plain"): {"segm.AP": 21.9, "segm.APr": 4.6, "PwB": 13.8}}
    failures = {("pcb05", None): "train: loss is NaN", ("sm1", "plain"): "predict: killed"}
    built = build_table(pcb_like_layout(), results, failures=failures)
    md = render_markdown(built)
    assert "failed: train: loss is NaN (25.1)" in md and "failed: predict: killed (19.0)" in md
    assert built.summary.within == 3 and built.summary.failed == 6 and built.summary.pending == 6
    assert "3 cells within tolerance / 3 reproduced / 15 total (6 pending, 6 failed)" in md


def test_a_pcb_run_whose_regulariser_never_turned_on_is_footnoted_on_its_row():
    """The record says PCB's gate never opened (training.pcb.regularised_iterations == 0): the row says so, with
    the seed and the category that kept it shut; a run whose regulariser ran gets no note."""
    from ltbench.render.run_notes import run_notes

    results = {("pcb1", "plain"): {"segm.AP": 20.0, "segm.APr": 0.0, "PwB": 3.0}, ("pcb05", "plain"): {"segm.AP": 20.0}}
    training = lambda pcb: {"train": {"training": {"notes": [], "pcb": pcb}}}  # noqa: E731
    records = {("pcb1", "plain"): {"seed": 1, **training({"regularised_iterations": 0, "targets": 0, "classes_never_seen": [458]})},
               ("pcb05", "plain"): {"seed": 0, **training({"regularised_iterations": 67, "targets": 8576, "offlabel_pct": 81.6,
                                                             "classes_never_seen": []})},
               ("sm1", "plain"): {"seed": 0, "train": {"training": {"notes": []}}}}
    notes = run_notes(records)
    assert list(notes) == [("pcb1", "plain")]
    md = render_markdown(build_table(pcb_like_layout(), results, run_notes=notes))
    assert ("Softmax+PCB [LVIS v1.0], seed 1: PCB's regulariser never turned on: category 458 never sampled as a foreground "
            "RoI (the official gate waits for every class); the run is the recurrent head without PCB's loss") in md
    assert md.count("regulariser never turned on") == 1


def test_a_record_wins_over_a_stale_failure():
    results = {("sm05", "plain"): {"segm.AP": 21.9, "segm.APr": 4.6, "PwB": 13.8}}
    built = build_table(pcb_like_layout(), results, failures={("sm05", None): "old crash"})
    assert built.summary.failed == 0 and built.summary.reproduced == 3


def test_unknown_group_is_an_error():
    layout = pcb_like_layout()
    layout.rows[0].group = "v2"
    with pytest.raises(ValueError, match="column group 'v2'"):
        build_table(layout, {})


def test_latex_is_escaped_booktabs_with_group_headers():
    built = build_table(pcb_like_layout(), {("sm05", "plain"): {"segm.AP": 21.9, "segm.APr": 4.6, "PwB": 13.8}})
    tex = render_latex(built)
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\multicolumn{3}{c}{LVIS v0.5}" in tex and r"\cmidrule(lr){3-5}" in tex and r"\cmidrule(lr){6-8}" in tex
    assert r"\& more\_" in tex and r"AP$_{\mathrm{r}}$" in tex and r"PwB $\downarrow$" in tex
    assert r"21.9 ($\pm$0.0) $\checkmark$" in tex
    assert "✓" not in tex and "{{" not in tex
    # every body line has the same number of columns as the spec
    body = [ln for ln in tex.splitlines() if ln.endswith(r"\\") and "&" in ln and "multicolumn" not in ln]
    assert all(ln.count(" & ") == 7 for ln in body)


def test_tex_escape_covers_specials():
    assert tex_escape(r"50% of $x_1 & #2 {a} ~ ^ \ ") == r"50\% of \$x\_1 \& \#2 \{a\} \textasciitilde{} \textasciicircum{} \textbackslash{} "


def test_strict_undefined_in_template():
    import jinja2

    from ltbench.render.latex import environment

    with pytest.raises(jinja2.UndefinedError):
        environment().from_string(r"\VAR{nothing}").render()


def test_median_run_takes_every_cell_from_one_seed():
    layout = TableLayout("simcal", "5", "", 1, [ColumnGroup("g", "G", COLS)], [], [
        LayoutRow("SimCal", "g", {}, {"segm.AP": "23.4"}, [("s0", "plain"), ("s1", "plain"), ("s2", "plain")],
                  seed_rule={"rule": "median_run", "by": "segm.AP"}),
    ])
    results = {
        ("s0", "plain"): {"segm.AP": 22.0, "segm.APr": 9.0, "PwB": 1.0},
        ("s1", "plain"): {"segm.AP": 24.0, "segm.APr": 1.0, "PwB": 2.0},
        ("s2", "plain"): {"segm.AP": 23.0, "segm.APr": 5.0, "PwB": 3.0},
    }
    built = build_table(layout, results)
    cells = built.rows[0].cells
    assert cells[("g", "segm.AP")].text() == "23.0 (-0.4) ✓"
    assert float(cells[("g", "segm.APr")].value) == 5.0 and float(cells[("g", "PwB")].value) == 3.0  # same seed s2
    assert any("median run by segm.AP of 3 seeds" in text for _, text in built.footnotes)
    partial = build_table(layout, {k: v for k, v in results.items() if k[0] != "s1"})
    assert partial.rows[0].cells[("g", "segm.AP")].text() == "pending 2/3 seeds (23.4)"
