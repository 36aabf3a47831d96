"""Reproduced values for claims: from a plain mapping, or from the results store through the plan.

The mapping form is what a caller without the store writes by hand (tests, notebooks)::

    {("pcb", "2", "v0.5", "Softmax + PCB", "segm.AP"): [18.9, 19.3, 19.0], ...}

keys are (paper, table id, column-group id or None, row id or label, metric key); values one per seed
(AP points; -1 = undefined, dropped). The store form reads ``results/records`` and asks the plan which
(run, view) pairs (one per seed) serve each row, so every seed of a row is found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError

CellKey = tuple[str, str, "str | None", str, str]


class ReproducedValues:
    """A value source for :func:`ltbench.claims.evaluate_claim` over a (paper, table, group, row, metric) mapping."""

    def __init__(self, mapping: Mapping[tuple[Any, ...], Sequence[float]]) -> None:
        self.mapping: dict[tuple[str, str, str | None, str, str], list[float]] = {}
        for key, values in mapping.items():
            if not isinstance(key, tuple) or len(key) != 5:
                raise LtbenchError(f"reproduced-values key {key!r} is not (paper, table, group, row, metric)",
                                   expected="a 5-tuple; group None for single-group tables")
            paper, table, group, row, metric = key
            self.mapping[(str(paper), str(table), None if group is None else str(group), str(row), str(metric))] = [
                float(v) for v in values
            ]

    def __call__(self, row: Any, metric: str) -> list[float]:
        for group in (row.group.id, None):
            for name in (row.id, row.label):
                key = (row.paper, str(row.table_id), group, name, metric)
                if key in self.mapping:
                    return self.mapping[key]
        return []


def mapping_from_store(
    spec: Any,
    serves: Mapping[tuple[str, str, str], Iterable[tuple[str, str]]],
    results: Mapping[tuple[str, str], Mapping[str, float]],
) -> ReproducedValues:
    """Reproduced values of every served row of ``spec``.

    Args:
        serves: (table id, group id, row id) -> the (run_id, view_id) pairs serving the row, one per seed
            (``ltbench.workflow.row_pairs(...)[(group, row)].pairs``).
        results: (run_id, view_id) -> metrics (``ltbench.render.tables.read_store(...).results``).
    A pair without a record yet contributes nothing (the claim is then undetermined, not failed).
    """
    mapping: dict[tuple[Any, ...], list[float]] = {}
    for (table_id, group_id, row_id), pairs in serves.items():
        for run_id, view_id in pairs:
            metrics = results.get((run_id, view_id))
            if not metrics:
                continue
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    mapping.setdefault((spec.paper, str(table_id), group_id, row_id, key), []).append(float(value))
    return ReproducedValues(mapping)


def claim_tables(spec: Any) -> list[str]:
    """The table ids the claims of ``spec`` read, in first-use order."""
    found: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            if "table" in obj and "row" in obj and str(obj["table"]) not in found:
                found.append(str(obj["table"]))
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    for claim in spec.claims:
        walk(claim.get("predicate"))
    return found


def plan_serves(spec: Any, table_ids: Sequence[str], *, scale: str, framework: str | None = None,
                seeds: int | None = None) -> dict[tuple[str, str, str], tuple[tuple[str, str], ...]]:
    """(table id, group id, row id) -> the (run_id, view_id) pairs serving that row, one per seed.

    The plan is built from *this* spec object (other papers load from ``workflows/papers`` when a cited
    row needs them), so a spec whose ``seeds`` was raised gets one pair per seed.
    """
    from ltbench.plan import build_plan
    from ltbench.spec.loader import papers_dir

    if not table_ids:
        return {}
    plan = build_plan(targets=[f"tables/{spec.paper}_table{t}.md" for t in table_ids], scale=scale,
                      framework=framework, specs={spec.paper: spec}, directory=papers_dir(), seeds=seeds)
    serves: dict[tuple[str, str, str], tuple[tuple[str, str], ...]] = {}
    for row in plan.rows:
        if row.paper == spec.paper and str(row.table) in table_ids:
            pairs = tuple((run_id, row.view_id) for run_id in row.run_ids) if row.view_id else ()
            serves[(str(row.table), row.group, row.row_id)] = pairs
    return serves


def load_reproduced(spec: Any, *, scale: str, framework: str | None = None,
                    results_dir: str | Path | None = None, seeds: int | None = None) -> ReproducedValues:
    """Reproduced values for every table the claims of ``spec`` read, from the plan and the store."""
    from ltbench.render.tables import read_store

    store = read_store(results_dir)
    serves = plan_serves(spec, claim_tables(spec), scale=scale, framework=framework, seeds=seeds)
    return mapping_from_store(spec, serves, store.results)
