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


def split_batch(schedule: dict, world_size: int) -> tuple[int, dict, str | None]:
    """(images per rank, the schedule to train, a note) for ``world_size`` data-parallel ranks.

    The paper's total batch (``schedule.batch_size``, 16) and learning rate stay as they are whenever the
    ranks divide the batch (16 = 8 x 2 = 4 x 4 = 2 x 8): each rank takes its share of every global batch.
    Otherwise each rank takes round(B / N) images and the learning rate follows the linear scaling rule
    (Goyal et al. 2017: lr x B' / B), a named assumption (``linear-scaling-rule``) returned as the note and
    recorded with the run."""
    world_size = max(1, int(world_size))
    batch = int(schedule["batch_size"])
    if batch % world_size == 0:
        return batch // world_size, schedule, None
    per_rank = max(1, round(batch / world_size))
    total = per_rank * world_size
    scaled = {**schedule, "batch_size": total, "lr": float(schedule["lr"]) * total / batch}
    note = (f"linear-scaling-rule: {world_size} ranks do not divide the batch of {batch}; {per_rank} images per rank, "
            f"total {total}, lr {schedule['lr']} x {total}/{batch} = {scaled['lr']:.6g}")
    return per_rank, scaled, note


def sampler_epoch_images(sampler: dict | None, image_categories: list, *, default_rounding: str) -> float:
    """Images in one epoch of the run's image sampler over these training images: exact for random and
    ceil-RFS (sum_I ceil(r(I))), the expectation sum_I r(I) for stochastic RFS."""
    from ltbench.methods.samplers import build_image_sampler

    built = build_image_sampler(sampler, image_categories, seed=0, default_rounding=default_rounding)
    expected = getattr(built, "expected_epoch_length", None)
    return float(expected()) if expected is not None else float(len(built.epoch_indices(0)))


def epoch_note(schedule: dict, epoch_images: float) -> str | None:
    """A note for ``done.json`` when an epoch schedule's planned epoch (``schedule.epoch_images``: the training
    images, or the plan's RFS estimate, assumption rfs-epoch-size) differs from the epoch of the data and
    sampler the run trains on; the run keeps the planned iterations, LR steps and PCB start (fractions of the
    run), and the note says how many of the sampler's real epochs they are. None when they agree."""
    planned = schedule.get("epoch_images")
    if not planned or "epochs" not in schedule or round(float(epoch_images)) == int(planned):
        return None
    epochs = int(schedule["iterations"]) * int(schedule["batch_size"]) / max(1.0, float(epoch_images))
    return (f"rfs-epoch-size: planned epoch {int(planned)} images, this sampler's epoch {float(epoch_images):.0f}; "
            f"the {int(schedule['iterations'])} planned iterations are {epochs:.2f} of its epochs "
            f"(planned {schedule['epochs']})")
