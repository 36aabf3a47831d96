"""``Trainer``: the iteration loop of the torchvision adapter, in the shape of detectron2's ``TrainerBase``.

The loop only orders the work; everything else is a hook (``adapters.engine.hooks``) or Lightning Fabric:

    before_train (hooks) -> for each iteration: before_step (Reseed, LRScheduler, ProgressGate)
                                                run_step: next batch -> step(batch) -> losses
                                                          -> backward (Fabric) -> clip -> optimizer.step
                                                after_step (PeriodicWriter, PeriodicCheckpointer)
                         -> after_train (final checkpoint, done.json)

Lightning Fabric (``lightning_fabric``) owns the device, the data-parallel ranks (DDP over NCCL on GPUs,
gloo on CPUs), mixed precision (``16-mixed`` = torch.autocast + GradScaler with dynamic loss scaling;
``bf16-mixed`` the same path with bfloat16, which is what a CPU can run) and collective calls. With one
CPU process and ``32-true`` precision Fabric changes no number: a run is bit-identical to a plain loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ltbench.errors import LtbenchError


@dataclass
class TrainState:
    """What the hooks read and write: the position in the run and the last step's results."""

    iter: int = 0
    start_iter: int = 0
    max_iter: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0


class Trainer:
    """Runs ``step`` for ``max_iter`` iterations with hooks; see the module docstring.

    Args:
        fabric: a launched ``lightning_fabric.Fabric``.
        model: the model after ``fabric.setup`` (forwards through DDP and precision).
        module: the model itself (checkpoints, attributes such as ``roi_heads``).
        optimizer: the optimizer after ``fabric.setup``.
        batches: an endless iterator of this rank's batches (already on the device or moved by ``step``).
        step: ``batch -> dict[str, Tensor]`` of scalar losses (the model in train mode).
        grad_clip: maximum gradient norm (None: no clipping).
    """

    def __init__(self, *, fabric: Any, model: Any, module: Any, optimizer: Any, batches: Iterator[Any],
                 step: Callable[[Any], dict], max_iter: int, start_iter: int = 0, grad_clip: float | None = None,
                 where: str = "run") -> None:
        self.fabric, self.model, self.module, self.optimizer = fabric, model, module, optimizer
        self.batches, self.step = batches, step
        self.grad_clip = grad_clip
        self.where = where
        self.state = TrainState(iter=start_iter, start_iter=start_iter, max_iter=max_iter)
        self.hooks: list[Any] = []
        self.stop_requested = False  # a hook ends the run early (time-limit signal): after_train still runs

    @property
    def iter(self) -> int:
        return self.state.iter

    @property
    def rank(self) -> int:
        return int(self.fabric.global_rank)

    @property
    def world_size(self) -> int:
        return int(self.fabric.world_size)

    def register_hooks(self, hooks: list[Any]) -> None:
        for hook in hooks:
            hook.trainer = self
        self.hooks.extend(hooks)

    def train(self) -> None:
        """The loop; SIGURG/SIGUSR1/SIGTERM are recorded meanwhile (``preemption``) and acted on by a hook."""
        from adapters.engine import preemption

        with preemption.handling():
            for hook in self.hooks:
                hook.before_train()
            self.model.train()
            while self.state.iter < self.state.max_iter and not self.stop_requested:
                for hook in self.hooks:
                    hook.before_step()
                self.run_step()
                for hook in self.hooks:
                    hook.after_step()
                self.state.iter += 1
            for hook in self.hooks:
                hook.after_train()

    def run_step(self) -> None:
        import torch

        batch = next(self.batches)
        with self.fabric.autocast():
            losses = self.step(batch)
        # losses are summed in float32 whatever the autocast dtype (their terms already are float32)
        total = sum(losses.values())
        if not torch.isfinite(total):
            raise LtbenchError(f"training diverged at iteration {self.state.iter + 1}: loss is {float(total)}",
                               path=self.where, expected="a finite loss", hint="lower schedule.lr or raise schedule.warmup_iters")
        self.optimizer.zero_grad(set_to_none=True)
        self.fabric.backward(total)
        if self.grad_clip:
            # error_if_nonfinite=False: under dynamic loss scaling an overflowing step is skipped by the scaler
            self.fabric.clip_gradients(self.module, self.optimizer, max_norm=float(self.grad_clip), error_if_nonfinite=False)
        self.optimizer.step()
        self.state.losses = {k: float(v.detach()) for k, v in losses.items()}


def checkpoint_due(iteration_done: int, period: int, max_iter: int) -> bool:
    """A periodic checkpoint after ``iteration_done`` iterations (never at the end: the final one is written then)."""
    return period > 0 and iteration_done % period == 0 and iteration_done < max_iter
