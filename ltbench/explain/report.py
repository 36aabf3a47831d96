"""``ltbench explain``: one table cell traced to its YAML row, its run and the code behind it.

``explain(...)`` returns an ``Explanation``: (1) where the row, its column group, the column and the reported
value are written (file:line, through YAML anchors); (2) the origin of every key of the row's planned run
and view config (``ltbench.explain.origins``); (3) the run and view ids at the chosen scale, the tables that
read the run, and the row's status in the plan; (4) the code behind it (``ltbench.explain.code_locations``).
``format_text`` / ``to_json`` render it. The run ids are the plan's own (``build_plan`` over every paper, so
the tables sharing a run are listed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean
from ltbench.explain.code_locations import CodeLocation
from ltbench.explain.origins import Origin
from ltbench.explain.select import Condition, describe_row
from ltbench.spec.model import Column, PaperSpec, Row, Table
from ltbench.spec.provenance import Hop, LineIndex


@dataclass
class Place:
    """Where one part of the cell is written: ``what`` (row, column group, column, reported), ``file``:``line``,
    the YAML text shown for it and the anchors crossed to get there; ``line`` None when it is not in the file."""

    what: str
    file: Path
    line: int | None
    text: str
    via: tuple[Hop, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "file": str(self.file), "line": self.line, "text": self.text,
                "via": [h.__dict__ for h in self.via]}


@dataclass
class Explanation:
    spec: PaperSpec
    table: Table
    row: Row
    column: Column | None
    scale: str
    framework: str | None
    places: list[Place]
    status: str
    reason: str
    served_by: str | None
    run_ids: list[str]
    view_id: str | None
    run_tables: list[str]
    dependencies: list[str]  # runs the first seed's run needs first (stage 1, pretrain source)
    run_config: dict[str, Any] | None
    view_config: dict[str, Any] | None
    run_origins: list[Origin]
    view_origins: list[Origin]
    code: list[CodeLocation]
    origin_file: Path | None  # the spec the run is resolved from (another one for a served cited row)
    origin_row: str | None = None  # the serving row of a served cited row
    others: list[str] = field(default_factory=list)  # rows printed alike, and how to pick them

    @property
    def planned_as(self) -> str:
        """planned | served | cited | reported-only (cited rows: also how they are produced)."""
        cited = self.row.cited
        if self.status == "planned":
            return "planned, cited (reproduced with this paper's recipe)" if cited else "planned"
        if self.status == "served":
            return f"cited, served by {self.served_by}"
        if self.status == "reported_only":
            return "cited, reported only" if cited else "reported only"
        return self.status.replace("_", " ")


def _relative(path: Path) -> Path:
    from ltbench.paths import REPO_ROOT

    try:
        return Path(path).resolve().relative_to(REPO_ROOT)
    except ValueError:
        return Path(path)


def _line_text(lines: list[str], line: int | None, limit: int = 96) -> str:
    if line is None or not 0 < line <= len(lines):
        return ""
    text = lines[line - 1].strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _indices(spec: PaperSpec, table: Table, row: Row, column: Column | None) -> tuple[int, int, int | None]:
    ti = spec.tables.index(table)
    gi = table.column_groups.index(row.group)
    ci = None
    if column is not None:
        raw = spec.raw["tables"][ti]["column_groups"][gi]["columns"]
        ci = next((i for i, c in enumerate(raw) if c.get("key") == column.key), None)
    return ti, gi, ci


def _places(spec: PaperSpec, table: Table, row: Row, column: Column | None, index: LineIndex) -> list[Place]:
    lines = spec.path.read_text(encoding="utf-8").splitlines()
    ti, gi, ci = _indices(spec, table, row, column)
    path = _relative(spec.path)
    out = []

    def add(what: str, keys: list[str | int], text: str | None = None) -> None:
        loc = index.locate(keys)
        out.append(Place(what, path, loc.line if loc else None,
                         text if text is not None else _line_text(lines, loc.line if loc else None),
                         loc.via if loc else ()))

    add("table", ["tables", ti])
    add("row", ["tables", ti, "rows", row.index])
    add("column group", ["tables", ti, "column_groups", gi])
    if column is None:
        return out
    if ci is None:
        out.append(Place("column", path, None, f"{column.header} ({column.key}): added by $LTBENCH_EXTRA_COLUMNS"))
        return out
    add("column", ["tables", ti, "column_groups", gi, "columns", ci])
    if column.key in row.reported:
        add("reported", ["tables", ti, "rows", row.index, "reported", column.key],
            f"{column.key}: {row.reported[column.key]}")
    else:
        reason = next((m.get("reason", "") for m in table.missing
                       if m.get("column") == column.key and m.get("row") in (row.id, row.label)
                       and m.get("group", row.group.id) == row.group.id), None)
        out.append(Place("reported", path, None, f"no reported value ({'missing: ' + reason if reason else 'printed as -'})"))
    return out


def _others(table: Table, row: Row, ref: str) -> list[str]:
    """Other rows of the row's group that ``ref`` also names (a printed attribute cell), and the attribute that
    tells each apart from the chosen row."""
    out = []
    for other in table.rows:
        if other is row or other.group is not row.group:
            continue
        if ref not in (other.id, other.label, other.display_label, *(str(v).strip() for v in other.attributes.values())):
            continue
        differ = [f"{k}={other.attributes.get(k, '')}" for k in other.attributes
                  if str(other.attributes.get(k, "")) != str(row.attributes.get(k, ""))]
        out.append(f"{describe_row(other)}" + (f" -> --where {' --where '.join(differ)}" if differ else ""))
    return out


def _served_source(specs: dict[str, PaperSpec], row: Row) -> tuple[PaperSpec, Row]:
    """The row whose run serves a cited row (``cited.served_by``), as the planner finds it."""
    served = row.cited.served_by if row.cited else None
    assert served is not None
    target_spec = specs[served["paper"]]
    target = target_spec.table(served["table"]).find_row(served["row"], served.get("group"))
    assert target is not None  # the planner has served the row from it
    return target_spec, target


def _dependencies(plan: Any, run_id: str) -> list[str]:
    out: list[str] = []

    def visit(rid: str) -> None:
        config = plan.runs[rid].config
        for parent in (config.get("init_from"), config.get("stage1")):
            if parent is not None and parent not in out:
                visit(parent)
                out.append(parent)

    visit(run_id)
    return out


def explain(table_ref: str, row_ref: str, *, group: str | None = None, column: str | None = None,
            conditions: Sequence[Condition] = (), flags: Sequence[str] = (), known_options: Sequence[str] = (),
            scale: str = "smoke", framework: str | None = None, directory: str | Path | None = None,
            code: bool = True) -> Explanation:
    """Explain one cell (see the module docstring and ``ltbench.explain.select`` for how a cell is named).

    ``flags``: ``--ATTR`` / ``--no-ATTR`` words of the command line (``select.parse_flags``); ``code=False``
    skips the code lookup (it imports torch).
    """
    from ltbench.explain import select as sel
    from ltbench.explain.origins import run_origins, view_origins
    from ltbench.plan import build_plan
    from ltbench.spec import load_all, vocab

    paper, table_id = sel.parse_table_ref(table_ref)
    if paper not in vocab.PAPERS:
        raise LtbenchError(f"unknown paper {paper!r}{did_you_mean(paper, vocab.PAPERS)}", key="TABLE",
                           expected="one of " + ", ".join(vocab.PAPERS))
    specs = load_all(directory)
    if paper not in specs:
        load_all(directory, [paper])  # the error: no spec for that paper
    spec = specs[paper]
    table = spec.table(table_id)
    table, row, col = sel.select(spec, table.id, row_ref, group=group, column=column,
                                 conditions=[*conditions, *sel.parse_flags(flags, table, known_options)])
    plan = build_plan(scale=scale, framework=framework, specs=specs, directory=directory)
    plan_row = next(r for r in plan.rows if (r.paper, r.table, r.row_id, r.group) == (paper, table.id, row.id, row.group.id))
    index = LineIndex.of_file(spec.path)
    explanation = Explanation(
        spec=spec, table=table, row=row, column=col, scale=scale, framework=framework,
        places=_places(spec, table, row, col, index), status=plan_row.status, reason=plan_row.reason,
        served_by=plan_row.served_by, run_ids=list(plan_row.run_ids), view_id=plan_row.view_id, run_tables=[],
        dependencies=[], run_config=None, view_config=None, run_origins=[], view_origins=[], code=[],
        origin_file=None, others=_others(table, row, row_ref),
    )
    if not plan_row.run_ids:
        return explanation
    source_spec, source_row = _served_source(specs, row) if plan_row.status == "served" else (spec, row)
    source_index = index if source_spec is spec else LineIndex.of_file(source_spec.path)
    first = plan_row.run_ids[0]
    explanation.run_config = plan.runs[first].config
    explanation.view_config = plan.view(first, plan_row.view_id).view_config
    explanation.run_tables = sorted({t for rid in plan_row.run_ids for t in plan.runs[rid].tables})
    explanation.dependencies = _dependencies(plan, first)
    explanation.origin_file = _relative(source_spec.path)
    if source_row is not row:
        explanation.origin_row = f"{source_spec.paper}/{source_row.table_id}/{source_row.display_label}"
    explanation.run_origins = run_origins(source_spec, source_row, explanation.run_config, scale=scale,
                                          framework=framework, index=source_index)
    explanation.view_origins = view_origins(source_spec, source_row, explanation.view_config, index=source_index)
    if code:
        from ltbench.explain.code_locations import code_locations

        explanation.code = code_locations(explanation.run_config, explanation.view_config)
    return explanation


# ---- rendering ----------------------------------------------------------------------------------
def _short(value: Any, limit: int = 34) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _origin_line(origin: Origin) -> str:
    where = f"{Path(origin.file).name}:{origin.line}" if origin.file and origin.line else "-"
    return f"    {origin.key:28s} {_short(origin.value):30s} {where:14s} {origin.describe(_short)}"


def format_text(e: Explanation) -> str:
    row = e.row
    cell = f", column {e.column.header} ({e.column.key})" if e.column else ""
    lines = [f"{e.spec.paper} table {e.table.id}, row {row.label!r}"
             + (f" (column group {row.group.id} {row.group.label!r})" if row.multi_group else "") + cell]
    if row.attributes:
        lines.append("  attributes: " + ", ".join(f"{k}={v}" for k, v in row.attributes.items()))
    if row.cited:
        lines.append(f"  cited from {row.cited.source}" + (f" ({row.cited.note})" if row.cited.note else ""))
    if row.assumptions:
        lines.append("  assumptions: " + ", ".join(row.assumptions))
    for other in e.others:
        lines.append(f"  also printed so: {other}")
    lines += ["", "1. where it is written"]
    for place in e.places:
        where = f"{place.file}:{place.line}" if place.line else str(place.file)
        lines.append(f"    {place.what:13s} {where:34s} {place.text}")
        for hop in place.via:
            lines.append(f"    {'':13s} {'':34s} via {hop.describe()}")
    lines += ["", "2. where each key of the run and view config comes from"
              + (f" (resolved from {e.origin_file}" + (f", row {e.origin_row!r} that serves this cited row" if e.origin_row else "")
                 + ")" if e.origin_file else "")]
    if not e.run_config:
        lines.append(f"    no run: {e.planned_as}" + (f" ({e.reason})" if e.reason else ""))
    else:
        lines.append(f"    run {e.run_ids[0]}")
        lines += [_origin_line(o) for o in e.run_origins]
        lines.append(f"    view {e.view_id}")
        lines += [_origin_line(o) for o in e.view_origins]
    framework = e.framework or (e.run_config or {}).get("framework") or ("per spec" if e.scale == "paper" else "torchvision")
    lines += ["", f"3. plan (scale {e.scale}, framework {framework})", f"    status        {e.planned_as}"]
    if e.reason and e.run_config:
        lines.append(f"    note          {e.reason}")
    if e.run_ids:
        lines.append("    run" + ("s" if len(e.run_ids) > 1 else " ") + "          " + "\n                  ".join(e.run_ids))
        lines.append(f"    view          {e.view_id}")
        if e.dependencies:
            lines.append("    after         " + "\n                  ".join(e.dependencies))
        lines.append(f"    run's tables  {' '.join(e.run_tables)}")
    if e.code:
        lines += ["", "4. code"]
        for loc in e.code:
            lines.append(f"    {loc.role:15s} {loc.name:15s} {loc.where:44s} {loc.target or ''}"
                         + (f"  ({loc.note})" if loc.note else ""))
    return "\n".join(lines) + "\n"


def to_json(e: Explanation) -> dict[str, Any]:
    return {
        "paper": e.spec.paper, "table": e.table.id, "row": {"id": e.row.id, "label": e.row.label, "group": e.row.group.id,
                                                            "attributes": e.row.attributes},
        "column": {"header": e.column.header, "key": e.column.key} if e.column else None,
        "reported": e.row.reported.get(e.column.key) if e.column else None,
        "places": [p.to_json() for p in e.places],
        "scale": e.scale, "framework": e.framework,
        "status": e.status, "planned_as": e.planned_as, "reason": e.reason, "served_by": e.served_by,
        "cited": {"source": e.row.cited.source, "reproduce": e.row.cited.reproduce} if e.row.cited else None,
        "run_ids": e.run_ids, "view_id": e.view_id, "run_tables": e.run_tables, "dependencies": e.dependencies,
        "origin_file": str(e.origin_file) if e.origin_file else None, "origin_row": e.origin_row,
        "run_origins": [o.to_json() for o in e.run_origins], "view_origins": [o.to_json() for o in e.view_origins],
        "code": [{"role": c.role, "name": c.name, "target": c.target, "file": c.file, "line": c.line, "note": c.note or None}
                 for c in e.code],
        "others": e.others,
    }
