"""The code behind a resolved run and view: file:line of the objects the methods dispatch resolves.

One function, ``code_locations(run_config, view_config)``. The box head (and so its loss) is resolved the
way the adapters resolve it: ``ltbench.methods.head_for_run`` -> the ``BOX_HEADS`` registry. Samplers,
stage-2 methods and views have no registry yet (``ltbench.methods.dispatch`` branches on their names), so
they are looked up in the three tables below, written as ``module:qualname`` and imported only when used;
when those registries exist, replace a table lookup with ``REGISTRY.get(name)`` -- nothing else here
changes. ``tests/test_explain.py`` checks the tables against the vocabulary and against what
``build_stage2`` really builds.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Until samplers / stage-2 methods / views have registries: name -> the object the dispatch ends in.
SAMPLER_CODE = {  # adapters build these (adapters/base.py make_epoch_order)
    "random": "ltbench.methods.samplers:RandomSampler",
    "rfs": "ltbench.methods.samplers:RepeatFactorSampler",
    "class_aware": "ltbench.methods.samplers:ClassAwareSampler",
    "bilevel": "ltbench.methods.samplers:BilevelEpisodicSampler",
}
STAGE2_CODE = {  # ltbench.methods.dispatch.build_stage2
    "disalign": "ltbench.methods.two_stage:DisAlignHead",
    "simcal": "ltbench.methods.two_stage:SimCalHead",
    "bags": "ltbench.methods.heads:GroupSoftmaxBoxHead",  # retrain_classifier with the group-softmax head
    "crt": "ltbench.methods.two_stage:retrain_classifier",
    "lws": "ltbench.methods.two_stage:LWSHead",
    "tau_norm": "ltbench.methods.two_stage:TauNormHead",
    "ncm": "ltbench.methods.two_stage:NCMHead",
    "finetune": "ltbench.methods.two_stage:set_trainable",
    "finetune_tail": "ltbench.methods.two_stage:set_trainable",
}
VIEW_CODE = {  # ltbench.methods.dispatch.apply_view; recurrent_step reads the head's step_probabilities
    "plain": "ltbench.methods.dispatch:apply_view",
    "cm_calibration": "ltbench.methods.calibration:confusion_calibration",
    "ms_calibration": "ltbench.methods.calibration:mean_score_calibration",
    "norcal": "ltbench.methods.calibration:norcal",
    "dual_head": "ltbench.methods.calibration:dual_head",
}
_DISPATCH = {"stage-2 method": "ltbench.methods.dispatch:build_stage2", "view": "ltbench.methods.dispatch:apply_view"}


@dataclass(frozen=True)
class CodeLocation:
    """``role`` (box head, loss, ...), the config ``name``, the object's ``target`` (``module.qualname``) and where
    it is defined; ``file``/``line`` are None (and ``note`` says why) when nothing implements the name."""

    role: str
    name: str
    target: str | None
    file: str | None
    line: int | None
    note: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file else "-"


def _import(target: str) -> Any:
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def locate(role: str, name: str, obj: Any, note: str = "") -> CodeLocation:
    """A ``CodeLocation`` of a class, function or method via ``inspect`` (the ``class``/``def`` line, not its
    decorators); paths relative to the repository when inside it."""
    from ltbench.paths import REPO_ROOT

    path = Path(inspect.getsourcefile(obj) or "")
    lines, start = inspect.getsourcelines(obj)
    offset = next((i for i, text in enumerate(lines) if text.lstrip().startswith(("class ", "def ", "async def "))), 0)
    try:
        shown = str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        shown = str(path)
    return CodeLocation(role, name, f"{obj.__module__}.{obj.__qualname__}", shown, start + offset, note)


def code_at(target: str) -> str:
    """``module:qualname`` -> ``path:line`` of its definition."""
    return locate("", "", _import(target)).where


def _name(config: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = config.get(key)
    if isinstance(value, Mapping):
        return value.get("name", default)
    return value if isinstance(value, str) else default


def code_locations(run_config: Mapping[str, Any], view_config: Mapping[str, Any]) -> list[CodeLocation]:
    """Where the code of a resolved (planned) run and view is: box head, base head (PCB's recurrent head wraps
    one), loss, regularizer, sampler, stage-2 method, view. Imports torch (the heads)."""
    from ltbench.methods import head_for_run
    from ltbench.methods.box_head import BOX_HEADS

    head_name, params = head_for_run(run_config)
    head = BOX_HEADS.get(head_name)
    out = [locate("box head", head_name, head)]
    base = BOX_HEADS.get(params["base"]) if "base" in params else head
    if base is not head:
        out.append(locate("base head", params["base"], base, "the head the recurrent head steps through"))
    loss = _name(run_config, "loss", "ce") or "ce"
    out.append(locate("loss", loss, getattr(base, "logits_loss", base.classification_losses)))
    regularizer = _name(run_config, "regularizer", None)
    if regularizer:  # PCB: added by the head's classification loss; label smoothing: the loss head itself
        out.append(locate("regularizer", regularizer, head.classification_losses))
    sampler = _name(run_config, "sampler", "random") or "random"
    out.append(locate("sampler", sampler, _import(SAMPLER_CODE[sampler])) if sampler in SAMPLER_CODE
               else CodeLocation("sampler", sampler, None, None, None, "not implemented (a name of the spec vocabulary only)"))
    stage2 = _name(run_config, "stage2", None)
    if stage2:
        dispatch = locate("", "", _import(_DISPATCH["stage-2 method"]))
        out.append(locate("stage-2 method", stage2, _import(STAGE2_CODE[stage2]), f"dispatched by {dispatch.target} "
                          f"({dispatch.where})") if stage2 in STAGE2_CODE
                   else CodeLocation("stage-2 method", stage2, None, None, None, "not implemented"))
    view = _name(view_config, "name", "plain") or "plain"
    dispatch = locate("", "", _import(_DISPATCH["view"]))
    via = f"dispatched by {dispatch.target} ({dispatch.where})"
    if view == "recurrent_step":
        out.append(locate("view", view, head.step_probabilities, via) if hasattr(head, "step_probabilities")
                   else CodeLocation("view", view, None, None, None, f"head {head_name!r} has no recurrent steps"))
    elif view in VIEW_CODE:
        out.append(locate("view", view, _import(VIEW_CODE[view]), "" if view == "plain" else via))
    else:
        out.append(CodeLocation("view", view, None, None, None, "not implemented (a name of the spec vocabulary only)"))
    return out
