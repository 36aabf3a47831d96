"""The campaign status as data: run, table and campaign states with cost and ETA, as JSON and as plain text.

Built by ``ltbench.report.status.campaign_status`` (which documents what each state means); rendered here as
``ltbench status``'s text (``status_text``) and as JSON (the ``to_json`` methods).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ltbench.report.run_progress import Progress, iso

DONE, RUNNING, STALLED, FAILED, PENDING = "done", "running", "stalled", "failed", "pending"
PARTIAL = "partial"  # a table some of whose runs are done, none active, failed or stalled
STATES = (DONE, RUNNING, STALLED, FAILED, PENDING)
SHOW_ORDER = (RUNNING, STALLED, FAILED, PENDING, DONE)


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
