"""The learning rate and the training progress as pure functions of the iteration (no scheduler state to
checkpoint: a resumed run computes the same values)."""

from __future__ import annotations

import math


def lr_at(schedule: dict, iteration: int) -> float:
    """LR for 0-based ``iteration``: linear warmup from ``warmup_factor`` (default 1/1000, as mmdet and
    detectron2) over ``warmup_iters``, times ``gamma`` (default 0.1) per passed step in ``steps``."""
    base = float(schedule["lr"])
    gamma = float(schedule.get("gamma", 0.1))
    factor = gamma ** sum(1 for s in schedule.get("steps", []) if iteration >= int(s))
    warmup = int(schedule.get("warmup_iters", 0))
    if warmup > 0 and iteration < warmup:
        start = float(schedule.get("warmup_factor", 0.001))
        alpha = iteration / warmup
        factor *= start * (1 - alpha) + alpha
    return base * factor


def epoch_progress(iteration: int, max_iterations: int, batch_size: int, epoch_length: int) -> tuple[int, int]:
    """(0-based epoch, number of epochs) of an iteration-based run: images seen / images per epoch.

    ``epoch_length`` is the sampler's real epoch (enlarged under mmdet's ceil-RFS); ``batch_size`` the
    total over every rank. What a method's start gate (PCB) reads through ``BoxHead.set_progress``."""
    epoch_length = max(1, int(epoch_length))
    max_epochs = max(1, math.ceil(int(max_iterations) * int(batch_size) / epoch_length))
    return (int(iteration) * int(batch_size)) // epoch_length, max_epochs
