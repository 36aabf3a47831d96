"""Evaluate a paper's claims on reported numbers or on reproduced results (with seeds).

The predicate format is the spec's (``ltbench.spec.claims``; the loader checks its structure): kinds
``compare``, ``difference``, ``correlation``, ``argbest``, ``monotonic``, ``all``, with row references
``{table, row (id or label), group}``. Two optional keys are read here:

- ``difference.tolerance`` (points): the difference equals ``value`` within ``tolerance``. With
  ``value: 0`` this says "stays within 1 point" (BAGS: AP4 stays within a point while AP1 rises).
- ``correlation.method``: ``spearman`` (default) or ``pearson``.

Modes (what a verdict means):

- ``reported``: the paper's printed numbers, one value per cell. Every transcribed claim must hold here;
  a ``difference`` must equal its stated value (±``tolerance``, default 0.051 = printed rounding).
- ``paper``: reproduced results at paper scale, a list of seed values per cell. A comparison A > B
  *holds* only when the 95 % Welch interval of mean(A) − mean(B) lies above 0 (beyond the seed spread),
  *fails* when it lies on the wrong side, and is *undetermined* when it straddles 0. ``>=``/``<=`` read
  "not significantly worse/better": they fail only when the interval is entirely on the wrong side.
  With one seed on one side, that run is given the other side's seed spread; with one seed on both
  sides no spread is known: the sign of the point difference decides, and the evidence says ``n = 1``.
  A stated magnitude (``difference.value`` without ``tolerance``) is not required at reproduction:
  its sign is (the measured size is in the evidence).
- ``smoke``: reproduced results at smoke scale: a directional sanity check on the means only (tiny
  models on synthetic data; seed intervals there say nothing about the paper).
- ``mini``: reproduced results at mini scale (converged tiny models on synthetic data): judged as in
  ``paper`` mode, with the seeds' 95 % interval, so that "holds" means the effect shows in miniature
  beyond the seed spread; it says nothing about the size of the paper's numbers.

Every cell a claim touches is in the evidence (paper, table, group, row, metric, values, mean, std, n).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ltbench.errors import LtbenchError
from ltbench.analysis.seeds import aggregate, difference_stats

HOLDS, FAILS, UNDETERMINED = "holds", "fails", "undetermined"
MODES = ("reported", "paper", "mini", "smoke")
#: modes judged with the seeds' interval (the others on point differences)
INTERVAL_MODES = ("paper", "mini")
REPORTED_TOLERANCE = 0.051  # differences of printed numbers carry the papers' rounding (0.05) + float noise

# a value source: (spec row, metric key) -> the cell's values (one per seed; [] when missing)
ValuesFn = Callable[[Any, str], Sequence[float]]


@dataclass(frozen=True)
class CellEvidence:
    """One cell a claim looked at."""

    paper: str
    table: str
    group: str
    row: str
    metric: str
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        stats = aggregate(self.values)
        return None if stats is None else stats.mean

    @property
    def std(self) -> float | None:
        stats = aggregate(self.values)
        return None if stats is None else stats.std

    def describe(self) -> str:
        where = f"{self.paper} T{self.table}" + (f"/{self.group}" if self.group else "") + f" {self.row!r} {self.metric}"
        stats = aggregate(self.values)
        if stats is None:
            return f"{where} = missing"
        return f"{where} = {stats.format(2)}"

    def to_dict(self) -> dict[str, Any]:
        return {"paper": self.paper, "table": self.table, "group": self.group, "row": self.row, "metric": self.metric,
                "values": list(self.values), "n": self.n, "mean": self.mean, "std": self.std}


@dataclass
class ClaimResult:
    """The verdict of one claim with its evidence (every cell read) and the reasoning, line by line."""

    id: str
    text: str
    where: str
    mode: str
    verdict: str
    evidence: list[CellEvidence] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    on_reported: str = HOLDS  # what the spec says the claim gives on the paper's own numbers
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "where": self.where, "mode": self.mode, "verdict": self.verdict,
                "evidence": [e.to_dict() for e in self.evidence], "details": list(self.details),
                "on_reported": self.on_reported, "note": self.note}


def combine(verdicts: Iterable[str]) -> str:
    """All hold -> holds; any fails -> fails; else undetermined (an empty list is undetermined)."""
    verdicts = list(verdicts)
    if not verdicts:
        return UNDETERMINED
    if FAILS in verdicts:
        return FAILS
    return UNDETERMINED if UNDETERMINED in verdicts else HOLDS


class _Evaluator:
    def __init__(self, spec: Any, values: ValuesFn, mode: str) -> None:
        if mode not in MODES:
            raise LtbenchError(f"unknown claim evaluation mode {mode!r}", expected="one of " + ", ".join(MODES))
        self.spec, self.values_fn, self.mode = spec, values, mode
        self.evidence: dict[tuple[str, str, str, str], CellEvidence] = {}
        self.details: list[str] = []

    # --- cells ------------------------------------------------------------------------------------
    def cell(self, ref: Mapping[str, Any], metric: str) -> tuple[list[float], str]:
        from ltbench.spec.claims import resolve_ref

        row = resolve_ref(self.spec, ref)
        raw = self.values_fn(row, metric) or []
        values = [float(v) for v in raw if v is not None and not math.isnan(float(v)) and float(v) >= 0]
        name = row.display_label
        key = (row.table_id, row.group.id, row.id, metric)
        if key not in self.evidence:
            self.evidence[key] = CellEvidence(self.spec.paper, row.table_id, row.group.id if row.multi_group else "",
                                              row.label, metric, tuple(values))
        return values, f"T{row.table_id} {name!r}"

    def point(self, values: Sequence[float]) -> float | None:
        stats = aggregate(values)
        return None if stats is None else stats.mean

    # --- atoms ------------------------------------------------------------------------------------
    def diff_interval(self, a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, bool] | None:
        """(d, low, high, has_spread). In reported/smoke mode the interval is the point difference."""
        out = difference_stats(a, b)
        if out is None:
            return None
        d, low, high = out
        if self.mode not in INTERVAL_MODES:
            return d, d, d, False
        return d, low, high, low != high

    def compare(self, a_ref: Mapping[str, Any], b_ref: Mapping[str, Any], metric: str, op: str) -> str:
        a, a_name = self.cell(a_ref, metric)
        b, b_name = self.cell(b_ref, metric)
        got = self.diff_interval(a, b)
        if got is None:
            self.details.append(f"{metric}: {a_name} {op} {b_name}: undetermined (missing values)")
            return UNDETERMINED
        d, low, high, spread = got
        if op in ("<", "<="):  # B - A > 0
            d, low, high = -d, -high, -low
        if op in (">", "<"):
            verdict = HOLDS if low > 0 else (FAILS if high <= 0 else UNDETERMINED)
        else:
            verdict = FAILS if high < 0 else HOLDS
        sign = op if op in (">", ">=") else {"<": "<", "<=": "<="}[op]
        how = f"difference {d:+.3f}" + (f", 95% interval [{low:+.3f}, {high:+.3f}]" if spread else "")
        if self.mode in INTERVAL_MODES and not spread:
            how += " (n = 1: no seed spread known, sign of the point difference)"
        self.details.append(f"{metric}: {a_name} {sign} {b_name}: {verdict} ({how})")
        return verdict

    # --- predicates -------------------------------------------------------------------------------
    def run(self, p: Mapping[str, Any]) -> str:
        kind = p.get("kind")
        if kind == "all":
            return combine([self.run(sub) for sub in p["of"]])
        if kind == "compare":
            return combine(self.compare(a, b, metric, p["op"]) for a, b in p["pairs"] for metric in p["metrics"])
        if kind == "difference":
            return self.difference(p)
        if kind == "correlation":
            return self.correlation(p)
        if kind == "argbest":
            return self.argbest(p)
        if kind == "monotonic":
            op = {("increasing", True): ">", ("increasing", False): ">=",
                  ("decreasing", True): "<", ("decreasing", False): "<="}[(p["direction"], bool(p.get("strict", True)))]
            rows = p["rows"]
            return combine(self.compare(later, earlier, p["metric"], op) for earlier, later in zip(rows, rows[1:]))
        raise LtbenchError(f"unknown predicate kind {kind!r}", expected="compare | difference | correlation | argbest | monotonic | all")

    def difference(self, p: Mapping[str, Any]) -> str:
        metric, value = p["metric"], float(p["value"])
        tolerance = p.get("tolerance")
        # a stated size with a tolerance is checked on the paper's numbers and at paper scale; at mini scale only
        # its sign (tiny models on synthetic data say nothing about the size)
        if self.mode == "reported" or (tolerance is not None and self.mode == "paper"):
            tol = REPORTED_TOLERANCE if tolerance is None else float(tolerance) + 1e-9
            a, a_name = self.cell(p["a"], metric)
            b, b_name = self.cell(p["b"], metric)
            got = self.diff_interval(a, b)
            if got is None:
                self.details.append(f"{metric}: {a_name} - {b_name}: undetermined (missing values)")
                return UNDETERMINED
            d, low, high, spread = got
            lo_ok, hi_ok = value - tol, value + tol
            if lo_ok <= low and high <= hi_ok:
                verdict = HOLDS
            elif high < lo_ok or low > hi_ok:
                verdict = FAILS
            else:
                verdict = UNDETERMINED
            how = f"{d:+.3f}" + (f" (95% interval [{low:+.3f}, {high:+.3f}])" if spread else "")
            self.details.append(f"{metric}: {a_name} - {b_name} = {how}, claimed {value:+g} ± {tol:.3g}: {verdict}")
            return verdict
        if value == 0:
            self.details.append(f"{metric}: a claimed difference of 0 without a tolerance cannot be checked on reproduced results")
            return UNDETERMINED
        self.details.append(f"{metric}: the paper states {value:+g}; at reproduction its sign is checked")
        return self.compare(p["a"], p["b"], metric, ">" if value > 0 else "<")

    def correlation(self, p: Mapping[str, Any]) -> str:
        method = p.get("method", "spearman")
        if method not in ("spearman", "pearson"):
            raise LtbenchError(f"unknown correlation method {method!r}", expected="spearman or pearson")
        xs, ys = [], []
        for ref in p["rows"]:
            x = self.point(self.cell(ref, p["x"])[0])
            y = self.point(self.cell(ref, p["y"])[0])
            if x is not None and y is not None:
                xs.append(x)
                ys.append(y)
        if len(xs) < 3:
            self.details.append(f"{method} correlation of {p['x']} and {p['y']}: fewer than 3 rows with both values")
            return UNDETERMINED
        rho = spearman(xs, ys) if method == "spearman" else pearson(xs, ys)
        if rho == 0:
            verdict = UNDETERMINED
        else:
            verdict = HOLDS if (rho < 0) == (p["sign"] == "negative") else FAILS
        self.details.append(f"{method} correlation of {p['x']} and {p['y']} over {len(xs)} rows (means): {rho:+.3f}, "
                            f"claimed {p['sign']}: {verdict}")
        return verdict

    def argbest(self, p: Mapping[str, Any]) -> str:
        from ltbench.spec.claims import resolve_ref

        metric, lower = p["metric"], bool(p.get("lower_is_better", False))
        best_row = resolve_ref(self.spec, p["best"])
        others = [ref for ref in p["rows"] if resolve_ref(self.spec, ref) is not best_row]
        op = "<" if lower else ">"
        verdicts = [self.compare(p["best"], ref, metric, op) for ref in others]
        if self.mode == "reported" and FAILS in verdicts:
            # a tie with another row is still "one of the best" on printed numbers
            best = self.point(self.cell(p["best"], metric)[0])
            rivals = [self.point(self.cell(ref, metric)[0]) for ref in others]
            if best is not None and None not in rivals:
                top = min(rivals + [best]) if lower else max(rivals + [best])  # type: ignore[type-var]
                if best == top:
                    self.details.append(f"{metric}: claimed best row ties for the best printed value {best:g}")
                    return HOLDS
        return combine(verdicts)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return pearson(_ranks(x), _ranks(y))


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    vx = math.sqrt(sum((a - mx) ** 2 for a in x))
    vy = math.sqrt(sum((b - my) ** 2 for b in y))
    return cov / (vx * vy) if vx and vy else 0.0


def _ranks(values: Sequence[float]) -> list[float]:
    """Average ranks (ties share the mean of their positions)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks


def evaluate_claim(spec: Any, claim: Mapping[str, Any], values: ValuesFn, mode: str) -> ClaimResult:
    """The verdict of one spec claim (``{id, text, where, predicate}``) on a value source."""
    from ltbench.spec.claims import referenced_tables

    ev = _Evaluator(spec, values, mode)
    tables = [spec.table(t) for t in sorted(referenced_tables(claim["predicate"]))]
    unreproducible = [t for t in tables if t.scope not in ("reproduce", "statistics")]
    if mode != "reported" and tables and len(unreproducible) == len(tables):
        # ImageNet-LT, ADE20K, ...: ltbench trains none of these, so only the printed numbers speak
        ev.details.append("not reproduced: " + "; ".join(f"Table {t.id} is {t.scope.replace('_', ' ')} ({t.reason})" for t in unreproducible))
        verdict = UNDETERMINED
    else:
        verdict = ev.run(claim["predicate"])
    note = " ".join(str(claim.get("note", "")).split())
    on_reported = str(claim.get("on_reported", HOLDS))
    if mode == "reported" and on_reported == FAILS:
        ev.details.append(f"the spec expects this claim to fail on the paper's own numbers: {note}")
    if mode == "smoke":
        ev.details.append("smoke scale: directional sanity check on seed means, not evidence about the paper")
    if mode == "mini":
        ev.details.append("mini scale: the effect in miniature (seed interval of converged tiny models on synthetic "
                          "data), not evidence about the paper's numbers")
    return ClaimResult(str(claim["id"]), " ".join(str(claim.get("text", "")).split()), str(claim.get("where", "")),
                       mode, verdict, list(ev.evidence.values()), ev.details, on_reported, note)


def reported_values(row: Any, metric: str) -> list[float]:
    """Value source: the paper's printed number of a cell (one value) or []."""
    text = row.reported.get(metric)
    return [] if text is None else [float(text)]


def evaluate_claims(spec: Any, values: ValuesFn | None = None, *, mode: str = "reported") -> list[ClaimResult]:
    """Every claim of ``spec`` (a ``ltbench.spec.PaperSpec``); ``values`` defaults to the reported numbers."""
    if values is None:
        if mode != "reported":
            raise LtbenchError(f"mode {mode!r} needs reproduced values", expected="values= a mapping or function")
        values = reported_values
    return [evaluate_claim(spec, claim, values, mode) for claim in spec.claims]
