"""Checkpoint and exit when the job's time limit is near: the training loop's side of resubmission.

A training job on a cluster with a time limit (often 24 h) cannot finish a 40-120 GPU-hour run. The
workflow asks SLURM to signal the job shortly before the limit (``sbatch --signal=URG@<seconds>``,
``slurm.checkpoint_signal_s``); the handler installed here only records the request, the training loop
checks ``requested()`` after each iteration, writes its regular checkpoint and leaves through
``exit_for_resubmission`` with ``EXIT_CODE``. Snakemake's retries resubmit the job, and the new job
resumes from ``last_checkpoint`` (the same weights as an uninterrupted run, see ``adapters.base``).

Signals handled:

- ``SIGURG``: the one the workflow asks SLURM for. SLURM signals every process of the job step, and in
  the SLURM executor plugin's layout those are ``snakemake`` (the job) -> ``bash`` (the rule's shell) ->
  ``python`` (this loop). SIGURG's default action is to be ignored, so Snakemake and bash live on while
  this process checkpoints and exits with ``EXIT_CODE``, which reaches Snakemake as the job's failure.
  (With ``SIGUSR1`` or ``SIGTERM`` both die at once: Snakemake reports the job failed, the step ends,
  and the training process is orphaned or killed while it writes its checkpoint.)
- ``SIGUSR1``: the usual choice for a process that SLURM starts directly (``--signal=USR1@600`` with
  ``srun python ...``), or ``scancel --signal=USR1`` sent by hand to such a job.
- ``SIGTERM``: what SLURM sends at the time limit itself and on preemption (``KillWait``, default 30 s,
  before SIGKILL), and what ``kill`` sends: the current iteration finishes and is checkpointed.

``EXIT_CODE`` is 75 (``EX_TEMPFAIL`` of sysexits.h, "temporary failure, try again"): "checkpointed at
iteration N; run the same command again to continue". The workflow's train rule passes it on instead of
writing a failure note.

Also here: checkpoints by wall time (``schedule.checkpoint_minutes``, default 30) so that a job killed
without warning (node failure, a signal that did not come) loses at most that much work.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from ltbench.errors import LtbenchError

#: Exit status of a training process that saved a checkpoint on request and wants to be started again.
EXIT_CODE = 75
#: Left in the work directory by rank 0 when it stops on a signal (a launcher's own exit status hides the 75).
MARKER = "preempted.json"

#: Signals that ask the training loop to checkpoint and exit (names, so that tests can pick a subset).
SIGNALS = ("SIGURG", "SIGUSR1", "SIGTERM")

#: Handled from the start of ``ltbench train`` (before torch is imported). Only SIGURG: its default
#: action is to be ignored, so a code path that never checks ``requested()`` (the mmdet and detectron2
#: trainers) behaves as without the handler, while SIGTERM and SIGUSR1 keep killing such a process.
EARLY_SIGNALS = ("SIGURG",)

#: Minutes between checkpoints by wall time when ``schedule.checkpoint_minutes`` is absent.
DEFAULT_CHECKPOINT_MINUTES = 30.0

_lock = threading.Lock()
_request: dict[str, Any] = {"signal": None, "time": None}
_previous: dict[int, Any] = {}


def _handler(signum: int, frame: Any) -> None:
    # Only record the request: the loop acts on it between iterations (no I/O in a signal handler).
    if _request["signal"] is None:
        _request["signal"] = signal.Signals(signum).name
        _request["time"] = time.time()


def install(signals: tuple[str, ...] = SIGNALS) -> bool:
    """Handle ``signals`` in this process (idempotent). Returns False where handlers cannot be set
    (not the main thread): the loop then runs without checkpoint-on-signal."""
    if threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        for name in signals:
            signum = getattr(signal, name)
            if signum not in _previous:
                _previous[signum] = signal.signal(signum, _handler)
    return True


def uninstall(signals: tuple[str, ...] | None = None) -> None:
    """Restore the handlers that ``install`` replaced (all, or those of ``signals``); a request stays."""
    if threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        for signum in [getattr(signal, n) for n in signals] if signals is not None else list(_previous):
            if signum in _previous:
                previous = _previous.pop(signum)
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)


def installed() -> tuple[str, ...]:
    """Names of the signals handled now."""
    return tuple(signal.Signals(s).name for s in sorted(_previous))


@contextmanager
def handling(signals: tuple[str, ...] = SIGNALS) -> Iterator[bool]:
    """``install`` for the duration of a training loop, then restore the handlers it replaced.

    ``ltbench train`` installs ``EARLY_SIGNALS`` first thing, so that a time-limit signal that comes while
    torch imports and the model is built still counts (the loop then stops after one iteration); that
    request is kept. Without an earlier installation a request left by an earlier loop is cleared."""
    if not installed():
        reset()
    added = tuple(name for name in signals if name not in installed())
    active = install(added)
    try:
        yield active
    finally:
        uninstall(added)


def requested() -> str | None:
    """The name of the first signal received since the last ``reset``, or None."""
    return _request["signal"]


def reset() -> None:
    _request["signal"] = None
    _request["time"] = None


def exit_for_resubmission(iteration: int, max_iterations: int, checkpoint: Path, workdir: Path) -> NoReturn:
    """Say why this process stops (stderr and ``workdir/log.txt``) and exit with ``EXIT_CODE``."""
    line = (
        f"{requested() or 'stop request'} received: checkpointed at iteration {iteration}/{max_iterations} "
        f"({Path(checkpoint).name}); exiting with {EXIT_CODE} so that the job is resubmitted and resumes there"
    )
    print(line, file=sys.stderr, flush=True)
    with open(Path(workdir) / "log.txt", "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    from ltbench.io import write_json

    write_json(Path(workdir) / MARKER, {"signal": requested(), "iteration": iteration, "checkpoint": Path(checkpoint).name})
    raise SystemExit(EXIT_CODE)


def checkpoint_seconds(schedule: dict, where: str = "run config") -> float | None:
    """Seconds between checkpoints by wall time: ``schedule.checkpoint_minutes`` (default 30); 0 or None
    turns them off."""
    value = schedule.get("checkpoint_minutes", DEFAULT_CHECKPOINT_MINUTES)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise LtbenchError(
            f"schedule.checkpoint_minutes is {value!r}",
            path=where,
            key="schedule.checkpoint_minutes",
            expected="minutes between checkpoints by wall time (a number >= 0; 0 or null: none)",
        )
    return float(value) * 60.0 if value else None


class WallClock:
    """``due()`` once ``seconds`` have passed since the start or the last ``reset()`` (None: never)."""

    def __init__(self, seconds: float | None, clock=time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.last = clock()

    def due(self) -> bool:
        return self.seconds is not None and self.clock() - self.last >= self.seconds

    def reset(self) -> None:
        self.last = self.clock()


