"""The hooks of ``adapters.engine.trainer.Trainer`` (detectron2's ``HookBase`` protocol).

The same five hooks, under the same names, exist for every engine (docs/CONTRACTS.md, "Training hooks"):

| hook | when | what |
|---|---|---|
| ``Reseed`` | before each step | torch/numpy/random seeded from (seed, iteration, rank) |
| ``LRScheduler`` | before each step | lr = ``schedule.lr_at(iteration)`` (warm-up, steps) |
| ``ProgressGate`` | before each step | ``BoxHead.set_progress(epoch, epochs, iter, max_iter)`` (PCB's start gate) |
| ``PeriodicWriter`` | after each step | a progress line every N iterations (``engine.progress``) |
| ``PeriodicCheckpointer`` | after each step, at the end | checkpoint every ``checkpoint_period`` iterations and every ``checkpoint_minutes`` of wall time, and when the time-limit signal came (then exit 75: resubmit me); the final checkpoint and ``done.json`` |
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.checkpoints import LAST_CHECKPOINT
from adapters.engine import preemption
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
    """Progress lines on rank 0 (``engine.progress.ProgressLogger``); the losses shown are the mean over
    the ranks (one all-reduce on the iterations that are logged), as detectron2 and mmengine show them."""

    def __init__(self, workdir: Any, every: int | None = None) -> None:
        self.workdir, self.every = workdir, every
        self.logger: ProgressLogger | None = None

    def before_train(self) -> None:
        state = self.trainer.state
        self.logger = ProgressLogger(self.workdir, state.max_iter, start_iteration=state.start_iter, every=self.every)
        if state.start_iter and self.trainer.rank == 0:
            pointer = (Path(self.workdir) / LAST_CHECKPOINT).read_text(encoding="utf-8").strip()
            self.logger.note(f"resuming from {pointer} at iteration {state.start_iter}/{state.max_iter}")

    def after_step(self) -> None:
        if not self.logger.due(self.trainer.iter):
            return
        losses = self.trainer.state.losses
        if self.trainer.world_size > 1:  # every rank takes part: the decision above depends on the iteration only
            import torch

            mean = self.trainer.fabric.all_reduce(torch.tensor(list(losses.values()), dtype=torch.float64), reduce_op="mean")
            losses = dict(zip(losses, mean.tolist()))
        if self.trainer.rank == 0:
            self.logger(self.trainer.iter, losses, self.trainer.state.lr, force=True)


class PeriodicCheckpointer(HookBase):
    """Checkpoints of a run (``save(iteration_done, final) -> path`` writes one on rank 0; every rank waits).

    A periodic checkpoint comes every ``period`` iterations, and also when ``schedule.checkpoint_minutes`` of
    wall time have passed since the last one (a cluster job then loses at most that much work), and when the
    time-limit signal came (``adapters.engine.preemption``): then the run checkpoints, stops, and leaves with
    ``preemption.EXIT_CODE`` so that the job is resubmitted and resumes from this checkpoint. Rank 0's clock
    and signal decide for every rank, so all ranks checkpoint and stop at the same iteration."""

    def __init__(self, save: Callable[[int, bool], Path | None], period: int, *, wall_seconds: float | None = None,
                 workdir: Path | None = None) -> None:
        self.save, self.period = save, int(period)
        self.wall = preemption.WallClock(wall_seconds)
        self.workdir = workdir
        self.stopped: tuple[int, Path | None] | None = None

    def after_step(self) -> None:
        done = self.trainer.iter + 1
        stop, by_time = self.trainer.fabric.broadcast((preemption.requested() is not None, self.wall.due()), src=0)
        if done >= self.trainer.state.max_iter:
            return
        if stop or by_time or checkpoint_due(done, self.period, self.trainer.state.max_iter):
            saved = self.save(done, False)
            self.wall.reset()
            if stop:
                self.stopped = (done, saved)
                self.trainer.stop_requested = True

    def after_train(self) -> None:
        if self.stopped is None:
            self.save(self.trainer.state.max_iter, True)
            return
        done, saved = self.stopped
        if self.trainer.rank == 0:
            preemption.exit_for_resubmission(done, self.trainer.state.max_iter, saved, self.workdir)
        raise SystemExit(preemption.EXIT_CODE)
