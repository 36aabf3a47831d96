"""Where a campaign stands: per run and per table done, running, stalled, failed or pending, its cost and an ETA.

Read from what the workflow leaves behind, without Snakemake (``campaign_status``; ``ltbench status``):

- the plan (``ltbench.plan.build_plan``): which runs and (run, view) pairs the selected tables need, and each
  run's cost-model estimate (GPU-hours at paper scale, CPU-hours at smoke scale, ``ltbench.plan.cost``);
- ``results/records/<run>/<view>.json``: a view is done when its record exists;
- ``results/failures/<run>/*.json``: why a step failed (``ltbench.store.records``);
- ``results/runs/<run>/train.done``: training finished (with the job's measured start, end and wall time);
- ``work/<run>/log.txt``, ``last_checkpoint``, ``done.json``: the adapters' progress log (one line every few
  iterations: iteration, loss, lr, s/it, ETA), checkpoint pointer and end marker;
- ``results/logs/<run>/*.log``: the workflow's per-step logs (their modification time says a step is active).

A run is

- ``done``: every view it serves has a record (a run with no view of its own, e.g. a stage-1 run: trained);
- ``running``: a step of it is active: ``work/<run>/log.txt`` (training) or one of its step logs was written
  within the stale limit (and, where the campaign has a ``.snakemake`` folder, a Snakemake holds its lock: a
  killed workflow leaves fresh logs behind); the last progress line gives iteration, loss and the run's ETA;
- ``stalled``: it started training (log.txt, no done.json) but nothing was written for longer than the stale
  limit (a killed or preempted job): "stalled since <time>", and the checkpoint a restart resumes from;
- ``failed``: a failure note, not superseded by a record or by newer activity (a stage-2 run whose stage-1 run
  failed is failed too: it can never start);
- ``pending``: nothing of it has started (or it is trained and waits for its predictions/evaluations).

The stale limit is ``stale_after`` seconds, by default the larger of 5 minutes and five times the interval
between the run's last two progress lines (``iterations between lines × s/it``).

Cost: ``spent`` counts done runs in full, training in progress by its fraction of iterations, and evaluations
by the views recorded; ``left`` is the rest (failed runs included: they need a rerun). The campaign ETA is
``left`` divided by the observed rate: model-hours completed per wall-clock hour since the first run started.
Both are estimates (the cost model's hours, scaled by what this campaign measured) and are printed as such.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError

DONE, RUNNING, STALLED, FAILED, PENDING = "done", "running", "stalled", "failed", "pending"
PARTIAL = "partial"  # a table some of whose runs are done, none active, failed or stalled
STATES = (DONE, RUNNING, STALLED, FAILED, PENDING)
SHOW_ORDER = (RUNNING, STALLED, FAILED, PENDING, DONE)
MIN_STALE_S = 300.0  # progress lines come every 10-30 s at both scales: 5 minutes of silence is 10+ of them
STALE_LINES = 5
LOG_TAIL_BYTES = 64 * 1024

# ltbench's adapters (adapters/base.py ProgressLogger):
#   iter 42/60 loss=4.0068 loss_cls=1.51 ... lr=0.002 0.84s/it eta=0:00:15
_LTBENCH_LINE = re.compile(
    r"^iter (?P<it>\d+)/(?P<max>\d+) loss=(?P<loss>\S+).*? lr=(?P<lr>\S+) (?P<spi>[0-9.]+)s/it "
    r"eta=(?P<eta>\d+:\d{2}:\d{2})\s*$")
# detectron2's CommonMetricPrinter (the detectron2 adapter logs through it):
#   ... eta: 0:01:02  iter: 39  total_loss: 1.234  ...  time: 0.5012  ...  lr: 0.002  max_mem: ...
_D2_LINE = re.compile(
    r"eta: (?:(?P<days>\d+) days?, )?(?P<eta>\d+:\d{2}:\d{2})\s+iter: (?P<it>\d+)\s+total_loss: (?P<loss>\S+)"
    r"(?:.*?\btime: (?P<spi>[0-9.]+))?(?:.*?\blr: (?P<lr>\S+))?")


@dataclass
class Progress:
    """The last progress line of a training log."""

    iteration: int  # iterations done
    max_iterations: int | None
    loss: float | None
    lr: float | None
    seconds_per_iteration: float | None
    eta_s: float | None  # as logged, at ``logged_at``
    logged_at: float  # modification time of the log (epoch seconds)
    every: int | None = None  # iterations between the last two lines

    def remaining_s(self, now: float) -> float | None:
        """The logged ETA minus the time since the line was written (never below 0)."""
        if self.eta_s is None:
            return None
        return max(0.0, self.eta_s - max(0.0, now - self.logged_at))

    def line_interval_s(self) -> float | None:
        if self.every and self.seconds_per_iteration:
            return self.every * self.seconds_per_iteration
        return None

    def to_json(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "max_iterations": self.max_iterations, "loss": self.loss, "lr": self.lr,
                "seconds_per_iteration": self.seconds_per_iteration, "eta_s": self.eta_s,
                "logged_at": iso(self.logged_at), "every": self.every}


def _seconds(hms: str, days: str | None = None) -> float:
    h, m, s = (int(x) for x in hms.split(":"))
    return float(h * 3600 + m * 60 + s + int(days or 0) * 86400)


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_progress_lines(lines: Sequence[str], *, logged_at: float, max_iterations: int | None = None) -> Progress | None:
    """The last progress line among ``lines`` (ltbench's or detectron2's format), or None."""
    found: list[tuple[int, re.Match[str], bool]] = []
    for line in lines:
        line = line.strip()
        match = _LTBENCH_LINE.match(line)
        if match:
            found.append((int(match.group("it")), match, True))
            continue
        match = _D2_LINE.search(line)
        if match:
            found.append((int(match.group("it")) + 1, match, False))  # detectron2 prints the 0-based iteration
    if not found:
        return None
    iteration, match, ours = found[-1]
    every = iteration - found[-2][0] if len(found) > 1 and found[-2][0] < iteration else None
    return Progress(
        iteration=iteration,
        max_iterations=int(match.group("max")) if ours else max_iterations,
        loss=_float(match.group("loss")),
        lr=_float(match.group("lr")),
        seconds_per_iteration=_float(match.group("spi")),
        eta_s=_seconds(match.group("eta"), None if ours else match.group("days")),
        logged_at=logged_at,
        every=every,
    )


def read_progress(log_path: Path, *, max_iterations: int | None = None) -> Progress | None:
    """The last progress line of ``log_path`` (only its last 64 KiB are read), or None."""
    try:
        stat = log_path.stat()
        with open(log_path, "rb") as handle:
            if stat.st_size > LOG_TAIL_BYTES:
                handle.seek(stat.st_size - LOG_TAIL_BYTES)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    return parse_progress_lines(text.splitlines(), logged_at=stat.st_mtime, max_iterations=max_iterations)


def checkpoint_pointer(workdir: Path) -> str | None:
    """The checkpoint ``work/<run>/last_checkpoint`` points at (a restarted job resumes from it), or None."""
    try:
        name = (workdir / "last_checkpoint").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name or None


def checkpoint_iteration(name: str | None) -> int | None:
    """``model_0000040.pth`` -> 40; None for other names (``model_final.pth``)."""
    match = re.fullmatch(r"model_(\d+)\.pth", name or "")
    return int(match.group(1)) if match else None


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")


def _epoch(text: Any) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


@dataclass
class RunStatus:
    run_id: str
    state: str
    detail: str
    tables: list[str]
    views_done: int
    views_total: int
    hours: float  # cost model: the whole run (training + its views' evaluation)
    train_hours: float
    hours_spent: float = 0.0
    stage: str | None = None  # train | predict | evaluate | record (running / failed)
    stage1: str | None = None
    progress: Progress | None = None
    eta_s: float | None = None  # running: the training's remaining time from its log
    since: float | None = None  # stalled: last write; failed: note time; done: end of training
    reason: str | None = None  # failed: from the failure note
    checkpoint: str | None = None
    wall_s: float | None = None  # measured: the training job's wall time (train.done)
    started: float | None = None
    trained: bool = False  # work/<run>/done.json or results/runs/<run>/train.done exists

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run_id, "state": self.state, "detail": self.detail, "tables": self.tables,
            "views_done": self.views_done, "views_total": self.views_total, "stage": self.stage, "stage1": self.stage1,
            "hours": round(self.hours, 4), "hours_spent": round(self.hours_spent, 4),
            "progress": None if self.progress is None else self.progress.to_json(),
            "eta_s": None if self.eta_s is None else round(self.eta_s), "since": iso(self.since), "reason": self.reason,
            "checkpoint": self.checkpoint, "wall_s": self.wall_s, "started": iso(self.started),
        }


@dataclass
class TableStatus:
    paper: str
    table: str
    runs: list[str]
    counts: dict[str, int]
    views_done: int
    views_total: int
    hours: float
    hours_spent: float

    @property
    def ref(self) -> str:
        return f"{self.paper}/{self.table}"

    @property
    def state(self) -> str:
        """done (every record the table needs exists) | failed | stalled | running (the most pressing state among
        its runs; for this table a run whose views of this table are recorded is done, ``table_state``) | partial
        (some done, the rest pending) | pending."""
        if self.views_done == self.views_total and self.counts.get(DONE, 0) == len(self.runs):
            return DONE
        for state in (FAILED, STALLED, RUNNING):
            if self.counts.get(state):
                return state
        return PARTIAL if self.counts.get(DONE) or self.views_done else PENDING

    def summary(self) -> str:
        parts = [f"{self.counts[s]} {s}" for s in SHOW_ORDER if self.counts.get(s)]
        return f"{len(self.runs)} runs: " + ", ".join(parts) + f" · {self.views_done}/{self.views_total} records"

    def to_json(self) -> dict[str, Any]:
        return {"paper": self.paper, "table": self.table, "state": self.state, "runs": self.runs,
                "counts": {s: self.counts.get(s, 0) for s in STATES}, "views_done": self.views_done,
                "views_total": self.views_total, "hours": round(self.hours, 4), "hours_spent": round(self.hours_spent, 4),
                "hours_left": round(self.hours - self.hours_spent, 4)}


@dataclass
class CampaignStatus:
    scale: str
    framework: str | None
    papers: list[str]
    unit: str  # GPU-hours | CPU-hours
    now: float
    runs: dict[str, RunStatus] = field(default_factory=dict)
    tables: list[TableStatus] = field(default_factory=list)
    started: float | None = None  # the first run's start (measured)
    rate: float | None = None  # model-hours completed per wall-clock hour since ``started``
    eta_s: float | None = None
    eta_note: str = ""
    scale_note: str = ""
    workflow: bool | None = None  # a Snakemake holds the lock in the results' parent (None: no .snakemake there)
    results_dir: str = ""
    work_dir: str = ""

    @property
    def counts(self) -> Counter:
        return Counter(r.state for r in self.runs.values())

    @property
    def hours(self) -> float:
        return sum(r.hours for r in self.runs.values())

    @property
    def hours_spent(self) -> float:
        return sum(r.hours_spent for r in self.runs.values())

    @property
    def hours_left(self) -> float:
        return max(0.0, self.hours - self.hours_spent)

    @property
    def hours_failed(self) -> float:
        return sum(r.hours for r in self.runs.values() if r.state == FAILED)

    @property
    def measured_wall_s(self) -> float:
        return sum(r.wall_s or 0.0 for r in self.runs.values())

    def cost_line(self) -> str:
        text = (f"{self.unit} (cost-model estimate): {fmt_hours(self.hours_spent)} of {fmt_hours(self.hours)} spent, "
                f"{fmt_hours(self.hours_left)} left")
        if self.hours_failed:
            text += f" ({fmt_hours(self.hours_failed)} of it in failed runs that need a rerun)"
        measured = self.measured_wall_s
        if measured:
            text += f"; measured training wall time of finished runs: {fmt_duration(measured)}"
        return text

    def eta_line(self) -> str:
        if self.eta_s is None:
            return f"ETA: {self.eta_note}" if self.eta_note else "ETA: unknown"
        return (f"ETA: {fmt_time(self.now + self.eta_s, self.now)} (in {fmt_duration(self.eta_s)}) {self.eta_note}").rstrip()

    def counts_line(self) -> str:
        c = self.counts
        return " · ".join(f"{s} {c.get(s, 0)}" for s in (DONE, RUNNING, STALLED, FAILED, PENDING))

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": self.scale, "framework": self.framework, "papers": self.papers, "unit": self.unit,
            "now": iso(self.now), "scale_note": self.scale_note, "results_dir": self.results_dir, "work_dir": self.work_dir,
            "workflow_running": self.workflow,
            "counts": {s: self.counts.get(s, 0) for s in STATES},
            "hours": round(self.hours, 4), "hours_spent": round(self.hours_spent, 4), "hours_left": round(self.hours_left, 4),
            "hours_failed": round(self.hours_failed, 4), "measured_wall_s": round(self.measured_wall_s, 1),
            "started": iso(self.started), "rate": None if self.rate is None else round(self.rate, 4),
            "eta_s": None if self.eta_s is None else round(self.eta_s), "eta": iso(None if self.eta_s is None else self.now + self.eta_s),
            "eta_note": self.eta_note,
            "tables": [t.to_json() for t in self.tables],
            "runs": [r.to_json() for r in self.ordered_runs()],
        }

    def ordered_runs(self) -> list[RunStatus]:
        rank = {s: i for i, s in enumerate(SHOW_ORDER)}
        return sorted(self.runs.values(), key=lambda r: (rank[r.state], r.tables[:1], r.run_id))

    def text(self) -> str:
        return status_text(self)


def fmt_hours(hours: float) -> str:
    return f"{hours:.2f}" if hours < 10 else f"{hours:.1f}" if hours < 1000 else f"{hours:,.0f}"


def fmt_duration(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    days, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{h}:{m:02d}:{s:02d}"


def fmt_time(epoch: float, now: float | None = None) -> str:
    """``03:20 UTC``; with the date when it is not ``now``'s day."""
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    today = datetime.fromtimestamp(now, tz=timezone.utc).date() if now is not None else None
    return moment.strftime("%H:%M UTC" if moment.date() == today else "%Y-%m-%d %H:%M UTC")


# ---- building ------------------------------------------------------------------------------------------
def _stale_limit(progress: Progress | None, stale_after: float | None) -> float:
    if stale_after is not None:
        return float(stale_after)
    interval = progress.line_interval_s() if progress is not None else None
    return max(MIN_STALE_S, STALE_LINES * interval) if interval else MIN_STALE_S


def _run_hours(config: dict[str, Any], scale: str, planned: float) -> tuple[float, float]:
    """(whole run, training part) in the scale's unit, from the cost model."""
    from ltbench.plan import cost

    train = cost.run_gpu_hours(config, 0) if scale == "paper" else cost.run_cpu_hours(config, 0)
    return float(planned), min(float(planned), train)


def _failure_notes(results_dir: Path) -> dict[str, list[Any]]:
    from ltbench.store.records import load_failures

    notes: dict[str, list[Any]] = {}
    for note in load_failures(results_dir):
        notes.setdefault(note.run_id, []).append(note)
    return notes


def _step_log_activity(results_dir: Path, run_id: str, *, open_views: Sequence[str] | None = None
                       ) -> tuple[float | None, str | None]:
    """Newest modification time among the workflow's step logs of a run and that step's name.

    ``open_views`` None: every log (``train.log``, ``predict_<view>.log``, ...); else only the logs of those views
    (steps after training: a finished view's logs say nothing about work still going on)."""
    newest, stage = None, None
    folder = results_dir / "logs" / run_id
    if folder.is_dir():
        for log in folder.glob("*.log"):
            step, _, view = log.stem.partition("_")
            view = view.removesuffix("_topk")
            if open_views is not None and (not view or view not in open_views):
                continue
            mtime = _mtime(log)
            if mtime is not None and (newest is None or mtime > newest):
                newest, stage = mtime, step
    return newest, stage


def snakemake_running(root: Path) -> bool | None:
    """Whether a Snakemake process works in ``root`` (it holds files in ``.snakemake/locks`` while it runs);
    None when ``root`` has no ``.snakemake`` folder (runs started by hand, or no workflow there)."""
    folder = root / ".snakemake"
    if not folder.is_dir():
        return None
    locks = folder / "locks"
    return locks.is_dir() and any(locks.iterdir())


def run_status(run_id: str, config: dict[str, Any], views: Sequence[str], *, tables: list[str], scale: str,
               planned_hours: float, results_dir: Path, work_dir: Path, failures: Sequence[Any], now: float,
               stale_after: float | None, parents: dict[str, RunStatus], workflow_alive: bool | None = None) -> RunStatus:
    """The status of one run (``parents``: the statuses of the runs it starts from, already built).

    ``workflow_alive`` False: no Snakemake holds the campaign's lock, so nothing is running whatever the logs'
    times say (a killed workflow leaves fresh logs behind)."""
    from ltbench.store.records import record_path

    hours, train_hours = _run_hours(config, scale, planned_hours)
    views_done = sum(1 for v in views if record_path(run_id, v, results_dir).is_file())
    status = RunStatus(run_id=run_id, state=PENDING, detail="", tables=tables, views_done=views_done,
                       views_total=len(views), hours=hours, train_hours=train_hours, stage1=config.get("stage1"))
    workdir = work_dir / run_id
    marker = results_dir / "runs" / run_id / "train.done"
    trained = (workdir / "done.json").is_file() or marker.is_file()
    status.trained = trained
    if marker.is_file():
        try:
            from ltbench import io

            info = io.read_json(marker)
            status.wall_s = _float(str(info.get("wall_time_s"))) if info.get("wall_time_s") is not None else None
            status.started = _epoch(info.get("started"))
            status.since = _epoch(info.get("ended"))
        except (LtbenchError, OSError, ValueError):
            pass
    log = workdir / "log.txt"
    max_iter = int(((config.get("schedule") or {}).get("iterations")) or 0) or None
    progress = read_progress(log, max_iterations=max_iter) if log.is_file() else None
    status.progress = progress
    status.checkpoint = checkpoint_pointer(workdir)
    if status.started is None:
        status.started = _mtime(workdir / "run_config.json") or (None if progress is None else _mtime(log))
    eval_hours = max(0.0, hours - train_hours)

    # 1. done: every view recorded (a run without views of its own: trained)
    if (views and views_done == len(views)) or (not views and trained):
        status.state, status.hours_spent = DONE, hours
        status.detail = f"{views_done}/{len(views)} views recorded" if views else "trained (no view of its own)"
        if status.wall_s is not None:
            status.detail += f" · training {fmt_duration(status.wall_s)} wall"
        return status

    activity, active_stage = _step_log_activity(results_dir, run_id)
    log_time = _mtime(log) if log.is_file() else None
    latest = max((t for t in (activity, log_time) if t is not None), default=None)

    # 2. failed: a failure note newer than any activity (a retried step that is running again is not failed)
    notes = [n for n in failures if n.view_id is None or not record_path(run_id, n.view_id, results_dir).is_file()]
    if notes:
        note = max(notes, key=lambda n: _epoch(n.time) or 0.0)
        note_time = _epoch(note.time)
        if latest is None or note_time is None or latest <= note_time + 1.0 or now - latest > _stale_limit(progress, stale_after):
            status.state, status.stage, status.reason, status.since = FAILED, note.stage, note.reason, note_time
            where = note.stage + (f" of view {note.view_id}" if note.view_id else "")
            status.detail = f"{where} failed: {note.reason}"
            status.hours_spent = train_hours if trained else 0.0
            return status
    for parent_id in (config.get("stage1"), config.get("init_from")):
        parent = parents.get(parent_id) if parent_id else None
        if parent is not None and parent.state == FAILED:
            status.state, status.stage = FAILED, "train"
            status.reason = f"stage 1 {parent_id} failed" if parent_id == config.get("stage1") else f"initialising run {parent_id} failed"
            status.detail = f"cannot start: {status.reason}: {parent.reason}"
            status.since = parent.since
            return status

    # 3. trained, views outstanding: running when a step log is fresh, else pending (the workflow schedules them)
    if trained:
        status.hours_spent = train_hours + (eval_hours * views_done / len(views) if views else 0.0)
        open_views = [v for v in views if not record_path(run_id, v, results_dir).is_file()]
        activity, active_stage = _step_log_activity(results_dir, run_id, open_views=open_views)
        fresh = activity is not None and now - activity <= _stale_limit(None, stale_after) and workflow_alive is not False
        status.state = RUNNING if fresh else PENDING
        status.stage = active_stage if fresh else None
        status.detail = (f"trained; {active_stage} running" if fresh else "trained; waiting for predictions") + \
            f" · {views_done}/{len(views)} views recorded"
        return status

    # 4. training started: running, or stalled (a killed job leaves a log that stops growing)
    if progress is not None or log_time is not None or activity is not None:
        if progress is not None and progress.max_iterations:
            status.hours_spent = train_hours * min(1.0, progress.iteration / progress.max_iterations)
        limit = _stale_limit(progress, stale_after)
        if latest is not None and now - latest <= limit and workflow_alive is not False:
            status.state, status.stage = RUNNING, "train"
            if progress is not None:
                status.eta_s = progress.remaining_s(now)
                status.detail = (f"iter {progress.iteration}/{progress.max_iterations or '?'}"
                                 + (f" loss={progress.loss:.4f}" if progress.loss is not None and math.isfinite(progress.loss) else
                                    f" loss={progress.loss}" if progress.loss is not None else "")
                                 + (f" {progress.seconds_per_iteration:.2f}s/it" if progress.seconds_per_iteration else "")
                                 + (f" · ETA {fmt_duration(status.eta_s)}" if status.eta_s is not None else ""))
            else:
                status.detail = "starting (no progress line yet)"
            return status
        status.state, status.stage, status.since = STALLED, "train", latest
        last = f"last at iter {progress.iteration}/{progress.max_iterations or '?'}" if progress else "no progress line"
        resume = checkpoint_iteration(status.checkpoint)
        restart = (f"a restart resumes from {status.checkpoint} (iter {resume})" if resume is not None
                   else "a restart begins at iteration 0 (no checkpoint yet)")
        status.detail = (f"stalled since {fmt_time(latest, now)} ({fmt_duration(now - latest)} ago): {last}; {restart}"
                         if latest is not None else f"stalled: {last}; {restart}")
        if workflow_alive is False and latest is not None and now - latest <= limit:
            status.detail += " (no workflow holds the lock: the job was stopped)"
        return status

    # 5. pending
    waiting = [p for p in (config.get("stage1"), config.get("init_from")) if p and parents.get(p) is not None
               and parents[p].state != DONE]
    status.detail = f"waits for {'stage 1 ' if waiting[0] == config.get('stage1') else ''}{waiting[0]}" if waiting else "not started"
    return status


def detect_scale(results_dir: Path, work_dir: Path, *, papers: Sequence[str], framework: str | None,
                 seeds: int | None) -> tuple[str, str]:
    """The scale whose planned run ids the campaign directories hold (smoke or paper), and how it was chosen."""
    from ltbench.plan import build_plan

    present = set()
    for folder in (results_dir / "runs", results_dir / "records", work_dir):
        if folder.is_dir():
            present.update(p.name for p in folder.iterdir() if p.is_dir())
    hits = {}
    for scale in ("smoke", "paper"):
        plan = build_plan(papers=list(papers), scale=scale, framework=framework, seeds=seeds)
        hits[scale] = len(present & set(plan.runs))
    if hits["paper"] > hits["smoke"]:
        return "paper", f"detected: {hits['paper']} run directories of the paper-scale plan"
    if hits["smoke"]:
        return "smoke", f"detected: {hits['smoke']} run directories of the smoke-scale plan"
    return "smoke", "no run directory found: smoke assumed (pass --scale)"


def campaign_status(*, papers: Sequence[str] | None = None, table: str | None = None, scale: str | None = None,
                    framework: str | None = None, seeds: int | None = None, results_dir: str | Path | None = None,
                    work_dir: str | Path | None = None, now: float | None = None, stale_after: float | None = None
                    ) -> CampaignStatus:
    """The status of the campaign that renders ``papers`` (or one ``table`` of one paper).

    ``scale`` None: detected from the run directories present (``detect_scale``). ``now``: the clock (epoch
    seconds; tests pass a fixed one). ``stale_after``: seconds without a write after which a training run is
    stalled (default: module docstring).
    """
    from ltbench import paths
    from ltbench.plan import build_plan
    from ltbench.spec import vocab

    results = Path(results_dir) if results_dir is not None else paths.RESULTS_DIR
    work = Path(work_dir) if work_dir is not None else paths.work_root()
    now = time.time() if now is None else float(now)
    chosen = list(dict.fromkeys(papers or vocab.PAPERS))
    for paper in chosen:
        if paper not in vocab.PAPERS:
            raise LtbenchError(f"unknown paper {paper!r}", key="--paper", expected="one of " + ", ".join(vocab.PAPERS))
    if table is not None and len(chosen) != 1:
        raise LtbenchError("--table needs exactly one --paper", key="--table", expected="--paper P --table N")
    scale_note = "given"
    if scale is None:
        scale, scale_note = detect_scale(results, work, papers=chosen, framework=framework, seeds=seeds)
    if table is not None:
        from ltbench.spec import load_paper

        load_paper(paths.PAPER_SPECS_DIR / f"{chosen[0]}.yaml").table(table)  # a clear error for a wrong table
        plan = build_plan(targets=[f"tables/{chosen[0]}_table{table}.md"], scale=scale, framework=framework, seeds=seeds)
    else:
        plan = build_plan(papers=chosen, scale=scale, framework=framework, seeds=seeds)
    index = {ref: entry for ref, entry in plan.tables_index().items() if entry["runs"]}
    if table is not None:
        index = {ref: entry for ref, entry in index.items() if ref == f"{chosen[0]}/{table}"}
    tables_of: dict[str, list[str]] = {}
    for ref, entry in index.items():
        for run_id in entry["runs"]:
            tables_of.setdefault(run_id, []).append(ref)
    views_of: dict[str, list[str]] = {}
    for view in plan.views:
        views_of.setdefault(view.run_id, []).append(view.view_id)
    notes = _failure_notes(results)
    alive = snakemake_running(results.parent)
    status = CampaignStatus(scale=scale, framework=framework, papers=chosen, now=now,
                            unit="GPU-hours" if scale == "paper" else "CPU-hours", scale_note=scale_note,
                            results_dir=str(results), work_dir=str(work), workflow=alive)

    def build(run_id: str) -> RunStatus:
        if run_id in status.runs:
            return status.runs[run_id]
        run = plan.runs[run_id]
        parents = {}
        for parent in (run.config.get("stage1"), run.config.get("init_from")):
            if parent and parent in plan.runs:
                parents[parent] = build(parent)
        planned = run.gpu_hours if scale == "paper" else run.cpu_hours
        status.runs[run_id] = run_status(
            run_id, run.config, views_of.get(run_id, []), tables=tables_of.get(run_id, []), scale=scale,
            planned_hours=planned, results_dir=results, work_dir=work, failures=notes.get(run_id, []), now=now,
            stale_after=stale_after, parents=parents, workflow_alive=alive)
        return status.runs[run_id]

    for run_id in tables_of:
        build(run_id)
    for ref, entry in index.items():
        paper, _, table_id = ref.partition("/")
        runs = [status.runs[r] for r in entry["runs"]]
        recorded = {(r, v): _record_exists(results, r, v) for r, v in entry["views"]}
        states = {run.run_id: table_state(run, [ok for (r, _), ok in recorded.items() if r == run.run_id]) for run in runs}
        status.tables.append(TableStatus(
            paper=paper, table=table_id, runs=[r.run_id for r in runs], counts=dict(Counter(states.values())),
            views_done=sum(recorded.values()), views_total=len(recorded), hours=sum(r.hours for r in runs),
            hours_spent=sum(r.hours if states[r.run_id] == DONE else r.hours_spent for r in runs)))
    _estimate_eta(status)
    return status


def table_state(run: RunStatus, table_views_recorded: Sequence[bool]) -> str:
    """A run's state for one table: done when that table's views of it are recorded (a run the table needs only as
    a dependency, e.g. a stage-1 run: when trained), whatever other tables still wait for; else its own state."""
    if (table_views_recorded and all(table_views_recorded)) or (not table_views_recorded and run.trained):
        return DONE
    return run.state


def _record_exists(results: Path, run_id: str, view_id: str) -> bool:
    from ltbench.store.records import record_path

    return record_path(run_id, view_id, results).is_file()


def _estimate_eta(status: CampaignStatus) -> None:
    counts = status.counts
    starts = [r.started for r in status.runs.values() if r.started is not None and r.state != PENDING]
    status.started = min(starts) if starts else None
    if counts.get(DONE, 0) == len(status.runs):
        status.eta_s, status.eta_note = 0.0, "done"
        return
    if not counts.get(RUNNING):
        waiting = counts.get(PENDING, 0) + counts.get(STALLED, 0) + counts.get(FAILED, 0)
        status.eta_note = (f"no run is active ({waiting} not done: {counts.get(PENDING, 0)} pending, "
                           f"{counts.get(STALLED, 0)} stalled, {counts.get(FAILED, 0)} failed); start the workflow again "
                           "(training resumes from the last checkpoint)")
        return
    running_left = max((r.eta_s for r in status.runs.values() if r.state == RUNNING and r.eta_s is not None), default=0.0)
    elapsed_h = (status.now - status.started) / 3600.0 if status.started is not None else 0.0
    if elapsed_h <= 0 or status.hours_spent <= 0:
        status.eta_s = running_left or None
        status.eta_note = "(from the running runs' logs only: no rate measured yet)" if running_left else "unknown: no rate measured yet"
        return
    status.rate = status.hours_spent / elapsed_h
    status.eta_s = max(running_left, status.hours_left / status.rate * 3600.0)
    status.eta_note = (f"at the observed {status.rate:.2f} cost-model {status.unit} per wall-clock hour since "
                       f"{fmt_time(status.started, status.now)}")


# ---- text ----------------------------------------------------------------------------------------------
def status_text(status: CampaignStatus, *, max_done: int | None = None) -> str:
    """The plain-text report of ``ltbench status``. ``max_done``: list at most that many done runs."""
    from tabulate import tabulate

    what = ", ".join(status.papers) if len(status.tables) != 1 else f"{status.tables[0].paper} Table {status.tables[0].table}"
    lines = [
        f"Campaign: {what} · {status.scale} scale ({status.scale_note}) · framework {status.framework or 'per spec'} · "
        f"{fmt_time(status.now)}",
        f"Runs: {len(status.runs)} — {status.counts_line()}" + {
            True: " (Snakemake is running)", False: " (no Snakemake is running here: .snakemake/locks is empty)",
            None: ""}[status.workflow],
        status.cost_line(),
        status.eta_line(),
        "",
        "Tables:",
    ]
    rows = [[f"{t.paper} {t.table}", t.state, t.summary(), f"{fmt_hours(t.hours - t.hours_spent)} {status.unit} left"]
            for t in status.tables]
    lines.append(tabulate(rows, headers=["table", "state", "runs", "left"], tablefmt="plain", disable_numparse=True)
                 if rows else "(no table with runs)")
    lines += ["", "Runs:"]
    ordered = status.ordered_runs()
    shown = ordered
    hidden = 0
    if max_done is not None:
        done = [r for r in ordered if r.state == DONE]
        hidden = max(0, len(done) - max_done)
        shown = [r for r in ordered if r.state != DONE] + done[:max_done]
    rows = [[r.state, r.run_id, ",".join(r.tables), r.detail] for r in shown]
    lines.append(tabulate(rows, headers=["state", "run", "tables", "progress"], tablefmt="plain", disable_numparse=True)
                 if rows else "(none)")
    if hidden:
        lines.append(f"... and {hidden} more done runs (--format json lists every run)")
    return "\n".join(lines).rstrip() + "\n"
