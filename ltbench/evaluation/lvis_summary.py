"""LVIS' summary rule over precision/recall arrays: the 13 metrics of record (:func:`summarize`),
per category (:func:`per_category_ap`) and per instance-count bin (:func:`bin_summary`), and the
result of one iou type they are computed from (:class:`IouTypeResult`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ltbench.evaluation.lvis_inputs import FREQUENCIES, MAX_DETS, GroundTruth

# LVIS' summary names, in the order LVISEval.summarize produces them.
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf",
                "AR@300", "ARs@300", "ARm@300", "ARl@300")
AREA_LABELS = ("all", "small", "medium", "large")


# --------------------------------------------------------------------------------------------------
# Summaries, per category and per bin.
# --------------------------------------------------------------------------------------------------
@dataclass
class IouTypeResult:
    """Evaluation of one iou type.

    precision: (T=10, R=101, K, A=4) float64, -1 where a category has no ground truth;
    recall: (T, K, A) float64, same convention; category_ids: (K,) ascending.
    """

    iou_type: str
    summary: dict[str, float]  # METRIC_NAMES -> value in [0, 1] or -1
    precision: Any
    recall: Any
    category_ids: list[int]


def _iou_thresholds() -> Any:
    import numpy as np

    # LVIS' Params: linspace, not arange (arange's points are slightly off).
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def _mean_valid(s: Any) -> float:
    valid = s[s > -1]
    return -1.0 if valid.size == 0 else float(valid.mean())


def summarize(precision: Any, recall: Any, freq_groups: Sequence[Sequence[int]]) -> dict[str, float]:
    """LVIS' summary rule (``LVISEval._summarize``) over precision (T,R,K,A) and recall (T,K,A):
    the mean over all entries > -1 of the selected slice; -1 when there is none.
    ``freq_groups``: category indices (into K) of r, c, f."""
    import numpy as np

    thrs = _iou_thresholds()
    out: dict[str, float] = {}
    out["AP"] = _mean_valid(precision[:, :, :, [0]])
    out["AP50"] = _mean_valid(precision[np.where(thrs == 0.50)[0]][:, :, :, [0]])
    out["AP75"] = _mean_valid(precision[np.where(thrs == 0.75)[0]][:, :, :, [0]])
    for label, a in (("APs", 1), ("APm", 2), ("APl", 3)):
        out[label] = _mean_valid(precision[:, :, :, [a]])
    for label, group in zip(("APr", "APc", "APf"), freq_groups):
        out[label] = _mean_valid(precision[:, :, list(group), [0]])
    out[f"AR@{MAX_DETS}"] = _mean_valid(recall[:, :, [0]])
    for label, a in (("ARs", 1), ("ARm", 2), ("ARl", 3)):
        out[f"{label}@{MAX_DETS}"] = _mean_valid(recall[:, :, [a]])
    return out


def freq_groups_of(gt: GroundTruth, category_ids: Sequence[int]) -> list[list[int]]:
    groups: list[list[int]] = [[] for _ in FREQUENCIES]
    for idx, cid in enumerate(category_ids):
        groups[FREQUENCIES.index(gt.frequency[cid])].append(idx)
    return groups


def per_category_ap(result: IouTypeResult) -> dict[int, float]:
    """AP (in [0, 1]) of each category over IoU 0.5:0.95, area "all"; -1 where it has no ground truth."""
    return {cid: _mean_valid(result.precision[:, :, k, 0]) for k, cid in enumerate(result.category_ids)}


def bin_summary(result: IouTypeResult, train_counts: Mapping[int, int], scheme: str = "lvis") -> dict[str, float]:
    """AP1..AP4 (in [0, 1], -1 for an empty bin): LVIS' rule applied to the categories of each bin."""
    from ltbench.evaluation.bins import BIN_SCHEMES, bins_of

    bins = bins_of(result.category_ids, train_counts, scheme)
    out = {}
    for b in range(len(BIN_SCHEMES[scheme])):
        idx = [k for k, kb in enumerate(bins) if kb == b]
        out[f"AP{b + 1}"] = _mean_valid(result.precision[:, :, idx, [0]]) if idx else -1.0
    return out
