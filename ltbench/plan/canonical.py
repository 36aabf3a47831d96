"""Canonical form, hash, id and slug of resolved run configs and view configs."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any


def _normalize_numbers(obj: Any) -> Any:
    """Integral floats become ints (alpha 0 == alpha 0.0); bools and strings are kept."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, float):
        return int(obj) if obj.is_integer() else float(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, dict):
        return {str(k): _normalize_numbers(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_normalize_numbers(v) for v in obj]
    return obj


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, normalized numbers (docs/CONTRACTS.md)."""
    return json.dumps(_normalize_numbers(obj), sort_keys=True, separators=(",", ":"))


def config_hash(config: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of the config without ``id``."""
    body = {k: v for k, v in config.items() if k != "id"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def normalize_run(run: dict[str, Any]) -> dict[str, Any]:
    """Spell equivalent runs the same way before hashing.

    - ``regularizer: {name: pcb, alpha: 0}`` trains exactly like no regularizer (assumption
      pcb-alpha0-is-iterative) -> ``null``.
    - ``sampler: {name: rfs}`` without ``t`` -> ``t: 0.001`` (every LVIS config).
    - ``head: {name: standard, ...}`` -> ``{name: standard}`` (parameters of other heads are meaningless).
    """
    run = copy.deepcopy(run)
    reg = run.get("regularizer")
    if isinstance(reg, dict) and reg.get("name") == "pcb" and reg.get("alpha", 1.0) == 0:
        run["regularizer"] = None
    sampler = run.get("sampler")
    if isinstance(sampler, dict) and sampler.get("name") == "rfs":
        sampler.setdefault("t", 0.001)
    head = run.get("head")
    if isinstance(head, dict) and head.get("name") == "standard":
        run["head"] = {"name": "standard"}
    scales = run.get("train_scales")
    if isinstance(scales, list) and len(scales) == 1:  # one short side is single-scale training
        run["train_scales"] = scales[0]
    for key in ("class_agnostic", "fp16"):
        run.setdefault(key, False)
    run.setdefault("mask_head", {"name": "standard"})
    return _normalize_numbers(run)


def normalize_view(view: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """A recurrent-step view of the last step is the model's normal output: the plain view. A dual head's
    ``inclusive: false`` is the default (N < T) and is dropped."""
    view = _normalize_numbers(copy.deepcopy(view))
    if view.get("name") == "dual_head" and view.get("inclusive") is False:
        del view["inclusive"]
    head = run.get("head") or {}
    if view.get("name") == "recurrent_step" and head.get("name") in ("iterative", "dsn"):
        if view.get("step", -1) == head.get("steps", 0):
            return {"name": "plain"}
    return view


def _fmt(value: Any) -> str:
    return re.sub(r"[^a-z0-9.]+", "", str(value).lower())


_VIEW_ID_PARAMS = {
    "plain": (),
    "cm_calibration": ("source",),
    "ms_calibration": ("source",),
    "norcal": ("gamma",),
    "recurrent_step": ("step",),
    "dual_head": ("threshold", "combiner", "inclusive"),
}


def view_id(view: dict[str, Any]) -> str:
    """Filename-safe view id: plain, cm-val, ms-train, norcal-g0.5, norcal-grid, step1, dual-t300-replace,
    dual-t300-select-inclusive (the paper's N <= T).

    Parameters the id does not spell are summarized by a short hash, so different views never share an id.
    """
    name = view["name"]
    if name == "plain":
        base = "plain"
    elif name in ("cm_calibration", "ms_calibration"):
        base = f"{name[:2]}-{_fmt(view.get('source', 'val'))}"
    elif name == "norcal":
        base = f"norcal-g{_fmt(view['gamma'])}" if "gamma" in view else "norcal-grid"
    elif name == "recurrent_step":
        base = f"step{_fmt(view.get('step'))}"
    elif name == "dual_head":
        base = f"dual-t{_fmt(view.get('threshold'))}-{_fmt(view.get('combiner', 'replace'))}"
        if view.get("inclusive"):
            base += "-inclusive"
    else:
        base = name.replace("_", "-")
    # ap_fixed asks for a second, per-class top-k prediction beside the view's own: the view's detections do
    # not change, so neither does its id (adding AP-fixed columns re-evaluates, it does not re-predict).
    spelled = set(_VIEW_ID_PARAMS.get(name, ())) | {"name", "id", "ap_fixed"}
    extra = {k: v for k, v in view.items() if k not in spelled}
    if extra:
        base += "-" + hashlib.sha256(canonical_json(extra).encode()).hexdigest()[:6]
    return base


_DATASET_SHORT = {"lvis_v0.5": "v0.5", "lvis_v1": "v1", "coco_lt_bags": "cocolt-b", "coco_lt_simcal": "cocolt-s"}
_DETECTOR_SHORT = {"faster_rcnn": "faster", "mask_rcnn": "mask", "cascade_rcnn": "cascade",
                   "cascade_mask_rcnn": "cascmask", "htc": "htc"}


def run_slug(config: dict[str, Any]) -> str:
    """Readable part of a run id, e.g. ``v0.5-mask-r50-rfs-ce-iter3-pcb0.4-s0``."""
    parts = [
        _DATASET_SHORT.get(config["dataset"], config["dataset"]),
        _DETECTOR_SHORT.get(config["detector"], config["detector"]),
        config["backbone"].replace("_fpn", "").replace("_", ""),
        (config.get("sampler") or {}).get("name", "random"),
        (config.get("loss") or {}).get("name", "ce").replace("_", ""),
    ]
    if (config.get("classifier") or {}).get("name", "linear") != "linear":
        parts.append(config["classifier"]["name"])
    head = config.get("head") or {}
    if head.get("name", "standard") != "standard":
        parts.append(f"{'iter' if head['name'] == 'iterative' else head['name']}{head.get('steps', '')}")
    reg = config.get("regularizer")
    if reg:
        short = {"pcb": "pcb", "label_smoothing": "ls", "online_label_smoothing": "ols"}.get(reg["name"], reg["name"])
        if reg["name"] == "pcb":
            short += _fmt(reg.get("alpha", "")) + (f"m{_fmt(reg['momentum'])}" if "momentum" in reg else "")
        parts.append(short)
    if config.get("class_agnostic"):
        parts.append("ag")
    if config.get("pretrain", "imagenet") != "imagenet":
        parts.append(f"init{config['pretrain']}")
    if config.get("stage2"):
        parts.append("st2-" + config["stage2"]["name"].replace("_", ""))
    parts.append(f"s{config.get('seed', 0)}")
    return re.sub(r"[^a-z0-9.-]+", "", "-".join(str(p).lower() for p in parts))


def normalize_numbers(obj: Any) -> Any:
    """Public form of the number normalization, applied to whole configs before they are emitted, so that
    a plain ``json.dumps(config, sort_keys=True, separators=(",", ":"))`` gives the canonical text."""
    return _normalize_numbers(obj)


def run_id(config: dict[str, Any]) -> str:
    return f"{run_slug(config)}-{config_hash(config)[:8]}"
