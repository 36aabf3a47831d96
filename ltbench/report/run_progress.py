"""A run's training progress as its work directory shows it: the last progress line of ``work/<run>/log.txt``
(ltbench's adapters' format or detectron2's) and the checkpoint ``last_checkpoint`` points at.

Used by the campaign status (``ltbench.report.status``); reads files only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

LOG_TAIL_BYTES = 64 * 1024

# ltbench's adapters (adapters/engine/progress.py ProgressLogger):
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
