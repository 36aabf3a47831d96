"""From paper specs, the plan and the results store to ``tables/<paper>_table<N>.md|.tex`` and ``<paper>.md``.

The only place that knows all three: the spec gives rows, column groups, reported numbers, citations
and assumptions; the plan says which (run, view) pairs serve each row; the store has the metrics and
failure notes. Everything renders with zero results (every cell pending).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltbench import io, paths
from ltbench.render.model import BuiltTable, Column, ColumnGroup, LayoutRow, TableLayout, build_table
from ltbench.store.provenance import training_machine

# How a spec row is served: an object with ``pairs`` ((run_id, view_id) per seed; empty when nothing
# is run for it) and ``reason`` (why not), e.g. ``ltbench.workflow.RowServe``; None = pending plan.
PairsForRow = Callable[[Any], Any]


def layout_from_spec(spec: Any, table_id: str, pairs_for_row: PairsForRow, *, scale: str) -> TableLayout:
    """A ``TableLayout`` for ``spec.table(table_id)`` (a ``ltbench.spec.PaperSpec``)."""
    table = spec.table(table_id)
    groups = [
        ColumnGroup(
            id=g.id,
            label=g.label or g.id,
            columns=tuple(Column(c.header, c.key, bool(c.lower_is_better)) for c in g.columns),
        )
        for g in table.column_groups
    ]
    rows: list[LayoutRow] = []
    for row in table.rows:
        missing = {
            str(m.get("column")): str(m.get("reason", ""))
            for m in table.missing
            if m.get("row") in (row.id, row.label) and m.get("group") in (None, row.group.id)
        }
        not_repro: dict[str, str] = {}
        for entry in table.not_reproducible:
            if entry.get("group") not in (None, row.group.id):
                continue
            if entry.get("rows") and row.id not in entry["rows"] and row.label not in entry["rows"]:
                continue
            for key in entry.get("columns") or [c.key for c in row.group.columns]:
                not_repro[str(key)] = str(entry.get("reason", "not reproducible"))
        served = pairs_for_row(row)
        pairs = list(getattr(served, "pairs", None) or [])
        if not pairs and getattr(served, "reason", ""):
            for key in row.reported:
                not_repro.setdefault(str(key), str(served.reason))
        cited = None
        if row.cited is not None:
            cited = {"from": row.cited.source}
            if row.cited.note:
                cited["note"] = row.cited.note
        rows.append(
            LayoutRow(
                label=row.label,
                group=row.group.id,
                attributes={k: "" if v is None else str(v) for k, v in (row.attributes or {}).items()},
                reported={k: str(v) for k, v in row.reported.items()},
                pairs=pairs,
                cited=cited,
                assumptions=[a for a in dict.fromkeys([*row.assumptions, *getattr(served, "assumptions", ())])
                             if a not in table.assumptions],
                missing=missing,
                not_reproducible=not_repro,
                seed_rule=_seed_rule(spec, row),
                baseline=_baseline_label(table, row),
            )
        )
    from ltbench.plan.scales import HARNESS_ASSUMPTIONS  # the planner lists these on the rows they apply to

    assumptions = {name: f"{a['text']} Choice: {a['choice']}" for name, a in HARNESS_ASSUMPTIONS.items()}
    assumptions.update({a.id: (a.text + (f" Choice: {a.choice}" if a.choice else "")).strip() for a in spec.assumptions.values()})
    rules = {(r.seed_rule or {}).get("rule", "mean") for r in rows if len(r.pairs) > 1}
    statistic = rules.pop() if len(rules) == 1 else ("mean" if not rules else "per row (see notes)")
    return TableLayout(
        paper=spec.paper,
        table_id=table.id,
        caption=" ".join(str(table.caption or "").split()),
        precision=int(spec.raw.get("precision", 1) or 1),
        column_groups=groups,
        attribute_columns=list(table.attribute_columns),
        rows=rows,
        assumptions=assumptions,
        scale=scale,
        statistic=statistic,
        table_assumptions=list(table.assumptions),
    )


def _baseline_label(table: Any, row: Any) -> str | None:
    """The label of the row's ``baseline:`` (stored as a row id by the spec loader), in its column group."""
    ref = getattr(row, "baseline", None)
    if not ref:
        return None
    base = table.find_row(ref, row.group.id)
    return base.label if base is not None else None


def _seed_rule(spec: Any, row: Any) -> dict[str, str] | None:
    rule = getattr(spec, "row_seed_aggregate", None)
    return {str(k): str(v) for k, v in rule(row).items()} if rule is not None else None


@dataclass
class StoreView:
    """What the store holds, as ``build_table`` wants it."""

    results: dict[tuple[str, str], dict[str, float]]
    failures: dict[tuple[str, str | None], str]
    corrupt: list[str]
    records: dict[tuple[str, str], dict[str, Any]]


def read_store(results_dir: str | Path | None = None) -> StoreView:
    from ltbench.store import load_failures, load_records

    loaded = load_records(results_dir)
    failures: dict[tuple[str, str | None], str] = {}
    for f in load_failures(results_dir):
        failures[(f.run_id, f.view_id)] = f"{f.stage}: {f.reason}"
    for bad in loaded.corrupt:  # a record that is there but unusable: its cells say so, with the file, never "pending"
        failures[(bad.path.parent.name, bad.path.stem)] = f"record: corrupt {bad.path} ({bad.reason})"
    return StoreView(
        results={(r["run_id"], r["view_id"]): r["metrics"] for r in loaded.records},
        failures=failures,
        corrupt=[str(c) for c in loaded.corrupt],
        records=loaded.by_key(),
    )


def stage1_failures(failures: dict[tuple[str, str | None], str], stage1_of: dict[str, str | None]) -> dict:
    """A stage-2 run whose stage-1 training failed is failed too (it can never start)."""
    out = dict(failures)
    for run_id, parent in stage1_of.items():
        if parent and (parent, None) in failures and (run_id, None) not in out:
            out[(run_id, None)] = f"stage 1 {failures[(parent, None)]}"
    return out


def provenance_line(built: BuiltTable, store: StoreView) -> str:
    """One line: which code, frameworks and machines produced the measured cells."""
    commits, frameworks, hosts, gpus = set(), set(), set(), set()
    for row in built.layout.rows:
        for pair in row.pairs:
            record = store.records.get(pair)
            if record is None:
                continue
            prov = record.get("provenance") or {}
            git = prov.get("git") or {}
            if git.get("commit"):
                commits.add(git["commit"][:10] + ("+dirty" if git.get("dirty") else ""))
            fw = record.get("framework")
            version = (prov.get("versions") or {}).get(fw) if fw else None
            if fw:
                frameworks.add(f"{fw} {version}" if version else fw)
            host, devices = training_machine(record)  # the machine that trained, not the one that recorded
            if host:
                hosts.add(host)
            gpus.update(devices)
    if not (commits or frameworks):
        return "Provenance: no measured cells yet."
    return (
        "Provenance: ltbench commit " + (", ".join(sorted(commits)) or "unknown")
        + " · " + ", ".join(sorted(frameworks))
        + " · trained on hosts " + ", ".join(sorted(hosts))
        + " · devices " + ", ".join(sorted(gpus))
        + ". Full provenance per record in results/records/ and `ltbench results`."
    )


def framework_note(plan: Any, paper: str, table_id: str, override: str | None = None) -> str:
    """Which framework trained which rows of the table (from the plan's run configs): one framework for every
    row, or per framework the rows and detectors it served (at smoke scale a detector torchvision lacks,
    Cascade R-CNN or HTC, trains through mmdet). "" when the table has no planned row."""
    by_framework: dict[str, list[str]] = {}
    detectors: dict[str, set[str]] = {}
    for row in plan.rows:
        if row.paper != paper or str(row.table) != str(table_id) or not row.run_ids:
            continue
        for run_id in row.run_ids:
            config = plan.runs[run_id].config
            fw = config["framework"]
            if row.label not in by_framework.setdefault(fw, []):
                by_framework[fw].append(row.label)
            detectors.setdefault(fw, set()).add(config["detector"])
    if not by_framework:
        return ""
    suffix = " (framework override)" if override else ""
    if len(by_framework) == 1:
        return f"Every run trained through {next(iter(by_framework))}{suffix}."
    parts = [f"{fw} ({', '.join(sorted(detectors[fw]))}): " + ", ".join(labels) for fw, labels in sorted(by_framework.items())]
    requested = f"; {override} requested" if override else ""
    return "Frameworks per row" + requested + ": " + "; ".join(parts) + "."


def table_ids(spec: Any, scopes: Sequence[str] = ("reproduce",)) -> list[str]:
    return [t.id for t in spec.tables if t.scope in scopes]


def tolerances_for(scale: str, config: dict[str, Any] | None) -> dict[str, float]:
    tolerances = ((config or {}).get("tolerances") or {}).get(scale)
    if tolerances:
        return {str(k): float(v) for k, v in tolerances.items()}
    return {"default": 0.5} if scale == "paper" else {"default": 1.0}


def load_workflow_config(path: str | Path | None = None) -> dict[str, Any]:
    """``workflows/config/config.yaml`` (tolerances etc.), or {} when absent."""
    p = Path(path) if path is not None else paths.WORKFLOWS / "config" / "config.yaml"
    return io.read_yaml(p) if p.is_file() else {}


def reproduced_table_ids(paper: str) -> list[str]:
    """Ids of the tables of ``paper`` that ltbench reproduces (scope ``reproduce``)."""
    from ltbench.spec import load_paper

    return table_ids(load_paper(paths.PAPER_SPECS_DIR / f"{paper}.yaml"))


@dataclass
class Rendered:
    built: BuiltTable
    markdown: str
    latex: str
    store: StoreView


def render_table(
    paper: str,
    table_id: str,
    *,
    scale: str,
    framework: str | None = None,
    results_dir: str | Path | None = None,
    store: StoreView | None = None,
    config: dict[str, Any] | None = None,
    heading_level: int = 2,
    plan: Any = None,
    seeds: int | None = None,
) -> Rendered:
    """Build and print one paper table from the spec, the plan and the store.

    ``plan``: a built ``ltbench.plan.Plan`` containing the table (e.g. the paper's), else one is built
    (with ``seeds`` seeds per row when given: cells show mean ± std (n) and seed-interval verdicts).
    """
    from ltbench.plan import build_plan
    from ltbench.render.latex import render_latex
    from ltbench.render.markdown import render_markdown
    from ltbench.spec import load_paper
    from ltbench.workflow import row_pairs, stage1_of

    spec = load_paper(paths.PAPER_SPECS_DIR / f"{paper}.yaml")
    if plan is None:
        plan = build_plan(targets=[f"tables/{paper}_table{table_id}.md"], scale=scale, framework=framework, seeds=seeds)
    by_ref = row_pairs(paper, table_id, scale=scale, framework=framework, plan=plan)
    def serve(row: Any) -> Any:
        return by_ref.get((row.group.id, row.id))

    layout = layout_from_spec(spec, table_id, serve, scale=scale)
    note = framework_note(plan, paper, table_id, framework)
    if note:
        layout.notes.append(note)
    store = store if store is not None else read_store(results_dir)
    failures = stage1_failures(store.failures, stage1_of(scale=scale, framework=framework, papers=[paper], plan=plan))
    config = config if config is not None else load_workflow_config()
    from ltbench.render.run_notes import run_notes

    built = build_table(layout, store.results, failures=failures, tolerances=tolerances_for(scale, config),
                        run_notes=run_notes(store.records))
    prov = provenance_line(built, store)
    if store.corrupt:
        prov += f" Skipped {len(store.corrupt)} corrupt record(s): " + "; ".join(store.corrupt[:3])
    markdown = render_markdown(built, heading_level=heading_level, provenance=prov)
    # The claims that read this table alone, judged on the same records (seed intervals at mini and paper scale)
    from ltbench.claims.report import claims_markdown, table_claims

    serves = {(str(table_id), group, row): tuple(s.pairs) for (group, row), s in by_ref.items() if s is not None}
    claims = table_claims(spec, table_id, serves, store.results, scale=scale)
    if claims:
        markdown = markdown.rstrip("\n") + "\n\n" + claims_markdown(claims, heading="#" * (heading_level + 1) + " Claims on this table")
    return Rendered(built, markdown, render_latex(built), store)


def write_table(paper: str, table_id: str, *, md: Path, tex: Path | None, **kwargs: Any) -> Rendered:
    rendered = render_table(paper, table_id, **kwargs)
    io.write_text(md, rendered.markdown)
    if tex is not None:
        io.write_text(tex, rendered.latex)
    return rendered


def write_paper(paper: str, *, md: Path, scale: str, framework: str | None = None, results_dir: str | Path | None = None,
                seeds: int | None = None) -> list[Rendered]:
    """``tables/<paper>.md``: every reproduced table of the paper, one after the other."""
    from ltbench.spec import load_paper

    from ltbench.plan import build_plan

    spec = load_paper(paths.PAPER_SPECS_DIR / f"{paper}.yaml")
    store = read_store(results_dir)
    plan = build_plan(papers=[paper], scale=scale, framework=framework, seeds=seeds)
    out = [render_table(paper, t, scale=scale, framework=framework, store=store, heading_level=2, plan=plan)
           for t in table_ids(spec)]
    skipped = [t for t in spec.tables if t.scope != "reproduce"]
    lines = [f"# {spec.title} ({paper.upper()})", ""]
    total = sum(r.built.summary.total for r in out)
    within = sum(r.built.summary.within for r in out)
    reproduced = sum(r.built.summary.reproduced for r in out)
    lines += [f"**All tables:** {within} cells within tolerance / {reproduced} reproduced / {total} total.", ""]
    lines += [r.markdown for r in out]
    if skipped:
        lines += ["## Tables not reproduced", ""]
        lines += [f"- Table {t.id} ({t.scope}): {' '.join(str(t.reason or t.caption or '').split())}" for t in skipped]
    io.write_text(md, "\n".join(lines).rstrip() + "\n")
    return out
