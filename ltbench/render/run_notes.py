"""Notes a table prints about single runs of a cell: what a run's record says went differently from its config.

Today one kind: a "+ PCB" run whose regulariser never turned on (done.json ``training.pcb.regularised_iterations``
is 0). PCB's official gate waits until every class has been sampled as a foreground RoI; at mini scale a class with
one training instance can miss all of a run's RoI draws, and that run is then the recurrent head without PCB's loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def pcb_never_on_note(statistics: Mapping[str, Any]) -> str:
    """The note for a PCB run whose regulariser never turned on, from its ``training.pcb`` statistics."""
    unseen = list(statistics.get("classes_never_seen") or [])
    if unseen:
        why = (f"categor{'y' if len(unseen) == 1 else 'ies'} {', '.join(map(str, unseen))} never sampled as a foreground RoI "
               "(the official gate waits for every class)")
    else:
        why = "its gate never opened"
    return f"PCB's regulariser never turned on: {why}; the run is the recurrent head without PCB's loss"


def run_notes(records: Mapping[tuple[str, str], Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(run id, view id) -> notes on that run, from its record (``seed <n>: ...``)."""
    out: dict[tuple[str, str], list[str]] = {}
    for pair, record in records.items():
        training = ((record.get("train") or {}).get("training")) or {}
        pcb = training.get("pcb")
        if isinstance(pcb, Mapping) and pcb.get("regularised_iterations") == 0:
            out.setdefault(pair, []).append(f"seed {record.get('seed', '?')}: {pcb_never_on_note(pcb)}")
    return out
