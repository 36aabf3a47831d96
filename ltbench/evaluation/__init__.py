"""Evaluation: the LVIS metrics of record, instance-count bins, proposal accuracy, the soft confusion
matrix and PwB, dataset statistics.

Frameworks train and predict; ltbench evaluates, the same way for every framework.

Public API (see ``docs/CONTRACTS.md``):

- :func:`evaluate` (``ltbench.evaluation.lvis_eval.evaluate``): a detections file -> flat metrics dict.
- ``ltbench.evaluation.confusion``: ``accumulate``, ``soft_confusion_matrix``, ``pairwise_bias``,
  ``proposal_accuracy``, ``plot_confusion_heatmap``.
- ``ltbench.evaluation.bins``: instance-count bins (LVIS, COCO-LT) and training instance counts.
- ``ltbench.evaluation.stats``: dataset statistics (SimCal Table 1).

Heavy modules (numpy, lvis, faster-coco-eval, matplotlib) are imported inside functions, so importing
this package stays cheap.
"""

from __future__ import annotations

from typing import Any


def evaluate(*args: Any, **kwargs: Any) -> dict[str, float]:
    """See :func:`ltbench.evaluation.lvis_eval.evaluate`."""
    from ltbench.evaluation.lvis_eval import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


__all__ = ["evaluate"]
