"""Markdown rendering of a built table (tabulate ``pipe``: keeps the alignment colons)."""

from __future__ import annotations

import re

from ltbench.render.gains import GAIN_LEGEND
from ltbench.render.model import VERDICT_MARK, BuiltTable, PrintedRow

LEGEND = (
    "Each cell: reproduced value (signed difference to the paper, rounded half-up to the paper's precision) "
    f"and a verdict: {VERDICT_MARK['within']} within tolerance, {VERDICT_MARK['better']} better than the paper "
    f"beyond it, {VERDICT_MARK['worse']} worse beyond it. The paper's value is in parentheses where nothing was "
    "measured yet. † the paper copied this row from elsewhere; * an assumption applies."
)
SEED_LEGEND = (
    "Cells with several seeds print mean ± std (n) and are judged by the seeds: ✓ when the paper's number lies "
    "in the 95 % prediction interval of the runs (▲ / ✗: the runs are better / worse beyond it); single-run cells by the "
    "fixed tolerance."
)


def row_markers(row: PrintedRow) -> str:
    marks = [f"†{m}" for m in row.cited] + [f"*{m}" for m in row.footnotes]
    return (" " + " ".join(marks)) if marks else ""


def header_and_rows(built: BuiltTable, *, gains: bool = True) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, body rows (all strings) and tabulate column alignments.

    ``gains``: under each row with a baseline, a line ``↳ gain over <baseline>`` with the reproduced and the
    paper's gain per cell (``ltbench.render.gains``)."""
    layout = built.layout
    attr_cols = list(layout.attribute_columns) or ["Row"]
    headers = list(attr_cols)
    multi_group = len(layout.column_groups) > 1
    for group in layout.column_groups:
        for column in group.columns:
            headers.append(f"{group.label} {column.header}" if multi_group else column.header)
    body: list[list[str]] = []
    for index, row in enumerate(built.rows):
        if layout.attribute_columns:
            attrs = [str(row.attributes.get(name, "")) for name in attr_cols]
        else:
            attrs = [row.label]
        # Markers go on the first printed attribute (the paper leaves "Method" blank on continuation rows).
        first = next((i for i, a in enumerate(attrs) if a), None)
        if first is None:
            attrs[0], first = row.label, 0
        attrs[first] += row_markers(row)
        cells = [row.cells[(g.id, c.key)].text() for g in layout.column_groups for c in g.columns]
        body.append(attrs + cells)
        gain = built.gains.get(index) if gains else None
        if gain is not None:
            body.append([gain.label()] + [""] * (len(attr_cols) - 1)
                        + [gain.cells[(g.id, c.key)].text() for g in layout.column_groups for c in g.columns])
    align = ["left"] * len(attr_cols) + ["right"] * (len(headers) - len(attr_cols))
    return headers, body, align


_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def compact_pipe(headers: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table without padding (``| a | b |``): the bytes are the content."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(_UNESCAPED_PIPE.sub(r"\\|", str(c)).replace("\n", " ") for c in cells) + " |"

    rule = {"left": ":--", "right": "--:", "center": ":-:"}
    out = [line(headers), "|" + "|".join(rule.get(a, "---") for a in (align or ["left"] * len(headers))) + "|"]
    return "\n".join([*out, *(line(r) for r in rows)])


def render_markdown(built: BuiltTable, *, heading_level: int = 2, provenance: str | None = None,
                    compact: bool = False) -> str:
    """The table as Markdown; ``compact``: without tabulate's column padding (the audit report)."""
    from tabulate import tabulate

    layout = built.layout
    headers, body, align = header_and_rows(built)
    if compact:
        table = compact_pipe(headers, body, align)
    else:
        table = tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True, colalign=align)
    tol = ", ".join(f"{k} ±{v:g}" for k, v in sorted(built.tolerances.items()))
    gain_line = built.gain_summary.line() if built.gain_summary is not None else ""
    lines = [
        f"{'#' * heading_level} {layout.paper.upper()} Table {layout.table_id}",
        "",
        f"> {layout.caption}" if layout.caption else "",
        "",
        f"Scale: **{layout.scale}**" + (" (tiny data and schedules: differences to the paper are expected and say nothing about the method)" if layout.scale == "smoke" else
                                            " (converged tiny models on synthetic data: the methods' effects in miniature; the paper's numbers are not expected)" if layout.scale == "mini" else "")
        + f" · seeds combined by {layout.statistic} · tolerances: {tol}",
        "",
        table,
        "",
        f"**Summary:** {built.summary.line()}",
        "",
        f"**{gain_line}.**" if gain_line else "",
        "",
        LEGEND,
    ]
    if built.gains:
        lines += ["", GAIN_LEGEND]
    if any(cell.n > 1 and cell.status == "measured" for row in built.rows for cell in row.cells.values()):
        lines += ["", SEED_LEGEND]
    for note in layout.notes:
        lines += ["", note]
    if built.footnotes:
        lines += ["", "Notes:", ""]
        lines += [f"{mark}. {text}" for mark, text in built.footnotes]
    if provenance:
        lines += ["", provenance]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip() + "\n"
