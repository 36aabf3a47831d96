"""What a rendered table is made of, independent of Markdown or LaTeX.

A ``TableLayout`` mirrors the paper's table: printed rows in the paper's order, column groups side by
side (PCB Table 2: LVIS v0.5 | LVIS v1.0). A spec row is one (run, view) in one column group; printed
rows with the same label and attributes are merged so the groups line up as in the paper.

``build_table(layout, results)`` turns the layout plus measured values into ``Cell``s, each with the
reproduced value, the reported one, the signed difference rounded half-up to the paper's precision, and
a verdict against the metric's tolerance.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ltbench.render.numbers import decimals_of, fmt, fmt_signed, round_half_up, to_decimal

# Verdicts. Within tolerance | better than the paper beyond it | worse beyond it.
WITHIN, BETTER, WORSE = "within", "better", "worse"
VERDICT_MARK = {WITHIN: "✓", BETTER: "▲", WORSE: "✗"}


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    lower_is_better: bool = False


@dataclass(frozen=True)
class ColumnGroup:
    id: str
    label: str
    columns: tuple[Column, ...]


@dataclass
class LayoutRow:
    """One spec row: a (run, view) — or several runs, one per seed — feeding one column group."""

    label: str
    group: str
    attributes: dict[str, str] = field(default_factory=dict)
    reported: dict[str, str] = field(default_factory=dict)  # metric key -> value exactly as printed
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (run_id, view_id) per seed
    cited: dict[str, str] | None = None
    assumptions: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # metric key -> why the paper value is unknown
    not_reproducible: dict[str, str] = field(default_factory=dict)  # metric key -> reason
    # How seeds combine for this row: {"rule": "mean" | "median"} or {"rule": "median_run", "by": key}
    # (every cell from the one seed whose `by` metric is the median; SimCal's "median overall AP").
    seed_rule: dict[str, str] | None = None
    baseline: str | None = None  # label of the row (same group) whose gain over it is shown (ltbench.render.gains)


def median_run(pairs: Sequence[tuple[str, str]], results: Mapping[tuple[str, str], Mapping[str, float]], by: str):
    """The pair whose ``by`` metric is the median (lower middle for an even count); None until all are in."""
    if not pairs or any(p not in results or by not in results[p] for p in pairs):
        return None
    ranked = sorted(pairs, key=lambda p: (results[p][by], p))
    return ranked[(len(ranked) - 1) // 2]


@dataclass
class TableLayout:
    paper: str
    table_id: str
    caption: str
    precision: int
    column_groups: list[ColumnGroup]
    attribute_columns: list[str]
    rows: list[LayoutRow]
    assumptions: dict[str, str] = field(default_factory=dict)  # id -> text
    scale: str = "smoke"
    statistic: str = "mean"  # how seeds combine: mean | median (SimCal reports medians of 3)
    notes: list[str] = field(default_factory=list)
    table_assumptions: list[str] = field(default_factory=list)  # apply to every row: notes, not row marks


@dataclass(frozen=True)
class Measurement:
    """A measured metric of one (run, view)."""

    value: float


@dataclass(frozen=True)
class Failed:
    reason: str


@dataclass
class Cell:
    status: str  # "measured" | "undefined" | "pending" | "failed" | "not_reproducible" | "empty"
    reported: str | None = None
    value: Decimal | None = None  # combined over seeds, unrounded
    std: Decimal | None = None
    n: int = 0
    n_expected: int = 1
    precision: int = 1
    delta: str | None = None  # signed, rounded
    verdict: str | None = None
    reason: str | None = None
    paper_unknown: str | None = None
    interval: tuple[float | None, float | None] | None = None  # the seed interval judged against (n >= 2)

    def text(self, *, markdown: bool = True) -> str:
        """The cell as printed, e.g. ``22.4 (+0.5) ✓``, ``pending (21.9)``, ``failed: OOM (21.9)``."""
        paper = f" ({self.reported})" if self.reported is not None else ""
        if self.status == "empty":
            return "–"
        if self.status == "not_reproducible":
            return f"n/a{paper}"
        if self.status == "pending":
            partial = f" {self.n}/{self.n_expected} seeds" if self.n else ""
            return f"pending{partial}{paper}"
        if self.status == "failed":
            reason = self.reason or "unknown"
            reason = reason if len(reason) <= 40 else reason[:39] + "…"
            return f"failed: {reason}{paper}"
        if self.status == "undefined":
            return f"undefined{paper}"
        value = fmt(self.value, self.precision)
        if self.n > 1 and self.std is not None:
            value += f" ± {fmt(self.std, self.precision)} (n={self.n})"
        if self.reported is None:
            return f"{value} (paper: {'?' if self.paper_unknown else '–'})"
        return f"{value} ({self.delta}) {VERDICT_MARK[self.verdict]}"


@dataclass
class PrintedRow:
    label: str
    attributes: dict[str, str]
    cells: dict[tuple[str, str], Cell]  # (group id, metric key) -> cell
    cited: list[str] = field(default_factory=list)  # footnote markers
    footnotes: list[str] = field(default_factory=list)


@dataclass
class Summary:
    within: int = 0
    reproduced: int = 0
    total: int = 0
    pending: int = 0
    failed: int = 0
    undefined: int = 0

    def line(self) -> str:
        extra = f"{self.pending} pending, {self.failed} failed"
        if self.undefined:
            extra += f", {self.undefined} undefined"
        return f"{self.within} cells within tolerance / {self.reproduced} reproduced / {self.total} total ({extra})"


@dataclass
class BuiltTable:
    layout: TableLayout
    rows: list[PrintedRow]
    footnotes: list[tuple[str, str]]  # (marker, text) in order of first use
    summary: Summary
    tolerances: dict[str, float]
    gains: dict = field(default_factory=dict)  # printed-row index -> ltbench.render.gains.GainRow
    gain_summary: Any = None  # ltbench.render.gains.GainSummary


def tolerance_for(key: str, tolerances: Mapping[str, float]) -> float:
    """Per-metric tolerance: exact key (``segm.APr``), then the bare metric (``APr``), then ``default``."""
    if key in tolerances:
        return float(tolerances[key])
    bare = key.split(".", 1)[-1]
    if bare in tolerances:
        return float(tolerances[bare])
    return float(tolerances.get("default", 1.0))


def combine(values: Sequence[float], statistic: str) -> tuple[Decimal, Decimal | None]:
    """Combined value and (for n > 1) sample standard deviation, both unrounded."""
    if statistic == "median":
        center = statistics.median(values)
    else:
        center = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else None
    return to_decimal(float(center)), None if spread is None else to_decimal(float(spread))


def make_cell(
    *,
    reported: str | None,
    values: Sequence[float],
    failures: Sequence[str],
    n_expected: int,
    precision: int,
    tolerance: float,
    lower_is_better: bool,
    statistic: str,
    paper_unknown: str | None = None,
    not_reproducible: str | None = None,
    metric: str = "",
) -> Cell:
    """One printed cell from its seed values (AP points; -1 = undefined).

    Verdict: with n >= 2 defined seeds, whether the paper's number lies in the seeds' 95 % prediction
    interval (``ltbench.analysis.seeds.cell_verdict``); with n = 1, the rounded difference against the fixed
    per-metric ``tolerance``.
    """
    if reported is not None:
        precision = decimals_of(reported)
    cell = Cell(status="pending", reported=reported, precision=precision, n_expected=n_expected, paper_unknown=paper_unknown)
    if not_reproducible is not None:
        cell.status, cell.reason = "not_reproducible", not_reproducible
        return cell
    if n_expected == 0:  # no run serves this cell (e.g. a cited row ltbench does not re-run)
        cell.status = "empty" if reported is None else "not_reproducible"
        cell.reason = "no run serves this row"
        return cell
    # -1 means "undefined" (e.g. APr with no rare class in the val split): not a measurement.
    defined = [v for v in values if v is not None and v >= 0]
    cell.n = len(defined)
    if failures and len(defined) < n_expected:
        cell.status, cell.reason = "failed", failures[0]
        return cell
    if len(values) < n_expected:
        return cell  # pending (maybe partially: some seeds measured)
    if not defined:
        cell.status, cell.reason = "undefined", "the metric is undefined on this data (-1: e.g. no rare class in val)"
        return cell
    cell.status = "measured"
    cell.value, cell.std = combine(defined, statistic)
    if reported is not None:
        delta = round_half_up(cell.value, precision) - round_half_up(reported, precision)
        cell.delta = fmt_signed(delta, precision)
        if len(defined) >= 2:
            # n >= 2: is the paper's number inside the 95 % prediction interval of the seeds (ltbench.analysis.seeds)?
            from ltbench.analysis.seeds import cell_verdict

            seed = cell_verdict(reported, defined, metric=metric, tolerance=tolerance, lower_is_better=lower_is_better)
            cell.verdict = seed.verdict
            cell.interval = (seed.low, seed.high)
        elif abs(delta) <= to_decimal(tolerance):  # n = 1: the fixed per-metric tolerance
            cell.verdict = WITHIN
        else:
            improved = delta < 0 if lower_is_better else delta > 0
            cell.verdict = BETTER if improved else WORSE
    return cell


def build_table(
    layout: TableLayout,
    results: Mapping[tuple[str, str], Mapping[str, float]],
    *,
    failures: Mapping[tuple[str, str | None], str] | None = None,
    tolerances: Mapping[str, float] | None = None,
    run_notes: Mapping[tuple[str, str], Sequence[str]] | None = None,
) -> BuiltTable:
    """Fill ``layout`` with measured values.

    Args:
        results: (run_id, view_id) -> {metric key: value (AP points, unrounded, -1 undefined)}.
        failures: (run_id, view_id) -> reason; a key with view None means the run's training failed
            (every view of it fails).
        tolerances: metric key (or bare name, or "default") -> allowed |difference| in points.
        run_notes: (run_id, view_id) -> notes on that run (``ltbench.render.run_notes``), footnoted on its rows.
    """
    failures = failures or {}
    tolerances = dict(tolerances or {"default": 1.0})
    groups = {g.id: g for g in layout.column_groups}
    footnotes: list[tuple[str, str]] = []
    markers: dict[str, str] = {}

    def footnote(text: str) -> str:
        if text not in markers:
            markers[text] = str(len(markers) + 1)
            footnotes.append((markers[text], text))
        return markers[text]

    for assumption in layout.table_assumptions:
        footnote(f"{assumption} (whole table): {layout.assumptions.get(assumption, '(assumption text not found)')}")
    printed: dict[tuple[str, tuple[tuple[str, str], ...]], PrintedRow] = {}
    summary = Summary()
    for row in layout.rows:
        if row.group not in groups:
            raise ValueError(f"row {row.label!r} names column group {row.group!r}; groups are {sorted(groups)}")
        key = (row.label, tuple(sorted(row.attributes.items())))
        out = printed.setdefault(key, PrintedRow(label=row.label, attributes=dict(row.attributes), cells={}))
        if row.cited:
            text = "copied from " + row.cited.get("from", "another paper")
            if row.cited.get("note"):
                text += f" ({row.cited['note']})"
            text += f" [{groups[row.group].label}]"
            mark = footnote(text)
            if mark not in out.cited:
                out.cited.append(mark)
        for assumption in row.assumptions:
            text = f"{assumption}: {layout.assumptions.get(assumption, '(assumption text not found)')}"
            mark = footnote(text)
            if mark not in out.footnotes:
                out.footnotes.append(mark)
        for pair in row.pairs:
            for text in (run_notes or {}).get(pair, ()):
                mark = footnote(f"{row.label} [{groups[row.group].label}], {text}")
                if mark not in out.footnotes:
                    out.footnotes.append(mark)
        failure_reasons = []
        for pair in row.pairs:
            reason = failures.get(pair) or failures.get((pair[0], None))
            if reason:
                failure_reasons.append(reason)
        rule = row.seed_rule or {"rule": layout.statistic}
        chosen = None
        if rule.get("rule") == "median_run" and len(row.pairs) > 1:
            chosen = median_run(row.pairs, results, rule.get("by", "segm.AP"))
            footnote(f"{row.label}: every cell from the median run by {rule.get('by', 'segm.AP')} of {len(row.pairs)} seeds")
        for column in groups[row.group].columns:
            if chosen is not None:
                values = [results[chosen][column.key]] if column.key in results[chosen] else []
            else:
                values = [results[p][column.key] for p in row.pairs if p in results and column.key in results[p]]
            cell = make_cell(
                reported=row.reported.get(column.key),
                values=values,
                failures=failure_reasons,
                n_expected=1 if chosen is not None else len(row.pairs),
                precision=layout.precision,
                tolerance=tolerance_for(column.key, tolerances),
                lower_is_better=column.lower_is_better,
                statistic="median" if rule.get("rule") == "median" else "mean",
                paper_unknown=row.missing.get(column.key),
                not_reproducible=row.not_reproducible.get(column.key),
                metric=column.key,
            )
            if cell.paper_unknown:
                footnote(f"{row.label} / {column.header}: paper value unknown ({cell.paper_unknown})")
            if cell.status == "not_reproducible" and cell.reason:
                footnote(f"n/a: {cell.reason}")
            out.cells[(row.group, column.key)] = cell
            if cell.status in ("not_reproducible", "empty"):
                continue
            summary.total += 1
            if cell.status == "measured":
                summary.reproduced += 1
                summary.within += cell.verdict == WITHIN
            elif cell.status == "failed":
                summary.failed += 1
                footnote(f"{row.label} [{groups[row.group].label}]: failed: {cell.reason}")
            elif cell.status == "undefined":
                summary.undefined += 1
                footnote(f"undefined: {cell.reason}")
            else:
                summary.pending += 1
    from ltbench.analysis.seeds import table_notes

    for note in table_notes((key, cell.n) for prow in printed.values() for (_, key), cell in prow.cells.items()
                            if cell.status == "measured" and cell.reported is not None):
        footnote(note)
    # Cells of a printed row in a group it has no spec row for: the paper prints nothing there either.
    for prow in printed.values():
        for group in layout.column_groups:
            for column in group.columns:
                prow.cells.setdefault((group.id, column.key), Cell(status="empty"))
    from ltbench.render.gains import table_gains

    gains, gain_summary = table_gains(layout, list(printed), results, failures=failures, tolerances=tolerances)
    return BuiltTable(layout=layout, rows=list(printed.values()), footnotes=footnotes, summary=summary, tolerances=tolerances,
                      gains=gains, gain_summary=gain_summary)
