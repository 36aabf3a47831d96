"""What the Snakefile asks the package: runs, views and their dependencies, per target.

The Snakefile stays declarative; every decision (which records a table needs, a run's stage-1 run, which
views a table's rows read) is made here, from ``ltbench.plan``, and tested in Python. Paths:
``ltbench.workflow.paths``; SLURM resources: ``ltbench.workflow.resources``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean

from ltbench.workflow.paths import ID_PATTERN, record_file, top_k_dir, train_done  # noqa: F401  (re-exported)

PAPERS = ("pcb", "disalign", "bags", "simcal")
TABLE_TARGET = re.compile(r"^(?:tables/)?(?P<paper>[a-z0-9]+)_table(?P<table>[0-9A-Za-z]+(?:\.[0-9]+)?)(?:\.md|\.tex)?$")
PAPER_TARGET = re.compile(r"^(?:tables/)?(?P<paper>[a-z0-9]+)(?:\.md)?$")


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


@dataclass
class RunInfo:
    run_id: str
    config: dict[str, Any]
    gpu_hours: float | None = None
    cpu_hours: float | None = None
    views: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def stage1(self) -> str | None:
        return self.config.get("stage1")

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset"))


class WorkflowPlan:
    """The plan seen from the workflow: runs with their views, indexed by id.

    Built from ``ltbench.plan.build_plan`` for the configured papers; ``table_pairs`` re-plans just one
    table (so a table target needs exactly its own runs).
    """

    def __init__(self, plan: Any, *, scale: str, framework: str | None, papers: Sequence[str],
                 seeds: int | None = None) -> None:
        self.scale = scale
        self.framework = framework
        self.seeds = seeds  # None: the specs' seeds; N: N seeds for every row (config `seeds`)
        self.papers = list(papers)
        self.runs: dict[str, RunInfo] = {}
        self.view_bins: dict[tuple[str, str], str | None] = {}
        self.view_iou_types: dict[tuple[str, str], list[str]] = {}
        self._absorb(plan)

    @classmethod
    def build(cls, *, scale: str, framework: str | None = None, papers: Sequence[str] = PAPERS,
              seeds: int | None = None) -> WorkflowPlan:
        from ltbench.plan import build_plan

        plan = build_plan(papers=list(papers), scale=scale, framework=framework, seeds=seeds)
        return cls(plan, scale=scale, framework=framework, papers=papers, seeds=seeds)

    def _absorb(self, plan: Any) -> list[tuple[str, str]]:
        """Index a plan's runs and views; returns its (run, view) pairs in plan order."""
        for run_id, run_plan in (_get(plan, "runs") or {}).items():
            config = dict(_get(run_plan, "config") or {})
            if run_id not in self.runs:
                self.runs[run_id] = RunInfo(run_id, config, _get(run_plan, "gpu_hours"), _get(run_plan, "cpu_hours"))
        pairs: list[tuple[str, str]] = []
        for view in _get(plan, "views") or []:
            run_id, view_id = _get(view, "run_id"), _get(view, "view_id")
            if run_id not in self.runs:
                raise LtbenchError(f"the plan has a view {view_id!r} of unknown run {run_id!r}", expected="every view's run in plan.runs")
            self.runs[run_id].views.setdefault(view_id, dict(_get(view, "view_config") or {"id": view_id}))
            self.view_bins.setdefault((run_id, view_id), _get(view, "bins"))
            self.view_iou_types.setdefault((run_id, view_id), list(_get(view, "iou_types") or ["bbox", "segm"]))
            pairs.append((run_id, view_id))
        return list(dict.fromkeys(pairs))

    # --- lookups -----------------------------------------------------------------------------------
    def run(self, run_id: str) -> RunInfo:
        try:
            return self.runs[run_id]
        except KeyError:
            raise LtbenchError(
                f"run {run_id!r} is not in the plan (scale {self.scale}, framework {self.framework or 'per spec'})"
                + did_you_mean(run_id, self.runs),
                expected="a run id printed by `ltbench plan`",
                hint="a changed spec or scale changes run ids; re-plan with `ltbench plan`",
            ) from None

    def view(self, run_id: str, view_id: str) -> dict[str, Any]:
        views = self.run(run_id).views
        if view_id not in views:
            raise LtbenchError(f"run {run_id!r} has no view {view_id!r}" + did_you_mean(view_id, views), expected="one of " + ", ".join(views))
        return views[view_id]

    def stage1_inputs(self, run_id: str) -> list[str]:
        """Markers of the runs this one starts from: its stage-1 run, and a run it is initialised from."""
        config = self.run(run_id).config
        parents = [p for p in (config.get("stage1"), config.get("init_from")) if p]
        return [train_done(p) for p in dict.fromkeys(parents)]

    def bins(self, run_id: str, view_id: str) -> str | None:
        """The ``ltbench evaluate --bins`` scheme of a (run, view) (None: the evaluator's default)."""
        return self.view_bins.get((run_id, view_id))

    def iou_types(self, run_id: str, view_id: str) -> str:
        """``ltbench evaluate --iou-types`` of a (run, view): what its columns need and its detector produces
        (``bbox`` alone for Faster / Cascade R-CNN), as the planner set it."""
        return ",".join(self.view_iou_types.get((run_id, view_id)) or ["bbox", "segm"])

    def all_pairs(self) -> list[tuple[str, str]]:
        return [(r, v) for r, info in self.runs.items() for v in info.views]

    # --- targets ------------------------------------------------------------------------------------
    def table_pairs(self, paper: str, table: str, *, framework: str | None = None) -> list[tuple[str, str]]:
        """(run, view) pairs of one table; ``framework`` replans it through that framework (sensitivity
        tables: each framework's runs are separate runs, indexed here so the train rules find them)."""
        from ltbench.plan import build_plan

        plan = build_plan(targets=[f"tables/{paper}_table{table}.md"], scale=self.scale,
                          framework=framework or self.framework, seeds=self.seeds)
        return self._absorb(plan)

    def paper_pairs(self, paper: str) -> list[tuple[str, str]]:
        from ltbench.plan import build_plan

        plan = build_plan(papers=[paper], scale=self.scale, framework=self.framework, seeds=self.seeds)
        return self._absorb(plan)

    # --- resources ------------------------------------------------------------------------------------
    def train_resources(self, run_id: str, slurm: dict[str, Any], training: dict[str, Any] | None = None) -> dict[str, Any]:
        """SLURM resources of a training job, from the plan's cost model (GPU-hours at paper scale)."""
        from ltbench.workflow.resources import train_resources

        return train_resources(self.run(run_id), self.scale, slurm, training)

    def train_launch(self, run_id: str, slurm: dict[str, Any], training: dict[str, Any] | None = None) -> Any:
        """Ranks, launcher and nodes of a training job (``ltbench.workflow.resources.train_launch``)."""
        from ltbench.workflow.resources import train_launch

        return train_launch(self.run(run_id), self.scale, slurm, training)


def export_extra_columns(keys: Sequence[str], environ: MutableMapping[str, str]) -> tuple[str, ...]:
    """Validate the workflow config's ``extra_columns`` and put them in ``environ`` for the spec loader
    (this process and every job it starts); returns them. An empty list clears the variable."""
    from ltbench.spec import extra_columns

    parsed = extra_columns.parse(keys, where="workflow config")
    if parsed:
        environ[extra_columns.EXTRA_COLUMNS_ENV] = ",".join(parsed)
    else:
        environ.pop(extra_columns.EXTRA_COLUMNS_ENV, None)
    return parsed


def export_results_dir(results: str, environ: MutableMapping[str, str]) -> str:
    """Point every ltbench command this workflow runs (in ``environ``, inherited by its jobs) at the working
    directory's ``results`` store (``ltbench.paths.results_dir``); returns the absolute path."""
    import os

    environ["LTBENCH_RESULTS"] = os.path.abspath(results)
    return environ["LTBENCH_RESULTS"]


def ap_fixed_k(view: dict[str, Any], always: bool = False, scale: str = "smoke") -> int | None:
    """Detections per class of a view's AP-fixed prediction: the planned ``ap_fixed: {k}`` (tables with an
    AP-fixed / AP-pool column), else the scale's budget for every view when ``always`` (workflow config
    ``ap_fixed: true``), else None (no second prediction)."""
    from ltbench.plan import scales

    request = view.get("ap_fixed")
    if isinstance(request, dict):
        return int(request.get("k", scales.AP_FIXED_DETS_PER_CLASS))
    return scales.ap_fixed_k(scale) if always else None


def prediction_view(view: dict[str, Any]) -> dict[str, Any]:
    """The view config the adapters predict for the view's own detections (without the AP-fixed request,
    which only adds the second prediction of ``top_k_view``)."""
    return {key: value for key, value in view.items() if key != "ap_fixed"}


def top_k_view(view: dict[str, Any], k: int) -> dict[str, Any]:
    """The per-class top-k variant of ``view`` that the adapters predict for AP-fixed (no per-image cap)."""
    out = prediction_view(view)
    out["detections"] = {"mode": "per_class_top_k", "k": int(k)}
    out["id"] = top_k_view_id(str(view.get("id", "plain")))
    return out


def top_k_view_id(view_id: str) -> str:
    return f"{view_id}-topk"


def evaluate_ap_fixed_args(view: dict[str, Any], detections: str, always: bool = False, scale: str = "smoke") -> str:
    """``ltbench evaluate`` flags for AP-fixed / AP-pool: computed on ``detections`` (the view's per-class
    top-k prediction) while the standard metrics stay on the view's capped detections; "" without AP-fixed."""
    k = ap_fixed_k(view, always, scale)
    return "" if k is None else f"--ap-fixed-detections {detections} --dets-per-class {k}"


def parent_workdir_args(config: dict[str, Any], work: str) -> str:
    """``ltbench train`` flags for the runs a run starts from: its stage-1 run, a run it is initialised from."""
    args = []
    if config.get("stage1"):
        args.append(f"--stage1-workdir {work}/{config['stage1']}")
    if config.get("init_from"):
        args.append(f"--init-workdir {work}/{config['init_from']}")
    return " ".join(args)


def without_failed(pairs: Sequence[tuple[str, str]], results_dir: str) -> list[tuple[str, str]]:
    """``pairs`` minus those with a failure note (their run's training, or the view's step, failed)."""
    from ltbench.store.records import load_failures

    failed = {(f.run_id, f.view_id) for f in load_failures(results_dir)}
    return [(r, v) for r, v in pairs if (r, None) not in failed and (r, v) not in failed]


def parse_table_target(target: str) -> tuple[str, str]:
    match = TABLE_TARGET.match(target)
    if not match or match.group("paper") not in PAPERS:
        raise LtbenchError(f"not a table target: {target!r}", expected="tables/<paper>_table<N>.md with paper in " + ", ".join(PAPERS))
    return match.group("paper"), match.group("table")


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class RowServe:
    """How the plan serves one spec row: its (run, view) pairs (one per seed), status and reason, and the
    assumptions the plan lists on it (the spec's and the harness ones, ``scales.HARNESS_ASSUMPTIONS``)."""

    pairs: tuple[tuple[str, str], ...]
    status: str  # planned | served | reported_only | not_reproducible | out_of_scope | ...
    reason: str = ""
    assumptions: tuple[str, ...] = ()


def row_pairs(paper: str, table: str, *, scale: str, framework: str | None, plan: Any = None,
              seeds: int | None = None) -> dict[tuple[str, str], RowServe]:
    """(column group id, row id) -> how the plan serves that row of ``paper`` table ``table``.

    ``plan``: an already built plan that contains the table (else it is built for just this table).
    """
    from ltbench.plan import build_plan

    if plan is None:
        plan = build_plan(targets=[f"tables/{paper}_table{table}.md"], scale=scale, framework=framework, seeds=seeds)
    out: dict[tuple[str, str], RowServe] = {}
    for row in plan.rows:
        if row.paper != paper or str(row.table) != str(table):
            continue
        pairs = tuple((run_id, row.view_id) for run_id in row.run_ids) if row.view_id else ()
        out[(row.group, row.row_id)] = RowServe(pairs, row.status, row.reason, tuple(row.assumptions))
    return out


def stage1_of(*, scale: str, framework: str | None, papers: Sequence[str], plan: Any = None) -> dict[str, str | None]:
    """run id -> its stage-1 run id (None for single-stage runs)."""
    from ltbench.plan import build_plan

    if plan is None:
        plan = build_plan(papers=list(papers), scale=scale, framework=framework)
    return {run_id: (_get(rp, "config") or {}).get("stage1") for run_id, rp in (_get(plan, "runs") or {}).items()}
