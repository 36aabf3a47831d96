"""What a plan is made of: ``RunPlan`` (one training run), ``ViewPlan`` (one way of reading it), ``PlanRow``
(a table row and how it is produced) and ``Plan`` (all of them, with the text/JSON views of a plan).
Built by ``ltbench.plan.planner.build_plan``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean
from ltbench.plan import scales

PLANNED, SERVED, REPORTED_ONLY, NOT_REPRODUCIBLE = "planned", "served", "reported_only", "not_reproducible"


@dataclass
class RunPlan:
    """One training run: its resolved config, the table cells that use it, its estimated cost."""

    config: dict[str, Any]
    cells: list[dict[str, Any]] = field(default_factory=list)
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0

    @property
    def id(self) -> str:
        return self.config["id"]

    @property
    def stage1(self) -> str | None:
        return self.config.get("stage1")

    @property
    def init_from(self) -> str | None:
        """The run whose final checkpoint initialises this one (``pretrain: {from: ...}``), if any."""
        return self.config.get("init_from")

    @property
    def tables(self) -> list[str]:
        return sorted({f"{c['paper']}/{c['table']}" for c in self.cells}, key=_table_sort_key)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "stage1": self.stage1, "init_from": self.init_from, "gpu_hours": self.gpu_hours, "cpu_hours": self.cpu_hours,
                "tables": self.tables, "cells": self.cells, "config": self.config}


@dataclass
class ViewPlan:
    run_id: str
    view_id: str
    view_config: dict[str, Any]
    cells: list[dict[str, Any]] = field(default_factory=list)
    instance_bins: list[int] | None = None  # training-instance edges of AP1..AP4 for this evaluation
    # IoU types the columns reading this view need (bbox/segm), and those it is evaluated for: the needed
    # ones the run's detector produces (set by the planner; bbox alone where no column needs either)
    needed_iou_types: list[str] = field(default_factory=list)
    iou_types: list[str] = field(default_factory=lambda: ["bbox", "segm"])

    @property
    def bins(self) -> str | None:
        """The ``ltbench evaluate --bins`` scheme of ``instance_bins`` (None: edges it has no scheme for)."""
        return scales.BIN_SCHEMES.get(tuple(self.instance_bins or scales.DEFAULT_INSTANCE_BINS))

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "view_id": self.view_id, "view_config": self.view_config, "cells": self.cells,
                "instance_bins": self.instance_bins, "bins": self.bins, "iou_types": self.iou_types}


@dataclass
class PlanRow:
    """A table row and how it is produced."""

    paper: str
    table: str
    row_id: str
    label: str
    group: str
    status: str  # planned | served | reported_only | not_reproducible | out_of_scope | qualitative | statistics
    run_ids: list[str]
    view_id: str | None
    cells: dict[str, str]  # metric key -> printed value
    cited: dict[str, Any] | None = None
    served_by: str | None = None
    reason: str = ""
    assumptions: list[str] = field(default_factory=list)
    seed_aggregate: dict[str, Any] = field(default_factory=lambda: {"rule": "mean"})
    instance_bins: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "paper", "table", "row_id", "label", "group", "status", "run_ids", "view_id", "cells", "cited",
            "served_by", "reason", "assumptions", "seed_aggregate", "instance_bins")}


def _table_sort_key(ref: str) -> tuple[str, int, str]:
    paper, _, table = ref.partition("/")
    return (paper, int(table) if table.isdigit() else 10**6, table)


@dataclass
class Plan:
    scale: str
    framework: str | None
    targets: list[str]
    papers: list[str]
    rows: list[PlanRow] = field(default_factory=list)
    seeds: int | None = None  # the seeds override (None: each row's spec seeds)
    runs: dict[str, RunPlan] = field(default_factory=dict)
    views: list[ViewPlan] = field(default_factory=list)

    # ---- summaries ------------------------------------------------------------------------------
    @property
    def gpu_hours(self) -> float:
        return round(sum(r.gpu_hours for r in self.runs.values()), 1)

    @property
    def cpu_hours(self) -> float:
        return round(sum(r.cpu_hours for r in self.runs.values()), 3)

    def view(self, run_id_: str, view_id_: str) -> ViewPlan:
        for v in self.views:
            if v.run_id == run_id_ and v.view_id == view_id_:
                return v
        known = [v.view_id for v in self.views if v.run_id == run_id_]
        if not known:
            raise LtbenchError(f"run {run_id_!r} is not in the plan{did_you_mean(run_id_, self.runs)}",
                               key="--emit-view", expected="a run id from `ltbench plan --format json`")
        raise LtbenchError(f"run {run_id_!r} has no view {view_id_!r}{did_you_mean(view_id_, known)}",
                           key="--emit-view", expected="one of " + ", ".join(known))

    def run(self, run_id_: str) -> RunPlan:
        if run_id_ not in self.runs:
            raise LtbenchError(f"run {run_id_!r} is not in the plan{did_you_mean(run_id_, self.runs)}",
                               key="--emit-run", expected="a run id from `ltbench plan --format json` "
                               "(same --scale/--framework)")
        return self.runs[run_id_]

    def shared_runs(self) -> list[RunPlan]:
        """Runs used by more than one table (the point of deduplication)."""
        return [r for r in self.runs.values() if len(r.tables) > 1]

    def counts(self) -> dict[str, int]:
        status = [r.status for r in self.rows]
        return {
            "rows": len(self.rows),
            "cited_rows": sum(1 for r in self.rows if r.cited),
            "served_cited_rows": status.count(SERVED),
            "reproduced_cited_rows": sum(1 for r in self.rows if r.cited and r.cited.get("reproduce")),
            "reported_only_rows": status.count(REPORTED_ONLY),
            "not_planned_rows": sum(1 for s in status if s not in (PLANNED, SERVED, REPORTED_ONLY)),
            "runs": len(self.runs),
            "stage2_runs": sum(1 for r in self.runs.values() if r.stage1),
            "views": len(self.views),
        }

    def tables_index(self) -> dict[str, dict[str, Any]]:
        """``paper/table`` -> the runs and (run, view) pairs its rows need."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            entry = out.setdefault(f"{row.paper}/{row.table}", {"runs": [], "views": [], "gpu_hours": 0.0, "cpu_hours": 0.0})
            for rid in row.run_ids:
                for dep in self._with_dependencies(rid):
                    if dep not in entry["runs"]:
                        entry["runs"].append(dep)
                if row.view_id and [rid, row.view_id] not in entry["views"]:
                    entry["views"].append([rid, row.view_id])
        for entry in out.values():  # what rendering this table alone would cost (shared runs counted in full)
            entry["gpu_hours"] = round(sum(self.runs[r].gpu_hours for r in entry["runs"]), 1)
            entry["cpu_hours"] = round(sum(self.runs[r].cpu_hours for r in entry["runs"]), 3)
        return out

    def _with_dependencies(self, rid: str) -> list[str]:
        """``rid`` after every run it needs (stage-1 runs, pretrain sources), dependencies first."""
        out: list[str] = []

        def visit(run_id_: str) -> None:
            config = self.runs[run_id_].config
            for parent in (config.get("init_from"), config.get("stage1")):
                if parent is not None and parent not in out:
                    visit(parent)
            if run_id_ not in out:
                out.append(run_id_)

        visit(rid)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": self.scale, "framework": self.framework, "seeds": self.seeds, "targets": self.targets,
            "papers": self.papers, **self.counts(), "gpu_hours": self.gpu_hours, "cpu_hours": self.cpu_hours,
            "run_list": [r.to_json() for r in self.runs.values()],
            "view_list": [v.to_json() for v in self.views],
            "row_list": [r.to_json() for r in self.rows],
            "tables": self.tables_index(),
            "shared_runs": [{"id": r.id, "tables": r.tables} for r in self.shared_runs()],
        }


# ---- selection ----------------------------------------------------------------------------------
