"""Damaged records make their own record jobs run again, so that a table only ever shows what the store holds.

Snakemake regenerates a missing intermediate file only when a job after it has to run anyway, and never looks
inside a file: a deleted ``results/records/<run>/<view>.json`` left the tables "up to date" (and rendered from
whatever was left), and a truncated one was aggregated as if it were a result. The rules that read records
(collect, render_sensitivity, metrics, regression) name them through ``rebuild_damaged``: every record of the list
that is missing or does not parse (``ltbench.store.records.read_record``) has its record job forced in the DAG
being built, as ``--rerun-incomplete`` forces an incomplete file. Snakemake removes a forced job's old output
before it runs, so a corrupt record is replaced, and every job after it (collect, render) runs again.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from ltbench.workflow.paths import metrics_file

#: damaged records already reported by this process (input functions are evaluated more than once)
_REPORTED: set[str] = set()


def damaged_records(records: Iterable[str]) -> list[tuple[str, str]]:
    """``(path, problem)`` of each record file of ``records`` that is missing or cannot be used."""
    from ltbench.store.records import read_record

    out = []
    for path in records:
        _, problem = read_record(path)
        if problem:
            out.append((str(path), problem))
    return out


def rebuild_damaged(workflow, records: list[str], note: Callable[[str], None] | None = None) -> list[str]:
    """Force the record job of every missing or corrupt record of ``records`` in the DAG ``workflow`` is building
    (from a rule's input function); returns ``records``. A record that was never made is forced silently (it has to
    be made anyway); a corrupt one, or a missing one whose evaluation is still there (deleted), is reported."""
    note = note or (lambda text: print(text, file=sys.stderr, flush=True))
    damaged = damaged_records(records)
    if not damaged:
        return records
    forced = getattr(getattr(workflow, "dag", None), "forcefiles", None)
    for path, problem in damaged:
        if forced is not None:
            forced.add(path)
        run_id, view_id = Path(path).parent.name, Path(path).stem
        evaluated = Path(metrics_file(run_id, view_id)).is_file()
        if (problem == "missing" and not evaluated) or path in _REPORTED:
            continue
        _REPORTED.add(path)
        why = f"missing (its evaluation {metrics_file(run_id, view_id)} is there)" if problem == "missing" else f"corrupt ({problem})"
        then = "its record job runs again" if forced is not None else f"rebuild it: snakemake --forcerun {path} -- <target>"
        note(f"ltbench: the record {path} is {why}: {then}")
    return records
