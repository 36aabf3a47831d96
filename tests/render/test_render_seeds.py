"""Tables with seeds: mean ± std (n), seed-interval verdicts (n >= 2), fixed tolerance and the APr note (n = 1)."""

from __future__ import annotations

from ltbench.render.markdown import render_markdown
from ltbench.render.model import BETTER, WITHIN, WORSE, Column, ColumnGroup, LayoutRow, TableLayout, build_table, make_cell

COLS = (Column("AP", "segm.AP"), Column("APr", "segm.APr"))


def _cell(values, reported="21.9", tolerance=1.0):
    return make_cell(reported=reported, values=values, failures=[], n_expected=len(values), precision=1,
                     tolerance=tolerance, lower_is_better=False, statistic="mean", metric="segm.AP")


def test_three_seeds_print_mean_std_n():
    cell = _cell([21.0, 22.0, 23.0])
    assert cell.text() == "22.0 ± 1.0 (n=3) (+0.1) ✓"
    assert cell.verdict == WITHIN and cell.interval is not None


def test_seed_interval_decides_not_the_fixed_tolerance():
    # tight seeds: mean 23.0, std 0.1 -> prediction interval ~ [22.5, 23.5]: 21.9 is outside, although a
    # 2-point fixed tolerance would have called it within
    tight = _cell([22.9, 23.0, 23.1], tolerance=2.0)
    assert tight.verdict == BETTER
    # wide seeds: mean 20.0, std 2.0 -> interval ~ [14.0, 26.0] holds 21.9 although 0.5 tolerance would not
    wide = _cell([18.0, 20.0, 22.0], tolerance=0.5)
    assert wide.verdict == WITHIN
    low = _cell([19.0, 19.1, 19.2], tolerance=5.0)
    assert low.verdict == WORSE


def test_single_seed_uses_the_fixed_tolerance():
    assert _cell([22.8], tolerance=1.0).verdict == WITHIN
    assert _cell([23.0], tolerance=1.0).verdict == BETTER


def _table(pairs_a, pairs_b):
    layout = TableLayout("pcb", "2", "", 1, [ColumnGroup("v0.5", "LVIS v0.5", COLS)], ["Method"], [
        LayoutRow("Softmax", "v0.5", {"Method": "Softmax"}, {"segm.AP": "15.3", "segm.APr": "0.4"}, pairs_a),
        LayoutRow("Softmax + PCB", "v0.5", {"Method": "Softmax + PCB"}, {"segm.AP": "18.5", "segm.APr": "6.3"}, pairs_b),
    ])
    return layout


def test_table_with_three_seeds_renders_mean_std_and_no_single_run_note():
    a = [(f"a{s}", "plain") for s in range(3)]
    b = [(f"b{s}", "plain") for s in range(3)]
    results = {p: {"segm.AP": 15.0 + i * 0.5, "segm.APr": 0.2 + i} for i, p in enumerate(a)}
    results.update({p: {"segm.AP": 18.0 + i * 0.5, "segm.APr": 5.0 + i} for i, p in enumerate(b)})
    built = build_table(_table(a, b), results, tolerances={"default": 1.0})
    md = render_markdown(built)
    assert "15.5 ± 0.5 (n=3)" in md and "18.5 ± 0.5 (n=3)" in md and "6.0 ± 1.0 (n=3)" in md
    assert "APr is noisy" not in md and "n = 1" not in md
    assert "95 % prediction interval of the runs" in md
    assert built.summary.reproduced == 4


def test_table_with_one_seed_says_apr_is_noisy():
    results = {("a0", "plain"): {"segm.AP": 15.0, "segm.APr": 0.2}, ("b0", "plain"): {"segm.AP": 18.0, "segm.APr": 5.0}}
    built = build_table(_table([("a0", "plain")], [("b0", "plain")]), results)
    md = render_markdown(built)
    assert "LVIS APr is noisy: 2 APr cell(s) rest on a single run (n = 1)" in md
    assert "fixed per-metric tolerance" in md
    assert "prediction interval of the runs" not in md  # no multi-seed cell: no seed legend
