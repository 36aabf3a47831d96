"""The code behind a resolved run and view: file:line of the objects the methods' registries resolve.

One function, ``code_locations(run_config, view_config)``, resolving each name the way the adapters do:
the box head (and so its loss) through ``ltbench.methods.head_for_run`` -> ``BOX_HEADS``; the image sampler
through ``IMAGE_SAMPLERS``, the stage-2 method through ``STAGE2_METHODS`` and the view through ``VIEWS``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    from ltbench.methods import BOX_HEADS, IMAGE_SAMPLERS, STAGE2_METHODS, VIEWS, head_for_run

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
    out.append(_registered("sampler", sampler, IMAGE_SAMPLERS, "builds the image order (ltbench.methods.samplers)"))
    stage2 = _name(run_config, "stage2", None)
    if stage2:
        out.append(_registered("stage-2 method", stage2, STAGE2_METHODS, "builds the stage-2 head (ltbench.methods.stage2)"))
    view = _name(view_config, "name", "plain") or "plain"
    if view == "recurrent_step":
        out.append(locate("view", view, head.step_probabilities, "the head's per-step probabilities")
                   if hasattr(head, "step_probabilities")
                   else CodeLocation("view", view, None, None, None, f"head {head_name!r} has no recurrent steps"))
    else:
        out.append(_registered("view", view, VIEWS, "reads the probabilities (ltbench.methods.views)"))
    return out


def _registered(role: str, name: str, registry: Any, note: str) -> CodeLocation:
    """The registry's entry for ``name``, or a location saying that nothing implements it."""
    if name not in registry:
        return CodeLocation(role, name, None, None, None, "not implemented (a name of the spec vocabulary only)")
    return locate(role, name, registry.get(name), note)
