"""Where each key of a row's resolved run and view config comes from.

A planned run config is built in three steps (FORMAT.md, "Planning rules"): the spec levels are merged
(paper ``defaults`` <- table <- column group <- row, ``ltbench.spec.model.merge_run`` / ``merge_view``), the
result is put in canonical form (``ltbench.plan.canonical.normalize_run`` / ``normalize_view``), and the
planner fills in what the scale decides (``framework``, ``schedule``, ``model``, ...) and the ids.

``trace_run`` / ``trace_view`` repeat the merge of step 1 while recording, for every key (components key by
key: ``loss.name``, ``loss.p``), the level that set it and its YAML key path; they check that the merged
value equals the model's own (``PaperSpec.row_run`` / ``row_view``), so a change of the merge rule cannot make
the origins silently wrong. ``run_origins`` / ``view_origins`` then compare the planned config with the traced
spec value: a key the spec states with the planned value comes from its level; a key the planner changed or
added is attributed to the planner or the scale, with the function that did it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench.explain.code_locations import code_at
from ltbench.plan.canonical import normalize_numbers, normalize_run, normalize_view
from ltbench.spec import vocab
from ltbench.spec.model import REPLACED_WHOLE, PaperSpec, Row
from ltbench.spec.provenance import Hop, LineIndex

_MISSING = object()

# sources of a key, most general first
DEFAULTS, LOADER = "paper defaults", "loader default"
PLANNER, SCALE = "planner", "scale"


@dataclass
class Origin:
    """Where the value of one key of a resolved config comes from.

    ``key``: dotted (``loss.name``); ``value``: in the planned config (None for a spec key the planner used up,
    see ``note``); ``source``: ``row``, ``column group <id>``, ``table <id>``, ``paper defaults``,
    ``loader default``, ``planner`` or ``scale``; ``file``/``line``/``via``/``value_via``: where the key is written
    (spec sources); ``changed_by``/``spec_value``: who changed the spec's value, and that value; ``note``: what
    the planner or scale did; ``code``: the function that filled or changed it (``path:line``).
    """

    key: str
    value: Any
    source: str
    file: Path | None = None
    line: int | None = None
    via: tuple[Hop, ...] = ()
    value_via: Hop | None = None
    spec_value: Any = None
    changed_by: str = ""  # "planner" or "scale" when the planned value differs from the spec's
    note: str = ""
    code: str = ""

    @property
    def kind(self) -> str:
        """``row`` (written in the row itself), ``merge`` / ``anchor`` (reached through ``<<: *x`` / ``*x``; ``source``
        says at which level), ``column group``, ``table``, ``paper defaults``, ``loader default``, ``scale``, ``planner``."""
        if any(h.kind == "merge" for h in self.via):
            return "merge"
        if self.via or self.value_via is not None:
            return "anchor"
        for level in ("column group", "table"):
            if self.source.startswith(level + " "):
                return level
        return self.source

    def describe(self, short: Any = repr) -> str:
        """One line: the level, the YAML anchors/merges crossed (with lines), and what the planner or scale did."""
        if self.source in (PLANNER, SCALE):
            return f"filled by the {self.source}: {self.note}" + (f" ({self.code})" if self.code else "")
        level = {"row": "the row", DEFAULTS: "the paper defaults", LOADER: "the loader's default"}.get(self.source, self.source)
        hops = [*self.via, *([self.value_via] if self.value_via is not None else [])]
        if not hops:
            text = f"set in {level}"
        else:
            text = f"{level}, inherited from " + ", ".join(
                f"YAML merge <<: *{h.anchor} (line {h.line}; &{h.anchor} at line {h.anchor_line})" if h.kind == "merge"
                else f"YAML anchor &{h.anchor} (line {h.anchor_line}; used as *{h.anchor} at line {h.line})" for h in hops)
        if self.changed_by:
            text += (f"; the spec says {short(self.spec_value)}, changed by the {self.changed_by}: {self.note}"
                     + (f" ({self.code})" if self.code else ""))
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "value": self.value, "source": self.source, "kind": self.kind, "how": self.describe(),
            "file": str(self.file) if self.file else None, "line": self.line,
            "via": [h.__dict__ for h in self.via], "value_via": self.value_via.__dict__ if self.value_via else None,
            "changed_by": self.changed_by or None, "spec_value": self.spec_value if self.changed_by else None,
            "note": self.note,
            "code": self.code or None,
        }


@dataclass
class Trace:
    """A merged spec value and, per dotted key, (source, YAML key path or None)."""

    value: dict[str, Any]
    keys: dict[str, tuple[str, list[str | int] | None]] = field(default_factory=dict)


def _levels(spec: PaperSpec, row: Row, part: str) -> list[tuple[str, list[str | int], Any]]:
    """(source, YAML key path, raw mapping) of the levels a row's ``part`` ("run" or "view") merges."""
    ti = next(i for i, t in enumerate(spec.tables) if t.id == row.table_id)
    table = spec.tables[ti]
    gi = next(i for i, g in enumerate(table.column_groups) if g.id == row.group.id)
    defaults = spec.defaults_run if part == "run" else (spec.raw.get("defaults") or {}).get("view")
    return [
        (DEFAULTS, ["defaults", part], defaults),
        (f"table {table.id}", ["tables", ti, part], table.run if part == "run" else table.view),
        (f"column group {row.group.id}", ["tables", ti, "column_groups", gi, part],
         row.group.run if part == "run" else row.group.view),
        ("row", ["tables", ti, "rows", row.index, part], row.run if part == "run" else row.view),
    ]


def _set_whole(trace: Trace, key: str, value: Any, source: str, path: list[str | int] | None) -> None:
    for k in [k for k in trace.keys if k == key or k.startswith(key + ".")]:
        del trace.keys[k]
    trace.value[key] = copy.deepcopy(value)
    trace.keys[key] = (source, path)
    if isinstance(value, dict) and key not in REPLACED_WHOLE:
        for sub in value:
            trace.keys[f"{key}.{sub}"] = (source, None if path is None else [*path, sub])


def trace_run(spec: PaperSpec, row: Row) -> Trace:
    """The row's run as the paper describes it, with the origin of every key (the rule of ``merge_run``)."""
    trace = Trace({})
    for source, path, override in _levels(spec, row, "run"):
        for key, value in (override or {}).items():
            current = trace.value.get(key)
            if (key not in REPLACED_WHOLE and isinstance(value, dict) and isinstance(current, dict)
                    and value.get("name", current.get("name")) == current.get("name")):
                trace.value[key] = {**current, **copy.deepcopy(value)}  # same component: merged key by key
                for sub in value:
                    trace.keys[f"{key}.{sub}"] = (source, [*path, key, sub])
            else:
                _set_whole(trace, key, value, source, [*path, key])
    expected = spec.row_run(row)
    if trace.value != expected:
        raise RuntimeError(f"ltbench.explain.origins.trace_run disagrees with PaperSpec.row_run for {row.display_label!r}: "
                           f"{trace.value} != {expected}; update trace_run to the merge rule of ltbench.spec.model")
    return trace


def trace_view(spec: PaperSpec, row: Row) -> Trace:
    """The row's view as the paper describes it, with the origin of every key (the rule of ``merge_view``)."""
    trace = Trace({})
    for source, path, override in _levels(spec, row, "view"):
        if source == DEFAULTS and not override:  # PaperSpec.defaults_view: {name: plain} when none is given
            trace.value, trace.keys = {"name": "plain"}, {"name": (LOADER, None)}
            continue
        if not override:
            continue
        if override.get("name", trace.value.get("name")) == trace.value.get("name"):
            trace.value.update(copy.deepcopy(override))
            trace.keys.update({k: (source, [*path, k]) for k in override})
        else:  # another view replaces the one above whole
            trace.value = copy.deepcopy(override)
            trace.keys = {k: (source, [*path, k]) for k in override}
    expected = spec.row_view(row)
    if trace.value != expected:
        raise RuntimeError(f"ltbench.explain.origins.trace_view disagrees with PaperSpec.row_view for {row.display_label!r}: "
                           f"{trace.value} != {expected}; update trace_view to the merge rule of ltbench.spec.model")
    return trace


def _get(obj: Any, dotted: str) -> Any:
    head, _, rest = dotted.partition(".")
    if not isinstance(obj, dict) or head not in obj:
        return _MISSING
    return obj[head] if not rest else (_get(obj[head], rest) if isinstance(obj[head], dict) else _MISSING)


def _flat(config: dict[str, Any]) -> list[tuple[str, Any]]:
    """Top-level keys; components (``vocab.COMPONENT_VOCAB``) one level deeper, as in the YAML."""
    out: list[tuple[str, Any]] = []
    for key, value in config.items():
        if key in vocab.COMPONENT_VOCAB and isinstance(value, dict):
            out += [(f"{key}.{sub}", sub_value) for sub, sub_value in value.items()]
        else:
            out.append((key, value))
    return out


# what the planner / scale does to a key of the run config, and where (FORMAT.md "Planning rules")
_MAKE_CONFIG = "ltbench.plan.planner:_Planner.make_config"
_NORMALIZE_RUN = "ltbench.plan.canonical:normalize_run"
_RUN_NOTES: dict[str, tuple[str, str, str]] = {
    "scale": (PLANNER, "the plan's --scale", _MAKE_CONFIG),
    "framework": (SCALE, "", _MAKE_CONFIG),  # text depends on the scale and --framework (_framework_note)
    "schedule": (SCALE, "the named/explicit schedule resolved for the scale and the paper's framework (a forced "
                 "framework keeps it), epochs of the sampler's real epoch",
                 "ltbench.plan.scales:resolve_schedule"),
    "model": (SCALE, "model size, image sizes and train_scales for the scale", "ltbench.plan.scales:model_block"),
    "fp16": (SCALE, "smoke runs train in fp32 (fp16 only at paper scale)", _MAKE_CONFIG),
    "seed": (PLANNER, "one run per seed (seed 0..n-1)", _MAKE_CONFIG),
    "stage1": (PLANNER, "id of the stage-1 run this stage-2 run starts from", "ltbench.plan.planner:_Planner.chain"),
    "init_from": (PLANNER, "id of the run named by pretrain.from", "ltbench.plan.planner:_Planner.pretrain_source"),
    "pretrain": (PLANNER, "dataset kind of the pretrain.from source run", "ltbench.plan.planner:_Planner.pretrain_source"),
    "id": (PLANNER, "run slug + sha256 of the canonical config", "ltbench.plan.canonical:run_id"),
    "regularizer.start_iteration": (SCALE, "PCB's 1-based start_epoch at the same fraction of the schedule",
                                    "ltbench.plan.scales:regularizer_start_iteration"),
    "train_scales": (SCALE, "used up in model (min_size / train scales)", "ltbench.plan.scales:model_block"),
    "stage2.schedule": (SCALE, "becomes this stage-2 run's schedule", "ltbench.plan.scales:resolve_schedule"),
}


def _framework_note(scale: str, framework: str | None) -> str:
    if framework is not None:
        return f"--framework {framework} overrides the spec" + (" where its adapter builds the detector" if scale != "paper" else "")
    if scale != "paper":
        return f"{scale} runs use torchvision, or mmdet for detectors torchvision lacks (scales.smoke_framework)"
    return "the spec's framework at paper scale"


_NONE_NOTES = {"stage1": "none: the run has no stage2", "init_from": "not set: no pretrain.from"}


def _note(key: str, scale: str, framework: str | None, default: tuple[str, str, str],
          value: Any = _MISSING) -> tuple[str, str, str]:
    """(source, what was done, ``module:qualname`` that did it) for a key the planner or scale set."""
    source, text, target = _RUN_NOTES.get(key, default)
    if key == "framework":
        text = _framework_note(scale, framework)
    if value is None and key in _NONE_NOTES:
        text = _NONE_NOTES[key]
    return source, text, target


def _origin_from_trace(key: str, value: Any, trace: Trace, spec: PaperSpec, index: LineIndex) -> Origin | None:
    """The spec origin of ``key`` (its own entry, else the component's whole entry), or None."""
    entry = trace.keys.get(key) or trace.keys.get(key.split(".", 1)[0] if "." in key else "")
    if entry is None:
        return None
    source, path = entry
    located = index.locate(path) if path is not None else None
    return Origin(key, value, source, spec.path if path is not None else None, located.line if located else None,
                  located.via if located else (), located.value_via if located else None)


def run_origins(spec: PaperSpec, row: Row, config: dict[str, Any], *, scale: str, framework: str | None,
                index: LineIndex | None = None) -> list[Origin]:
    """Origins of every key of a planned run ``config`` of ``row`` (components key by key), then the spec keys
    the planner used up (``train_scales``, ``stage2.schedule``)."""
    index = index or LineIndex.of_file(spec.path)
    trace = trace_run(spec, row)
    normalized = normalize_numbers(normalize_run(trace.value))
    stage2 = trace.value.get("stage2") if isinstance(trace.value.get("stage2"), dict) else None
    out: list[Origin] = []
    for key, value in _flat(config):
        spec_key = key
        if key == "schedule" and stage2 is not None:  # a stage-2 run trains on the stage-2 schedule
            spec_key = "stage2.schedule"
        stated = _get(trace.value, spec_key)
        origin = _origin_from_trace(spec_key, value, trace, spec, index) if stated is not _MISSING else None
        if origin is not None:
            origin.key = key
            if normalize_numbers(stated) != value:
                if key in _RUN_NOTES:
                    source, text, target = _note(key, scale, framework, _RUN_NOTES[key], value)
                elif _get(normalized, key) is not _MISSING and normalize_numbers(_get(normalized, key)) == value:
                    source, text, target = PLANNER, "canonical form (FORMAT.md, Planning rules)", _NORMALIZE_RUN
                else:
                    source, text, target = PLANNER, "set by the planner", _MAKE_CONFIG
                if key == "schedule" and stage2 is not None:
                    text = "the row's stage2.schedule resolved for the scale and framework"
                origin.changed_by, origin.spec_value, origin.note, origin.code = source, stated, text, code_at(target)
            out.append(origin)
            continue
        if key == "schedule" and stage2 is not None:  # no stage2.schedule: post-hoc, or the 1x default
            post_hoc = stage2.get("name") in vocab.POST_HOC_STAGE2
            out.append(Origin(key, value, SCALE, note="post-hoc stage 2 trains nothing" if post_hoc
                              else "the stage-2 default schedule 1x", code=code_at(
                                  "ltbench.plan.scales:post_hoc_schedule" if post_hoc else _MAKE_CONFIG)))
            continue
        if _get(normalized, key) is not _MISSING and normalize_numbers(_get(normalized, key)) == value:
            out.append(Origin(key, value, PLANNER, note="default of the canonical form (FORMAT.md, Planning rules)",
                              code=code_at(_NORMALIZE_RUN)))
            continue
        source, text, target = _note(key, scale, framework, (PLANNER, "set by the planner", _MAKE_CONFIG), value)
        out.append(Origin(key, value, source, note=text, code=code_at(target)))
    planned = {k for k, _ in _flat(config)}
    for key, value in _flat(trace.value):
        if key in planned or (key == "stage2.schedule" and "schedule" in planned) or value is None:
            continue
        if key.split(".", 1)[0] in planned and not isinstance(config.get(key.split(".", 1)[0]), dict):
            continue  # a component the canonical form dropped (pcb with alpha 0 -> null) is reported above
        origin = _origin_from_trace(key, None, trace, spec, index)
        source, text, target = _note(key, scale, framework, (PLANNER, "used by the planner", _MAKE_CONFIG))
        if origin is not None:
            origin.changed_by, origin.spec_value, origin.note, origin.code = source, value, text, code_at(target)
            out.append(origin)
    return out


def view_origins(spec: PaperSpec, row: Row, view_config: dict[str, Any], *, index: LineIndex | None = None) -> list[Origin]:
    """Origins of every key of a planned view config of ``row``."""
    index = index or LineIndex.of_file(spec.path)
    trace = trace_view(spec, row)
    normalized = normalize_numbers(normalize_view(trace.value, normalize_run(spec.row_run(row))))
    out: list[Origin] = []
    for key, value in view_config.items():
        stated = trace.value.get(key, _MISSING)
        if key == "id":
            out.append(Origin(key, value, PLANNER, note="readable view id (+ hash of unnamed parameters)",
                              code=code_at("ltbench.plan.canonical:view_id")))
        elif key == "ap_fixed":
            out.append(Origin(key, value, PLANNER, note="the table has an AP-fixed/AP-pool column: per-class top-k "
                              "prediction", code=code_at("ltbench.plan.planner:ap_fixed_request")))
        elif stated is not _MISSING and normalize_numbers(stated) == value and normalized.get(key) == value:
            origin = _origin_from_trace(key, value, trace, spec, index)
            out.append(origin or Origin(key, value, LOADER))
        else:
            origin = _origin_from_trace(key, value, trace, spec, index) if stated is not _MISSING else None
            origin = origin or Origin(key, value, PLANNER)
            if stated is not _MISSING:
                origin.changed_by, origin.spec_value = PLANNER, stated
            origin.note = "canonical form: the last recurrent step is the plain view"
            origin.code = code_at("ltbench.plan.canonical:normalize_view")
            out.append(origin)
    for key, value in trace.value.items():  # spec keys the canonical form dropped (recurrent_step -> plain)
        if key not in view_config:
            origin = _origin_from_trace(key, None, trace, spec, index)
            if origin is not None:
                origin.changed_by, origin.spec_value = PLANNER, value
                origin.note = "canonical form: dropped (the last recurrent step is the plain view)"
                origin.code = code_at("ltbench.plan.canonical:normalize_view")
                out.append(origin)
    return out
