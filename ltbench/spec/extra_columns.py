"""Extra metric columns on every reproduced table: the column option of issue 8 (AP-fixed / AP-pool).

The workflow config ``extra_columns: [segm.APfixed, segm.APpool]`` (or, for direct ``ltbench`` calls, the
environment variable ``LTBENCH_EXTRA_COLUMNS=segm.APfixed,segm.APpool``) appends those columns to every
column group of every reproduced table wherever specs are loaded. Everything downstream follows from the
spec: the planner asks the adapters for per-class top-k detections when a table has an AP-fixed/AP-pool
column (a second, per-class top-k prediction beside the view's own), the workflow evaluates AP-fixed on it
with ``--ap-fixed-detections``, and the tables render the measured values (the papers
print none, so those cells have no reported value and no verdict).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean
from ltbench.spec import vocab
from ltbench.spec.model import Column, PaperSpec

EXTRA_COLUMNS_ENV = "LTBENCH_EXTRA_COLUMNS"


def parse(keys: str | Iterable[str], where: str = f"${EXTRA_COLUMNS_ENV}") -> tuple[str, ...]:
    """Canonical metric keys from a comma-separated string or a list; unknown keys are an error."""
    items = keys.split(",") if isinstance(keys, str) else list(keys)
    out: list[str] = []
    for item in items:
        key = str(item).strip()
        if not key:
            continue
        if key not in vocab.METRIC_KEYS:
            raise LtbenchError(f"unknown metric key {key!r}{did_you_mean(key, vocab.METRIC_KEYS)}", path=where,
                               key="extra_columns", expected="canonical metric keys, e.g. segm.APfixed,segm.APpool")
        if key not in out:
            out.append(key)
    return tuple(out)


def from_env() -> tuple[str, ...]:
    return parse(os.environ.get(EXTRA_COLUMNS_ENV, ""))


def apply(spec: PaperSpec, keys: Iterable[str]) -> PaperSpec:
    """A copy of ``spec`` whose reproduced tables carry ``keys`` as extra columns in every column group
    (a group that already has a key keeps its own column; a ``segm.*`` key is left out of a group with a
    box-only detector's row, which has no masks to evaluate); ``spec`` itself when ``keys`` is empty."""
    keys = tuple(keys)
    if not keys:
        return spec
    spec = copy.deepcopy(spec)
    for table in spec.tables:
        if table.scope != "reproduce":
            continue
        for group in table.column_groups:
            present = {c.key for c in group.columns}
            masks = _group_has_masks(spec, table, group.id)
            group.columns.extend(Column(header=key, key=key) for key in keys
                                 if key not in present and (masks or not key.startswith("segm.")))
    return spec


def _group_has_masks(spec: PaperSpec, table: Any, group_id: str) -> bool:
    """Whether every row of a column group runs a detector that predicts masks."""
    for row in table.rows:
        if row.group.id != group_id:
            continue
        try:
            detector = spec.row_run(row).get("detector")
        except LtbenchError:
            continue
        if detector in vocab.DETECTORS and detector not in vocab.MASK_DETECTORS:
            return False
    return True
