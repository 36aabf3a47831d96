"""Run config -> box head: ``head_for_run(run_config) -> (registered head name, params)``.

Maps the run's ``loss``, ``classifier``, ``head`` and ``regularizer`` (vocabulary in
``workflows/papers/FORMAT.md``) onto a head registered in ``BOX_HEADS``; build it with
``build_box_head(name, num_classes=, background=, num_box_deltas=, class_stats=, **params)``.
Stage-2 methods are in ``ltbench.methods.stage2``, views in ``ltbench.methods.views``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ltbench.errors import LtbenchError

#: run ``loss.name`` -> registered base head (part 1 registers them in ``ltbench.methods.heads``).
LOSS_TO_HEAD: dict[str, str] = {
    "ce": "softmax",
    "eqlv2": "eqlv2",
    "seesaw": "seesaw",
    "focal": "focal",
    "reweight": "reweight",
    "class_margin": "class_margin",
    "group_softmax": "group_softmax",
    "bce": "bce",
    "eql": "eql",
}
#: run ``regularizer.name`` -> head replacing a CE base (label smoothing variants are losses of their own).
REGULARIZER_TO_HEAD: dict[str, str] = {
    "label_smoothing": "label_smoothing",
    "online_label_smoothing": "online_label_smoothing",
}
#: PCB's ``statistics`` spec value per variant (what the confusion matrix is collected from).
PCB_STATISTICS: dict[str, str] = {"ce": "softmax_fg", "eqlv2": "sigmoid_fg", "seesaw": "softmax_classes"}



def _component(run_config: Mapping[str, Any], key: str, default: str | None) -> dict[str, Any] | None:
    value = run_config.get(key)
    if value is None:
        return None if default is None else {"name": default}
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, Mapping) or "name" not in value:
        raise LtbenchError(f"run config {key} must be an object with a name", key=key, expected="{name: ..., params}")
    return dict(value)


def _params(component: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in component.items() if k != "name"}


def _gate_unit(run_config: Mapping[str, Any], pcb_params: Mapping[str, Any] | None = None) -> str:
    """Iteration gate whenever the plan set ``start_iteration`` (every planned PCB run: the same point of the
    run in every framework, whatever each framework's epoch length), for detectron2 and for schedules given
    only in iterations (smoke scale); otherwise an epoch gate (epochs of the adapter's sampler)."""
    if (pcb_params or {}).get("start_iteration") is not None or run_config.get("framework") == "detectron2":
        return "iteration"
    schedule = run_config.get("schedule")
    if isinstance(schedule, Mapping) and "epochs" not in schedule and "iterations" in schedule:
        return "iteration"
    return "epoch"


def head_for_run(run_config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The registered head name and its parameters for a resolved run config.

    Loss params (minus ``name``) go to the base head; a non-default ``classifier`` is passed as
    ``classifier=``; ``head: iterative|dsn`` wraps the base in PCB's recurrent head (``loss_weights`` ->
    step weights; ``regression_step`` must be the last step, the only official choice); ``regularizer: pcb``
    adds the PCB parameters (on a ``standard`` head: the single-step PCB of Eq. 11).
    """
    from ltbench.methods.box_head import BOX_HEADS
    from ltbench.methods.heads import LogitsBoxHead

    loss = _component(run_config, "loss", "ce")
    classifier = _component(run_config, "classifier", "linear")
    head = _component(run_config, "head", "standard")
    regularizer = _component(run_config, "regularizer", None)
    assert loss is not None and classifier is not None and head is not None

    if loss["name"] not in LOSS_TO_HEAD:
        raise LtbenchError(f"unknown loss {loss['name']!r}", key="loss.name", expected="one of " + ", ".join(LOSS_TO_HEAD))
    base = LOSS_TO_HEAD[loss["name"]]
    base_params = _params(loss)
    pcb_params: dict[str, Any] | None = None
    if regularizer is not None:
        if regularizer["name"] == "pcb":
            pcb_params = _params(regularizer)
        elif regularizer["name"] in REGULARIZER_TO_HEAD:
            if loss["name"] != "ce":
                raise LtbenchError(
                    f"regularizer {regularizer['name']} is only defined on the softmax CE loss, not {loss['name']}",
                    key="regularizer",
                    expected="loss ce",
                )
            base = REGULARIZER_TO_HEAD[regularizer["name"]]
            base_params.update(_params(regularizer))
        else:
            raise LtbenchError(
                f"unknown regularizer {regularizer['name']!r}", key="regularizer.name", expected="pcb, label_smoothing or online_label_smoothing"
            )
    if classifier != {"name": "linear"}:
        if not issubclass(BOX_HEADS.get(base), LogitsBoxHead):  # one classifier of K logits: replaceable
            raise LtbenchError(
                f"head {base!r} takes no classifier option, but the run asks for {classifier}",
                key="classifier",
                expected="classifier linear for this loss",
            )
        base_params["classifier"] = classifier

    variant = base if base in ("seesaw", "eqlv2") else "ce"
    if pcb_params is not None:
        statistics = pcb_params.pop("statistics", None)
        if statistics is not None and statistics != PCB_STATISTICS[variant]:
            raise LtbenchError(
                f"PCB statistics {statistics!r} do not match the {variant} variant",
                key="regularizer.statistics",
                expected=repr(PCB_STATISTICS[variant]),
            )
        pcb_params.setdefault("gate_unit", _gate_unit(run_config, pcb_params))

    head_params = _params(head)
    if head["name"] == "standard":
        unsupported = set(head_params) - {"class_agnostic_box", "class_agnostic_mask"}  # box/mask: adapter's
        if unsupported:
            raise LtbenchError(f"unknown standard-head option(s) {sorted(unsupported)}", key="head", expected="class_agnostic_box, class_agnostic_mask")
        if pcb_params is None:
            return base, base_params
        return "iterative", {"base": base, "steps": 1, "pcb": pcb_params, **base_params}
    if head["name"] not in ("iterative", "dsn"):
        raise LtbenchError(f"unknown head {head['name']!r}", key="head.name", expected="standard, iterative or dsn")
    steps = int(head_params.pop("steps", 3))
    params: dict[str, Any] = {"base": base, "steps": steps}
    if "loss_weights" in head_params:
        params["step_weights"] = list(head_params.pop("loss_weights"))
    regression_step = head_params.pop("regression_step", steps)
    if regression_step != steps:
        raise LtbenchError(
            f"regression_step {regression_step} is not the last step ({steps})",
            key="head.regression_step",
            expected=f"{steps} (the official code regresses from the last step only)",
        )
    for key in ("layer_norm", "mlp_hidden"):
        if key in head_params:
            params[key] = head_params.pop(key)
    if head_params:
        raise LtbenchError(f"unknown {head['name']} head option(s) {sorted(head_params)}", key="head", expected="steps, loss_weights, regression_step, layer_norm, mlp_hidden")
    if pcb_params is not None:
        params["pcb"] = pcb_params
    return head["name"], {**params, **base_params}
