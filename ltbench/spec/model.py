"""In-memory model of a validated paper spec, and run/view resolution (defaults -> table -> group -> row).

Merge rule (one rule everywhere): a run key set at a more specific level replaces the value above,
except that a component (``{name: ..., params}``) with the *same* ``name`` (or no ``name``) is merged
key by key, so a row can write ``regularizer: {alpha: 0.2}`` over the paper's PCB regularizer. A
different ``name`` replaces the component whole; ``null`` removes it. A ``schedule`` is not a component:
an override replaces the whole schedule (an epoch-based override over an iteration-based default must not
keep the default's ``iterations``; NOTES_format_requests.md item 2).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


# run keys whose overrides replace the value above instead of merging into it
REPLACED_WHOLE = frozenset({"schedule", "pretrain"})


def merge_run(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """Return ``base`` with ``override`` applied (see module docstring); inputs are not modified."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        current = out.get(key)
        if (
            key not in REPLACED_WHOLE
            and isinstance(value, dict)
            and isinstance(current, dict)
            and value.get("name", current.get("name")) == current.get("name")
        ):
            merged = dict(current)
            merged.update(copy.deepcopy(value))
            out[key] = merged
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_view(base: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    base = base or {"name": "plain"}
    if not override:
        return copy.deepcopy(base)
    if override.get("name", base.get("name")) == base.get("name"):
        out = copy.deepcopy(base)
        out.update(copy.deepcopy(override))
        return out
    return copy.deepcopy(override)


def slugify(text: str) -> str:
    """A filename-safe lower-case id: "EQL v2 [29] + PCB" -> "eql-v2-29-pcb"."""
    text = text.replace("+", " plus ").replace("†", "").replace("‡", "").replace("*", " star ")
    slug = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")
    return slug or "row"


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    lower_is_better: bool = False


@dataclass
class ColumnGroup:
    id: str
    label: str
    columns: list[Column]
    run: dict[str, Any] = field(default_factory=dict)
    view: dict[str, Any] | None = None

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.columns]


@dataclass(frozen=True)
class Cited:
    """Where a cited row's numbers come from; ``served_by`` names the row whose run may serve it."""

    source: str
    note: str = ""
    served_by: dict[str, str] | None = None
    reproduce: bool = False  # plan the row's own run from the citing paper's recipe (still marked cited)

    @property
    def planned(self) -> bool:
        """Whether the planner gives the row a run (its own, or the one of the row it is served by)."""
        return self.reproduce or self.served_by is not None


@dataclass
class Row:
    paper: str
    table_id: str
    index: int
    id: str
    label: str
    group: ColumnGroup
    multi_group: bool
    attributes: dict[str, Any]
    run: dict[str, Any]
    stage1: dict[str, Any] | None
    view: dict[str, Any] | None
    seeds: int | None
    reported: dict[str, str]  # canonical metric key -> value exactly as printed
    cited: Cited | None
    assumptions: list[str]
    note: str = ""
    seed_aggregate: dict[str, Any] | None = None
    baseline: str | None = None  # id of the row (same table and group) whose gain the tables show

    @property
    def display_label(self) -> str:
        """Readable label; for side-by-side column groups the group is part of it."""
        if self.multi_group:
            return f"{self.label} ({self.group.label or self.group.id})"
        return self.label


@dataclass
class Table:
    paper: str
    id: str
    caption: str
    scope: str
    reason: str
    text: str
    run: dict[str, Any]
    view: dict[str, Any] | None
    seeds: int | None
    column_groups: list[ColumnGroup]
    attribute_columns: list[str]
    rows: list[Row]
    missing: list[dict[str, Any]]
    not_reproducible: list[dict[str, Any]]
    assumptions: list[str]
    instance_bins: list[int] | None = None
    seed_aggregate: dict[str, Any] | None = None

    def group(self, group_id: str) -> ColumnGroup:
        for g in self.column_groups:
            if g.id == group_id:
                return g
        raise KeyError(group_id)

    def find_row(self, ref: str, group: str | None = None) -> Row | None:
        """A row by id or label (optionally within a column group)."""
        for row in self.rows:
            if group is not None and row.group.id != group:
                continue
            if ref in (row.id, row.label, row.display_label):
                return row
        return None


@dataclass(frozen=True)
class Assumption:
    id: str
    text: str
    choice: str = ""
    source: str = ""


@dataclass
class PaperSpec:
    paper: str
    title: str
    source: str
    path: Path
    defaults_run: dict[str, Any]
    defaults_view: dict[str, Any]
    seeds: int
    assumptions: dict[str, Assumption]
    tables: list[Table]
    claims: list[dict[str, Any]]
    raw: dict[str, Any]
    seed_aggregate: dict[str, Any] | None = None

    def table(self, table_id: str) -> Table:
        for t in self.tables:
            if t.id == str(table_id):
                return t
        from ltbench.errors import LtbenchError, did_you_mean

        raise LtbenchError(
            f"paper {self.paper!r} has no table {table_id!r}{did_you_mean(str(table_id), [t.id for t in self.tables])}",
            path=self.path,
            expected="one of " + ", ".join(t.id for t in self.tables),
        )

    # --- resolution -------------------------------------------------------------------------------
    def row_run(self, row: Row) -> dict[str, Any]:
        """The row's run as the paper describes it (no scale, no seed): defaults -> table -> group -> row."""
        table = self.table(row.table_id)
        run = merge_run(self.defaults_run, table.run)
        run = merge_run(run, row.group.run)
        return merge_run(run, row.run)

    def row_view(self, row: Row) -> dict[str, Any]:
        table = self.table(row.table_id)
        view = merge_view(self.defaults_view, table.view)
        view = merge_view(view, row.group.view)
        return merge_view(view, row.view)

    def row_seeds(self, row: Row) -> int:
        table = self.table(row.table_id)
        return row.seeds or table.seeds or self.seeds

    def row_seed_aggregate(self, row: Row) -> dict[str, Any]:
        """How the row's seeds become one number: row -> table -> defaults, default ``{rule: mean}``.

        ``median_run`` without ``by`` is resolved to the overall AP: ``segm.AP`` when the table has mask
        columns, else ``bbox.AP`` (SimCal: "median overall AP"; mask AP unless the table is box-only), so the
        bbox and mask blocks of one table pick the same seed.
        """
        table = self.table(row.table_id)
        rule = dict(row.seed_aggregate or table.seed_aggregate or self.seed_aggregate or {"rule": "mean"})
        if rule["rule"] == "median_run" and "by" not in rule:
            has_masks = any(k.startswith("segm.") for g in table.column_groups for k in g.keys)
            rule["by"] = "segm.AP" if has_masks else "bbox.AP"
        return rule

    def rows(self) -> list[Row]:
        return [row for table in self.tables for row in table.rows]

    def cells(self) -> list[tuple[Table, Row, Column, str]]:
        """Every reported number: (table, row, column, printed value), in table/row/column order."""
        out = []
        for table in self.tables:
            for row in table.rows:
                for column in row.group.columns:
                    if column.key in row.reported:
                        out.append((table, row, column, row.reported[column.key]))
        return out
