"""Claims (issue 8): qualitative statements of a paper as predicates over table cells.

A predicate is a mapping with a ``kind`` (``ltbench.spec.vocab.CLAIM_KINDS``):

- ``compare``: ``{op: ">"|"<"|">="|"<=", metrics: [k...], pairs: [[A, B], ...]}``: A op B for every metric and pair.
- ``difference``: ``{metric, a: A, b: B, value: v}``: A - B equals v (within a tolerance).
- ``correlation``: ``{x, y, sign: negative|positive, rows: [...]}``: sign of Spearman's rho over the rows.
- ``argbest``: ``{metric, best: A, rows: [...], lower_is_better: false}``: A is (one of) the best of the rows.
- ``monotonic``: ``{metric, rows: [ordered...], direction: increasing|decreasing, strict: true}``.
- ``all``: ``{of: [predicate, ...]}``: every sub-predicate holds.

Optional keys: ``difference.tolerance`` (points, >= 0) and ``correlation.method`` (spearman | pearson).
A claim may say ``on_reported: fails`` (with a ``note`` saying why) where the paper's text contradicts its
own table: the audit then shows that disagreement instead of hiding the claim.

A row reference is ``{table, row (id or label), group (when the table has several column groups)}``.
This module only checks the structure (the loader calls :func:`check`); claims are evaluated — on the
reported numbers, on reproduced seeds at paper scale, or as a smoke-scale sanity check — by
``ltbench.claims`` (one evaluator, with tolerances and seed intervals).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean
from ltbench.spec import vocab
from ltbench.spec.model import PaperSpec, Row

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
    # other.* keys name the out-of-scope tables' metrics (DisAlign's top-1 accuracy, mIoU): their claims
    # are checked on the printed numbers only.
    if not isinstance(key, str) or not (key in vocab.METRIC_KEYS or key.startswith(vocab.FREE_KEY_PREFIXES)):
        raise LtbenchError(f"unknown metric key {key!r}{did_you_mean(str(key), vocab.METRIC_KEYS)}",
                           expected="a canonical metric key (other.* for out-of-scope tables)")
    return key


def referenced_tables(predicate: Any) -> set[str]:
    """The ids of every table a (structurally valid) predicate reads."""
    out: set[str] = set()
    if not isinstance(predicate, dict):
        return out
    for sub in predicate.get("of", []) or []:
        out |= referenced_tables(sub)
    for key in ("a", "b", "best"):
        if isinstance(predicate.get(key), dict):
            out.add(str(predicate[key]["table"]))
    for ref in predicate.get("rows", []) or []:
        out.add(str(ref["table"]))
    for pair in predicate.get("pairs", []) or []:
        out |= {str(ref["table"]) for ref in pair}
    return out


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
    if kind == "difference" and "tolerance" in predicate:
        tol = predicate["tolerance"]
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or tol < 0:
            raise LtbenchError(f"tolerance {tol!r} is not a non-negative number of points", expected="tolerance: 1.0")
    if kind == "correlation" and predicate.get("method", "spearman") not in ("spearman", "pearson"):
        raise LtbenchError(f"correlation method {predicate['method']!r}", expected="spearman or pearson")
