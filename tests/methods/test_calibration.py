"""Post-hoc calibrations against PCB Eq. 4-8, NorCal, SimCal Eq. 2 and tau-norm, in both conventions."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ltbench.methods import calibration as cal
from ltbench.methods.conventions import convert_columns

BOTH = pytest.mark.parametrize("background", ["first", "last"])


def in_convention(probs_last: torch.Tensor, background: str) -> torch.Tensor:
    return convert_columns(probs_last, "last", background)


@BOTH
def test_confusion_calibration_by_hand(background):
    # C = 2; fg probs 0.3, 0.5, bg 0.2 -> p_hat = [3/8, 5/8]
    probs = in_convention(torch.tensor([[0.3, 0.5, 0.2]], dtype=torch.float64), background)
    m = torch.tensor([[0.8, 0.2], [0.5, 0.5]], dtype=torch.float64)
    # M_hat columns: col0 = [.8, .5]/1.3, col1 = [.2, .5]/.7
    p0 = 0.8 / 1.3 * 3 / 8 + 0.2 / 0.7 * 5 / 8
    p1 = 0.5 / 1.3 * 3 / 8 + 0.5 / 0.7 * 5 / 8
    expected_last = torch.tensor([[p0 / (p0 + p1) * 0.8, p1 / (p0 + p1) * 0.8, 0.2]], dtype=torch.float64)
    got = cal.confusion_calibration(probs, m, background)
    torch.testing.assert_close(got, in_convention(expected_last, background))
    torch.testing.assert_close(got.sum(1), torch.ones(1, dtype=torch.float64))


def test_confusion_calibration_identity_matrix_is_identity_and_zero_column_kept():
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(5, 4, dtype=torch.float64), 1)
    torch.testing.assert_close(cal.confusion_calibration(probs, torch.eye(3, dtype=torch.float64), "last"), probs)
    m = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)  # class 2 never seen
    torch.testing.assert_close(cal.confusion_calibration(probs, m, "first"), probs)


@BOTH
def test_mean_score_calibration_by_hand(background):
    probs = in_convention(torch.tensor([[0.3, 0.5, 0.2]], dtype=torch.float64), background)
    s = torch.tensor([0.5, 0.25], dtype=torch.float64)
    a, b = 0.3 / 0.5, 0.5 / 0.25  # 0.6, 2.0 (the fg-renormalisation of p_hat cancels)
    expected = torch.tensor([[a / (a + b) * 0.8, b / (a + b) * 0.8, 0.2]], dtype=torch.float64)
    torch.testing.assert_close(cal.mean_score_calibration(probs, s, background), in_convention(expected, background))
    # s_i = 0 -> uncalibrated factor 1
    got = cal.mean_score_calibration(probs, torch.tensor([0.0, 1.0], dtype=torch.float64), background)
    torch.testing.assert_close(got, probs)


@BOTH
def test_norcal_by_hand_and_gamma_zero(background):
    probs = in_convention(torch.tensor([[0.4, 0.4, 0.2]], dtype=torch.float64), background)
    counts = torch.tensor([100, 1])
    # gamma 0.5: fg / [10, 1] -> [0.04, 0.4], bg 0.2 -> renormalised by 0.64
    expected = torch.tensor([[0.04 / 0.64, 0.4 / 0.64, 0.2 / 0.64]], dtype=torch.float64)
    torch.testing.assert_close(cal.norcal(probs, counts, 0.5, background), in_convention(expected, background))
    raw = cal.norcal(probs, counts, 0.5, background, renormalize=False)
    torch.testing.assert_close(raw, in_convention(torch.tensor([[0.04, 0.4, 0.2]], dtype=torch.float64), background))
    torch.testing.assert_close(cal.norcal(probs, counts, 0.0, background), probs)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=4, max_size=4),
    st.lists(st.integers(0, 5000), min_size=3, max_size=3),
    st.floats(0, 2),
    st.sampled_from(["first", "last"]),
)
def test_calibrations_keep_background_and_sum_to_one(logits, counts, gamma, background):
    probs = torch.softmax(torch.tensor([logits], dtype=torch.float64), 1)
    bg = 0 if background == "first" else 3
    for out in (
        cal.confusion_calibration(probs, torch.rand(3, 3, dtype=torch.float64) + 0.01, background),
        cal.mean_score_calibration(probs, torch.rand(3, dtype=torch.float64) + 0.01, background),
    ):
        assert float(out.sum()) == pytest.approx(1.0)
        assert float(out[0, bg]) == pytest.approx(float(probs[0, bg]))
        assert bool((out >= 0).all())
    assert float(cal.norcal(probs, torch.tensor(counts), gamma, background).sum()) == pytest.approx(1.0)
    torch.testing.assert_close(cal.norcal(probs, torch.tensor(counts), 0.0, background), probs)


@BOTH
def test_dual_head_replace_is_exact(background):
    orig_last = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    cal_last = torch.tensor([[0.5, 0.6, 0.7, 0.8]])
    counts = torch.tensor([99, 100, 300])
    orig, calib = in_convention(orig_last, background), in_convention(cal_last, background)
    got = cal.dual_head(orig, calib, background, instance_counts=counts, threshold=100)
    torch.testing.assert_close(got, in_convention(torch.tensor([[0.5, 0.2, 0.3, 0.4]]), background))
    paper = cal.dual_head(orig, calib, background, instance_counts=counts, threshold=300, inclusive=True, combiner="select")
    torch.testing.assert_close(paper, in_convention(torch.tensor([[0.5, 0.6, 0.7, 0.4]]), background))
    avg = cal.dual_head(orig, calib, background, combiner="average")
    torch.testing.assert_close(avg, in_convention(torch.tensor([[0.3, 0.4, 0.5, 0.6]]), background))


@BOTH
def test_dual_head_select_uses_original_for_background_rows(background):
    orig_last = torch.tensor([[0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    cal_last = torch.tensor([[0.5, 0.4, 0.1], [0.2, 0.7, 0.1]])
    got = cal.dual_head(in_convention(orig_last, background), in_convention(cal_last, background), background, combiner="select_by_original_background")
    expected = torch.stack([orig_last[0], cal_last[1]])
    torch.testing.assert_close(got, in_convention(expected, background))
    with pytest.raises(ValueError):
        cal.dual_head(orig_last, cal_last, background, combiner="replace")


def test_tau_normalize():
    w = torch.tensor([[3.0, 4.0], [0.0, 2.0], [0.0, 0.0]])
    torch.testing.assert_close(cal.tau_normalize(w, 1.0), torch.tensor([[0.6, 0.8], [0.0, 1.0], [0.0, 0.0]]))
    torch.testing.assert_close(cal.tau_normalize(w, 0.0), w)
    half = cal.tau_normalize(w, 0.5, rows=slice(0, 1))
    torch.testing.assert_close(half, torch.tensor([[3 / 5**0.5, 4 / 5**0.5], [0.0, 2.0], [0.0, 0.0]]))
