"""The report as a small static site (``tables/site/``), written by ``ltbench audit`` (the workflow's ``audit`` rule).

Pages (plain HTML + one stylesheet, no script, readable from the file system):

- ``index.html``: the campaign's status, and every paper's tables with their state, cell and gain verdicts;
- ``<paper>_table<N>.html``: one page per reproduced table in the paper's layout (column groups side by side),
  verdict-coloured cells, seed intervals, gain lines under rows with a baseline, the assumptions and notes as
  footnotes, and the plots of that table (its gains, reproduced vs reported, AP per training-instance bin, and
  the per-run plots of its runs, folded);
- ``status.html`` (per table and per run: done, running, stalled, failed, pending; cost and ETA),
  ``claims.html``, ``assumptions.html``, ``provenance.html``;
- ``downloads/``: every cell (``cells.csv`` / ``cells.parquet``), every gain (``gains.csv`` / ``.parquet``), one
  CSV per table, provenance, the status and the claims as JSON.

Numbers on the pages are either measured by ltbench (the reproduced values, gains, intervals; the status's
times) or copied from the paper (marked as the paper's: grey, and "paper" in each cell's title); cost figures
are the plan's cost-model estimates and say so.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench import io
from ltbench.render.gains import GAIN_MARK
from ltbench.render.model import VERDICT_MARK
from ltbench.render.numbers import fmt

TEMPLATES = Path(__file__).parent / "templates"

# Background / text colours of verdicts (the browser test reads them back from the computed style).
COLOURS = {
    "v-within": ("#d8f0dd", "#14532d"),
    "v-better": ("#dbe8fb", "#1e3a8a"),
    "v-worse": ("#f9d9d9", "#7f1d1d"),
    "g-reproduces": ("#d8f0dd", "#14532d"),
    "g-shrinks": ("#fbeccb", "#713f12"),
    "g-reverses": ("#f9d9d9", "#7f1d1d"),
    "st-pending": ("#f1f3f5", "#5b6470"),
    "st-failed": ("#ffe3cc", "#9a3412"),
    "st-na": ("#ffffff", "#8a8f98"),
    "st-undefined": ("#f1f3f5", "#5b6470"),
    "st-empty": ("#ffffff", "#b0b4ba"),
    "v-none": ("#ffffff", "#1f2328"),
}
STATE_CLASS = {"done": "v-within", "running": "v-better", "stalled": "g-shrinks", "failed": "st-failed",
               "pending": "st-pending", "partial": "st-na"}
CLAIM_CLASS = {"holds": "v-within", "fails": "v-worse", "undetermined": "st-pending"}
VERDICT_WORD = {"within": "within tolerance", "better": "better than the paper beyond the tolerance",
                "worse": "worse than the paper beyond the tolerance"}


def page_name(paper: str, table_id: str) -> str:
    return f"{paper}_table{table_id}.html"


@dataclass
class CellView:
    cls: str
    main: str
    mark: str = ""
    sub: str = ""  # "paper <number>": the paper's number, copied
    extra: str = ""  # the signed difference, and the seed interval
    title: str = ""


@dataclass
class TablePage:
    paper: str
    table_id: str
    title: str
    file: str
    caption: str
    built: Any
    notes: list[str]  # the layout's notes (e.g. a framework override)
    provenance: str
    header_groups: list[tuple[str, int]]
    show_groups: bool
    attr_headers: list[str]
    column_headers: list[tuple[str, str]]  # (header, title)
    body: list[dict[str, Any]]
    footnotes: list[tuple[str, str]]
    plots: list[dict[str, str]] = field(default_factory=list)
    run_plots: list[dict[str, Any]] = field(default_factory=list)
    run_counts: dict[str, int] = field(default_factory=dict)
    state: str = "pending"
    csv: str = ""

    @property
    def summary(self) -> Any:
        return self.built.summary

    @property
    def gain_summary(self) -> Any:
        return self.built.gain_summary


# ---- cells ---------------------------------------------------------------------------------------------
def cell_view(cell: Any, column: Any) -> CellView:
    """How one absolute cell prints on the site (``ltbench.render.model.Cell``)."""
    paper = cell.reported
    if cell.status == "empty":
        return CellView("st-empty", "–", title="the paper prints nothing here")
    if cell.status == "not_reproducible":
        return CellView("st-na", "n/a", sub=_paper(paper), title=f"not reproduced: {cell.reason}"
                        + (f" · paper {paper} (copied)" if paper else ""))
    if cell.status == "pending":
        partial = f" {cell.n}/{cell.n_expected}" if cell.n else ""
        return CellView("st-pending", "pending" + partial, sub=_paper(paper),
                        title="not measured yet" + (f" · paper {paper} (copied)" if paper else ""))
    if cell.status == "failed":
        return CellView("st-failed", "failed", sub=_paper(paper), title=f"failed: {cell.reason}"
                        + (f" · paper {paper} (copied)" if paper else ""))
    if cell.status == "undefined":
        return CellView("st-undefined", "undef.", sub=_paper(paper), title=cell.reason or "undefined")
    value = fmt(cell.value, cell.precision)
    if cell.n > 1 and cell.std is not None:
        value += f"±{fmt(cell.std, cell.precision)}"
    extra = ""
    title = f"reproduced {float(cell.value):.3f}" + (f" ± {float(cell.std):.3f} (n={cell.n} seeds)" if cell.n > 1 else " (one run)")
    if cell.interval and cell.interval[0] is not None and cell.n > 1:
        low, high = cell.interval
        extra = f"n={cell.n} [{low:.{cell.precision}f}, {high:.{cell.precision}f}]"
        title += f" · 95 % prediction interval [{low:.2f}, {high:.2f}]"
    if paper is None:
        return CellView("v-none", value, sub="paper –", extra=extra, title=title + " · the paper gives no number")
    title += f" · paper {paper} (copied) · difference {cell.delta} · {VERDICT_WORD.get(cell.verdict, '')}"
    if column.lower_is_better:
        title += " (lower is better)"
    extra = f"Δ {cell.delta}" + (f" · {extra}" if extra else "")
    return CellView(f"v-{cell.verdict}", value, mark=VERDICT_MARK.get(cell.verdict, ""), sub=_paper(paper),
                    extra=extra, title=title)


def _paper(number: str | None) -> str:
    """The paper's number as a cell prints it, labelled (copied from the paper, never measured)."""
    return f"paper {number}" if number is not None else ""


def gain_view(cell: Any, baseline: str) -> CellView:
    """How one gain cell prints (``ltbench.render.gains.GainCell``)."""
    paper = None if cell.reported is None else cell.reported_text()
    if cell.status == "empty":
        return CellView("st-empty", "–")
    if cell.status != "measured":
        word = {"not_reproducible": "n/a", "undefined": "undef."}.get(cell.status, cell.status)
        cls = {"failed": "st-failed", "not_reproducible": "st-na"}.get(cell.status, "st-pending")
        return CellView(cls, word, sub=_paper(paper), title=f"gain over {baseline}: {cell.status}"
                        + (f" ({cell.reason})" if cell.reason else "") + (f" · paper's gain {paper} (copied)" if paper else ""))
    value = cell.value_text().split(" [")[0]
    extra = ""
    title = f"gain over {baseline}: reproduced {cell.value:+.3f}"
    if cell.has_interval:
        extra = f"[{cell.low:+.{cell.precision}f}, {cell.high:+.{cell.precision}f}]"
        title += f", 95 % Welch interval [{cell.low:+.2f}, {cell.high:+.2f}] (n={cell.n_method} vs {cell.n_baseline})"
    if paper is None:
        return CellView("v-none", value, sub="paper –", extra=extra, title=title + " · the paper gives no gain")
    title += f" · paper's gain {paper} (copied) · the gain {cell.verdict}"
    return CellView(f"g-{cell.verdict}", value, mark=GAIN_MARK[cell.verdict], sub=_paper(paper), extra=extra, title=title)


def table_body(built: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Attribute headers and body rows (each ``{"kind": "row"|"gain", "attrs": [...], "marks": [...], "cells": [...]}``)."""
    layout = built.layout
    attr_cols = list(layout.attribute_columns) or ["Row"]
    columns = [(g, c) for g in layout.column_groups for c in g.columns]
    body = []
    for index, row in enumerate(built.rows):
        attrs = [str(row.attributes.get(name, "")) for name in attr_cols] if layout.attribute_columns else [row.label]
        first = next((i for i, a in enumerate(attrs) if a), None)
        if first is None:
            attrs[0], first = row.label, 0
        marks = [("†" + m, m) for m in row.cited] + [("*" + m, m) for m in row.footnotes]
        body.append({"kind": "row", "attrs": attrs, "mark_at": first, "marks": marks, "label": row.label,
                     "cells": [cell_view(row.cells[(g.id, c.key)], c) for g, c in columns]})
        gain = built.gains.get(index)
        if gain is not None:
            body.append({"kind": "gain", "label": gain.label(), "span": len(attr_cols), "cells": [
                gain_view(gain.cells[(g.id, c.key)], gain.baselines.get(g.id, "")) for g, c in columns]})
    return attr_cols, body


# ---- plots ---------------------------------------------------------------------------------------------
def _copy_if_changed(src: Path, dst: Path) -> None:
    try:
        if dst.is_file() and dst.stat().st_size == src.stat().st_size and dst.stat().st_mtime >= src.stat().st_mtime:
            return
    except OSError:
        pass
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name("." + dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)


PLOT_KINDS = {"segm_ap_vs_instances": "per-class mask AP vs training instances",
              "bbox_ap_vs_instances": "per-class box AP vs training instances",
              "confusion_log2": "log2 soft confusion matrix (10 sampled classes)"}


def table_plots(page: TablePage, store: Any, site: Path, results_dir: Path, *, scale: str, scheme: str) -> None:
    """Write the table's own plots and copy the per-(run, view) plots of its rows into the site."""
    from ltbench.report import plots

    built = page.built
    folder = site / "plots" / f"{page.paper}_table{page.table_id}"
    made = []
    if built.gains and plots.plot_gains(built, folder / "gains.png"):
        made.append({"file": "gains.png", "title": "Gain of each method over its baseline: reproduced (filled, "
                     "measured) beside the paper's (hollow diamond, copied), one panel per metric"})
    if plots.plot_reproduced_vs_reported(built, folder / "reproduced_vs_reported.png", scale):
        made.append({"file": "reproduced_vs_reported.png", "title": "Reproduced (measured) against reported "
                     "(copied), every measured cell; AP-like metrics and lower-is-better metrics on separate axes"})
    if plots.plot_ap_by_bin(built, store.results, folder / "ap_by_bin.png", scheme=scheme):
        made.append({"file": "ap_by_bin.png", "title": "AP per training-instance bin (AP1..AP4), per row"})
    page.plots = [{"path": f"plots/{folder.name}/{m['file']}", "title": m["title"]} for m in made]
    source = results_dir / "plots"
    groups = {g.id: g for g in built.layout.column_groups}
    multi = len(groups) > 1
    for row in built.layout.rows:
        label = row.label + (f" ({groups[row.group].label})" if multi else "")
        for seed, (run_id, view_id) in enumerate(row.pairs):
            folder_in = source / run_id / view_id
            if not folder_in.is_dir():
                continue
            figures = []
            for png in sorted(folder_in.glob("*.png")):
                target = site / "plots" / "runs" / run_id / view_id / png.name
                _copy_if_changed(png, target)
                figures.append({"path": f"plots/runs/{run_id}/{view_id}/{png.name}",
                                "title": PLOT_KINDS.get(png.stem, png.stem.replace("_", " "))})
            if figures:
                seed_note = f", seed {seed}" if len(row.pairs) > 1 else ""
                page.run_plots.append({"label": f"{label}{seed_note}", "run": run_id, "view": view_id, "figures": figures})


# ---- downloads -----------------------------------------------------------------------------------------
CELL_COLUMNS = ["paper", "table", "row", "group", "column", "metric", "lower_is_better", "status", "reported",
                "reproduced", "std", "n", "n_expected", "difference", "verdict", "interval_low", "interval_high", "reason",
                "runs"]
GAIN_COLUMNS = ["paper", "table", "row", "baseline", "group", "column", "metric", "lower_is_better", "status",
                "reported_gain", "reproduced_gain", "low", "high", "n_method", "n_baseline", "verdict", "reason"]


def cell_records(pages: Sequence[TablePage]) -> list[dict[str, Any]]:
    """Every cell of every rendered table, one dict per cell (``reported`` as printed, copied from the paper)."""
    out = []
    for page in pages:
        built = page.built
        groups = {g.id: g for g in built.layout.column_groups}
        pairs = {(r.group, r.label): r.pairs for r in built.layout.rows}
        for row in built.rows:
            for (group_id, key), cell in row.cells.items():
                if cell.status == "empty":
                    continue
                column = next(c for c in groups[group_id].columns if c.key == key)
                low, high = cell.interval or (None, None)
                out.append({
                    "paper": page.paper, "table": page.table_id, "row": row.label, "group": groups[group_id].label,
                    "column": column.header, "metric": key, "lower_is_better": column.lower_is_better,
                    "status": cell.status, "reported": cell.reported,
                    "reproduced": None if cell.value is None else float(cell.value),
                    "std": None if cell.std is None else float(cell.std), "n": cell.n, "n_expected": cell.n_expected,
                    "difference": cell.delta, "verdict": cell.verdict, "interval_low": low, "interval_high": high,
                    "reason": cell.reason, "runs": " ".join(f"{r}/{v}" for r, v in pairs.get((group_id, row.label), [])),
                })
    return out


def gain_records(pages: Sequence[TablePage]) -> list[dict[str, Any]]:
    out = []
    for page in pages:
        built = page.built
        groups = {g.id: g for g in built.layout.column_groups}
        for index, gain in sorted(built.gains.items()):
            for (group_id, key), cell in gain.cells.items():
                if cell.status == "empty":
                    continue
                column = next(c for c in groups[group_id].columns if c.key == key)
                out.append({
                    "paper": page.paper, "table": page.table_id, "row": built.rows[index].label,
                    "baseline": gain.baselines.get(group_id), "group": groups[group_id].label, "column": column.header,
                    "metric": key, "lower_is_better": column.lower_is_better, "status": cell.status,
                    "reported_gain": None if cell.reported is None else float(cell.reported),
                    "reproduced_gain": cell.value, "low": cell.low, "high": cell.high, "n_method": cell.n_method,
                    "n_baseline": cell.n_baseline, "verdict": cell.verdict, "reason": cell.reason,
                })
    return out


def write_frame(records: list[dict[str, Any]], columns: list[str], csv: Path, parquet: Path | None = None) -> None:
    import pandas as pd

    frame = pd.DataFrame.from_records(records, columns=columns)
    io.write_text(csv, frame.to_csv(index=False))
    if parquet is not None:
        if "reported" in frame:
            frame["reported"] = frame["reported"].astype("string")  # keep the printed text of the paper's number
        with io.atomic_open(parquet, "wb") as handle:
            frame.to_parquet(handle, index=False)


# ---- pages ---------------------------------------------------------------------------------------------
def header_html(text: str) -> Any:
    """A column header as the paper prints it: ``AP_r`` -> AP<sub>r</sub>, ``AP^b`` -> AP<sup>b</sup> (escaped)."""
    import re

    from markupsafe import Markup, escape

    out = []
    for part in re.split(r"([_^][A-Za-z0-9]+)", str(text)):
        if part[:1] in ("_", "^") and len(part) > 1:
            tag = "sub" if part[0] == "_" else "sup"
            out.append(f"<{tag}>{escape(part[1:])}</{tag}>")
        else:
            out.append(str(escape(part)))
    return Markup("".join(out))


def environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["header"] = header_html
    env.globals.update(COLOURS=COLOURS, STATE_CLASS=STATE_CLASS, CLAIM_CLASS=CLAIM_CLASS, VERDICT_MARK=VERDICT_MARK,
                       GAIN_MARK=GAIN_MARK)
    return env


def rendered_provenance(rendered: Any) -> str | None:
    """The provenance line that ``ltbench.render.tables.render_table`` ends a table's Markdown with, if any."""
    last = rendered.markdown.rstrip().splitlines()[-1]
    return last if last.startswith("Provenance") else None


def build_pages(audit: Any, status: Any) -> list[TablePage]:
    pages = []
    for entry in audit.tables:
        if entry.rendered is None:
            continue
        built = entry.rendered.built
        layout = built.layout
        attr_headers, body = table_body(built)
        groups = layout.column_groups
        show_groups = len(groups) > 1 or any(g.label != g.id for g in groups)
        page = TablePage(
            paper=entry.paper, table_id=entry.table_id, title=f"{entry.paper.upper()} Table {entry.table_id}",
            file=page_name(entry.paper, entry.table_id), caption=layout.caption, built=built,
            notes=list(layout.notes), provenance=rendered_provenance(entry.rendered) or "",
            header_groups=[(g.label, len(g.columns)) for g in groups], show_groups=show_groups,
            attr_headers=attr_headers,
            column_headers=[(c.header, f"{c.key}" + (" (lower is better)" if c.lower_is_better else ""))
                            for g in groups for c in g.columns],
            body=body, footnotes=list(built.footnotes), csv=f"downloads/{entry.paper}_table{entry.table_id}_cells.csv",
        )
        if status is not None:
            table_status = next((t for t in status.tables if t.paper == entry.paper and t.table == entry.table_id), None)
            if table_status is not None:
                page.run_counts = {s: table_status.counts.get(s, 0) for s in ("done", "running", "stalled", "failed", "pending")}
                page.state = table_status.state
        pages.append(page)
    return pages


def _scheme(audit: Any, page: TablePage) -> str:
    plan = audit.plans.get(page.paper)
    if plan is not None:
        for row in page.built.layout.rows:
            for run_id, view_id in row.pairs:
                try:
                    bins = plan.view(run_id, view_id).bins
                except Exception:  # noqa: BLE001 -- a view the paper plan does not hold: use the default
                    bins = None
                if bins:
                    return bins
    return "lvis"


@dataclass
class Site:
    root: Path
    pages: list[TablePage]
    files: list[Path]

    @property
    def index(self) -> Path:
        return self.root / "index.html"


def write_site(audit: Any, status: Any, root: Path, *, results_dir: Path) -> Site:
    """Write every page, plot and download of the report under ``root``; returns what was written."""
    root = Path(root)
    (root / "downloads").mkdir(parents=True, exist_ok=True)
    env = environment()
    pages = build_pages(audit, status)
    store = next((e.rendered.store for e in audit.tables if e.rendered is not None), None)
    for page in pages:
        table_plots(page, store, root, results_dir, scale=audit.scale, scheme=_scheme(audit, page))
    files: list[Path] = []

    def write(name: str, text: str) -> None:
        path = root / name
        io.write_text(path, text)
        files.append(path)

    write("style.css", env.get_template("style.css.j2").render())
    common = {"audit": audit, "status": status, "pages": pages, "root": ""}
    write("index.html", render_index(audit, status, pages, root=""))
    for i, page in enumerate(pages):
        write(page.file, env.get_template("table.html.j2").render(
            **common, page=page, prev=pages[i - 1] if i > 0 else None, next=pages[i + 1] if i + 1 < len(pages) else None,
            active="tables"))
    write("status.html", env.get_template("status.html.j2").render(**common, active="status"))
    claims_by_paper: dict[str, list[Any]] = {}
    for paper, reported, result in audit.claims:
        claims_by_paper.setdefault(paper, []).append((reported, result))
    write("claims.html", env.get_template("claims.html.j2").render(**common, claims=claims_by_paper,
                                                                    claim_counts=claim_counts(audit), active="claims"))
    write("assumptions.html", env.get_template("assumptions.html.j2").render(**common, active="assumptions"))
    write("provenance.html", env.get_template("provenance.html.j2").render(**common, active="provenance"))
    # downloads
    cells = cell_records(pages)
    write_frame(cells, CELL_COLUMNS, root / "downloads" / "cells.csv", root / "downloads" / "cells.parquet")
    write_frame(gain_records(pages), GAIN_COLUMNS, root / "downloads" / "gains.csv", root / "downloads" / "gains.parquet")
    for page in pages:
        write_frame([c for c in cells if c["paper"] == page.paper and c["table"] == page.table_id], CELL_COLUMNS,
                    root / page.csv)
    write_frame(audit.runs, ["run", "view", "seed", "framework", "commit", "host", "device", "wall_s", "config_hash"],
                root / "downloads" / "provenance.csv")
    if status is not None:
        io.write_json(root / "downloads" / "status.json", status.to_json())
    io.write_json(root / "downloads" / "claims.json", [
        {"paper": paper, **result.to_dict(), "reported_verdict": None if reported is None else reported.verdict}
        for paper, reported, result in audit.claims])
    return Site(root=root, pages=pages, files=files)


def claim_counts(audit: Any) -> Counter:
    return Counter(result.verdict for _, _, result in audit.claims)


def render_index(audit: Any, status: Any, pages: Sequence[TablePage], *, root: str) -> str:
    """The index page; ``root`` is the site folder relative to where the page is written ("" inside the site)."""
    env = environment()
    by_paper: dict[str, list[Any]] = {}
    page_of = {(p.paper, p.table_id): p for p in pages}
    for entry in audit.tables:
        by_paper.setdefault(entry.paper, []).append((entry, page_of.get((entry.paper, entry.table_id))))
    totals = Counter()
    gains = Counter()
    for page in pages:
        s = page.summary
        totals.update(within=s.within, reproduced=s.reproduced, total=s.total, pending=s.pending, failed=s.failed)
        g = page.gain_summary
        if g is not None:
            gains.update(reproduces=g.reproduces, shrinks=g.shrinks, reverses=g.reverses, judged=g.measured, total=g.total)
    verdicts = Counter(cell.verdict for page in pages for row in page.built.rows for cell in row.cells.values()
                       if cell.status == "measured" and cell.verdict)
    from ltbench.audit.report import seed_rows, seed_summary

    by_n, _, notes = seed_rows(audit)
    seeds = {"summary": seed_summary(by_n), "notes": notes}
    return env.get_template("index.html.j2").render(
        audit=audit, status=status, pages=pages, root=root, by_paper=by_paper, totals=totals, gains=gains,
        verdicts=verdicts, claim_counts=claim_counts(audit), titles=audit.paper_titles, seeds=seeds, active="index")
