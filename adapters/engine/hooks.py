"""The hooks of ``adapters.engine.trainer.Trainer`` (detectron2's ``HookBase`` protocol).

The same five hooks, under the same names, exist for every engine (docs/CONTRACTS.md, "Training hooks"):

| hook | when | what |
|---|---|---|
| ``Reseed`` | before each step | torch/numpy/random seeded from (seed, iteration, rank) |
| ``LRScheduler`` | before each step | lr = ``schedule.lr_at(iteration)`` (warm-up, steps) |
| ``ProgressGate`` | before each step | ``BoxHead.set_progress(epoch, epochs, iter, max_iter)`` (PCB's start gate) |
| ``PeriodicWriter`` | after each step | a progress line every N iterations (``engine.progress``) |
| ``PeriodicCheckpointer`` | after each step, at the end | checkpoint every ``checkpoint_period`` iterations and every ``checkpoint_minutes`` of wall time, and when the time-limit signal came; the final checkpoint and ``done.json`` |
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.checkpoints import LAST_CHECKPOINT
from adapters.engine.progress import ProgressLogger
from adapters.engine.randomness import iteration_seed, seed_everything
from adapters.engine.schedule import epoch_progress, lr_at
from adapters.engine.trainer import checkpoint_due


class HookBase:
    """A training hook; ``trainer`` is set by ``Trainer.register_hooks``."""

    trainer: Any = None

    def before_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_train(self) -> None:
        pass


class Reseed(HookBase):
    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def before_step(self) -> None:
        seed_everything(iteration_seed(self.seed, self.trainer.iter, self.trainer.rank))


class LRScheduler(HookBase):
    def __init__(self, schedule: dict) -> None:
        self.schedule = schedule

    def before_step(self) -> None:
        lr = lr_at(self.schedule, self.trainer.iter)
        for group in self.trainer.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        self.trainer.state.lr = lr


class ProgressGate(HookBase):
    """Tells the box head where training is: ``set_progress(epoch, max_epochs, iteration, max_iterations)``;
    ``batch_size`` is the global batch, ``epoch_length`` the sampler's real epoch."""

    def __init__(self, set_progress: Callable[[int, int, int, int], None], batch_size: int, epoch_length: int) -> None:
        self.set_progress, self.batch_size, self.epoch_length = set_progress, batch_size, epoch_length

    def before_step(self) -> None:
        state = self.trainer.state
        epoch, epochs = epoch_progress(state.iter, state.max_iter, self.batch_size, self.epoch_length)
        self.set_progress(epoch, epochs, state.iter, state.max_iter)


class PeriodicWriter(HookBase):
    """Progress lines on rank 0 (``engine.progress.ProgressLogger``)."""

    def __init__(self, workdir: Any, every: int | None = None) -> None:
        self.workdir, self.every = workdir, every
        self.logger: ProgressLogger | None = None

    def before_train(self) -> None:
        state = self.trainer.state
        if self.trainer.rank == 0:
            self.logger = ProgressLogger(self.workdir, state.max_iter, start_iteration=state.start_iter, every=self.every)
            if state.start_iter:
                pointer = (Path(self.workdir) / LAST_CHECKPOINT).read_text(encoding="utf-8").strip()
                self.logger.note(f"resuming from {pointer} at iteration {state.start_iter}/{state.max_iter}")

    def after_step(self) -> None:
        if self.logger is not None:
            self.logger(self.trainer.iter, self.trainer.state.losses, self.trainer.state.lr)


class PeriodicCheckpointer(HookBase):
    """Checkpoints of a run (``save(iteration_done, final)`` writes one; only rank 0 writes, every rank waits).

    A periodic checkpoint comes every ``period`` iterations, and also when ``minutes`` of wall time have passed
    since the last one (a cluster job then loses at most that much work), and when ``stop_requested()``
    says the job's time limit is near: then the run checkpoints and stops, and ``after_train`` writes no
    final checkpoint (the resubmitted job resumes from this one)."""

    def __init__(self, save: Callable[[int, bool], None], period: int, *, minutes: float | None = None,
                 stop_requested: Callable[[], bool] | None = None) -> None:
        self.save, self.period = save, int(period)
        self.seconds = None if not minutes else float(minutes) * 60.0
        self.stop_requested = stop_requested or (lambda: False)
        self.last = time.monotonic()
        self.stopped_at: int | None = None

    def after_step(self) -> None:
        done = self.trainer.iter + 1
        # rank 0's clock and signal decide for every rank, so all ranks checkpoint at the same iteration
        by_time = self.seconds is not None and time.monotonic() - self.last >= self.seconds
        stop, by_time = self.trainer.fabric.broadcast((bool(self.stop_requested()), by_time), src=0)
        if done >= self.trainer.state.max_iter:
            return
        if stop or by_time or checkpoint_due(done, self.period, self.trainer.state.max_iter):
            self.save(done, False)
            self.last = time.monotonic()
        if stop:
            self.stopped_at = done
            self.trainer.stop_requested = True

    def after_train(self) -> None:
        if self.stopped_at is None:
            self.save(self.trainer.state.max_iter, True)
