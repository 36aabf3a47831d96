"""A YAML reader that keeps the printed text of every number.

Paper tables print "7.0" and "27.25"; a YAML float loses the trailing zero (7.0 -> 7.0 -> "7.0" is
fine, but 21.90 -> 21.9). Every float is loaded as :class:`PrintedFloat`, a ``float`` that also
carries the scalar exactly as written in the file, so ``ltbench reported`` prints what the paper
printed.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError


class PrintedFloat(float):
    """A float that remembers how it was written (``.text``)."""

    text: str

    def __new__(cls, value: float, text: str | None = None) -> "PrintedFloat":
        obj = super().__new__(cls, value)
        obj.text = text if text is not None else repr(float(value))
        return obj

    def __reduce__(self):  # deep copies and pickles keep the text
        return (PrintedFloat, (float(self), self.text))


def printed_text(value: Any) -> str:
    """The printed form of a reported value: the YAML text for floats, ``str`` otherwise."""
    if isinstance(value, PrintedFloat):
        return value.text
    if isinstance(value, bool):
        raise TypeError("a boolean is not a reported number")
    if isinstance(value, float):
        return repr(value)
    return str(value)


@functools.lru_cache(maxsize=1)
def _make_loader():
    """The safe loader with floats kept as :class:`PrintedFloat`; libyaml's C parser when PyYAML has it
    (5-10x faster than the pure-Python one; constructors, and so the result, are the same)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

    class TextKeepingLoader(base):  # type: ignore[misc, valid-type]
        pass

    def construct_float(loader: "TextKeepingLoader", node: Any) -> Any:
        value = yaml.SafeLoader.construct_yaml_float(loader, node)
        return PrintedFloat(value, str(node.value).strip())

    TextKeepingLoader.add_constructor("tag:yaml.org,2002:float", construct_float)
    return TextKeepingLoader


def read_spec_yaml(path: str | os.PathLike[str]) -> Any:
    """Read a spec file; YAML errors name the file, line and column."""
    p = Path(path)
    if not p.is_file():
        raise LtbenchError("paper spec not found", path=p, expected="an existing YAML file")
    return parse_spec_yaml(p.read_text(encoding="utf-8"), p)


def parse_spec_yaml(text: str, path: str | os.PathLike[str] = "<spec>") -> Any:
    """Parse spec text (as :func:`read_spec_yaml`); ``path`` only names the source in errors."""
    import yaml

    p = Path(path)
    try:
        return yaml.load(text, Loader=_make_loader())  # noqa: S506 (safe subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise LtbenchError(f"invalid YAML{where}: {problem}", path=p, expected="valid YAML") from None
