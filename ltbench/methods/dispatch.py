"""What the adapters call: run config -> box head, stage-2 head, and post-hoc views.

- ``head_for_run(run_config) -> (name, params)``: maps the run's ``loss``, ``classifier``, ``head`` and
  ``regularizer`` (vocabulary in ``workflows/papers/FORMAT.md``) onto a registered head; build it with
  ``build_box_head(name, num_classes=, background=, num_box_deltas=, **params, instance_counts=,
  image_counts=)``.
- ``build_stage2(run_config, stage1_head, instance_counts=, image_counts=) -> BoxHead``.
- ``apply_view(view_config, probs (R, C+1), background, stats) -> probs (R, C+1)`` for the views ``plain``,
  ``cm_calibration``, ``ms_calibration``, ``norcal``, ``dual_head``, ``recurrent_step``; and
  ``view_probabilities(head, output, view_config, stats)`` which fills the head-dependent statistics
  (per-step and stage-1 probabilities) and calls ``apply_view``.

``stats`` keys used by the views (arrays in class-index order):
``confusion_matrix`` or ``confusion_matrix_<source>`` (C, C) or ``cm_sum``/``cm_count``;
``mean_scores`` (C,) (default: diagonal of the confusion matrix); ``image_counts`` (C,);
``instance_counts`` (C,); ``original_probabilities`` (R, C+1) (stage-1 head, for ``dual_head``);
``step_probabilities`` list of (R, C+1), step 1 first (for ``recurrent_step``).
"""

from __future__ import annotations

import inspect
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

VIEW_NAMES = ("plain", "cm_calibration", "ms_calibration", "norcal", "dual_head", "recurrent_step")
STAGE2_NAMES = ("disalign", "simcal", "bags", "crt", "lws", "tau_norm", "ncm", "finetune", "finetune_tail")


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


def _gate_unit(run_config: Mapping[str, Any]) -> str:
    """Epoch gate for epoch-based schedules (mmdet, torchvision at paper scale); iteration gate for
    detectron2 and for schedules given only in iterations (smoke scale)."""
    if run_config.get("framework") == "detectron2":
        return "iteration"
    schedule = run_config.get("schedule")
    if isinstance(schedule, Mapping) and "epochs" not in schedule and "iterations" in schedule:
        return "iteration"
    return "epoch"


def _accepts(head_name: str, param: str) -> bool:
    import ltbench.methods.heads  # noqa: F401  (registers part 1's heads)
    from ltbench.methods.box_head import BOX_HEADS

    if head_name not in BOX_HEADS:
        return False
    cls = BOX_HEADS.get(head_name)
    return any(param in inspect.signature(c.__init__).parameters for c in cls.__mro__ if "__init__" in vars(c))


def head_for_run(run_config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The registered head name and its parameters for a resolved run config.

    Loss params (minus ``name``) go to the base head; a non-default ``classifier`` is passed as
    ``classifier=``; ``head: iterative|dsn`` wraps the base in PCB's recurrent head (``loss_weights`` ->
    step weights; ``regression_step`` must be the last step, the only official choice); ``regularizer: pcb``
    adds the PCB parameters (on a ``standard`` head: the single-step PCB of Eq. 11).
    """
    import ltbench.methods.pcb  # noqa: F401  (registers "iterative", "dsn", "pcb" for build_box_head)

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
        if not _accepts(base, "classifier"):
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
        pcb_params.setdefault("gate_unit", _gate_unit(run_config))

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


def _bags_head(stage2: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """BAGS spec params -> (head name, params): part 1's ``group_softmax`` head for the official design,
    ``bags_ablation`` (``two_stage.GroupSoftmaxAblationHead``) without the background group or "others"."""
    params: dict[str, Any] = {}
    if "groups" in stage2:
        params["bin_edges"] = tuple(stage2["groups"])
    if "beta" in stage2:
        params["beta"] = float(stage2["beta"])
    flags = {flag: bool(stage2.get(flag, True)) for flag in ("background_group", "others")}
    if all(flags.values()):
        return "group_softmax", params
    return "bags_ablation", {**params, **flags}


def build_stage2(
    run_config: Mapping[str, Any],
    stage1_head: Any,
    *,
    instance_counts: list[int] | None = None,
    image_counts: list[int] | None = None,
) -> Any:
    """The stage-2 head of ``run_config["stage2"]`` around the trained ``stage1_head`` (see ``two_stage``).

    Recipe keys (``epochs``, ``sampler``, ``frozen_stages``, ``tail_max_instances``, ``keep_head``, ...) are
    for the plan and the adapter and ignored here.
    """
    from ltbench.methods import two_stage

    stage2 = run_config.get("stage2")
    if not isinstance(stage2, Mapping):
        raise LtbenchError("run has no stage2 method", key="stage2", expected="{name: " + "|".join(STAGE2_NAMES) + ", ...}")
    name = stage2.get("name", stage2.get("method"))
    if name == "disalign":
        counts = image_counts if stage2.get("counts", "instance") == "image" else instance_counts
        return two_stage.DisAlignHead(stage1_head, counts=counts, rho=float(stage2.get("rho", 0.8)))
    if name == "simcal" or (name == "finetune" and stage2.get("head") in ("3fc_ft", "2fc_rand")):
        # finetune + calibration head: SimCal Table 4 (the head re-trained with another loss, trainable cls_head)
        if name == "finetune" and stage2.get("trainable", "cls_head") != "cls_head":
            raise LtbenchError(
                "a fine-tuned calibration head trains only itself", key="stage2.trainable", expected="cls_head"
            )
        loss_name, loss_params = None, None
        if "loss" in stage2:
            loss_name, loss_params = head_for_run({"loss": stage2["loss"]})
        return two_stage.SimCalHead(
            stage1_head,
            variant=stage2.get("head", "3fc_ft"),
            loss_head=loss_name,
            loss_params=loss_params,
            instance_counts=instance_counts,
            image_counts=image_counts,
        )
    if name == "bags":
        head_name, params = _bags_head(stage2)
        return two_stage.retrain_classifier(
            stage1_head, head_name, trainable=stage2.get("trainable", "fc_cls"), instance_counts=instance_counts, **params
        )
    if name == "crt":
        classifier = _component(run_config, "classifier", "linear")
        extra = {} if classifier == {"name": "linear"} else {"classifier": classifier}
        return two_stage.retrain_classifier(stage1_head, "softmax", trainable="fc_cls", **extra)
    if name == "lws":
        return two_stage.LWSHead(stage1_head)
    if name == "tau_norm":
        return two_stage.TauNormHead(
            stage1_head, tau=float(stage2.get("tau", 1.0)), rows=stage2.get("rows", "all"), bias=stage2.get("bias", "keep")
        )
    if name == "ncm":
        return two_stage.NCMHead(stage1_head, feature=stage2.get("feature", "fc"), temperature=float(stage2.get("temperature", 1.0)))
    if name in ("finetune", "finetune_tail"):
        trainable = stage2.get("trainable", "all")
        if "loss" in stage2:  # fine-tune with another loss: new head, shape-matching weights copied over
            loss_name, loss_params = head_for_run({**run_config, "loss": stage2["loss"], "head": None, "regularizer": None})
            return two_stage.retrain_classifier(
                stage1_head, loss_name, trainable=trainable, keep_classifier=True, instance_counts=instance_counts, **loss_params
            )
        return two_stage.set_trainable(stage1_head, trainable)
    raise LtbenchError(f"unknown stage-2 method {name!r}", key="stage2.name", expected="one of " + ", ".join(STAGE2_NAMES))


def _stat(stats: Mapping[str, Any], key: str, view: str) -> Any:
    if key not in stats or stats[key] is None:
        raise LtbenchError(f"view {view!r} needs the statistic {key!r}", key=f"view.{view}", expected=f"stats[{key!r}]")
    return stats[key]


def _confusion(stats: Mapping[str, Any], view_config: Mapping[str, Any]) -> Any:
    import torch

    from ltbench.evaluation.confusion import soft_confusion_matrix

    source = view_config.get("source")
    for key in ([f"confusion_matrix_{source}"] if source else []) + ["confusion_matrix"]:
        if stats.get(key) is not None:
            return torch.as_tensor(stats[key])
    if stats.get("cm_sum") is not None and stats.get("cm_count") is not None:
        return torch.as_tensor(soft_confusion_matrix(stats["cm_sum"], stats["cm_count"]))
    return _stat(stats, "confusion_matrix", str(view_config.get("name")))


def apply_view(view_config: Mapping[str, Any], probs: Any, background: str, stats: Mapping[str, Any] | None = None) -> Any:
    """Read (R, C+1) probabilities through a view; returns (R, C+1) in the same ``background`` convention.

    ``dual_head``: ``probs`` are the stage-2 (calibrated) head's, ``stats["original_probabilities"]`` the
    stage-1 head's; params ``threshold`` (default 100, the released SimCal code), ``combiner``
    (``replace``/``select`` | ``average`` | ``select_by_original_background``), ``inclusive`` (paper's ``<=``).
    ``recurrent_step``: param ``step``, 1-based as in PCB Table 7.
    """
    import torch

    from ltbench.methods import calibration

    stats = stats or {}
    name = view_config.get("name")
    params = {k: v for k, v in view_config.items() if k not in ("name", "id")}
    if name == "plain":
        return probs
    if name == "cm_calibration":
        return calibration.confusion_calibration(probs, _confusion(stats, view_config), background)  # type: ignore[arg-type]
    if name == "ms_calibration":
        if stats.get("mean_scores") is not None:
            scores = torch.as_tensor(stats["mean_scores"])
        else:
            scores = torch.diagonal(_confusion(stats, view_config))
        return calibration.mean_score_calibration(probs, scores, background)  # type: ignore[arg-type]
    if name == "norcal":
        counts = torch.as_tensor(_stat(stats, "image_counts", name))
        return calibration.norcal(
            probs, counts, float(params.get("gamma", 0.0)), background, renormalize=bool(params.get("renormalize", True))  # type: ignore[arg-type]
        )
    if name == "dual_head":
        original = torch.as_tensor(_stat(stats, "original_probabilities", name))
        combiner = params.get("combiner", "replace")
        counts = None
        if combiner in ("replace", "select"):
            counts = torch.as_tensor(_stat(stats, "instance_counts", name))
        try:
            return calibration.dual_head(
                original,
                probs,
                background,  # type: ignore[arg-type]
                instance_counts=counts,
                threshold=float(params.get("threshold", 100)),
                combiner=combiner,
                inclusive=bool(params.get("inclusive", False)),
            )
        except ValueError as exc:
            raise LtbenchError(str(exc), key="view.dual_head", expected="combiner replace, select, average or select_by_original_background") from None
    if name == "recurrent_step":
        steps = _stat(stats, "step_probabilities", name)
        step = int(params.get("step", len(steps)))
        if not 1 <= step <= len(steps):
            raise LtbenchError(f"step {step} outside 1..{len(steps)}", key="view.step", expected=f"1..{len(steps)} (1-based, as PCB Table 7)")
        return steps[step - 1]
    raise LtbenchError(f"unknown view {name!r}", key="view.name", expected="one of " + ", ".join(VIEW_NAMES))


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
