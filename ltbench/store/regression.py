"""Regression check: mini-scale metrics against committed expected values (detectron2 style).

``workflows/regression/expected.yaml``::

    scale: mini
    framework: torchvision
    entries:               # [task, metric, expected, tolerance]; task = a spec row reference
      - [pcb/table2/v1.0/softmax, segm.AP, 26.2, 3.1]

A task names a spec row (``<paper>/table<N>[/<group>]/<row id>``, the row's ``ref``); its value is the
row's measured metric (mean over the seeds checked: the check runs one). An entry fails when the record is
missing or ``|measured - expected| > tolerance``.

``derive_entries`` makes the entries from a store holding several seeds of each task: expected = the seeds'
mean, tolerance = max(k x the metric's seed standard deviation pooled over the tasks, floor), rounded up to 0.1,
so that one seed on another machine passes and a broken method (a sampler off, a flipped background index, a
wrong target) fails.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench import io
from ltbench.errors import LtbenchError


def task_table(task: str) -> tuple[str, str]:
    """``<paper>/table<N>/...`` -> (paper, table id N)."""
    parts = task.split("/")
    return parts[0], parts[1].removeprefix("table")


@dataclass(frozen=True)
class Entry:
    task: str
    metric: str
    expected: float
    tolerance: float

    @property
    def paper_table(self) -> tuple[str, str]:
        return task_table(self.task)


@dataclass
class Expected:
    path: Path
    scale: str
    framework: str | None
    entries: list[Entry]

    def tables(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys(e.paper_table for e in self.entries))


def load_expected(path: str | Path) -> Expected:
    p = Path(path)
    doc = io.read_yaml(p)
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise LtbenchError("no 'entries' list", path=p, key="entries", expected="entries: [[task, metric, expected, tolerance], ...]")
    entries = []
    for i, item in enumerate(doc["entries"]):
        ok = (
            isinstance(item, list)
            and len(item) == 4
            and isinstance(item[0], str)
            and item[0].count("/") >= 2
            and item[0].split("/")[1].startswith("table")
            and isinstance(item[1], str)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in item[2:])
            and item[3] >= 0
        )
        if not ok:
            raise LtbenchError(
                f"bad entry {item!r}", path=p, key=["entries", i],
                expected="[<paper>/table<N>/<group>/<row id>, <metric key>, <expected number>, <tolerance >= 0>]",
            )
        entries.append(Entry(item[0], item[1], float(item[2]), float(item[3])))
    return Expected(p, str(doc.get("scale", "smoke")), doc.get("framework"), entries)


@dataclass
class Outcome:
    entry: Entry
    measured: float | None
    ok: bool
    note: str = ""


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def markdown(self) -> str:
        from tabulate import tabulate

        rows = [
            [
                o.entry.task, o.entry.metric, f"{o.entry.expected:.3f}", f"±{o.entry.tolerance:g}",
                "–" if o.measured is None else f"{o.measured:.3f}", "ok" if o.ok else "FAIL", o.note,
            ]
            for o in self.outcomes
        ]
        table = tabulate(rows, headers=["task", "metric", "expected", "tolerance", "measured", "result", "note"],
                         tablefmt="pipe", disable_numparse=True)
        passed = sum(o.ok for o in self.outcomes)
        return f"# Regression check\n\n{table}\n\n{passed}/{len(self.outcomes)} entries within tolerance.\n"


def evaluate_entries(expected: Expected, row_values: dict[str, dict[str, list[float]]]) -> Report:
    """``row_values``: task -> metric -> measured values (one per seed)."""
    report = Report()
    for entry in expected.entries:
        values = [v for v in row_values.get(entry.task, {}).get(entry.metric, []) if v is not None]
        if entry.task not in row_values:
            report.outcomes.append(Outcome(entry, None, False, "no such row in the plan"))
            continue
        if not values:
            report.outcomes.append(Outcome(entry, None, False, "no record yet"))
            continue
        measured = sum(values) / len(values)
        diff = measured - entry.expected
        ok = abs(diff) <= entry.tolerance + 1e-9
        report.outcomes.append(Outcome(entry, measured, ok, f"{diff:+.3f}"))
    return report


def _tasks_of_tables(tables: list[tuple[str, str]], *, scale: str, framework: str | None,
                     seeds: int | None = None) -> dict[str, list[tuple[str, str]]]:
    """task -> (run, view) pairs of every row of ``tables`` ((paper, table id) pairs) in the plan: tasks
    ``<paper>/table<N>/<group>/<row id>``, and ``<paper>/table<N>/<row id>`` where the row id is in one group only."""
    from ltbench.workflow import row_pairs

    out: dict[str, list[tuple[str, str]]] = {}
    for paper, table in tables:
        served = row_pairs(paper, table, scale=scale, framework=framework, seeds=seeds)
        row_ids = [row_id for _, row_id in served]
        for (group, row_id), serve in served.items():
            out[f"{paper}/table{table}/{group}/{row_id}"] = list(serve.pairs)
            if row_ids.count(row_id) == 1:  # single-group tables: <paper>/table<N>/<row id> works too
                out[f"{paper}/table{table}/{row_id}"] = list(serve.pairs)
    return out


def task_pairs(expected: Expected, *, scale: str, framework: str | None) -> dict[str, list[tuple[str, str]]]:
    """task -> the (run, view) pairs that serve its row (only the rows the entries name)."""
    out = _tasks_of_tables(list(expected.tables()), scale=scale, framework=framework or expected.framework)
    return {e.task: out.get(e.task, []) for e in expected.entries}


def check(expected: Expected, *, scale: str, framework: str | None, results_dir: str | Path | None = None) -> Report:
    from ltbench.render.tables import read_store

    if expected.scale != scale:
        raise LtbenchError(f"expected values are for scale {expected.scale!r}, checking {scale!r}", path=expected.path, key="scale")
    store = read_store(results_dir)
    row_values: dict[str, dict[str, list[float]]] = {}
    for task, pairs in task_pairs(expected, scale=scale, framework=framework).items():
        if not pairs:
            continue  # reported as "no such row in the plan"
        row_values[task] = row_metrics(store, pairs)
    return evaluate_entries(expected, row_values)


def _numbers(prefix: str, tree: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_numbers(f"{prefix}.{key}", value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}.{key}"] = float(value)
    return out


def row_metrics(store: Any, pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
    """metric -> one value per (run, view) pair of a row (its seeds): the record's evaluation metrics, and the
    numbers of its training as ``train.<key>`` (done.json's ``training``, e.g. ``train.sampler.rare_pct``: the
    percentage of the images the sampler fed the run that hold a rare category)."""
    metrics: dict[str, list[float]] = {}
    for pair in pairs:
        values: dict[str, Any] = dict(store.results.get(pair, {}))
        record = store.records.get(pair)
        if record is not None:
            values.update(_numbers("train", (record.get("train") or {}).get("training") or {}))
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.setdefault(key, []).append(float(value))
    return metrics


#: derive_entries' defaults: tolerance = max(SPREAD_K x seed std, TOLERANCE_FLOOR)
SPREAD_K = 3.0
TOLERANCE_FLOOR = 1.0
MIN_SEEDS = 3


@dataclass(frozen=True)
class Derived:
    entry: Entry
    values: tuple[float, ...]  # one per seed, in seed order
    pooled_std: float  # the metric's seed spread pooled over the tasks that check it

    @property
    def std(self) -> float:
        return statistics.stdev(self.values)


def derive_entries(row_values: dict[str, dict[str, list[float]]], metrics: list[str], *, k: float = SPREAD_K,
                   floor: float = TOLERANCE_FLOOR, min_seeds: int = MIN_SEEDS) -> list[Derived]:
    """Entries from measured seeds: ``row_values`` task -> metric -> values (one per seed).

    ``metrics``: metric keys checked on every task, or ``<task>:<metric>`` for one task only. A metric's spread
    is pooled over the tasks that check it (the root mean square of their seed standard deviations), since
    three seeds of one row can agree by chance: tolerance = max(k x pooled std, floor), rounded up to 0.1.
    Raises when a task has fewer than ``min_seeds`` values of a metric (fewer seeds say too little).
    """
    wanted: list[tuple[str, str]] = []
    for task in row_values:
        for metric in metrics:
            only, _, key = metric.rpartition(":")
            if not only or only == task:
                wanted.append((task, key))
    values: dict[tuple[str, str], list[float]] = {}
    for task, metric in wanted:
        got = [float(v) for v in row_values[task].get(metric, []) if v is not None]
        if len(got) < min_seeds:
            raise LtbenchError(f"{len(got)} measured value(s) of {metric}", key=task,
                               expected=f"at least {min_seeds} seeds in the store (snakemake ... --config seeds={min_seeds})")
        values[(task, metric)] = got
    pooled: dict[str, float] = {}
    for metric in dict.fromkeys(m for _, m in wanted):
        variances = [statistics.variance(v) for (_, m), v in values.items() if m == metric]
        pooled[metric] = math.sqrt(statistics.fmean(variances))
    out = []
    for (task, metric), got in values.items():
        tolerance = math.ceil(max(k * pooled[metric], floor) * 10 - 1e-9) / 10
        out.append(Derived(Entry(task, metric, round(statistics.fmean(got), 2), tolerance), tuple(got), pooled[metric]))
    return out


def derived_yaml(derived: list[Derived], *, scale: str, framework: str | None, header: str, k: float, floor: float) -> str:
    """The expected.yaml text of ``derived``, each entry's seeds in a comment beside it."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"# Tolerance = max({k:g} x the metric's seed standard deviation pooled over the tasks, {floor:g}), rounded up to 0.1.",
              f"scale: {scale}", f"framework: {framework or 'null'}", "entries:"]
    for d in derived:
        e = d.entry
        seeds = ", ".join(f"{v:.2f}" for v in d.values)
        lines.append(f"  - [{e.task}, {e.metric}, {e.expected:.2f}, {e.tolerance:.1f}]   # seeds {seeds} (std {d.std:.2f}, pooled {d.pooled_std:.2f})")
    return "\n".join(lines) + "\n"


def measured_values(expected_tasks: list[str], *, scale: str, framework: str | None, seeds: int | None,
                    results_dir: str | Path | None = None) -> dict[str, dict[str, list[float]]]:
    """task -> metric -> the store's values of that row, one per seed of the plan (``seeds`` per row)."""
    from ltbench.render.tables import read_store

    tables = list(dict.fromkeys(task_table(t) for t in expected_tasks if t.count("/") >= 2))
    served = _tasks_of_tables(tables, scale=scale, framework=framework, seeds=seeds)
    missing = [t for t in expected_tasks if t not in served]
    if missing:
        raise LtbenchError(f"no such row in the plan: {', '.join(missing)}", key="--task",
                           expected="<paper>/table<N>/<group>/<row id> of a reproduced table")
    store = read_store(results_dir)
    return {task: row_metrics(store, served[task]) for task in expected_tasks}
