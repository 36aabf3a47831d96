"""Line provenance of a spec file: where each key of the loaded data is written, through anchors and merges.

``LineIndex(text, path).locate(["tables", 1, "rows", 14, "run", "loss"])`` answers with the 1-based line of
that key in the file and the YAML indirections crossed on the way there: ``*alias`` uses (``run: *seesaw``,
``columns: *cols_pwb``) and merge keys (``run: {<<: *seesaw, ...}``). Key paths are the ones of the loaded
data (and of ``LtbenchError`` keys): mapping keys as strings, sequence items as 0-based ints.

The index is built on demand, from the text, by one pass over libyaml's event stream (a few ms per spec),
so loading and validating specs pays nothing for it; ``ltbench explain`` builds it for the files it shows.
Lookups follow YAML's merge rule: a mapping's own keys win over merged ones, and among several merged
mappings (``<<: [*a, *b]``) the first that has the key wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Hop:
    """One YAML indirection crossed on the way to a key.

    ``kind`` is ``"alias"`` (a value written as ``*name``) or ``"merge"`` (a key found through ``<<: *name``);
    ``line`` is where the alias or merge key is written, ``anchor_line`` where ``&name`` is defined.
    """

    kind: str
    anchor: str
    line: int
    anchor_line: int

    def describe(self) -> str:
        use = f"<<: *{self.anchor}" if self.kind == "merge" else f"*{self.anchor}"
        return f"{use} (line {self.line}) -> &{self.anchor} (line {self.anchor_line})"


@dataclass(frozen=True)
class Located:
    """Where a key path is written: ``line`` (1-based) of the mapping key, or of the start of a sequence item
    (the whole document: line 1); ``via``: the indirections crossed, outermost first; ``value_via``: set when
    the value itself is written as an alias (``head: *iterative``: the key is here, its value at the anchor)."""

    line: int
    via: tuple[Hop, ...] = ()
    value_via: Hop | None = None


@dataclass(eq=False)
class _Node:
    kind: str  # "map" | "seq" | "scalar"
    line: int
    anchor: str | None = None
    text: str | None = None  # scalar: its text
    merge: bool = False  # scalar: a plain `<<` (the merge key; a quoted one is the string "<<")
    # map: (key text or None for a non-scalar key, key line, is a merge key, value); seq: values
    pairs: list[tuple[str | None, int, bool, Any]] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class _Alias:
    name: str
    line: int
    target: _Node


def _compose(text: str) -> _Node | None:
    """A light node tree from libyaml's events; unlike ``yaml.compose`` it keeps where aliases are used."""
    import yaml
    from yaml import events as ev

    loader = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
    anchors: dict[str, _Node] = {}
    open_nodes: list[_Node] = []
    pending_key: list[tuple[str | None, int, bool] | None] = []  # per open mapping: the key waiting for its value
    root: Any = None

    def attach(node: Any) -> None:
        nonlocal root
        if not open_nodes:
            root = node
            return
        parent = open_nodes[-1]
        if parent.kind == "seq":
            parent.items.append(node)
        elif pending_key[-1] is None:  # this node is a key
            if isinstance(node, _Node) and node.kind == "scalar":
                pending_key[-1] = node.text, node.line, node.merge
            else:
                pending_key[-1] = (None, node.line, False)
        else:
            key, line, merge = pending_key[-1]  # type: ignore[misc]
            parent.pairs.append((key, line, merge, node))
            pending_key[-1] = None

    for event in yaml.parse(text, Loader=loader):
        line = event.start_mark.line + 1
        if isinstance(event, ev.ScalarEvent):
            merge = event.value == "<<" and event.tag is None and bool(event.implicit and event.implicit[0])
            node = _Node("scalar", line, event.anchor, event.value, merge)
            if event.anchor:
                anchors[event.anchor] = node
            attach(node)
        elif isinstance(event, (ev.MappingStartEvent, ev.SequenceStartEvent)):
            node = _Node("map" if isinstance(event, ev.MappingStartEvent) else "seq", line, event.anchor)
            if event.anchor:
                anchors[event.anchor] = node
            open_nodes.append(node)
            pending_key.append(None)
        elif isinstance(event, (ev.MappingEndEvent, ev.SequenceEndEvent)):
            node = open_nodes.pop()
            pending_key.pop()
            attach(node)
        elif isinstance(event, ev.AliasEvent):
            attach(_Alias(event.anchor, line, anchors[event.anchor]))
    return root


class LineIndex:
    """Where the keys of one spec file are written (see the module docstring)."""

    def __init__(self, text: str, path: str | Path = "<spec>") -> None:
        self.path = Path(path)
        self.root = _compose(text)

    @classmethod
    def of_file(cls, path: str | Path) -> "LineIndex":
        return cls(Path(path).read_text(encoding="utf-8"), path)

    def locate(self, keys: Sequence[str | int]) -> Located | None:
        """Where ``keys`` (a key path of the loaded data) is written; None when it is not in the file (a key
        filled in by the loader, e.g. a default)."""
        if self.root is None:
            return None
        node: Any = self.root
        via: list[Hop] = []
        line = 1
        alias: Hop | None = None  # the last value reached was written as *alias
        for key in keys:
            if alias is not None:  # going below an aliased value: into the anchor
                via.append(alias)
                alias = None
            found = self._child(node, key, via)
            if found is None:
                return None
            line, child = found
            if isinstance(child, _Alias):
                alias = Hop("alias", child.name, child.line, child.target.line)
                child = child.target
            node = child
        return Located(line, tuple(via), alias)

    def _child(self, node: Any, key: str | int, via: list[Hop]) -> tuple[int, Any] | None:
        """(line, value) of ``key`` in ``node``; a key found through merges appends its merge hops to ``via``."""
        if not isinstance(node, _Node):
            return None
        if node.kind == "seq":
            if not isinstance(key, int) or not 0 <= key < len(node.items):
                return None
            item = node.items[key]
            return (item.line, item)
        if node.kind != "map":
            return None
        text = str(key)
        for name, line, merge, value in reversed(node.pairs):  # own keys first; the last one is what YAML keeps
            if not merge and name == text:
                return line, value
        for name, line, merge, value in node.pairs:
            if not merge:
                continue
            sources = value.target.items if isinstance(value, _Alias) and value.target.kind == "seq" else (
                value.items if isinstance(value, _Node) and value.kind == "seq" else [value])
            for source in sources:
                target = source.target if isinstance(source, _Alias) else source
                hop = Hop("merge", source.name if isinstance(source, _Alias) else "(inline)",
                          source.line if isinstance(source, _Alias) else line, target.line)
                nested: list[Hop] = []  # merges inside the merged mapping, if the key is found there
                found = self._child(target, key, nested)
                if found is not None:
                    via.append(hop)
                    via.extend(nested)
                    return found
        return None
