"""Post-hoc views by name: how a trained model's (R, C+1) probabilities are read without retraining.

``VIEWS`` maps each spec ``view.name`` to ``fn(params, probs (R, C+1), background, stats) -> (R, C+1)``
in the same ``background`` convention; ``params`` are the view config minus ``name``/``id``.
``tests/methods`` checks that the registered names are exactly the spec vocabulary's ``VIEWS``.

``stats`` keys used by the views (arrays in class-index order):
``confusion_matrix`` or ``confusion_matrix_<source>`` (C, C) or ``cm_sum``/``cm_count``;
``mean_scores`` (C,) (default: diagonal of the confusion matrix); ``image_counts`` (C,);
``instance_counts`` (C,); ``original_probabilities`` (R, C+1) (stage-1 head, for ``dual_head``);
``step_probabilities`` list of (R, C+1), step 1 first (for ``recurrent_step``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ltbench.errors import LtbenchError
from ltbench.methods import calibration
from ltbench.registry import Registry

#: ``view.name`` -> fn(params, probs, background, stats) -> probs
VIEWS = Registry("view", key="view.name")

#: views calibrated with the confusion matrix of a first, plain pass over ``source`` (val or train)
CONFUSION_VIEWS = ("cm_calibration", "ms_calibration")


def _stat(stats: Mapping[str, Any], key: str, view: str) -> Any:
    if key not in stats or stats[key] is None:
        raise LtbenchError(f"view {view!r} needs the statistic {key!r}", key=f"view.{view}", expected=f"stats[{key!r}]")
    return stats[key]


def _confusion(stats: Mapping[str, Any], params: Mapping[str, Any], view: str) -> torch.Tensor:
    from ltbench.evaluation.confusion import soft_confusion_matrix

    source = params.get("source")
    for key in ([f"confusion_matrix_{source}"] if source else []) + ["confusion_matrix"]:
        if stats.get(key) is not None:
            return torch.as_tensor(stats[key])
    if stats.get("cm_sum") is not None and stats.get("cm_count") is not None:
        return torch.as_tensor(soft_confusion_matrix(stats["cm_sum"], stats["cm_count"]))
    return _stat(stats, "confusion_matrix", view)


@VIEWS.register("plain")
def plain(params: Mapping[str, Any], probs: torch.Tensor, background: str, stats: Mapping[str, Any]) -> torch.Tensor:
    return probs


@VIEWS.register("cm_calibration")
def cm_calibration(params: Mapping[str, Any], probs: torch.Tensor, background: str, stats: Mapping[str, Any]) -> torch.Tensor:
    """PCB's confusion-matrix calibration (Table 1 "CM"); ``source`` val | train."""
    return calibration.confusion_calibration(probs, _confusion(stats, params, "cm_calibration"), background)  # type: ignore[arg-type]


@VIEWS.register("ms_calibration")
def ms_calibration(params: Mapping[str, Any], probs: torch.Tensor, background: str, stats: Mapping[str, Any]) -> torch.Tensor:
    """Mean-score calibration (PCB Table 1 "MS"): ``mean_scores``, else the confusion matrix's diagonal."""
    if stats.get("mean_scores") is not None:
        scores = torch.as_tensor(stats["mean_scores"])
    else:
        scores = torch.diagonal(_confusion(stats, params, "ms_calibration"))
    return calibration.mean_score_calibration(probs, scores, background)  # type: ignore[arg-type]


@VIEWS.register("norcal")
def norcal(params: Mapping[str, Any], probs: torch.Tensor, background: str, stats: Mapping[str, Any]) -> torch.Tensor:
    """NorCal: fg probabilities divided by image_count^gamma (``gamma``, ``renormalize``)."""
    counts = torch.as_tensor(_stat(stats, "image_counts", "norcal"))
    return calibration.norcal(probs, counts, float(params.get("gamma", 0.0)), background,  # type: ignore[arg-type]
                              renormalize=bool(params.get("renormalize", True)))


@VIEWS.register("dual_head")
def dual_head(params: Mapping[str, Any], probs: torch.Tensor, background: str, stats: Mapping[str, Any]) -> torch.Tensor:
    """SimCal's dual head: ``probs`` are the calibrated head's, ``stats["original_probabilities"]`` the
    stage-1 head's; ``threshold`` (default 100, the released code), ``combiner`` (``replace``/``select`` |
    ``average`` | ``select_by_original_background``), ``inclusive`` (the paper's N <= T)."""
    original = torch.as_tensor(_stat(stats, "original_probabilities", "dual_head"))
    combiner = params.get("combiner", "replace")
    counts = torch.as_tensor(_stat(stats, "instance_counts", "dual_head")) if combiner in ("replace", "select") else None
    try:
        return calibration.dual_head(original, probs, background, instance_counts=counts,  # type: ignore[arg-type]
                                     threshold=float(params.get("threshold", 100)), combiner=combiner,
                                     inclusive=bool(params.get("inclusive", False)))
    except ValueError as exc:
        raise LtbenchError(str(exc), key="view.dual_head", expected="combiner replace, select, average or select_by_original_background") from None


@VIEWS.register("recurrent_step")
def recurrent_step(params: Mapping[str, Any], probs: torch.Tensor, background: str, stats: Mapping[str, Any]) -> torch.Tensor:
    """PCB Table 7: the prediction of recurrent step ``step`` (1-based; default the last)."""
    steps = _stat(stats, "step_probabilities", "recurrent_step")
    step = int(params.get("step", len(steps)))
    if not 1 <= step <= len(steps):
        raise LtbenchError(f"step {step} outside 1..{len(steps)}", key="view.step", expected=f"1..{len(steps)} (1-based, as PCB Table 7)")
    return steps[step - 1]


def apply_view(view_config: Mapping[str, Any], probs: Any, background: str, stats: Mapping[str, Any] | None = None) -> Any:
    """Read (R, C+1) probabilities through the view ``view_config["name"]``; same ``background`` convention."""
    params = {k: v for k, v in view_config.items() if k not in ("name", "id")}
    return VIEWS.get(view_config.get("name"))(params, probs, background, stats or {})


def view_probabilities(head: Any, output: Any, view_config: Mapping[str, Any], stats: Mapping[str, Any] | None = None) -> Any:
    """``apply_view`` on ``head.probabilities(output)``, adding ``step_probabilities`` (recurrent heads) and
    ``original_probabilities`` (stage-2 heads) to ``stats`` from the head itself."""
    merged = dict(stats or {})
    name = view_config.get("name")
    if name == "recurrent_step" and hasattr(head, "step_probabilities") and "step_probabilities" not in merged:
        merged["step_probabilities"] = head.step_probabilities(output)
    if name == "dual_head" and hasattr(head, "original_probabilities") and "original_probabilities" not in merged:
        merged["original_probabilities"] = head.original_probabilities(output)
    return apply_view(view_config, head.probabilities(output), head.background, merged)
