"""Gains as verdicts: each method row's gain over its baseline row, reproduced beside reported.

A row with ``baseline:`` in its spec (same table and column group; ``workflows/papers/FORMAT.md``) gets, per
metric, the gain ``method − baseline``:

- reported: the difference of the two printed numbers (exact decimals; copied from the paper);
- reproduced: the difference of the seed means with its 95 % Welch interval, ``ltbench.analysis.seeds.difference_stats``
  (the definition the framework-sensitivity table and the claims use; one seed on both sides: no interval).

A gain carries across framework versions far better than an absolute AP, so it gets its own verdict. The
comparison is made in the direction of the paper's gain (a gain is an improvement: higher AP, lower PwB; a
row the paper reports *below* its baseline is compared as a loss of that size):

- ``reproduces``: the reproduced gain is at least the paper's (n = 1 on both sides: within the metric's
  tolerance below it; with a seed interval: the paper's gain is not above the interval's upper end, widened
  by one printed unit for the rounding of the two printed numbers);
- ``reverses``: the reproduced gain points the other way beyond the tolerance (n = 1) or beyond the interval
  (the whole interval is on the other side of zero);
- ``shrinks``: in between (smaller than the paper's gain, not reversed).

Seeds of a row are combined as their mean here, whatever the row's seed rule for its absolute cells (SimCal's
median run): a difference of means is what the Welch interval is defined for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ltbench.render.numbers import decimals_of, fmt_signed, to_decimal

REPRODUCES, SHRINKS, REVERSES = "reproduces", "shrinks", "reverses"
GAIN_MARK = {REPRODUCES: "✓", SHRINKS: "↘", REVERSES: "✗"}
GAIN_LEGEND = (
    "Rows starting ↳ give the gain of the row above over its baseline row (the spec's `baseline:`): the reproduced "
    "gain (difference of the seed means; [95 % Welch interval] with several seeds) vs the paper's gain (difference "
    "of its two printed numbers; in parentheses while pending), then "
    f"{GAIN_MARK[REPRODUCES]} the gain reproduces (at least the paper's, within the "
    f"tolerance), {GAIN_MARK[SHRINKS]} it shrinks, {GAIN_MARK[REVERSES]} it reverses (the other way beyond the "
    "tolerance or the seed interval)."
)


@dataclass
class GainCell:
    status: str  # measured | pending | failed | undefined | not_reproducible | empty
    reported: Decimal | None = None  # the paper's gain, exact
    value: float | None = None  # reproduced mean difference (method − baseline)
    low: float | None = None
    high: float | None = None
    n_method: int = 0
    n_baseline: int = 0
    precision: int = 1
    verdict: str | None = None
    reason: str | None = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None and self.low != self.high

    def reported_text(self) -> str:
        return "–" if self.reported is None else fmt_signed(self.reported, self.precision)

    def value_text(self) -> str:
        if self.value is None:
            return ""
        text = fmt_signed(self.value, self.precision)
        if self.has_interval:
            text += f" [{fmt_signed(self.low, self.precision)}, {fmt_signed(self.high, self.precision)}]"
        return text

    def text(self) -> str:
        """``+0.4 vs +3.2 ↘`` (reproduced vs the paper's gain), ``pending (+3.2)``, ``–`` where neither row has
        the column."""
        if self.status == "empty":
            return "–"
        if self.status == "measured":
            mark = f" {GAIN_MARK[self.verdict]}" if self.verdict else ""
            return f"{self.value_text()} vs {self.reported_text()}{mark}"
        word = {"not_reproducible": "n/a"}.get(self.status, self.status)
        return word if self.reported is None else f"{word} ({self.reported_text()})"


@dataclass
class GainRow:
    """The gain line under one printed row: per (group id, metric key), and the baseline's label per group."""

    baselines: dict[str, str]  # group id -> baseline row label
    cells: dict[tuple[str, str], GainCell] = field(default_factory=dict)

    def label(self) -> str:
        names = list(dict.fromkeys(self.baselines.values()))
        return "↳ gain over " + " / ".join(names)


@dataclass
class GainSummary:
    reproduces: int = 0
    shrinks: int = 0
    reverses: int = 0
    measured: int = 0  # with a verdict (the paper's gain known)
    unjudged: int = 0  # measured, but the paper gives no gain to compare with
    open: int = 0  # pending, failed or undefined
    total: int = 0

    def line(self) -> str:
        if not self.total:
            return ""
        text = (f"Gains over baselines: {self.reproduces} reproduce, {self.shrinks} shrink, {self.reverses} reverse "
                f"/ {self.measured} judged of {self.total}")
        extra = []
        if self.unjudged:
            extra.append(f"{self.unjudged} without a paper gain")
        if self.open:
            extra.append(f"{self.open} pending or failed")
        return text + (f" ({', '.join(extra)})" if extra else "")


def gain_verdict(reported: float | Decimal, value: float, *, low: float | None = None, high: float | None = None,
                 tolerance: float = 1.0, precision: int = 1, lower_is_better: bool = False) -> str:
    """``reproduces`` | ``shrinks`` | ``reverses`` for a reproduced gain against the paper's (module docstring).

    ``low``/``high``: the reproduced gain's 95 % interval (None or equal: no spread known, use ``tolerance``).
    """
    improve = -1.0 if lower_is_better else 1.0
    paper = improve * float(reported)
    sign = 1.0 if paper >= 0 else -1.0  # compare along the paper's direction
    paper_gain = sign * paper
    ours = sign * improve * float(value)
    if low is not None and high is not None and low != high:
        ends = sorted((sign * improve * float(low), sign * improve * float(high)))
        unit = 10.0 ** -precision  # two printed numbers, each rounded: their difference is off by up to one unit
        if ends[1] + unit + 1e-9 >= paper_gain:
            return REPRODUCES
        return REVERSES if ends[1] < 0 else SHRINKS
    if ours >= paper_gain - tolerance - 1e-9:
        return REPRODUCES
    return REVERSES if ours < -tolerance - 1e-9 else SHRINKS


def _values(row: Any, key: str, results: Mapping[tuple[str, str], Mapping[str, float]]) -> list[float]:
    return [results[p][key] for p in row.pairs if p in results and key in results[p]]


def _failure(row: Any, failures: Mapping[tuple[str, str | None], str]) -> str | None:
    for pair in row.pairs:
        reason = failures.get(pair) or failures.get((pair[0], None))
        if reason:
            return reason
    return None


def gain_cell(method: Any, baseline: Any, column: Any, *, results: Mapping[tuple[str, str], Mapping[str, float]],
              failures: Mapping[tuple[str, str | None], str], tolerance: float, precision: int) -> GainCell:
    """One gain cell from two ``LayoutRow``s of the same column group (``ltbench.render.model``)."""
    from ltbench.analysis.seeds import difference_stats

    key = column.key
    reported = None
    if key in method.reported and key in baseline.reported:
        a, b = method.reported[key], baseline.reported[key]
        precision = max(decimals_of(a), decimals_of(b))
        reported = to_decimal(a) - to_decimal(b)
    cell = GainCell(status="pending", reported=reported, precision=precision)
    if not method.pairs and not baseline.pairs:
        cell.status = "empty" if reported is None else "not_reproducible"
        return cell
    blocked = method.not_reproducible.get(key) or baseline.not_reproducible.get(key)
    if blocked or not method.pairs or not baseline.pairs:
        cell.status, cell.reason = "not_reproducible", blocked or "one of the two rows has no run"
        return cell
    mine, theirs = _values(method, key, results), _values(baseline, key, results)
    defined_mine = [v for v in mine if v is not None and v >= 0]
    defined_theirs = [v for v in theirs if v is not None and v >= 0]
    cell.n_method, cell.n_baseline = len(defined_mine), len(defined_theirs)
    failed = _failure(method, failures) or _failure(baseline, failures)
    if len(mine) < len(method.pairs) or len(theirs) < len(baseline.pairs):
        if failed:
            cell.status, cell.reason = "failed", failed
        return cell
    stats = difference_stats(defined_mine, defined_theirs)
    if stats is None:
        cell.status, cell.reason = "undefined", "the metric is undefined on this data (-1) for one of the rows"
        return cell
    cell.status = "measured"
    cell.value, cell.low, cell.high = stats
    if reported is not None:
        cell.verdict = gain_verdict(reported, cell.value, low=cell.low, high=cell.high, tolerance=tolerance,
                                    precision=precision, lower_is_better=column.lower_is_better)
    return cell


def table_gains(layout: Any, printed_keys: Sequence[tuple[str, tuple[tuple[str, str], ...]]],
                results: Mapping[tuple[str, str], Mapping[str, float]], *,
                failures: Mapping[tuple[str, str | None], str], tolerances: Mapping[str, float]
                ) -> tuple[dict[int, GainRow], GainSummary]:
    """Gain lines of a table: printed-row index -> ``GainRow``, and their summary.

    ``printed_keys``: the key (label, sorted attributes) of each printed row, in order (``build_table``).
    """
    from ltbench.render.model import tolerance_for

    groups = {g.id: g for g in layout.column_groups}
    by_label = {(row.group, row.label): row for row in layout.rows}
    index = {key: i for i, key in enumerate(printed_keys)}
    out: dict[int, GainRow] = {}
    summary = GainSummary()
    for row in layout.rows:
        if not getattr(row, "baseline", None):
            continue
        base = by_label.get((row.group, row.baseline))
        if base is None:
            raise ValueError(f"{layout.paper} table {layout.table_id}: row {row.label!r} names baseline "
                             f"{row.baseline!r}, which is not a row of column group {row.group!r}")
        i = index[(row.label, tuple(sorted(row.attributes.items())))]
        gain_row = out.setdefault(i, GainRow(baselines={}))
        gain_row.baselines[row.group] = base.label
        for column in groups[row.group].columns:
            cell = gain_cell(row, base, column, results=results, failures=failures,
                             tolerance=tolerance_for(column.key, tolerances), precision=layout.precision)
            gain_row.cells[(row.group, column.key)] = cell
            if cell.status in ("empty", "not_reproducible"):
                continue
            summary.total += 1
            if cell.status != "measured":
                summary.open += 1
            elif cell.verdict is None:
                summary.unjudged += 1
            else:
                summary.measured += 1
                setattr(summary, cell.verdict, getattr(summary, cell.verdict) + 1)
    for gain_row in out.values():  # groups the row has no spec row in print nothing, as in the paper
        for group in layout.column_groups:
            for column in group.columns:
                gain_row.cells.setdefault((group.id, column.key), GainCell(status="empty"))
    return out, summary
