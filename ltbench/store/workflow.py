"""What the Snakefile asks the package: runs, views, their dependencies and resources, per target.

The Snakefile stays declarative; every decision (which records a table needs, a run's stage-1 run, how
many GPUs and minutes a job asks SLURM for) is made here, from ``ltbench.plan``, and tested in Python.

Paths (relative to the working directory, which Snakemake sets to the repository root):

    results/runs/<run>/run.json                 resolved run config (from the plan)
    results/runs/<run>/views/<view>.json        resolved view config
    results/runs/<run>/train.done               small marker: copy of the adapter's done.json
    work/<run>/                                 checkpoints (NEVER a declared output: a failed job's
                                                outputs are deleted, and a resume needs them)
    results/predictions/<run>/<view>/detections.json, proposal_stats.npz
    results/metrics/<run>/<view>.json           ltbench evaluate output
    results/records/<run>/<view>.json           the store record (metrics + config + provenance)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+=-]*"
PAPERS = ("pcb", "disalign", "bags", "simcal")
TABLE_TARGET = re.compile(r"^(?:tables/)?(?P<paper>[a-z0-9]+)_table(?P<table>[0-9A-Za-z]+(?:\.[0-9]+)?)(?:\.md|\.tex)?$")
PAPER_TARGET = re.compile(r"^(?:tables/)?(?P<paper>[a-z0-9]+)(?:\.md)?$")


def run_json(run_id: str) -> str:
    return f"results/runs/{run_id}/run.json"


def view_json(run_id: str, view_id: str) -> str:
    return f"results/runs/{run_id}/views/{view_id}.json"


def train_done(run_id: str) -> str:
    return f"results/runs/{run_id}/train.done"


def record_file(run_id: str, view_id: str) -> str:
    return f"results/records/{run_id}/{view_id}.json"


def data_marker(scale: str, dataset: str) -> str:
    return f"results/data/{scale}/{dataset}.txt"


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
    def train_resources(self, run_id: str, slurm: dict[str, Any]) -> dict[str, Any]:
        """SLURM resources of a training job, from the plan's cost model (GPU-hours at paper scale)."""
        return train_resources(self.run(run_id), self.scale, slurm)


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


def top_k_dir(run_id: str, view_id: str) -> str:
    """Where the AP-fixed prediction of a (run, view) goes: beside the view's own, in ``topk/``."""
    return f"results/predictions/{run_id}/{view_id}/topk"


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


def gpus_for(run: RunInfo, scale: str, slurm: dict[str, Any]) -> int:
    if scale != "paper":
        return 0
    wanted = int(run.config.get("gpus") or (run.config.get("schedule") or {}).get("gpus") or 8)
    return max(1, min(wanted, int(slurm.get("max_gpus_per_job", 8))))


#: Exit status of a training job that checkpointed before its time limit: resubmit it (the same value as
#: adapters.preemption.EXIT_CODE; the workflow does not import the adapters).
RESUBMIT_EXIT_CODE = 75
#: Default of ``slurm.max_runtime_min``: many clusters cap jobs at 24 h.
MAX_RUNTIME_MIN = 1440
#: Default of ``slurm.checkpoint_signal_s``: SLURM signals a training job this long before its limit.
CHECKPOINT_SIGNAL_S = 600
#: The signal asked of SLURM: every process of the job step gets it, and only the training loop handles it
#: (its default action is to be ignored, so Snakemake and bash in the step live on; adapters.preemption).
CHECKPOINT_SIGNAL = "URG"


def cap_runtime(minutes: float, slurm: dict[str, Any]) -> int:
    """A runtime request (minutes) capped at ``slurm.max_runtime_min``: no job asks for more, retries
    included (a training that needs longer checkpoints before the limit and is resubmitted)."""
    return max(1, min(math.ceil(minutes), int(slurm.get("max_runtime_min", MAX_RUNTIME_MIN))))


def retry_runtime(minutes: float, attempt: int, slurm: dict[str, Any]) -> int:
    """The runtime request of Snakemake's ``attempt`` (1, 2, ...): ``attempt`` times more, capped."""
    return cap_runtime(minutes * max(1, int(attempt)), slurm)


def train_runtime_estimate(run: RunInfo, scale: str, slurm: dict[str, Any]) -> int:
    """Minutes a training run needs in one piece: the cost model's estimate times the margin, floored."""
    margin = float(slurm.get("runtime_margin", 1.5))
    gpus = gpus_for(run, scale, slurm)
    if gpus:
        return max(int(slurm.get("min_runtime_min", 30)), math.ceil(float(run.gpu_hours or 0.0) / gpus * 60 * margin))
    return max(10, math.ceil(float(run.cpu_hours or 0.0) * 60 * margin))  # smoke: CPU-hours of the tiny model


def checkpoint_signal(slurm: dict[str, Any]) -> str | None:
    """The ``slurm_extra`` of a training job: ``--signal=URG@<slurm.checkpoint_signal_s>`` (None when 0)."""
    seconds = int(slurm.get("checkpoint_signal_s", CHECKPOINT_SIGNAL_S))
    if seconds <= 0:
        return None
    if seconds >= 60 * int(slurm.get("max_runtime_min", MAX_RUNTIME_MIN)):
        raise LtbenchError(
            f"slurm.checkpoint_signal_s ({seconds} s) is not shorter than slurm.max_runtime_min",
            key="slurm.checkpoint_signal_s",
            expected="the time a training job needs to finish an iteration and write a checkpoint, well below the time limit",
        )
    return f"--signal={CHECKPOINT_SIGNAL}@{seconds}"


def train_retries(runs: Iterable[RunInfo], scale: str, slurm: dict[str, Any]) -> int:
    """Retries of the train rule: ``slurm.train_retries``, else the number of time-limited jobs that the
    longest run needs (estimate / ``max_runtime_min``, rounded up), i.e. one resubmission per time limit
    plus one spare for a node failure or a short estimate. A genuine error fails after as many."""
    if slurm.get("train_retries") is not None:
        return int(slurm["train_retries"])
    cap = int(slurm.get("max_runtime_min", MAX_RUNTIME_MIN))
    return max([math.ceil(train_runtime_estimate(run, scale, slurm) / cap) for run in runs] or [1])


def train_resources(run: RunInfo, scale: str, slurm: dict[str, Any]) -> dict[str, Any]:
    gpus = gpus_for(run, scale, slurm)
    runtime = cap_runtime(train_runtime_estimate(run, scale, slurm), slurm)
    if gpus:
        cpus = gpus * int(slurm.get("cpus_per_gpu", 8))
        mem_mb = gpus * int(slurm.get("mem_mb_per_gpu", 48000))
    else:
        cpus = 1
        mem_mb = 4000
    resources: dict[str, Any] = {"runtime": runtime, "mem_mb": mem_mb, "cpus_per_task": cpus}
    signal = checkpoint_signal(slurm)
    if signal:
        resources["slurm_extra"] = signal
    if gpus:
        resources["gpu"] = gpus
        if slurm.get("gpu_model"):
            resources["gpu_model"] = slurm["gpu_model"]
    return resources


def light_resources(scale: str, slurm: dict[str, Any], *, gpu: bool) -> dict[str, Any]:
    """Prediction (gpu=True: one GPU at paper scale) and evaluation/rendering jobs (CPU only)."""
    if scale == "paper" and gpu:
        res: dict[str, Any] = {"runtime": cap_runtime(120, slurm), "mem_mb": int(slurm.get("mem_mb_per_gpu", 48000)), "cpus_per_task": int(slurm.get("cpus_per_gpu", 8)), "gpu": 1}
        if slurm.get("gpu_model"):
            res["gpu_model"] = slurm["gpu_model"]
        return res
    if scale == "paper":
        return {"runtime": cap_runtime(120, slurm), "mem_mb": 32000, "cpus_per_task": 4}  # LVIS val evaluation: ~20k images
    return {"runtime": cap_runtime(15, slurm), "mem_mb": 2000, "cpus_per_task": 1}


def slurm_placement(slurm: dict[str, Any], environ: dict[str, str]) -> dict[str, str]:
    """Partition and account: the workflow config wins, then $SLURM_PARTITION / $SLURM_ACCOUNT; else none."""
    out = {}
    partition = slurm.get("partition") or environ.get("SLURM_PARTITION")
    account = slurm.get("account") or environ.get("SLURM_ACCOUNT")
    if partition:
        out["slurm_partition"] = partition
    if account:
        out["slurm_account"] = account
    return out


def parse_table_target(target: str) -> tuple[str, str]:
    match = TABLE_TARGET.match(target)
    if not match or match.group("paper") not in PAPERS:
        raise LtbenchError(f"not a table target: {target!r}", expected="tables/<paper>_table<N>.md with paper in " + ", ".join(PAPERS))
    return match.group("paper"), match.group("table")


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class RowServe:
    """How the plan serves one spec row: its (run, view) pairs (one per seed), status and reason."""

    pairs: tuple[tuple[str, str], ...]
    status: str  # planned | served | reported_only | not_reproducible | out_of_scope | ...
    reason: str = ""


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
        out[(row.group, row.row_id)] = RowServe(pairs, row.status, row.reason)
    return out


def stage1_of(*, scale: str, framework: str | None, papers: Sequence[str], plan: Any = None) -> dict[str, str | None]:
    """run id -> its stage-1 run id (None for single-stage runs)."""
    from ltbench.plan import build_plan

    if plan is None:
        plan = build_plan(papers=list(papers), scale=scale, framework=framework)
    return {run_id: (_get(rp, "config") or {}).get("stage1") for run_id, rp in (_get(plan, "runs") or {}).items()}
