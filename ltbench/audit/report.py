"""Gather and print the audit report: ``tables/audit.md`` (compact Markdown), the report site ``tables/site/``
(``ltbench.report.site``) and ``tables/audit.html`` (the site's index, beside the Markdown)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench import io, paths
from ltbench.render.model import VERDICT_MARK
from ltbench.render.tables import Rendered, read_store, render_table
from ltbench.store.provenance import training_machine


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
    plots: list[dict[str, str]] = field(default_factory=list)  # title, path (relative to the Markdown report)
    corrupt: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    spec_errors: list[str] = field(default_factory=list)  # a paper whose spec does not load is reported, not fatal
    claims_md: str = ""  # the papers' qualitative claims checked on the results (ltbench.claims), as Markdown
    claims: list[tuple[str, Any, Any]] = field(default_factory=list)  # (paper, verdict on reported, on reproduced)
    claims_error: str = ""
    plans: dict[str, Any] = field(default_factory=dict)  # paper -> its plan (ltbench.plan.Plan)
    paper_titles: dict[str, str] = field(default_factory=dict)
    status: Any = None  # ltbench.report.status_model.CampaignStatus, when computed
    status_error: str = ""

    def status_counts(self) -> Counter:
        counts: Counter = Counter()
        for entry in self.tables:
            if entry.rendered is None:
                continue
            s = entry.rendered.built.summary
            counts.update(within=s.within, reproduced=s.reproduced, total=s.total, pending=s.pending, failed=s.failed, undefined=s.undefined)
        return counts

    def gain_counts(self) -> Counter:
        counts: Counter = Counter()
        for entry in self.tables:
            g = entry.rendered.built.gain_summary if entry.rendered is not None else None
            if g is not None:
                counts.update(reproduces=g.reproduces, shrinks=g.shrinks, reverses=g.reverses, judged=g.measured,
                              unjudged=g.unjudged, open=g.open, total=g.total)
        return counts


def build_audit(
    papers: list[str],
    *,
    scale: str,
    framework: str | None = None,
    results_dir: str | Path | None = None,
    seeds: int | None = None,
) -> Audit:
    """Render every table of ``papers`` against the store, with assumptions, provenance and claims."""
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
        audit.plans[paper] = plan
        audit.paper_titles[paper] = " ".join(str(spec.title).split())
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
            "host": training_machine(record)[0] or "?", "device": ", ".join(training_machine(record)[1]),
            "wall_s": "" if prov.get("wall_time_s") is None else f"{float(prov['wall_time_s']):.0f}",
            "config_hash": (record.get("config_hash") or "")[:12],
        })
    loaded = [p for p in papers if p in audit.plans]
    audit.claims, audit.claims_error = claim_results(loaded, scale=scale, framework=framework, results_dir=results_dir,
                                                     seeds=seeds)
    audit.claims_md = claims_section(audit)
    return audit


def claim_results(papers: list[str], *, scale: str, framework: str | None, results_dir: str | Path | None,
                  seeds: int | None = None) -> tuple[list[tuple[str, Any, Any]], str]:
    """(paper, verdict on the paper's numbers, verdict on the results) per claim, and an error text if the claims
    component broke (the audit renders anyway)."""
    try:
        from ltbench.claims.report import audit_claims

        out = []
        for paper in papers:
            out += [(paper, reported, result) for reported, result in
                    audit_claims([paper], scale=scale, framework=framework, results_dir=results_dir, seeds=seeds)]
        return out, ""
    except Exception as exc:  # noqa: BLE001 -- the audit must render even if the claims checker breaks
        return [], f"{type(exc).__name__}: {exc}"


def claims_section(audit: Audit) -> str:
    """The claims component's Markdown section (compact); a failure there is reported, not fatal."""
    if audit.claims_error:
        return f"## Claims\n\nThe claims could not be evaluated: {audit.claims_error}\n"
    from ltbench.claims.report import claims_markdown

    return claims_markdown([(reported, result) for _, reported, result in audit.claims], evidence=True, compact=True)


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


OVERVIEW_HEADERS = ["paper", "table", "scope", "state", "cells", "reproduced", "within tol.", "gains ✓/↘/✗", "open", "page"]


def overview_rows(audit: Audit, site_prefix: str = "site/") -> list[list[str]]:
    """One line per table of every paper: its runs' state, cell and gain verdicts, and its page on the site."""
    from ltbench.report.site import page_name

    states = {(t.paper, t.table): t.state for t in (audit.status.tables if audit.status is not None else [])}
    rows = []
    for entry in audit.tables:
        if entry.rendered is None:
            note = entry.reason or entry.caption
            rows.append([entry.paper, entry.table_id, entry.scope, "", "", "", "", "", "",
                         note if len(note) <= 100 else note[:99] + "…"])
            continue
        s = entry.rendered.built.summary
        g = entry.rendered.built.gain_summary
        gains = f"{g.reproduces}/{g.shrinks}/{g.reverses} of {g.total}" if g is not None and g.total else "–"
        page = page_name(entry.paper, entry.table_id)
        rows.append([entry.paper, entry.table_id, entry.scope, states.get((entry.paper, entry.table_id), ""), str(s.total),
                     str(s.reproduced), str(s.within), gains, f"{s.pending} pending, {s.failed} failed",
                     f"[{page}]({site_prefix}{page})"])
    return rows


def render_markdown(audit: Audit, *, site_prefix: str = "site/") -> str:
    """``tables/audit.md``: compact (no column padding); every cell, gain and provenance line is a download of the
    site (``site_prefix``: the site folder relative to the Markdown file)."""
    from ltbench.render.markdown import compact_pipe

    def table(rows: list[list[str]], headers: list[str]) -> str:
        return compact_pipe(headers, rows) if rows else "(none)"

    c = audit.status_counts()
    g = audit.gain_counts()
    out = [
        "# ltbench audit report",
        "",
        f"Scale: **{audit.scale}**; framework: {audit.framework or 'per spec'}."
        + (" Smoke scale checks the pipeline, not the papers: differences to their numbers say nothing about the methods."
           if audit.scale == "smoke" else
           " Mini scale: converged tiny models on synthetic data; method effects show in miniature, paper numbers are"
           " not expected." if audit.scale == "mini" else ""),
        "",
        f"Cells: {c['within']} within tolerance / {c['reproduced']} reproduced / {c['total']} total"
        f" ({c['pending']} pending, {c['failed']} failed, {c['undefined']} undefined)."
        f" Gains over baselines: {g['reproduces']} reproduce, {g['shrinks']} shrink, {g['reverses']} reverse"
        f" / {g['judged']} judged of {g['total']}.",
        "",
    ]
    if audit.status is not None:
        s = audit.status
        out += [f"Campaign: {len(s.runs)} runs — {s.counts_line()}. {s.cost_line()}. {s.eta_line()}.", ""]
    elif audit.status_error:
        out += [f"Campaign status not available: {audit.status_error}", ""]
    out += [
        f"Report site: [{site_prefix}index.html]({site_prefix}index.html) — one page per table (paper layout, colours, "
        "footnotes, plots), claims, assumptions, status, provenance. Downloads: "
        f"[every cell]({site_prefix}downloads/cells.csv) ([parquet]({site_prefix}downloads/cells.parquet)), "
        f"[every gain]({site_prefix}downloads/gains.csv) ([parquet]({site_prefix}downloads/gains.parquet)), "
        f"[provenance]({site_prefix}downloads/provenance.csv), [status]({site_prefix}downloads/status.json), "
        f"[claims]({site_prefix}downloads/claims.json).",
        "",
    ]
    if audit.spec_errors:
        out += ["## Specs that do not load (their tables are missing below)", ""] + [f"- {e}" for e in audit.spec_errors] + [""]
    out += ["## Tables", "", table(overview_rows(audit, site_prefix), OVERVIEW_HEADERS), "", *TABLE_LEGENDS, ""]
    from ltbench.report.site import rendered_provenance

    ids = {a["id"] for a in audit.assumptions}
    for entry in audit.tables:
        if entry.rendered is not None:
            out += [render_table_markdown(entry.rendered.built, heading_level=3, assumption_ids=ids,
                                          provenance=rendered_provenance(entry.rendered)), ""]
    if audit.claims_md:
        out += [audit.claims_md.rstrip(), ""]
    by_n, seeds, notes = seed_rows(audit)
    out += ["## Seed statistics", "", seed_summary(by_n), "", table(seeds, SEED_HEADERS), ""]
    out += [f"- {note}" for note in notes] + ([""] if notes else [])
    out += ["## Provenance", "", provenance_summary(audit)
            + f" One line per record: [{site_prefix}downloads/provenance.csv]({site_prefix}downloads/provenance.csv).", ""]
    if audit.failures:
        out += ["## Failures", ""] + [f"- {f}" for f in audit.failures] + [""]
    if audit.corrupt:
        out += ["## Corrupt records (skipped)", ""] + [f"- {c}" for c in audit.corrupt] + [""]
    out += ["## Assumptions", ""]
    out += [f"- `{a['id']}` ({a['paper']}; used by {a['used_by']}): {a['text']}" + (f" Choice: {a['choice']}" if a["choice"] else "")
            for a in audit.assumptions] or ["(none)"]
    out += ["", "## Plots", ""]
    if audit.plots:
        out += [f"- {p['table']}: " + ", ".join(f"[{q['name']}]({q['path']})" for q in p["plots"]) for p in audit.plots]
    else:
        out += ["No plots yet (they appear once runs are evaluated)."]
    return "\n".join(out).rstrip() + "\n"


def _legends() -> list[str]:
    from ltbench.render.gains import GAIN_LEGEND
    from ltbench.render.markdown import LEGEND, SEED_LEGEND

    return [LEGEND, "", SEED_LEGEND, "", GAIN_LEGEND]


TABLE_LEGENDS = _legends()


def render_table_markdown(built: Any, *, heading_level: int, provenance: str | None,
                          assumption_ids: set[str] | frozenset[str] = frozenset()) -> str:
    """One table for the audit report: compact, the legends left out (printed once above the tables), and an
    assumption's footnote shortened to its id (its text is in the report's Assumptions section)."""
    import dataclasses

    from ltbench.render.markdown import render_markdown as table_markdown

    notes = []
    for mark, text in built.footnotes:
        head, sep, _ = text.partition(": ")
        name = head.removesuffix(" (whole table)")
        if sep and name in assumption_ids:
            text = f"`{name}`" + (" (whole table)" if head != name else "") + ": see Assumptions"
        notes.append((mark, text))
    text = table_markdown(dataclasses.replace(built, footnotes=notes), heading_level=heading_level,
                          provenance=provenance, compact=True)
    for legend in TABLE_LEGENDS:
        if legend:
            text = text.replace("\n" + legend + "\n", "\n")
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip()


def provenance_summary(audit: Audit) -> str:
    if not audit.runs:
        return "No records yet."
    commits, frameworks, hosts, devices = ({r[k] for r in audit.runs} for k in ("commit", "framework", "host", "device"))
    return (f"{len(audit.runs)} records from ltbench commit(s) {', '.join(sorted(commits))}; "
            f"frameworks {', '.join(sorted(frameworks))}; hosts {', '.join(sorted(hosts))}; devices {', '.join(sorted(devices))}.")


def write_audit(papers: list[str], *, md: Path, html: Path | None, scale: str, framework: str | None = None,
                results_dir: str | Path | None = None, seeds: int | None = None, site_dir: Path | None = None,
                work_dir: str | Path | None = None, status: bool = True) -> Audit:
    """``md`` (compact Markdown), the site under ``site_dir`` (default: ``site/`` beside ``md``) and ``html``: the
    site's index page written beside ``md`` with its links into the site. ``status``: also compute the campaign's
    status from the results and work directories (``ltbench.report.status``)."""
    import os

    from ltbench.report.site import render_index, write_site

    audit = build_audit(papers, scale=scale, framework=framework, results_dir=results_dir, seeds=seeds)
    if status:
        try:
            from ltbench.report.status import campaign_status

            audit.status = campaign_status(papers=[p for p in papers if p in audit.plans] or papers, scale=scale,
                                           framework=framework, seeds=seeds, results_dir=results_dir, work_dir=work_dir)
        except Exception as exc:  # noqa: BLE001 -- the report renders without the status
            audit.status_error = f"{type(exc).__name__}: {exc}"
    site_root = Path(site_dir) if site_dir is not None else md.parent / "site"
    results = Path(results_dir) if results_dir is not None else paths.RESULTS_DIR
    site = write_site(audit, audit.status, site_root, results_dir=results)
    prefix = Path(os.path.relpath(site_root, md.parent)).as_posix().rstrip("/") + "/"
    audit.plots = [{"table": p.title, "page": f"{prefix}{p.file}",
                    "plots": [{"name": q["path"].rsplit("/", 1)[-1].removesuffix(".png").replace("_", " "),
                               "path": f"{prefix}{q['path']}"} for q in p.plots]}
                   for p in site.pages if p.plots]
    io.write_text(md, render_markdown(audit, site_prefix=prefix))
    if html is not None:
        html_prefix = Path(os.path.relpath(site_root, html.parent)).as_posix().rstrip("/") + "/"
        io.write_text(html, render_index(audit, audit.status, site.pages, root=html_prefix))
    return audit
