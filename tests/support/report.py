"""Fabricated campaigns for the report tests: records, failure notes and work directories written by hand."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ltbench.plan import build_plan
from ltbench.store import make_record, write_failure, write_record

PCB2 = "tables/pcb_table2.md"


def pcb2_plan(seeds: int | None = None):
    return build_plan(targets=[PCB2], scale="smoke", seeds=seeds)


def fill(results_dir: Path, metrics: Callable[[Any, int], dict[str, float] | None], *, seeds: int | None = None,
         plan=None) -> Any:
    """One record per (row, seed) of PCB Table 2 with ``metrics(plan_row, seed)`` (None: leave it out)."""
    plan = plan or pcb2_plan(seeds)
    for row in plan.rows:
        if not row.view_id:
            continue
        for seed, run_id in enumerate(row.run_ids):
            values = metrics(row, seed)
            if values is None:
                continue
            record = make_record(plan.runs[run_id].config, plan.view(run_id, row.view_id).view_config, values)
            write_record(record, results_dir)
    return plan


def progress_line(iteration: int, max_iterations: int, *, loss: float = 2.5, spi: float = 1.0) -> str:
    eta = int(round(spi * (max_iterations - iteration)))
    return (f"iter {iteration}/{max_iterations} loss={loss:.4f} loss_cls={loss / 2:.4f} lr=0.002 {spi:.2f}s/it "
            f"eta={eta // 3600}:{eta % 3600 // 60:02d}:{eta % 60:02d}")


def write_workdir(work: Path, run_id: str, *, iterations: list[int], max_iterations: int, mtime: float,
                  checkpoint: int | None = None, done: bool = False, spi: float = 1.0) -> Path:
    """A training work directory as the adapters leave it (log.txt, last_checkpoint, done.json), dated ``mtime``."""
    d = work / run_id
    d.mkdir(parents=True, exist_ok=True)
    (d / "run_config.json").write_text(json.dumps({"id": run_id}))
    log = d / "log.txt"
    log.write_text("".join(progress_line(i, max_iterations, spi=spi) + "\n" for i in iterations))
    if checkpoint is not None:
        name = f"model_{checkpoint:07d}.pth"
        (d / name).write_bytes(b"x")
        (d / "last_checkpoint").write_text(name + "\n")
    if done:
        (d / "model_final.pth").write_bytes(b"x")
        (d / "last_checkpoint").write_text("model_final.pth\n")
        (d / "done.json").write_text(json.dumps({"run_id": run_id, "checkpoint": "model_final.pth"}))
    for path in (*d.iterdir(), d):
        os.utime(path, (mtime, mtime))
    return d


def half_finished_campaign(root: Path, now: float) -> dict[str, Any]:
    """PCB Table 2 at smoke scale, frozen at ``now``: 6 done runs, 2 running, 1 stalled, 1 failed, 6 pending.

    Returns {"results", "work", "plan", and the run ids by state}."""
    results, work = root / "results", root / "work"
    plan = pcb2_plan()
    run_ids = list(plan.runs)
    done, running, stalled, failed = run_ids[:6], run_ids[6:8], run_ids[8], run_ids[9]
    pending = run_ids[10:]

    def metrics(row, seed):
        """Every verdict appears: AP as the paper's (✓), AP_r 3 above (▲), AP_c 3 below (✗), the rest near it."""
        if row.run_ids[0] not in done:
            return None
        paper = {k: float(v) for k, v in row.cells.items()}
        return {"segm.AP": paper["segm.AP"], "segm.APr": paper["segm.APr"] + 3.0, "segm.APc": paper["segm.APc"] - 3.0,
                "segm.APf": paper["segm.APf"] + 0.4, "bbox.AP": paper["bbox.AP"] - 0.3, "PwB": paper.get("PwB", 9.0),
                "segm.AP1": 1.0, "segm.AP2": 4.0, "segm.AP3": 12.0, "segm.AP4": 20.0}

    fill(results, metrics, plan=plan)
    for i, run_id in enumerate(done):
        marker = results / "runs" / run_id / "train.done"
        marker.parent.mkdir(parents=True, exist_ok=True)
        start = now - 3600 + 300 * i
        marker.write_text(json.dumps({"run_id": run_id, "started": _iso(start), "ended": _iso(start + 240),
                                      "wall_time_s": 240.0, "checkpoint": "model_final.pth", "iterations": 60}))
        write_workdir(work, run_id, iterations=list(range(6, 61, 6)), max_iterations=60, mtime=start + 240, done=True)
    write_workdir(work, running[0], iterations=[6, 12, 18, 24, 30, 36, 42], max_iterations=60, mtime=now - 5,
                  checkpoint=40, spi=2.0)
    write_workdir(work, running[1], iterations=[6, 12], max_iterations=60, mtime=now - 1, spi=2.0)
    write_workdir(work, stalled, iterations=[6, 12, 18, 24], max_iterations=60, mtime=now - 2 * 3600, checkpoint=20)
    write_workdir(work, failed, iterations=[6], max_iterations=60, mtime=now - 1800)
    note = write_failure(failed, "train", "RuntimeError: CUDA out of memory", results_dir=results)
    info = json.loads(note.read_text())
    info["time"] = _iso(now - 1790)
    note.write_text(json.dumps(info))
    return {"results": results, "work": work, "plan": plan, "done": done, "running": running, "stalled": stalled,
            "failed": failed, "pending": pending}


def _iso(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")
