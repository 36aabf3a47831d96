"""Pass 2 of spec validation: the JSON schema (``ltbench/schemas/paper_spec.schema.json``), its most relevant
error as one message, and the cache of schema-validated specs (``~/.cache/ltbench``; ``LTBENCH_NO_CACHE=1``
turns it off)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ltbench.errors import did_you_mean


def _schema() -> dict[str, Any]:
    from ltbench.spec.schema import load_schema

    return load_schema()


@functools.lru_cache(maxsize=1)
def _schema_digest() -> str:
    import hashlib

    from ltbench.spec.schema import SCHEMA_PATH

    return hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest()


def cache_dir() -> Path:
    """Where ltbench keeps derived, re-creatable state: ``$LTBENCH_CACHE``, else ``$XDG_CACHE_HOME/ltbench``,
    else ``~/.cache/ltbench``."""
    import os

    if os.environ.get("LTBENCH_CACHE"):
        return Path(os.environ["LTBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ltbench"


def _validated_marker(cache_key: str) -> Path | None:
    import os

    if os.environ.get("LTBENCH_NO_CACHE"):
        return None
    return cache_dir() / "spec-schema-valid" / cache_key


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _schema_message(error: Any) -> str:
    kind = error.validator
    if kind == "required":
        missing = [k for k in error.validator_value if not (isinstance(error.instance, dict) and k in error.instance)]
        return "missing key " + ", ".join(repr(k) for k in missing)
    if kind == "additionalProperties":
        allowed = list((error.schema.get("properties") or {}).keys())
        extra = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
        hints = "".join(did_you_mean(str(k), allowed) for k in extra[:1])
        return "unexpected key " + ", ".join(repr(k) for k in extra) + hints
    if kind == "type":
        return f"wrong type: found {type(error.instance).__name__} {_short(error.instance)}"
    if kind == "enum":
        return f"value {_short(error.instance)} is not allowed"
    if kind == "pattern":
        return f"value {_short(error.instance)} does not match the required form"
    if kind in ("minItems", "minLength", "minimum", "exclusiveMinimum"):
        return f"value {_short(error.instance)} is too small"
    if kind == "anyOf":
        return f"value {_short(error.instance)} has the wrong form"
    return error.message if len(error.message) < 200 else error.message[:197] + "..."


def _schema_expected(error: Any) -> str | None:
    kind, value = error.validator, error.validator_value
    if kind == "required":
        return "keys " + ", ".join(value)
    if kind == "additionalProperties":
        return "only " + ", ".join((error.schema.get("properties") or {}).keys())
    if kind == "type":
        return " or ".join(value) if isinstance(value, list) else str(value)
    if kind == "enum":
        return "one of " + ", ".join(map(str, value))
    if kind == "pattern":
        return f"a string matching {value}"
    if kind in ("minItems", "minLength", "minimum", "exclusiveMinimum"):
        return f"{kind} {value}"
    if kind == "anyOf":
        return "; or ".join(_describe_subschema(s) for s in value)
    return None


def _describe_subschema(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    if "type" in schema:
        t = schema["type"]
        return " or ".join(t) if isinstance(t, list) else str(t)
    return "a valid value"
