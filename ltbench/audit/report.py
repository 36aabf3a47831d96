"""Gather and print the audit report (``tables/audit.md`` and ``tables/audit.html``)."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench import io, paths
from ltbench.render.markdown import header_and_rows
from ltbench.render.model import VERDICT_MARK
from ltbench.render.tables import Rendered, read_store, render_table


@dataclass
class TableEntry:
    paper: str
    table_id: str
    scope: str
    caption: str
    reason: str = ""
    rendered: Rendered | None = None


@dataclass
class Audit:
    scale: str
    framework: str | None
    tables: list[TableEntry] = field(default_factory=list)
    assumptions: list[dict[str, str]] = field(default_factory=list)  # paper, id, text, choice, used_by
    runs: list[dict[str, Any]] = field(default_factory=list)  # provenance per record
    plots: list[dict[str, str]] = field(default_factory=list)  # title, path (relative to the report)
    corrupt: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    spec_errors: list[str] = field(default_factory=list)  # a paper whose spec does not load is reported, not fatal
    claims_md: str = ""  # the papers' qualitative claims checked on the results (ltbench.claims), as Markdown

    def status_counts(self) -> Counter:
        counts: Counter = Counter()
        for entry in self.tables:
            if entry.rendered is None:
                continue
            s = entry.rendered.built.summary
            counts.update(within=s.within, reproduced=s.reproduced, total=s.total, pending=s.pending, failed=s.failed, undefined=s.undefined)
        return counts


def build_audit(
    papers: list[str],
    *,
    scale: str,
    framework: str | None = None,
    results_dir: str | Path | None = None,
    plots_dir: Path | None = None,
    report_dir: Path | None = None,
    seeds: int | None = None,
) -> Audit:
    """Render every table of ``papers`` against the store; copy plots under ``plots_dir``."""
    from ltbench.errors import LtbenchError
    from ltbench.plan import build_plan
    from ltbench.spec import load_paper

    store = read_store(results_dir)
    audit = Audit(scale=scale, framework=framework, corrupt=list(store.corrupt))
    audit.failures = sorted(f"{run} / {view or 'all views'}: {reason}" for (run, view), reason in store.failures.items())
    for paper in papers:
        try:
            spec = load_paper(paths.PAPER_SPECS_DIR / f"{paper}.yaml")
            plan = build_plan(papers=[paper], scale=scale, framework=framework, seeds=seeds)
        except LtbenchError as exc:
            audit.spec_errors.append(f"{paper}: {exc}")
            continue
        used_by: dict[str, list[str]] = {}
        for table in spec.tables:
            entry = TableEntry(paper, table.id, table.scope, " ".join(str(table.caption or "").split()),
                               reason=" ".join(str(table.reason or "").split()))
            if table.scope == "reproduce":
                entry.rendered = render_table(paper, table.id, scale=scale, framework=framework, store=store,
                                              heading_level=3, plan=plan)
            audit.tables.append(entry)
            for a in table.assumptions:
                used_by.setdefault(a, []).append(f"Table {table.id}")
            for row in table.rows:
                for a in row.assumptions:
                    used_by.setdefault(a, []).append(f"Table {table.id} / {row.label}")
        for a in spec.assumptions.values():
            audit.assumptions.append({
                "paper": paper, "id": a.id, "text": " ".join(a.text.split()), "choice": " ".join((a.choice or "").split()),
                "used_by": ", ".join(dict.fromkeys(used_by.get(a.id, []))) or "(not referenced)",
            })
    for (run_id, view_id), record in sorted(store.records.items()):
        prov = record.get("provenance") or {}
        git = prov.get("git") or {}
        fw = record.get("framework")
        audit.runs.append({
            "run": run_id, "view": view_id, "seed": record.get("seed"),
            "framework": f"{fw} {(prov.get('versions') or {}).get(fw) or ''}".strip() if fw else "?",
            "commit": (git.get("commit") or "?")[:10] + ("+dirty" if git.get("dirty") else ""),
            "host": prov.get("host") or "?", "device": ", ".join(prov.get("gpu") or []) or "CPU",
            "wall_s": "" if prov.get("wall_time_s") is None else f"{float(prov['wall_time_s']):.0f}",
            "config_hash": (record.get("config_hash") or "")[:12],
        })
    audit.claims_md = claims_section(papers, scale=scale, framework=framework, results_dir=results_dir, seeds=seeds)
    if plots_dir is not None:
        audit.plots = collect_plots(audit, paths.results_dir(results_dir or None), plots_dir, report_dir or plots_dir.parent)
    return audit


def claims_section(papers: list[str], *, scale: str, framework: str | None, results_dir: str | Path | None,
                   seeds: int | None = None) -> str:
    """The claims component's Markdown section; a failure there is reported in the audit, not fatal."""
    try:
        from ltbench.claims.report import audit_claims, claims_markdown

        return claims_markdown(audit_claims(papers, scale=scale, framework=framework, results_dir=results_dir, seeds=seeds),
                               evidence=True)
    except Exception as exc:  # noqa: BLE001 -- the audit must render even if the claims checker breaks
        return f"## Claims\n\nThe claims could not be evaluated: {type(exc).__name__}: {exc}\n"


def collect_plots(audit: Audit, results_dir: Path, plots_dir: Path, report_dir: Path) -> list[dict[str, str]]:
    """Per-(run, view) plots written by ``ltbench evaluate --plot-dir`` plus a reproduced-vs-reported scatter."""
    plots: list[dict[str, str]] = []
    plots_dir.mkdir(parents=True, exist_ok=True)
    source = results_dir / "plots"
    for png in sorted(source.glob("*/*/*.png")) if source.is_dir() else []:
        run_id, view_id = png.parent.parent.name, png.parent.name
        target = plots_dir / f"{run_id}__{view_id}__{png.name}"
        tmp = target.with_name("." + target.name + ".tmp")
        shutil.copyfile(png, tmp)
        tmp.replace(target)
        kind = "confusion matrix (log2)" if "confusion" in png.name else png.stem.replace("_", " ")
        plots.append({"title": f"{run_id} / {view_id}: {kind}", "path": str(target.relative_to(report_dir))})
    scatter = plots_dir / "reproduced_vs_reported.png"
    if plot_reproduced_vs_reported(audit, scatter):
        plots.insert(0, {"title": "reproduced vs reported, every measured cell", "path": str(scatter.relative_to(report_dir))})
    return plots


def plot_reproduced_vs_reported(audit: Audit, out: Path) -> bool:
    points = []
    for entry in audit.tables:
        if entry.rendered is None:
            continue
        for row in entry.rendered.built.rows:
            for cell in row.cells.values():
                if cell.status == "measured" and cell.reported is not None:
                    points.append((float(cell.reported), float(cell.value), entry.paper))
    if not points:
        return False
    import io as _io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for paper in sorted({p[2] for p in points}):
        xs = [p[0] for p in points if p[2] == paper]
        ys = [p[1] for p in points if p[2] == paper]
        ax.scatter(xs, ys, s=12, alpha=0.7, label=paper)
    top = max(max(p[0] for p in points), max(p[1] for p in points), 1.0)
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("reported (paper)")
    ax.set_ylabel(f"reproduced ({audit.scale} scale)")
    ax.legend()
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    with io.atomic_open(out, "wb") as handle:
        handle.write(buf.getvalue())
    return True


def cell_rows(audit: Audit) -> list[list[str]]:
    """One line per cell of every reproduced table: paper, table, row, group, metric, status, values."""
    rows = []
    for entry, prow, group, key, header, cell in rendered_cells(audit):
        if cell.status == "empty":
            continue
        value = "" if cell.value is None else f"{float(cell.value):.3f}"
        std = "" if cell.std is None else f"{float(cell.std):.3f}"
        rows.append([
            entry.paper, entry.table_id, prow.label, group.label, f"{header} ({key})", cell.status, cell.reported or "–", value,
            std, str(cell.n) if cell.n else "", cell.delta or "", VERDICT_MARK.get(cell.verdict, "") if cell.verdict else "",
            cell.reason or "",
        ])
    return rows


def rendered_cells(audit: Audit) -> Iterator[tuple[Any, Any, Any, str, str, Any]]:
    """Every cell of every rendered table: (table entry, printed row, column group, metric key, column header, cell)."""
    for entry in audit.tables:
        if entry.rendered is None:
            continue
        built = entry.rendered.built
        groups = {g.id: g for g in built.layout.column_groups}
        for prow in built.rows:
            for (group_id, key), cell in prow.cells.items():
                group = groups[group_id]
                header = next(c.header for c in group.columns if c.key == key)
                yield entry, prow, group, key, header, cell


CELL_HEADERS = ["paper", "table", "row", "group", "column", "status", "reported", "reproduced", "std", "n", "Δ", "verdict",
                "reason"]
SEED_HEADERS = ["paper", "table", "row", "group", "column", "reported", "mean ± std (n)", "95 % prediction interval", "verdict"]


def seed_rows(audit: Audit) -> tuple[Counter, list[list[str]], list[str]]:
    """Seed statistics of the measured cells: (count of cells per n, one line per cell with n >= 2, table notes).

    A cell with n >= 2 is judged by whether the paper's number lies in its seeds' 95 % prediction interval;
    n = 1 by the fixed tolerance (``ltbench.analysis.seeds``)."""
    from ltbench.analysis.seeds import table_notes

    by_n: Counter = Counter()
    rows: list[list[str]] = []
    judged: list[tuple[str, int]] = []
    for entry, prow, group, key, header, cell in rendered_cells(audit):
        if cell.status != "measured":
            continue
        by_n[cell.n] += 1
        if cell.reported is not None:
            judged.append((key, cell.n))
        if cell.n < 2:
            continue
        low, high = cell.interval or (None, None)
        rows.append([
            entry.paper, entry.table_id, prow.label, group.label, f"{header} ({key})",
            cell.reported or "–", f"{float(cell.value):.2f} ± {float(cell.std or 0):.2f} (n={cell.n})",
            "" if low is None or high is None else f"[{low:.2f}, {high:.2f}]",
            VERDICT_MARK.get(cell.verdict, "") if cell.verdict else "",
        ])
    return by_n, rows, table_notes(judged)


def seed_summary(by_n: Counter) -> str:
    if not by_n:
        return "No measured cells yet."
    parts = ", ".join(f"{count} with n = {n}" for n, count in sorted(by_n.items()))
    return f"{sum(by_n.values())} measured cells: {parts} (n = seeds that produced the cell)."
RUN_HEADERS = ["run", "view", "seed", "framework", "commit", "host", "device", "wall s", "config hash"]


def overview_rows(audit: Audit) -> list[list[str]]:
    rows = []
    for entry in audit.tables:
        if entry.rendered is None:
            rows.append([entry.paper, entry.table_id, entry.scope, "", "", "", "", entry.reason or entry.caption[:80]])
            continue
        s = entry.rendered.built.summary
        rows.append([entry.paper, entry.table_id, entry.scope, str(s.total), str(s.reproduced), str(s.within),
                     f"{s.pending} pending, {s.failed} failed", ""])
    return rows


OVERVIEW_HEADERS = ["paper", "table", "scope", "cells", "reproduced", "within tol.", "open", "note"]


def render_markdown(audit: Audit) -> str:
    from tabulate import tabulate

    def table(rows: list[list[str]], headers: list[str]) -> str:
        if not rows:
            return "(none)"
        return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)

    c = audit.status_counts()
    out = [
        "# ltbench audit report",
        "",
        f"Scale: **{audit.scale}**; framework: {audit.framework or 'per spec'}.",
        f"All reproduced tables: {c['within']} cells within tolerance / {c['reproduced']} reproduced / {c['total']} total"
        f" ({c['pending']} pending, {c['failed']} failed, {c['undefined']} undefined).",
        "",
    ]
    if audit.spec_errors:
        out += ["## Specs that do not load (their tables are missing below)", ""] + [f"- {e}" for e in audit.spec_errors] + [""]
    out += [
        "## Tables",
        "",
        table(overview_rows(audit), OVERVIEW_HEADERS),
        "",
    ]
    for entry in audit.tables:
        if entry.rendered is not None:
            out += [entry.rendered.markdown, ""]
    if audit.claims_md:
        out += [audit.claims_md.rstrip(), ""]
    by_n, seeds, notes = seed_rows(audit)
    out += ["## Seed statistics", "", seed_summary(by_n), "", table(seeds, SEED_HEADERS), ""]
    out += [f"- {note}" for note in notes] + ([""] if notes else [])
    out += ["## Every cell", "", table(cell_rows(audit), CELL_HEADERS), ""]
    out += ["## Provenance (one line per record)", "", table([list(map(str, r.values())) for r in audit.runs], RUN_HEADERS), ""]
    if audit.failures:
        out += ["## Failures", ""] + [f"- {f}" for f in audit.failures] + [""]
    if audit.corrupt:
        out += ["## Corrupt records (skipped)", ""] + [f"- {c}" for c in audit.corrupt] + [""]
    out += ["## Assumptions", "", table([[a["paper"], a["id"], a["text"], a["choice"], a["used_by"]] for a in audit.assumptions],
                                        ["paper", "id", "what", "ltbench's choice", "used by"]), ""]
    out += ["## Plots", ""]
    if audit.plots:
        out += [f"![{p['title']}]({p['path']})\n\n*{p['title']}*\n" for p in audit.plots]
    else:
        out += ["No plots yet (they appear once runs are evaluated)."]
    return "\n".join(out).rstrip() + "\n"


def render_html(audit: Audit) -> str:
    import jinja2
    from tabulate import tabulate

    def html_table(rows: list[list[str]], headers: list[str]) -> str:
        return tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True) if rows else "<p>(none)</p>"

    tables = []
    for entry in audit.tables:
        if entry.rendered is None:
            continue
        built = entry.rendered.built
        headers, body, _ = header_and_rows(built)
        tables.append({
            "title": f"{entry.paper.upper()} Table {entry.table_id}",
            "caption": built.layout.caption,
            "html": html_table(body, headers),
            "summary": built.summary.line(),
            "footnotes": built.footnotes,
        })
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    c = audit.status_counts()
    by_n, seeds, seed_notes = seed_rows(audit)
    return env.get_template("audit.html.j2").render(
        seed_summary=seed_summary(by_n),
        seeds=html_table(seeds, SEED_HEADERS),
        seed_notes=seed_notes,
        audit=audit,
        counts=c,
        overview=html_table(overview_rows(audit), OVERVIEW_HEADERS),
        tables=tables,
        cells=html_table(cell_rows(audit), CELL_HEADERS),
        runs=html_table([list(map(str, r.values())) for r in audit.runs], RUN_HEADERS),
        assumptions=html_table([[a["paper"], a["id"], a["text"], a["choice"], a["used_by"]] for a in audit.assumptions],
                               ["paper", "id", "what", "ltbench's choice", "used by"]),
    )


def write_audit(papers: list[str], *, md: Path, html: Path | None, scale: str, framework: str | None = None,
                results_dir: str | Path | None = None, seeds: int | None = None) -> Audit:
    audit = build_audit(papers, scale=scale, framework=framework, results_dir=results_dir,
                        plots_dir=md.parent / "plots", report_dir=md.parent, seeds=seeds)
    io.write_text(md, render_markdown(audit))
    if html is not None:
        io.write_text(html, render_html(audit))
    return audit
