"""The workflow's steps as one command each (``ltbench step train|predict|evaluate``), so that every rule's
shell command is one line.

A step writes the resolved config it runs (from the plan the workflow built its DAG from), runs the
ltbench command of its stage in this process, and writes its marker; when anything fails it writes the
failure note (``results/failures/<run>/<stage>[-<view>].json``, the reason read from the step's log) so
that tables can say "failed (reason)", and exits non-zero so that Snakemake reports the job as failed.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from ltbench.errors import LtbenchError


def limit_threads(threads: int | None) -> None:
    """One step's CPU share, before torch starts its thread pool (the rule's ``threads``)."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ["LTBENCH_THREADS"] = str(threads)


def emit_config(config_json: str, expected_id: str, out: Path) -> dict:
    """Write the plan's resolved config (the workflow passes it as JSON) to ``out``, atomically."""
    from ltbench.io import write_json

    config = json.loads(config_json)
    if config.get("id") != expected_id:
        raise LtbenchError(f"--config-json has id {config.get('id')!r}, not {expected_id!r}", key="--config-json",
                           expected="the config of the step's own run or view")
    write_json(out, config)
    return config


def run_ltbench(argv: Sequence[str]) -> None:
    """``ltbench <argv>`` in this process; an error (already printed to the log) becomes ``StepFailed``."""
    from ltbench.cli import main

    code = main(list(argv))
    if code:
        raise StepFailed(f"ltbench {argv[0]} exited with status {code}")


class StepFailed(Exception):
    """A step's command failed; its message is already in the log."""


def guarded(stage: str, run_id: str, view_id: str | None, log: Path, results_dir: Path, body: Callable[[], None]) -> int:
    """Run ``body``; on failure print the reason to the log, write the failure note, return 1."""
    from ltbench.store.records import reason_from_log, write_failure
    from ltbench.workflow.resources import RESUBMIT_EXIT_CODE

    try:
        body()
        return 0
    except SystemExit as exc:
        if exc.code == RESUBMIT_EXIT_CODE:  # checkpointed before the time limit: resubmit me, no failure
            return RESUBMIT_EXIT_CODE
        write_failure(run_id, stage, reason_from_log(log), view_id=view_id, log_path=log, results_dir=results_dir)
        raise
    except BaseException as exc:  # KeyboardInterrupt included: the job did not finish, the note says why
        if not isinstance(exc, StepFailed):
            traceback.print_exc()
        print(f"ltbench step {stage}: failed: {exc}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        write_failure(run_id, stage, reason_from_log(log), view_id=view_id, log_path=log, results_dir=results_dir)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return 1


def begin_training(run_id: str, workdir: Path, out_done: Path, parents: tuple[Path | None, ...] = ()):
    """What this training job does with ``workdir`` (``ltbench.workflow.workdir.job_decision``: train or resume,
    train a finished run again, or only mark it), said in the log."""
    from ltbench.workflow.workdir import REQUEST_FILE, job_decision

    decision = job_decision(run_id, workdir, Path(out_done).parent / REQUEST_FILE, parents)
    print(f"ltbench step train: {decision.message}", file=sys.stderr, flush=True)
    return decision


def mark_trained(run_id: str, workdir: Path, started: str, out: Path) -> None:
    """``results/runs/<run>/train.done``: the adapter's done.json plus the job's timing; clears stale notes."""
    from datetime import datetime

    from ltbench.io import read_json, write_json
    from ltbench.store.provenance import utc_now
    from ltbench.store.records import clear_failures

    summary = read_json(Path(workdir) / "done.json")
    timing: dict = {"started": started, "ended": utc_now()}
    try:
        timing["wall_time_s"] = (datetime.fromisoformat(timing["ended"]) - datetime.fromisoformat(started)).total_seconds()
    except ValueError:
        pass
    write_json(out, {"run_id": run_id, "workdir": str(workdir), **timing, **summary})
    from ltbench.workflow.workdir import REQUEST_FILE

    (Path(out).parent / REQUEST_FILE).unlink(missing_ok=True)  # a forced retrain is done once its marker is there
    clear_failures(run_id, None, Path(out).parent.parent.parent)  # results/runs/<run>/train.done -> results
