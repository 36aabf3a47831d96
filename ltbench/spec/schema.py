"""The JSON Schema (draft 2020-12) of ``workflows/papers/<paper>.yaml``.

The schema is generated from the vocabularies in :mod:`ltbench.spec.vocab` so the two never drift;
``ltbench/schemas/paper_spec.schema.json`` is the committed copy (``tests/test_spec_schema.py`` checks
that it equals :func:`build_schema`). Regenerate it with ``python -m ltbench.spec.schema``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ltbench.spec import vocab

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "paper_spec.schema.json"
SCHEMA_ID = "https://ltbench.invalid/schemas/paper_spec.schema.json"

_SLUG = "^[a-z0-9][a-z0-9_.-]*$"
_DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"
_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_PARAM_VALUE = {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}, {"type": "object"}]}


def _component(names: tuple[str, ...], *, nullable: bool = False) -> dict[str, Any]:
    obj = {
        "type": "object",
        "description": "a component; `name` may be left out in an override that only changes parameters",
        "properties": {"name": {"enum": list(names)}},
        "additionalProperties": _PARAM_VALUE,
    }
    return {"anyOf": [obj, {"type": "null"}]} if nullable else obj


def _stage2() -> dict[str, Any]:
    component = _component(vocab.STAGE2_METHODS, nullable=True)
    component["anyOf"][0]["properties"]["schedule"] = _schedule()
    return component


def _schedule() -> dict[str, Any]:
    return {
        "anyOf": [
            {"enum": list(vocab.SCHEDULES)},
            {
                "type": "object",
                "description": "a named schedule with overrides, or an explicit one (epochs or iterations)",
                "properties": {
                    "name": {"type": "string"},
                    "epochs": {"type": "number", "exclusiveMinimum": 0},
                    "iterations": {"type": "integer", "minimum": 1},
                    "steps": {"type": "array", "items": {"type": "number"}},
                    "lr": {"type": "number", "exclusiveMinimum": 0},
                    "batch_size": {"type": "integer", "minimum": 1},
                    "momentum": {"type": "number"},
                    "weight_decay": {"type": "number"},
                    "warmup_iters": {"type": "integer", "minimum": 0},
                    # paper scale only (smoke keeps its own warm-up start and clip, scales.smoke_schedule)
                    "warmup_factor": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                    "grad_clip": {"type": "number", "exclusiveMinimum": 0},
                },
                "additionalProperties": False,
            },
        ]
    }


def _row_ref() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["paper", "table", "row"],
        "properties": {
            "paper": {"enum": list(vocab.PAPERS)},
            "table": {"type": "string"},
            "row": {"type": "string", "description": "row id or label"},
            "group": {"type": "string"},
        },
        "additionalProperties": False,
    }


def build_schema() -> dict[str, Any]:
    """Return the schema as a dict (draft 2020-12)."""
    run = {
        "type": "object",
        "description": "run overrides: only what differs from the level above",
        "properties": {
            **{key: {"enum": list(names)} for key, names in vocab.SCALAR_VOCAB.items()},
            "pretrain": {
                "anyOf": [
                    {"enum": list(vocab.PRETRAINS)},
                    {
                        "type": "object",
                        "description": "initialise from the final checkpoint of another row's run (a dependency)",
                        "required": ["from"],
                        "properties": {"from": _row_ref()},
                        "additionalProperties": False,
                    },
                ]
            },
            "schedule": _schedule(),
            "sampler": _component(vocab.SAMPLERS),
            "classifier": _component(vocab.CLASSIFIERS),
            "loss": _component(vocab.LOSSES),
            "head": _component(vocab.HEADS),
            "regularizer": _component(vocab.REGULARIZERS, nullable=True),
            "mask_head": _component(vocab.MASK_HEADS),
            "class_agnostic": {"type": "boolean"},
            "fp16": {"type": "boolean"},
            "train_scales": {
                "description": "training short side(s) in pixels (max side 1333): one number = single scale, "
                "a list = multi-scale (one drawn per image); default: multi-scale 640..800 step 32",
                "anyOf": [
                    {"type": "integer", "minimum": 1},
                    {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
                ],
            },
            "stage2": _stage2(),
        },
        "additionalProperties": False,
    }
    view = _component(vocab.VIEWS)
    seed_aggregate = {
        "type": "object",
        "description": "how the seeds of a row are combined into the table's number",
        "required": ["rule"],
        "properties": {
            "rule": {"enum": list(vocab.SEED_AGGREGATE_RULES)},
            "by": {"enum": list(vocab.METRIC_KEYS)},
        },
        "additionalProperties": False,
    }
    reported_value = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": _DECIMAL}]}
    metric_key = {
        "anyOf": [
            {"enum": list(vocab.METRIC_KEYS)},
            {"type": "string", "pattern": "^(stats|other)\\.[A-Za-z0-9_.-]+$"},
        ]
    }
    row_ref = _row_ref()
    row = {
        "type": "object",
        "required": ["label"],
        "properties": {
            "label": {"type": "string", "minLength": 1},
            "id": {"type": "string", "pattern": _SLUG},
            "group": {"type": "string"},
            "attributes": {"type": "object", "additionalProperties": _SCALAR},
            "run": run,
            "stage1": run,
            "view": view,
            "seeds": {"type": "integer", "minimum": 1},
            "seed_aggregate": seed_aggregate,
            "reported": {"type": "object", "additionalProperties": reported_value},
            "cited": {
                "type": "object",
                "required": ["source"],
                "properties": {
                    "source": {"type": "string", "minLength": 1},
                    "note": {"type": "string"},
                    "served_by": {"anyOf": [row_ref, {"type": "null"}]},
                    "reproduce": {
                        "type": "boolean",
                        "description": "plan a run for the cited row from the citing paper's own recipe "
                        "(defaults, table, group, row); the row stays marked as cited",
                    },
                },
                "additionalProperties": False,
            },
            "assumptions": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string"},
            "baseline": {
                "type": "string",
                "minLength": 1,
                "description": "the row (id or label, same table and column group) this row's method is "
                "added to: tables show the gain over it beside the paper's gain",
            },
        },
        "additionalProperties": False,
    }
    column = {
        "type": "object",
        "required": ["header", "key"],
        "properties": {
            "header": {"type": "string"},
            "key": metric_key,
            "lower_is_better": {"type": "boolean"},
        },
        "additionalProperties": False,
    }
    group = {
        "type": "object",
        "required": ["id", "columns"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "label": {"type": "string"},
            "run": run,
            "view": view,
            "columns": {"type": "array", "minItems": 1, "items": column},
        },
        "additionalProperties": False,
    }
    table = {
        "type": "object",
        "required": ["id", "caption", "scope"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9A-Za-z]+$"},
            "caption": {"type": "string"},
            "scope": {"enum": list(vocab.TABLE_SCOPES)},
            "reason": {"type": "string"},
            "text": {"type": "string"},
            "run": run,
            "view": view,
            "seeds": {"type": "integer", "minimum": 1},
            "seed_aggregate": seed_aggregate,
            "instance_bins": {
                "type": "array",
                "description": "training-instance edges of AP1..AP4 / cls.ACC1..4 (default per dataset: LVIS 10, 100, 1000)",
                "minItems": 1,
                "items": {"type": "integer", "minimum": 1},
            },
            "column_groups": {"type": "array", "items": group},
            "attribute_columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": row},
            "missing": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["reason"],
                    "properties": {
                        "row": {"type": "string"},
                        "group": {"type": "string"},
                        "column": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
            },
            "not_reproducible": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["reason"],
                    "properties": {
                        "group": {"type": "string"},
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "rows": {"type": "array", "items": {"type": "string"}},
                        "reason": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
            },
            "assumptions": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string"},
        },
        "additionalProperties": False,
        "if": {"properties": {"scope": {"const": "out_of_scope"}}},
        "then": {"required": ["reason"]},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ltbench paper spec (workflows/papers/<paper>.yaml)",
        "description": "See workflows/papers/FORMAT.md. Generated by ltbench/spec/schema.py; do not edit by hand.",
        "type": "object",
        "required": ["paper", "title", "source", "defaults", "tables"],
        "properties": {
            "paper": {"enum": list(vocab.PAPERS)},
            "title": {"type": "string"},
            "source": {"type": "string"},
            "precision": {"type": "integer", "minimum": 0},
            "components": {
                "type": "object",
                "description": "free-form place for YAML anchors (&name) that rows reuse; ignored by the loader",
            },
            "defaults": {
                "type": "object",
                "required": ["run"],
                "properties": {
                    "run": run,
                    "view": view,
                    "seeds": {"type": "integer", "minimum": 1},
                    "seed_aggregate": seed_aggregate,
                },
                "additionalProperties": False,
            },
            "assumptions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "text"],
                    "properties": {
                        "id": {"type": "string", "pattern": _SLUG},
                        "text": {"type": "string", "minLength": 1},
                        "choice": {"type": "string"},
                        "source": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
            },
            "tables": {"type": "array", "minItems": 1, "items": table},
            "claims": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "text", "where", "predicate"],
                    "properties": {
                        "id": {"type": "string", "pattern": _SLUG},
                        "text": {"type": "string"},
                        "where": {"type": "string"},
                        "predicate": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}}},
                        "assumptions": {"type": "array", "items": {"type": "string"}},
                        # what the claim gives on the paper's own numbers (default holds); fails needs a note
                        "on_reported": {"enum": ["holds", "fails"]},
                        "note": {"type": "string", "minLength": 1},
                    },
                    "if": {"properties": {"on_reported": {"const": "fails"}}, "required": ["on_reported"]},
                    "then": {"required": ["note"]},
                    "additionalProperties": False,
                },
            },
            "notes": {"type": "string"},
        },
        "additionalProperties": False,
    }


def schema_text() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


def load_schema() -> dict[str, Any]:
    """The committed schema file (what the loader validates against)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


if __name__ == "__main__":
    from ltbench.io import write_text

    write_text(SCHEMA_PATH, schema_text())
    print(SCHEMA_PATH)
