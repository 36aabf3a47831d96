"""Seed statistics and the seed-based verdict of a cell (ltbench.analysis.seeds)."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ltbench.errors import LtbenchError
from ltbench.analysis.seeds import (
    BETTER, UNDETERMINED, WITHIN, WORSE, aggregate, cell_verdict, difference_stats, interval, t975, tolerance_for,
)


def test_aggregate_hand_computed():
    s = aggregate([25.0, 26.0, 27.5])
    assert s.n == 3 and s.mean == pytest.approx(26.1666667)
    # ddof=1: deviations -1.1667, -0.1667, 1.3333 -> squares sum 3.1667 / 2 = 1.5833
    assert s.std == pytest.approx(math.sqrt(1.5833333))
    assert s.median == 26.0 and (s.min, s.max) == (25.0, 27.5)
    assert s.format(1) == "26.2 ± 1.3 (n=3)"


def test_aggregate_drops_undefined_and_handles_single_and_empty():
    s = aggregate([-1.0, 10.0, None])
    assert s.n == 1 and s.std is None and s.n_undefined == 2 and s.format() == "10.0 (n=1)"
    assert aggregate([-1, None]) is None
    assert aggregate([]) is None


def test_t_quantiles_table_and_expansion():
    assert t975(1) == 12.706 and t975(2) == 4.303 and t975(30) == 2.042
    # expansion beyond the table: t_{0.975,40} = 2.021, t_{0.975,120} = 1.980
    assert t975(40) == pytest.approx(2.021, abs=1e-3)
    assert t975(120) == pytest.approx(1.980, abs=1e-3)
    with pytest.raises(LtbenchError):
        t975(0)


def test_t_quantiles_agree_with_scipy_when_available():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 5, 10, 29, 31, 50, 200):
        assert t975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=2e-3)


def test_prediction_interval_hand_computed():
    s = aggregate([20.0, 21.0, 22.0])  # mean 21, std 1
    low, high = interval(s, "prediction")
    half = 4.303 * 1.0 * math.sqrt(1 + 1 / 3)  # 4.9687
    assert (low, high) == pytest.approx((21 - half, 21 + half))
    low, high = interval(s, "ci")
    assert high - 21 == pytest.approx(4.303 / math.sqrt(3))
    assert interval(s, "range") == (20.0, 22.0)
    with pytest.raises(LtbenchError, match="n >= 2"):
        interval(aggregate([1.0]), "prediction")
    with pytest.raises(LtbenchError, match="unknown seed interval method"):
        interval(s, "bootstrap")


def test_cell_verdict_with_seeds():
    values = [20.0, 21.0, 22.0]  # prediction interval 21 ± 4.97
    assert cell_verdict("25.9", values).verdict == WITHIN
    v = cell_verdict("26.1", values)
    assert v.verdict == WORSE and v.method == "prediction" and "interval" in v.describe()
    assert cell_verdict("15.9", values).verdict == BETTER
    # the confidence interval of the mean is narrower: 25.9 is outside it
    assert cell_verdict("25.9", values, method="ci").verdict == WORSE
    # lower is better (PwB): our runs below the paper's number are better
    assert cell_verdict("30.0", values, lower_is_better=True).verdict == BETTER


def test_identical_seeds_use_the_rounding_half_unit():
    v = cell_verdict("21.0", [21.04, 21.04, 21.04])
    assert v.verdict == WITHIN and "half-unit" in " ".join(v.notes)
    assert cell_verdict("21.1", [21.04, 21.04, 21.04]).verdict == WORSE


def test_single_seed_falls_back_to_tolerance_with_noise_note():
    v = cell_verdict("10.0", [11.2], metric="segm.APr", tolerance=1.5)
    assert v.verdict == WITHIN and v.method == "tolerance" and "APr is noisy" in v.notes[0]
    v = cell_verdict("10.0", [11.2], metric="segm.AP", tolerance=1.0)
    assert v.verdict == BETTER and "APr" not in v.notes[0]


def test_undetermined_cells():
    assert cell_verdict(None, [1.0, 2.0]).verdict == UNDETERMINED
    assert cell_verdict("1.0", [-1.0, -1.0]).verdict == UNDETERMINED
    assert cell_verdict("1.0", []).verdict == UNDETERMINED


def test_difference_stats_welch():
    d, low, high = difference_stats([10.0, 11.0, 12.0], [8.0, 9.0, 10.0])
    # d = 2, se = sqrt(1/3 + 1/3) = 0.8165, df = 4 -> t = 2.776
    assert d == pytest.approx(2.0)
    assert (low, high) == pytest.approx((2 - 2.776 * 0.81650, 2 + 2.776 * 0.81650), abs=1e-4)
    # one seed against two: the single run borrows the other side's spread (s = 0.7071, df = 1)
    d, low, high = difference_stats([10.0], [8.0, 9.0])
    half = 12.706 * math.sqrt(0.5) * math.sqrt(1 + 1 / 2)
    assert (d, low, high) == (pytest.approx(1.5), pytest.approx(1.5 - half), pytest.approx(1.5 + half))
    assert difference_stats([10.0], [8.0]) == (2.0, 2.0, 2.0)
    assert difference_stats([1.0, 1.0], [0.0, 0.0]) == (1.0, 1.0, 1.0)  # no spread at all
    assert difference_stats([], [1.0]) is None


def test_tolerance_lookup():
    tol = {"default": 0.5, "APr": 1.5, "segm.AP": 0.7}
    assert tolerance_for("segm.APr", tol) == 1.5
    assert tolerance_for("segm.AP", tol) == 0.7
    assert tolerance_for("bbox.AP", tol) == 0.5
    assert tolerance_for("PwB", {}) == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=2, max_size=8))
def test_mean_of_the_runs_is_always_within(values):
    s = aggregate(values)
    assert s.mean == pytest.approx(statistics.fmean(values))
    assert cell_verdict(s.mean, values).verdict == WITHIN
    low, high = interval(s, "prediction")
    ci_low, ci_high = interval(s, "ci")
    assert low <= ci_low + 1e-9 and ci_high <= high + 1e-9


def test_table_notes():
    from ltbench.analysis.seeds import table_notes

    notes = table_notes([("segm.APr", 1), ("segm.AP", 1), ("bbox.APr", 3)])
    assert len(notes) == 2 and "1 APr cell(s)" in notes[0] and "fixed per-metric tolerance" in notes[1]
    assert table_notes([("segm.AP", 1)]) == [table_notes([("segm.AP", 1)])[0]] and "APr" not in table_notes([("segm.AP", 1)])[0]
    assert table_notes([("segm.APr", 3), ("segm.AP", 2)]) == []
