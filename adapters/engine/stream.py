"""The stream of training images: the run's sampler (``ltbench.methods.samplers``), epoch after epoch,
resumable from ``(epoch, position)``.

Every sampler's epoch is a pure function of (seed, epoch), so the stream after a restart is the one
without. Under data parallelism every rank runs the same stream and takes its own slice of each global
batch (``rank_slice``): the images of one iteration are those of a single-process run, whatever the
number of ranks, so RFS, class-aware and bi-level sampling keep each image's repeats per epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ltbench.errors import LtbenchError


class IndexStream:
    """An endless stream of dataset indices, epoch after epoch, resumable from ``(epoch, position)``.

    ``order_for_epoch(epoch) -> list[int]`` must be a pure function of the epoch (it is seeded inside),
    so that the stream after a restart is the same as without one.
    """

    def __init__(self, order_for_epoch: Callable[[int], list[int]]) -> None:
        self._order_for_epoch = order_for_epoch
        self.epoch = 0
        self.position = 0
        self._order: list[int] | None = None

    def _current(self) -> list[int]:
        if self._order is None:
            self._order = list(self._order_for_epoch(self.epoch))
            if not self._order:
                raise LtbenchError("the training sampler produced an empty epoch", expected="at least one training image")
        return self._order

    def take(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            order = self._current()
            if self.position >= len(order):
                self.epoch += 1
                self.position = 0
                self._order = None
                continue
            out.append(order[self.position])
            self.position += 1
        return out

    @property
    def epoch_length(self) -> int:
        return len(self._current())

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = None


def epoch_order(sampler: dict | None, image_categories: Sequence[set[int]], seed: int, *, batch_size: int = 1,
                default_rounding: str = "ceil") -> Callable[[int], list]:
    """``epoch -> list of stream items`` for the run's ``sampler`` (``samplers.build_image_sampler``): image
    indices, or for SimCal's ``bilevel`` sampler ``(image index, class index)`` pairs (``image_categories``
    then hold class indices), ``batch_size`` per episode. RFS without ``rounding`` uses ``default_rounding``,
    the framework's own (mmdet ceil, detectron2 stochastic)."""
    from ltbench.methods.samplers import build_image_sampler

    return build_image_sampler(sampler, image_categories, seed=seed, batch_size=batch_size,
                               default_rounding=default_rounding).epoch_indices


def drawn_images(order: Callable[[int], list], image_categories: Sequence[set[int]], class_stats: Any, images: int) -> dict[str, Any]:
    """What the sampler feeds a run: of its first ``images`` stream items (iterations x global batch, epoch after
    epoch), how many hold a category of each LVIS frequency group, in percent (an image counts once in each group
    it holds). Recorded in done.json (``training.sampler``), so that a broken sampler shows in the regression check
    (``train.sampler.rare_pct``) without waiting for its effect on AP. ``image_categories``: category ids per image."""
    group_of = dict(zip(class_stats.category_ids, class_stats.frequencies))
    counts = {"r": 0, "c": 0, "f": 0}
    drawn, epoch = 0, 0
    while drawn < images:
        items = order(epoch)[: images - drawn]
        if not items:
            break
        for index in items:
            for group in {group_of.get(c) for c in image_categories[index]} & counts.keys():
                counts[group] += 1
        drawn += len(items)
        epoch += 1
    share = (lambda n: round(100.0 * n / drawn, 3)) if drawn else (lambda n: 0.0)
    return {"images": drawn, "rare_pct": share(counts["r"]), "common_pct": share(counts["c"]), "frequent_pct": share(counts["f"])}


def rank_slice(items: list, rank: int, world_size: int) -> list:
    """This rank's share of one global batch: contiguous, ``len(items) / world_size`` items each."""
    per_rank, rest = divmod(len(items), world_size)
    if rest:
        raise LtbenchError(f"a global batch of {len(items)} images does not split over {world_size} ranks",
                           key="schedule.batch_size", expected=f"a multiple of {world_size}")
    return items[rank * per_rank:(rank + 1) * per_rank]


class RankBatches:
    """A torch ``batch_sampler``: this rank's slice of each global batch of an ``IndexStream``, forever.

    The DataLoader's prefetching runs ahead of training, so this stream is not the one checkpointed: the
    trainer advances its own copy by one global batch per step (``IndexStream`` is deterministic)."""

    def __init__(self, order: Callable[[int], list], state: dict, global_batch: int, rank: int = 0, world_size: int = 1) -> None:
        self.stream = IndexStream(order)
        self.stream.load_state_dict(state)
        self.global_batch, self.rank, self.world_size = global_batch, rank, world_size

    def __iter__(self) -> Iterator[list[Any]]:
        while True:
            yield rank_slice(self.stream.take(self.global_batch), self.rank, self.world_size)
