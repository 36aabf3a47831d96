"""CI regression check: smoke metrics against committed expected values (detectron2 style).

``workflows/regression/expected.yaml``::

    scale: smoke
    framework: torchvision
    entries:               # [task, metric, expected, tolerance]; task = a spec row reference
      - [pcb/table2/v0.5/softmax, segm.AP, 1.23, 0.5]

A task names a spec row (``<paper>/table<N>[/<group>]/<row id>``, the row's ``ref``); its value is the
row's measured metric (mean over seeds). An entry fails when the record is missing or
``|measured - expected| > tolerance``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench import io
from ltbench.errors import LtbenchError


@dataclass(frozen=True)
class Entry:
    task: str
    metric: str
    expected: float
    tolerance: float

    @property
    def paper_table(self) -> tuple[str, str]:
        parts = self.task.split("/")
        return parts[0], parts[1].removeprefix("table")


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


def task_pairs(expected: Expected, *, scale: str, framework: str | None) -> dict[str, list[tuple[str, str]]]:
    """task -> the (run, view) pairs that serve its row (only the rows the entries name)."""
    from ltbench.workflow import row_pairs

    out: dict[str, list[tuple[str, str]]] = {}
    for paper, table in expected.tables():
        served = row_pairs(paper, table, scale=scale, framework=framework or expected.framework)
        row_ids = [row_id for _, row_id in served]
        for (group, row_id), serve in served.items():
            out[f"{paper}/table{table}/{group}/{row_id}"] = list(serve.pairs)
            if row_ids.count(row_id) == 1:  # single-group tables: <paper>/table<N>/<row id> works too
                out[f"{paper}/table{table}/{row_id}"] = list(serve.pairs)
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
        metrics: dict[str, list[Any]] = {}
        for pair in pairs:
            for key, value in store.results.get(pair, {}).items():
                metrics.setdefault(key, []).append(value)
        row_values[task] = metrics
    return evaluate_entries(expected, row_values)
