"""Stage-2 methods by name: ``STAGE2_METHODS`` maps each spec ``stage2.name`` to a builder.

A builder takes ``(stage2 spec, run_config, stage1_head, class_stats)`` and returns the stage-2 ``BoxHead``
around the trained stage-1 head (classes in ``ltbench.methods.two_stage``). Recipe keys of the spec
(``epochs``, ``sampler``, ``frozen_stages``, ``tail_max_instances``, ``keep_head``, ...) are for the
plan and the adapter and ignored here. ``tests/methods`` checks that the registered names are exactly
the spec vocabulary's ``STAGE2_METHODS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ltbench.data.lvis_meta import ClassStats
from ltbench.errors import LtbenchError
from ltbench.methods import two_stage
from ltbench.methods.box_head import BoxHead
from ltbench.registry import Registry

Builder = Callable[[Mapping[str, Any], Mapping[str, Any], BoxHead, "ClassStats | None"], BoxHead]

#: ``stage2.name`` -> builder(stage2, run_config, stage1_head, class_stats) -> BoxHead
STAGE2_METHODS = Registry("stage-2 method", key="stage2.name")


def build_stage2(run_config: Mapping[str, Any], stage1_head: BoxHead, class_stats: ClassStats | None = None) -> BoxHead:
    """The stage-2 head of ``run_config["stage2"]`` around the trained ``stage1_head``."""
    stage2 = run_config.get("stage2")
    if not isinstance(stage2, Mapping):
        raise LtbenchError("run has no stage2 method", key="stage2", expected="{name: " + "|".join(STAGE2_METHODS.names()) + ", ...}")
    name = stage2.get("name", stage2.get("method"))
    builder: Builder = STAGE2_METHODS.get(name)
    return builder(stage2, run_config, stage1_head, class_stats)


@STAGE2_METHODS.register("disalign")
def _disalign(stage2: Mapping[str, Any], run_config: Mapping[str, Any], stage1: BoxHead, stats: ClassStats | None) -> BoxHead:
    field = "image_counts" if stage2.get("counts", "instance") == "image" else "instance_counts"
    return two_stage.DisAlignHead(stage1, counts=None if stats is None else getattr(stats, field), rho=float(stage2.get("rho", 0.8)))


@STAGE2_METHODS.register("simcal")
def _simcal(stage2: Mapping[str, Any], run_config: Mapping[str, Any], stage1: BoxHead, stats: ClassStats | None) -> BoxHead:
    from ltbench.methods.dispatch import head_for_run

    loss_name, loss_params = (None, None) if "loss" not in stage2 else head_for_run({"loss": stage2["loss"]})
    return two_stage.SimCalHead(stage1, variant=stage2.get("head", "3fc_ft"), loss_head=loss_name, loss_params=loss_params,
                                class_stats=stats)


def _bags_head(stage2: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """BAGS spec params -> (head name, params): the ``group_softmax`` head for the official design,
    ``bags_ablation`` (``bags_ablation.GroupSoftmaxAblationHead``) without the background group or "others"."""
    params: dict[str, Any] = {}
    if "groups" in stage2:
        params["bin_edges"] = tuple(stage2["groups"])
    if "beta" in stage2:
        params["beta"] = float(stage2["beta"])
    flags = {flag: bool(stage2.get(flag, True)) for flag in ("background_group", "others")}
    if all(flags.values()):
        return "group_softmax", params
    return "bags_ablation", {**params, **flags}


@STAGE2_METHODS.register("bags")
def _bags(stage2: Mapping[str, Any], run_config: Mapping[str, Any], stage1: BoxHead, stats: ClassStats | None) -> BoxHead:
    head_name, params = _bags_head(stage2)
    return two_stage.retrain_classifier(stage1, head_name, trainable=stage2.get("trainable", "fc_cls"), class_stats=stats, **params)


@STAGE2_METHODS.register("crt")
def _crt(stage2: Mapping[str, Any], run_config: Mapping[str, Any], stage1: BoxHead, stats: ClassStats | None) -> BoxHead:
    classifier = run_config.get("classifier") or {"name": "linear"}
    classifier = {"name": classifier} if isinstance(classifier, str) else dict(classifier)
    extra = {} if classifier == {"name": "linear"} else {"classifier": classifier}
    return two_stage.retrain_classifier(stage1, "softmax", trainable="fc_cls", class_stats=stats, **extra)


@STAGE2_METHODS.register("lws")
def _lws(stage2: Mapping[str, Any], run_config: Mapping[str, Any], stage1: BoxHead, stats: ClassStats | None) -> BoxHead:
    return two_stage.LWSHead(stage1)


@STAGE2_METHODS.register("tau_norm")
def _tau_norm(stage2: Mapping[str, Any], run_config: Mapping[str, Any], stage1: BoxHead, stats: ClassStats | None) -> BoxHead:
    return two_stage.TauNormHead(stage1, tau=float(stage2.get("tau", 1.0)), rows=stage2.get("rows", "all"), bias=stage2.get("bias", "keep"))


@STAGE2_METHODS.register("ncm")
def _ncm(stage2: Mapping[str, Any], run_config: Mapping[str, Any], stage1: BoxHead, stats: ClassStats | None) -> BoxHead:
    return two_stage.NCMHead(stage1, feature=stage2.get("feature", "fc"), temperature=float(stage2.get("temperature", 1.0)))


@STAGE2_METHODS.register("finetune_tail")
def _finetune_tail(stage2: Mapping[str, Any], run_config: Mapping[str, Any], stage1: BoxHead, stats: ClassStats | None) -> BoxHead:
    """Fine-tuning the stage-1 head (``trainable``, default all); with another ``loss`` a new head of that
    loss with the shape-matching stage-1 weights copied over. (The tail subset is the adapter's data.)"""
    from ltbench.methods.dispatch import head_for_run

    trainable = stage2.get("trainable", "all")
    if "loss" in stage2:
        loss_name, loss_params = head_for_run({**run_config, "loss": stage2["loss"], "head": None, "regularizer": None})
        return two_stage.retrain_classifier(stage1, loss_name, trainable=trainable, keep_classifier=True, class_stats=stats, **loss_params)
    return two_stage.set_trainable(stage1, trainable)


@STAGE2_METHODS.register("finetune")
def _finetune(stage2: Mapping[str, Any], run_config: Mapping[str, Any], stage1: BoxHead, stats: ClassStats | None) -> BoxHead:
    """As ``finetune_tail`` on all the data; with ``head: 3fc_ft | 2fc_rand`` SimCal Table 4's calibration
    head re-trained with another loss (only the calibration head trains)."""
    if stage2.get("head") in ("3fc_ft", "2fc_rand"):
        if stage2.get("trainable", "cls_head") != "cls_head":
            raise LtbenchError("a fine-tuned calibration head trains only itself", key="stage2.trainable", expected="cls_head")
        return _simcal(stage2, run_config, stage1, stats)
    return _finetune_tail(stage2, run_config, stage1, stats)
