"""Fast JSON reading for big annotation and detection files.

Detection files of LVIS v1 val hold ~6 million objects; parsing them dominates an evaluation's start-up.
``orjson`` parses about twice as fast as the standard library and is used when it is installed; the
result is the same Python objects either way. Every failure (missing, empty, truncated, invalid file)
is reported by :func:`ltbench.io.read_json`, which names the file, line and column.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError


def load_json(path: str | PathLike[str]) -> Any:
    """Parse a JSON file; a bad file raises ``LtbenchError`` naming it and the position of the problem.

    Python's cyclic garbage collector is paused while parsing: a parsed JSON tree has no reference
    cycles, and collections triggered by its millions of new objects would walk the growing heap over
    and over (it halves the parsing time of a large detections file).
    """
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load_json(path)
    finally:
        if enabled:
            gc.enable()


def _load_json(path: str | PathLike[str]) -> Any:
    p = Path(path)
    if not p.is_file():
        raise LtbenchError("file not found", path=p, expected="an existing JSON file")
    try:
        import orjson
    except ImportError:
        orjson = None
    if orjson is not None:
        data = p.read_bytes()
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # fall through: the standard parser gives the precise message
    else:
        import json

        try:
            with p.open("rb") as handle:
                return json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    from ltbench.io import read_json

    try:
        return read_json(p)  # raises the detailed LtbenchError
    except UnicodeDecodeError as exc:
        raise LtbenchError(f"not UTF-8 text (byte {exc.start}): {exc.reason}", path=p,
                           expected="a UTF-8 JSON document") from None
