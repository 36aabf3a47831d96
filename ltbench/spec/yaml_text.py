"""A YAML reader that keeps the printed text of every number and refuses duplicated keys.

Paper tables print "7.0" and "27.25"; a YAML float loses the trailing zero (7.0 -> 7.0 -> "7.0" is
fine, but 21.90 -> 21.9). Every float is loaded as :class:`PrintedFloat`, a ``float`` that also
carries the scalar exactly as written in the file, so ``ltbench reported`` prints what the paper
printed.

A key written twice in one mapping is an error naming both lines (plain YAML keeps the last value
silently, so a transcription slip would overwrite a number without a trace). Keys brought in by a merge
key (``<<: *anchor``) and then set again are not duplicates: overriding them is what the merge is for.
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


class DuplicateKeyError(Exception):
    """A mapping states one key twice: the ``key``, where both are (1-based ``(line, column)``), and the key
    ``path`` from the document root."""

    def __init__(self, key: Any, first: tuple[int, int], second: tuple[int, int], path: list[str | int]) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first, self.second, self.path = key, first, second, path

    def where(self) -> str:
        (l1, c1), (l2, c2) = self.first, self.second
        if l1 == l2:
            return f"line {l1} (columns {c1} and {c2})"
        return f"line {l1} and at line {l2}"


_MERGE_TAG = "tag:yaml.org,2002:merge"


def check_unique_keys(root: Any) -> None:
    """Raise :class:`DuplicateKeyError` for the first mapping (document order) that states a key twice.

    Works on the composed node tree, before construction: the constructor flattens merge keys in place and
    keeps the last duplicate, after which neither is visible. Scalar keys compare by (resolved tag, text),
    so ``1`` and ``"1"`` are different keys, as they are after loading. Aliased nodes are checked once.
    """
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    collections = (MappingNode, SequenceNode)  # scalars hold no keys: never visited
    seen: set[int] = set()
    path: list[str | int] = []  # key path of the node being visited (for the error)

    # recursive, depth first in document order (the first duplicate in the file is reported); spec nesting is
    # shallow, and a shared path list is ~2x faster than a stack of path tuples
    def visit(node: Any) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            for i, child in enumerate(node.value):
                if isinstance(child, collections):
                    path.append(i)
                    visit(child)
                    path.pop()
            return
        first: dict[tuple[str, str], Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                name: str = "<<"
            elif isinstance(key_node, ScalarNode):
                name = str(key_node.value)
                ident = (key_node.tag, key_node.value)
                if ident in first:
                    before, again = first[ident].start_mark, key_node.start_mark
                    raise DuplicateKeyError(key_node.value, (before.line + 1, before.column + 1),
                                            (again.line + 1, again.column + 1), [*path, name])
                first[ident] = key_node
            else:
                name = "?"
            if isinstance(value_node, collections):
                path.append(name)
                visit(value_node)
                path.pop()

    if isinstance(root, collections):
        visit(root)


@functools.lru_cache(maxsize=1)
def _make_loader():
    """The safe loader with floats kept as :class:`PrintedFloat`; libyaml's C parser when PyYAML has it
    (5-10x faster than the pure-Python one; constructors, and so the result, are the same)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

    class TextKeepingLoader(base):  # type: ignore[misc, valid-type]
        def construct_document(self, node: Any) -> Any:
            check_unique_keys(node)  # on the raw tree: construction hides duplicates (see check_unique_keys)
            return super().construct_document(node)

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
    except DuplicateKeyError as exc:
        from ltbench.errors import format_key_path

        raise LtbenchError(
            f"key {exc.key!r} is written twice in one mapping, at {exc.where()} (YAML would keep only the last value)",
            path=p, key=format_key_path(exc.path) or None,
            expected="each key once per mapping (delete or rename one of them)",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise LtbenchError(f"invalid YAML{where}: {problem}", path=p, expected="valid YAML") from None
