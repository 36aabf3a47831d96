"""Regression check: mini-scale metrics against committed expected values (detectron2 style).

``workflows/regression/expected.yaml``::

    scale: mini
    framework: torchvision
    entries:               # [task, metric, expected, tolerance]; task = a spec row reference
      - [pcb/table2/v1.0/softmax, segm.AP, 26.2, 3.1]

A task names a spec row (``<paper>/table<N>[/<group>]/<row id>``, the row's ``ref``); its value is the
row's measured metric (mean over the seeds checked: the check runs one). An entry fails when the record is
missing or ``|measured - expected| > tolerance``.

``derive_entries`` makes the entries from measured seeds of each task: expected = their mean, tolerance =
max(k x the larger of the entry's standard deviation and the metric's pooled over the tasks, floor), rounded up
to 0.1, so that one seed on another machine passes and a broken method (a sampler off, a flipped background
index, a wrong target) fails.

Another machine is another model: another CPU (another vendor, or other vector instructions) trains the mini backbone to other bits
(held-out accuracy 0.765, 0.785 or 0.853 from the same recipe and seed), and every mini number moves with it.
So the seeds behind the entries come from several machines, kept in ``workflows/regression/measured.yaml``
(``load_measured``): one block per machine with its CPU, its backbone and each task's seed values; the spread
the tolerance is taken from is over every machine's seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
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
    context: str = ""  # this machine and the machines of the expected values (``machines_line``)

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
        context = f"{self.context}\n\n" if self.context else ""
        return f"# Regression check\n\n{context}{table}\n\n{passed}/{len(self.outcomes)} entries within tolerance.\n"


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


#: derive_entries' defaults: tolerance = max(SPREAD_K x max(entry std, pooled std), TOLERANCE_FLOOR)
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


def wanted_pairs(tasks: list[str], metrics: list[str]) -> list[tuple[str, str]]:
    """(task, metric) pairs of ``metrics``: keys checked on every task, or ``<task>:<metric>`` for one task only."""
    wanted: list[tuple[str, str]] = []
    for task in tasks:
        for metric in metrics:
            only, _, key = metric.rpartition(":")
            if not only or only == task:
                wanted.append((task, key))
    return wanted


def select_metrics(row_values: dict[str, dict[str, list[float]]], metrics: list[str]) -> dict[str, dict[str, list[float]]]:
    """``row_values`` reduced to the (task, metric) pairs of ``metrics`` that were measured."""
    out: dict[str, dict[str, list[float]]] = {}
    for task, metric in wanted_pairs(list(row_values), metrics):
        got = row_values[task].get(metric)
        if got:
            out.setdefault(task, {})[metric] = list(got)
    return out


def derive_entries(row_values: dict[str, dict[str, list[float]]], metrics: list[str], *, k: float = SPREAD_K,
                   floor: float = TOLERANCE_FLOOR, min_seeds: int = MIN_SEEDS) -> list[Derived]:
    """Entries from measured seeds: ``row_values`` task -> metric -> values (one per seed).

    ``metrics``: metric keys checked on every task, or ``<task>:<metric>`` for one task only. A metric's spread
    is pooled over the tasks that check it (the root mean square of their seed standard deviations), since
    three seeds of one row can agree by chance; a row that spreads more than the pool keeps its own (Softmax + PCB,
    whose regulariser turns on in some seeds and not in others): tolerance = max(k x max(std, pooled std), floor),
    rounded up to 0.1.
    Raises when a task has fewer than ``min_seeds`` values of a metric (fewer seeds say too little).
    """
    wanted = wanted_pairs(list(row_values), metrics)
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
        spread = max(statistics.stdev(got), pooled[metric])
        tolerance = math.ceil(max(k * spread, floor) * 10 - 1e-9) / 10
        out.append(Derived(Entry(task, metric, round(statistics.fmean(got), 2), tolerance), tuple(got), pooled[metric]))
    return out


def derived_yaml(derived: list[Derived], *, scale: str, framework: str | None, header: str, k: float, floor: float,
                 machines: list[Machine] | None = None) -> str:
    """The expected.yaml text of ``derived``, each entry's seeds in a comment beside it (per machine, labelled,
    when the values come from ``machines``)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    over = "every machine's seeds" if machines and len(machines) > 1 else "the seeds"
    lines += [f"# Tolerance = max({k:g} x the larger of the entry's standard deviation over {over} and the metric's pooled over the "
              f"tasks, {floor:g}), rounded up to 0.1.",
              f"scale: {scale}", f"framework: {framework or 'null'}", "entries:"]
    for d in derived:
        e = d.entry
        if machines:
            seeds = "; ".join(f"{m.label} " + ", ".join(f"{v:.2f}" for v in m.values.get(e.task, {}).get(e.metric, []))
                              for m in machines if m.values.get(e.task, {}).get(e.metric))
        else:
            seeds = "seeds " + ", ".join(f"{v:.2f}" for v in d.values)
        lines.append(f"  - [{e.task}, {e.metric}, {e.expected:.2f}, {e.tolerance:.1f}]   # {seeds} (std {d.std:.2f}, pooled {d.pooled_std:.2f})")
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


# --- the seeds behind expected.yaml, per machine (workflows/regression/measured.yaml) ------------------------------

@dataclass
class Machine:
    """One machine's measurements: ``values`` task -> metric -> one value per seed; ``about``: what it was (CPU,
    torch's CPU capability, the mini backbone's sha256 and held-out accuracy, where the values came from)."""

    label: str
    about: dict[str, Any]
    values: dict[str, dict[str, list[float]]]


def load_measured(path: str | Path, *, scale: str | None = None) -> list[Machine]:
    """The machines of a measured.yaml (``scale``, ``framework``, ``machines: {label: {about: {...}, values:
    {task: {metric: [numbers]}}}}``), in file order; a missing file has none. ``scale``: the scale it must be of."""
    p = Path(path)
    if not p.exists():
        return []
    doc = io.read_yaml(p)
    if scale is not None and isinstance(doc, dict) and doc.get("scale") != scale:
        raise LtbenchError(f"measured at scale {doc.get('scale')!r}", path=p, key="scale", expected=f"scale {scale!r}")
    machines = doc.get("machines") if isinstance(doc, dict) else None
    if not isinstance(machines, dict):
        raise LtbenchError("no 'machines' mapping", path=p, key="machines",
                           expected="machines: {<label>: {about: {...}, values: {<task>: {<metric>: [numbers]}}}}")
    out = []
    for label, block in machines.items():
        values = block.get("values") if isinstance(block, dict) else None
        if not isinstance(values, dict):
            raise LtbenchError("no 'values' mapping", path=p, key=["machines", label, "values"],
                               expected="values: {<task>: {<metric>: [numbers, one per seed]}}")
        for task, metrics in values.items():
            for metric, got in (metrics or {}).items() if isinstance(metrics, dict) else [(None, None)]:
                if not (isinstance(got, list) and got and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in got)):
                    raise LtbenchError(f"bad values {got!r}", path=p, key=["machines", label, "values", task, metric],
                                       expected="a non-empty list of numbers, one per seed")
        out.append(Machine(str(label), dict(block.get("about") or {}), {t: {m: [float(v) for v in vs] for m, vs in ms.items()}
                                                                       for t, ms in values.items()}))
    return out


def measured_yaml(machines: list[Machine], *, scale: str, framework: str | None, header: str) -> str:
    """The measured.yaml text of ``machines`` (values with 3 decimals)."""
    import yaml

    doc = {"scale": scale, "framework": framework,
           "machines": {m.label: {"about": m.about, "values": {t: {k: [round(v, 3) for v in vs] for k, vs in ms.items()}
                                                             for t, ms in m.values.items()}} for m in machines}}
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)
    return "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines()) + text


def with_machine(machines: list[Machine], machine: Machine) -> list[Machine]:
    """``machines`` with ``machine`` in place of the block of the same label (else appended)."""
    out = [m for m in machines if m.label != machine.label]
    at = next((i for i, m in enumerate(machines) if m.label == machine.label), len(out))
    return out[:at] + [machine] + out[at:]


def pooled_values(machines: list[Machine]) -> dict[str, dict[str, list[float]]]:
    """task -> metric -> every machine's seed values, machine by machine (the entries' spread is over all of them)."""
    out: dict[str, dict[str, list[float]]] = {}
    for m in machines:
        for task, metrics in m.values.items():
            for metric, got in metrics.items():
                out.setdefault(task, {}).setdefault(metric, []).extend(got)
    return out


#: the datasets whose mini backbone identifies a machine's measurements (the first one found)
BACKBONE_DATASETS = ("lvis_v1", "lvis_v0.5")


def this_machine(scale: str, datasets: Sequence[str] = BACKBONE_DATASETS) -> dict[str, Any]:
    """What identifies this machine's measurements: CPU model, torch and its CPU capability (the vector
    instructions its kernels use), and the mini backbone of ``datasets`` (sha256, held-out accuracy)."""
    import platform

    import torch

    about: dict[str, Any] = {"cpu": _cpu_model() or platform.processor() or "unknown", "torch": str(torch.__version__),
                             "cpu_capability": str(torch.backends.cpu.get_cpu_capability())}
    if scale == "mini":
        from ltbench.data.datasets import backbone_dir

        for dataset in datasets:
            marker = Path(backbone_dir(dataset, scale)[0]) / "backbone.json"
            if marker.exists():
                doc = io.read_json(marker)
                about["backbone"] = {"sha256": doc.get("sha256"), "held_out_accuracy": doc.get("held_out_accuracy")}
                break
    return about


def _describe(about: dict[str, Any], *, cpu: bool = False) -> str:
    backbone = about.get("backbone") or {}
    # the CPU model too: one capability (AVX512) on two vendors' CPUs trained two different mini backbones
    parts = [str(about["cpu"])] if cpu and about.get("cpu") else []
    parts.append(str(about.get("cpu_capability", "?")))
    if backbone.get("held_out_accuracy") is not None:
        parts.append(f"backbone held-out accuracy {backbone['held_out_accuracy']}")
    return ", ".join(parts)


def machines_line(here: dict[str, Any], machines: list[Machine]) -> str:
    """One line for the report: this machine (CPU capability, mini backbone) and the machines behind the entries."""
    cpu = f"{here.get('cpu', '?')}, torch CPU capability " if here.get("cpu") else "torch CPU capability "
    line = f"Measured on: {cpu}{_describe(here)}."
    if machines:
        line += " Expected values from " + "; ".join(f"{m.label} ({_describe(m.about, cpu=True)})" for m in machines) + \
                " (workflows/regression/measured.yaml)."
    return line


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
