"""Progress lines of a training run, one format for every framework: ``work/<run>/log.txt``.

    iter 40/60 loss=1.2345 loss_classifier=0.4000 ... lr=0.02 0.51s/it eta=0:00:10

Lines go to stderr and are appended to ``log.txt`` (an append-only log, the one file the harness does not
write atomically: it is meant to be read while training runs; ``ltbench status`` reads its last line).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

LOG_FILE = "log.txt"


def log_period(max_iterations: int) -> int:
    """Iterations between two progress lines of a run of ``max_iterations``: a tenth of it, 1 to 20."""
    return max(1, min(20, max_iterations // 10 or 1))


class ProgressLogger:
    """One log line every ``every`` iterations (and at the last): iteration, losses, lr, s/iteration, ETA."""

    def __init__(self, workdir: Path, max_iterations: int, *, start_iteration: int = 0, every: int | None = None, stream=None) -> None:
        self.max_iterations = max_iterations
        self.every = every or log_period(max_iterations)
        self.start_iteration = start_iteration
        self.t0 = time.perf_counter()
        self.log_path = Path(workdir) / LOG_FILE
        self.stream = stream if stream is not None else sys.stderr

    def due(self, iteration: int) -> bool:
        """Whether 0-based ``iteration`` gets a line (every ``every`` iterations, and the last)."""
        done = iteration + 1
        return done % self.every == 0 or done == self.max_iterations

    def __call__(self, iteration: int, losses: dict[str, float], lr: float, *, force: bool = False) -> str | None:
        done = iteration + 1
        if not force and not self.due(iteration):
            return None
        elapsed = time.perf_counter() - self.t0
        per_iter = elapsed / max(1, done - self.start_iteration)
        eta = per_iter * (self.max_iterations - done)
        total = sum(losses.values())
        parts = " ".join(f"{k}={v:.4f}" for k, v in losses.items())
        line = (
            f"iter {done}/{self.max_iterations} loss={total:.4f} {parts} lr={lr:.6g} "
            f"{per_iter:.2f}s/it eta={format_seconds(eta)}"
        )
        print(line, file=self.stream, flush=True)
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return line

    def note(self, message: str) -> None:
        """A free-form line (resume, checkpoint on signal) in the same log."""
        print(message, file=self.stream, flush=True)
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(message + "\n")


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"
