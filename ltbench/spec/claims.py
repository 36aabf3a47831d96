"""Claims (issue 8): qualitative statements of a paper as predicates over table cells.

A predicate is a mapping with a ``kind`` (``ltbench.spec.vocab.CLAIM_KINDS``):

- ``compare``: ``{op: ">"|"<"|">="|"<=", metrics: [k...], pairs: [[A, B], ...]}``: A op B for every metric and pair.
- ``difference``: ``{metric, a: A, b: B, value: v}``: A - B equals v (within a tolerance).
- ``correlation``: ``{x, y, sign: negative|positive, rows: [...]}``: sign of Spearman's rho over the rows.
- ``argbest``: ``{metric, best: A, rows: [...], lower_is_better: false}``: A is (one of) the best of the rows.
- ``monotonic``: ``{metric, rows: [ordered...], direction: increasing|decreasing, strict: true}``.
- ``all``: ``{of: [predicate, ...]}``: every sub-predicate holds.

A row reference is ``{table, row (id or label), group (when the table has several column groups)}``.
:func:`evaluate` takes a ``value(row, metric) -> float | None`` function, so the same claim is checked on the
reported numbers (:func:`evaluate_reported`) and, later, on reproduced ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean
from ltbench.spec import vocab
from ltbench.spec.model import PaperSpec, Row

ValueFn = Callable[[Row, str], "float | None"]
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
}
_REQUIRED = {
    "compare": ("op", "metrics", "pairs"), "difference": ("metric", "a", "b", "value"),
    "correlation": ("x", "y", "sign", "rows"), "argbest": ("metric", "best", "rows"),
    "monotonic": ("metric", "rows", "direction"), "all": ("of",),
}


def resolve_ref(spec: PaperSpec, ref: Any) -> Row:
    """The row a reference names; ``LtbenchError`` (with a suggestion) otherwise."""
    if not isinstance(ref, dict) or "table" not in ref or "row" not in ref:
        raise LtbenchError(f"row reference {ref!r} is not a mapping with table and row",
                           expected="{table: '2', row: '<id or label>', group: '<id>'}")
    table = spec.table(str(ref["table"]))
    row = table.find_row(str(ref["row"]), ref.get("group"))
    if row is None:
        labels = sorted({r.label for r in table.rows})
        raise LtbenchError(f"no row {ref['row']!r} in table {table.id}" + (f" group {ref['group']!r}" if "group" in ref else "")
                           + did_you_mean(str(ref["row"]), labels), expected="a row id or label of that table")
    if "group" not in ref and len(table.column_groups) > 1:
        matches = [r for r in table.rows if str(ref["row"]) in (r.id, r.label)]
        if len(matches) > 1:
            raise LtbenchError(f"row {ref['row']!r} of table {table.id} is in several column groups",
                               expected="`group:` one of " + ", ".join(g.id for g in table.column_groups))
    return row


def _metric(key: Any) -> str:
    if not isinstance(key, str) or key not in vocab.METRIC_KEYS:
        raise LtbenchError(f"unknown metric key {key!r}{did_you_mean(str(key), vocab.METRIC_KEYS)}",
                           expected="a canonical metric key")
    return key


def check(spec: PaperSpec, predicate: Any) -> None:
    """Structure of a predicate: known kind, required keys, resolvable rows, known metrics."""
    if not isinstance(predicate, dict) or not isinstance(predicate.get("kind"), str):
        raise LtbenchError("a predicate must be a mapping with a kind", expected="kind: " + " | ".join(vocab.CLAIM_KINDS))
    kind = predicate["kind"]
    if kind not in vocab.CLAIM_KINDS:
        raise LtbenchError(f"unknown predicate kind {kind!r}{did_you_mean(kind, vocab.CLAIM_KINDS)}",
                           expected="one of " + ", ".join(vocab.CLAIM_KINDS))
    missing = [k for k in _REQUIRED[kind] if k not in predicate]
    if missing:
        raise LtbenchError(f"{kind} predicate lacks " + ", ".join(missing), expected="keys " + ", ".join(_REQUIRED[kind]))
    if kind == "all":
        if not isinstance(predicate["of"], list) or not predicate["of"]:
            raise LtbenchError("`of:` must be a non-empty list of predicates")
        for sub in predicate["of"]:
            check(spec, sub)
        return
    if kind == "compare":
        if predicate["op"] not in OPS:
            raise LtbenchError(f"unknown op {predicate['op']!r}", expected="one of " + " ".join(OPS))
        if not isinstance(predicate["metrics"], list) or not isinstance(predicate["pairs"], list):
            raise LtbenchError("metrics and pairs must be lists")
        for key in predicate["metrics"]:
            _metric(key)
        for pair in predicate["pairs"]:
            if not isinstance(pair, list) or len(pair) != 2:
                raise LtbenchError(f"pair {pair!r} is not [A, B]")
            for ref in pair:
                resolve_ref(spec, ref)
        return
    for key in ("metric", "x", "y"):
        if key in predicate:
            _metric(predicate[key])
    for key in ("a", "b", "best"):
        if key in predicate:
            resolve_ref(spec, predicate[key])
    if "rows" in predicate:
        if not isinstance(predicate["rows"], list) or len(predicate["rows"]) < 2:
            raise LtbenchError("rows must list at least two row references")
        for ref in predicate["rows"]:
            resolve_ref(spec, ref)
    if kind == "difference" and not isinstance(predicate["value"], (int, float)):
        raise LtbenchError(f"value {predicate['value']!r} is not a number")
    if kind == "correlation" and predicate["sign"] not in ("negative", "positive"):
        raise LtbenchError(f"sign {predicate['sign']!r}", expected="negative or positive")
    if kind == "monotonic" and predicate["direction"] not in ("increasing", "decreasing"):
        raise LtbenchError(f"direction {predicate['direction']!r}", expected="increasing or decreasing")


def _ranks(values: list[float]) -> list[float]:
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


def spearman(x: list[float], y: list[float]) -> float:
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy) if vx and vy else 0.0


def evaluate(spec: PaperSpec, predicate: dict[str, Any], value: ValueFn, tolerance: float = 1e-6) -> tuple[bool | None, list[str]]:
    """(holds?, details). ``None`` when a needed value is missing (a cell not reported/not yet run)."""
    kind = predicate["kind"]
    details: list[str] = []

    def get(ref: dict[str, Any], metric: str) -> float | None:
        row = resolve_ref(spec, ref)
        v = value(row, metric)
        if v is None:
            details.append(f"missing {metric} of table {row.table_id} {row.display_label!r}")
        return v

    if kind == "all":
        results = [evaluate(spec, sub, value, tolerance) for sub in predicate["of"]]
        for _, d in results:
            details += d
        if any(r is False for r, _ in results):
            return False, details
        return (None if any(r is None for r, _ in results) else True), details
    if kind == "compare":
        op = OPS[predicate["op"]]
        verdicts: list[bool | None] = []
        for a_ref, b_ref in predicate["pairs"]:
            for metric in predicate["metrics"]:
                a, b = get(a_ref, metric), get(b_ref, metric)
                if a is None or b is None:
                    verdicts.append(None)
                    continue
                ok = op(a, b)
                verdicts.append(ok)
                if not ok:
                    details.append(f"{metric}: {a} {predicate['op']} {b} fails for {a_ref['row']!r} vs {b_ref['row']!r}")
        if False in verdicts:
            return False, details
        return (None if None in verdicts else True), details
    if kind == "difference":
        a, b = get(predicate["a"], predicate["metric"]), get(predicate["b"], predicate["metric"])
        if a is None or b is None:
            return None, details
        diff = a - b
        ok = abs(diff - float(predicate["value"])) <= tolerance + 1e-9
        if not ok:
            details.append(f"{predicate['metric']} difference {diff:.4f} != {predicate['value']}")
        return ok, details
    if kind == "correlation":
        xs, ys = [], []
        for ref in predicate["rows"]:
            x, y = get(ref, predicate["x"]), get(ref, predicate["y"])
            if x is not None and y is not None:
                xs.append(x)
                ys.append(y)
        if len(xs) < 3:
            return None, details
        rho = spearman(xs, ys)
        details.append(f"spearman rho = {rho:.3f} over {len(xs)} rows")
        return (rho < 0 if predicate["sign"] == "negative" else rho > 0), details
    if kind == "argbest":
        metric = predicate["metric"]
        values = [get(ref, metric) for ref in predicate["rows"]]
        best = get(predicate["best"], metric)
        if best is None or any(v is None for v in values):
            return None, details
        lower = bool(predicate.get("lower_is_better", False))
        target = min(values) if lower else max(values)  # type: ignore[type-var]
        ok = best == target
        if not ok:
            details.append(f"{metric}: best is {target}, claimed row has {best}")
        return ok, details
    if kind == "monotonic":
        metric = predicate["metric"]
        values = [get(ref, metric) for ref in predicate["rows"]]
        if any(v is None for v in values):
            return None, details
        strict = bool(predicate.get("strict", True))
        pairs = list(zip(values, values[1:]))
        if predicate["direction"] == "increasing":
            ok = all((b > a) if strict else (b >= a) for a, b in pairs)
        else:
            ok = all((b < a) if strict else (b <= a) for a, b in pairs)
        if not ok:
            details.append(f"{metric} sequence {values} is not {predicate['direction']}")
        return ok, details
    raise LtbenchError(f"unknown predicate kind {kind!r}")


def reported_value(row: Row, metric: str) -> float | None:
    text = row.reported.get(metric)
    return None if text is None else float(text)


def evaluate_reported(spec: PaperSpec, claim: dict[str, Any]) -> tuple[bool | None, list[str]]:
    """Does the claim hold on the paper's own printed numbers?"""
    return evaluate(spec, claim["predicate"], reported_value)
