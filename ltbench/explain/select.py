"""Pick one table cell of a paper spec from what a reader sees in the printed table.

A cell is named by its table (``pcb/2``), its row, optionally its column group and its column.

Rows. ``ROW`` is compared with each row's id, label and displayed label, and with the row's attribute
cells (the printed columns that are row parameters, e.g. PCB Table 2's ``Method`` and ``PCB``). Rows whose
id or label equal ``ROW`` are preferred; only when none of them passes the filters are rows whose
attribute cell equals ``ROW`` considered. The filters narrow the rows:

- ``--group G``: the row's column group (id or label: ``v1.0`` or ``LVIS v1.0``);
- ``--where ATTR=VALUE`` (repeatable): the row's attribute ``ATTR`` (an attribute column; case-insensitive)
  is ``VALUE``. For check-mark columns ``yes``/``y``/``true``/``✓``/``✔`` mean ✓ and ``no``/``n``/``false``/
  ``✗``/``✘`` mean ✗ or an empty cell;
- ``--ATTR`` / ``--no-ATTR``: the same as ``--where ATTR=✓`` / ``--where ATTR=✗`` (attribute name lower-cased,
  spaces as ``-``), e.g. ``--pcb`` in PCB Table 2, ``--dual`` / ``--no-dual`` in SimCal Table 3.

PCB Table 2 prints "Seesaw [34]" twice in LVIS v1.0, with PCB ✗ and ✓: ``"Seesaw [34]" --group v1.0`` is the
row labelled so (PCB ✗), ``"Seesaw [34]" --group v1.0 --pcb`` (= ``--where PCB=✓``) the row "Seesaw [34] +
PCB". No match, or several, is an error naming the table and listing the candidate rows.

Columns. ``--column`` is the printed header (``AP_r``) or the metric key (``segm.APr``) of a column of the
row's group; without it the whole row is explained.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ltbench.errors import LtbenchError, did_you_mean
from ltbench.spec.model import Column, ColumnGroup, PaperSpec, Row, Table

YES = ("✓", "✔", "yes", "y", "true")
NO = ("✗", "✘", "no", "n", "false")


@dataclass(frozen=True)
class Condition:
    """``attribute`` equals ``value`` (a check-mark synonym is compared as the mark it stands for)."""

    attribute: str
    value: str

    def text(self) -> str:
        return f"{self.attribute}={self.value}"


def parse_table_ref(ref: str) -> tuple[str, str]:
    """``pcb/2`` -> ("pcb", "2"); also ``pcb:2`` and ``pcb/table2``."""
    match = re.fullmatch(r"\s*([a-z0-9]+)\s*[/:]\s*(?:table\s*)?([0-9A-Za-z]+)\s*", ref)
    if not match:
        raise LtbenchError(f"cannot read table {ref!r}", key="TABLE", expected="PAPER/TABLE, e.g. pcb/2")
    return match.group(1), match.group(2)


def parse_where(items: Iterable[str]) -> list[Condition]:
    out = []
    for item in items:
        attribute, sep, value = item.partition("=")
        if not sep or not attribute.strip():
            raise LtbenchError(f"cannot read --where {item!r}", key="--where", expected="ATTRIBUTE=VALUE, e.g. PCB=✓")
        out.append(Condition(attribute.strip(), value.strip()))
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def attribute_names(table: Table) -> list[str]:
    """The table's attribute columns, then any other attribute a row states."""
    names = list(table.attribute_columns)
    for row in table.rows:
        names += [n for n in row.attributes if n not in names]
    return names


def check_mark_columns(table: Table) -> list[str]:
    """Attribute columns whose every cell is a check mark or empty (PCB, SimCal's cal/dual, DisAlign's GR/MT/MG)."""
    marks = {*YES[:2], *NO[:2], ""}
    return [name for name in attribute_names(table)
            if any(name in r.attributes for r in table.rows)
            and all(str(r.attributes.get(name, "")).strip() in marks for r in table.rows)]


def parse_flags(flags: Sequence[str], table: Table, known_options: Sequence[str]) -> list[Condition]:
    """``--pcb`` / ``--no-pcb`` -> conditions on the check-mark column PCB; anything else is an error that
    lists the options and the check-mark flags this table has."""
    by_slug = {_slug(name): name for name in check_mark_columns(table)}
    out = []
    for flag in flags:
        name = flag[2:] if flag.startswith("--") else ""
        negate = name.startswith("no-") and name[3:] in by_slug and name not in by_slug
        slug = name[3:] if negate else name
        if "=" in flag or slug not in by_slug:
            choices = [*known_options, *(f"--{s}" for s in by_slug), *(f"--no-{s}" for s in by_slug)]
            raise LtbenchError(
                f"unknown option {flag!r}{did_you_mean(flag, choices)}", key=flag,
                expected="one of " + ", ".join(choices) + (
                    f" (--ATTR / --no-ATTR for the check-mark columns of {table.paper} table {table.id}: "
                    + ", ".join(by_slug.values()) + ")" if by_slug
                    else f" ({table.paper} table {table.id} has no check-mark columns; use --where ATTR=VALUE)"),
            )
        out.append(Condition(by_slug[slug], "✗" if negate else "✓"))
    return out


def check_flags(table_ref: str, flags: Sequence[str], known_options: Sequence[str], directory: str | None = None) -> None:
    """Raise ``parse_flags``' error for a flag that is neither an option nor a check-mark column of the table."""
    from pathlib import Path

    from ltbench.spec.loader import load_paper, papers_dir

    paper, table_id = parse_table_ref(table_ref)
    path = Path(directory or papers_dir()) / f"{paper}.yaml"
    if path.is_file():
        parse_flags(flags, load_paper(path).table(table_id), known_options)


def find_group(table: Table, group: str) -> ColumnGroup:
    for match in (lambda g: group in (g.id, g.label), lambda g: group.casefold() in (g.id.casefold(), g.label.casefold())):
        found = [g for g in table.column_groups if match(g)]
        if len(found) == 1:
            return found[0]
    listed = [f"{g.id} ({g.label})" if g.label != g.id else g.id for g in table.column_groups]
    raise LtbenchError(
        f"{table.paper} table {table.id} has no column group {group!r}{did_you_mean(group, [g.id for g in table.column_groups])}",
        key="--group", expected="one of " + ", ".join(listed),
    )


def _attribute_value(row: Row, attribute: str) -> str:
    return str(row.attributes.get(attribute, "")).strip()


def _value_matches(actual: str, wanted: str) -> bool:
    low = wanted.casefold()
    if low in YES:
        return actual in YES[:2]
    if low in NO:
        return actual in NO[:2] or actual == ""
    return actual == wanted or actual.casefold() == low


def _resolve_attribute(table: Table, attribute: str) -> str:
    names = attribute_names(table)
    if attribute in names:
        return attribute
    folded = [n for n in names if n.casefold() == attribute.casefold()]
    if len(folded) == 1:
        return folded[0]
    raise LtbenchError(
        f"{table.paper} table {table.id} has no attribute column {attribute!r}{did_you_mean(attribute, names)}",
        key="--where", expected=("one of " + ", ".join(names)) if names else "no --where: this table has no attribute columns",
    )


def describe_row(row: Row) -> str:
    """One line per candidate row: label, group, attributes, id."""
    parts = [repr(row.label)]
    if row.multi_group:
        parts.append(f"group {row.group.id}")
    if row.attributes:
        parts.append(", ".join(f"{k}={v if v != '' else '(empty)'}" for k, v in row.attributes.items()))
    parts.append(f"id {row.id}")
    return "  ".join(parts)


def _distinguishing_hint(rows: Sequence[Row]) -> str:
    """Options that tell ``rows`` apart: the group, or an attribute whose values differ."""
    hints = []
    if len({r.group.id for r in rows}) > 1:
        hints.append("--group " + "|".join(dict.fromkeys(r.group.id for r in rows)))
    names = dict.fromkeys(n for r in rows for n in r.attributes)
    for name in names:
        values = [_attribute_value(r, name) for r in rows]
        if len(set(values)) == len(values):
            hints.append(" | ".join(f"--where {name}={v}" for v in values))
            break
    return "; ".join(hints) or "the row id (each row's `id` above)"


def find_row(table: Table, ref: str, group: ColumnGroup | None = None, conditions: Sequence[Condition] = ()) -> Row:
    """The one row of ``table`` that ``ref`` and the filters name (module docstring); an error otherwise."""
    resolved = [Condition(_resolve_attribute(table, c.attribute), c.value) for c in conditions]

    def passes(row: Row) -> bool:
        return (group is None or row.group is group) and all(
            _value_matches(_attribute_value(row, c.attribute), c.value) for c in resolved)

    named = [r for r in table.rows if ref in (r.id, r.label, r.display_label)]
    printed = [r for r in table.rows if r not in named and ref in {str(v).strip() for v in r.attributes.values()}]
    candidates = [r for r in named if passes(r)] or [r for r in printed if passes(r)]
    filters = ([f"--group {group.id}"] if group is not None else []) + [f"--where {c.text()}" for c in resolved]
    where = f"{table.paper} table {table.id}"
    if len(candidates) == 1:
        return candidates[0]
    # the candidates are listed in the message; `expected` would be appended after the last of them
    if candidates:
        raise LtbenchError(
            f"{len(candidates)} rows of {where} match {ref!r}" + (f" with {' '.join(filters)}" if filters else "")
            + ", the candidates:\n    " + "\n    ".join(describe_row(r) for r in candidates),
            key="ROW", hint="tell them apart with " + _distinguishing_hint(candidates),
        )
    near = named + printed
    if near:
        raise LtbenchError(
            f"no row of {where} matches {ref!r} with {' '.join(filters)}; the rows matching {ref!r}:\n    "
            + "\n    ".join(describe_row(r) for r in near),
            key="ROW", hint="change or drop a filter",
        )
    labels = list(dict.fromkeys(r.label for r in table.rows))
    raise LtbenchError(
        f"{where} has no row {ref!r}{did_you_mean(ref, labels + [r.id for r in table.rows])}; its rows:\n    "
        + "\n    ".join(describe_row(r) for r in table.rows),
        key="ROW", hint="give a row label or id, or a printed attribute cell (with --group / --where to pick one)",
    )


def find_column(table: Table, group: ColumnGroup, column: str) -> Column:
    for match in (lambda c: column in (c.header, c.key), lambda c: column.casefold() in (c.header.casefold(), c.key.casefold())):
        found = [c for c in group.columns if match(c)]
        if len(found) == 1:
            return found[0]
    listed = [f"{c.header} ({c.key})" for c in group.columns]
    raise LtbenchError(
        f"column group {group.id!r} of {table.paper} table {table.id} has no column {column!r}"
        f"{did_you_mean(column, [c.header for c in group.columns] + group.keys)}",
        key="--column", expected="one of " + ", ".join(listed),
    )


def select(spec: PaperSpec, table_id: str, row: str, *, group: str | None = None, column: str | None = None,
           conditions: Sequence[Condition] = ()) -> tuple[Table, Row, Column | None]:
    """(table, row, column or None) of one cell; every failure is an ``LtbenchError`` naming the table."""
    table = spec.table(table_id)
    chosen_group = find_group(table, group) if group is not None else None
    found = find_row(table, row, chosen_group, conditions)
    return table, found, (find_column(table, found.group, column) if column is not None else None)
