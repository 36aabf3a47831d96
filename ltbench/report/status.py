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

The states are the data classes of ``ltbench.report.status_model`` (which also renders them as text and JSON);
the progress lines and checkpoint pointers are read by ``ltbench.report.run_progress``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError
from ltbench.report.run_progress import Progress, _float, checkpoint_iteration, checkpoint_pointer, read_progress
from ltbench.report.status_model import (
    DONE, FAILED, PENDING, RUNNING, STALLED, CampaignStatus, RunStatus, TableStatus, fmt_duration, fmt_time,
)

MIN_STALE_S = 300.0  # progress lines come every 10-30 s at both scales: 5 minutes of silence is 10+ of them
STALE_LINES = 5


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
    for scale in ("smoke", "mini", "paper"):
        plan = build_plan(papers=list(papers), scale=scale, framework=framework, seeds=seeds)
        hits[scale] = len(present & set(plan.runs))
    best = max(("paper", "mini", "smoke"), key=lambda s: hits[s])  # ties: the first of paper, mini, smoke
    if hits[best]:
        return best, f"detected: {hits[best]} run directories of the {best}-scale plan"
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
