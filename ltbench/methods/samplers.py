"""Image and RoI samplers of the long-tail methods, framework-free.

Image-level samplers take the training set as ``image_categories: list[set[int]]`` (the category ids
present in each training image, in dataset order) and produce dataset indices; they use a seedable
``numpy.random.Generator`` and no framework. An adapter feeds the indices to its data loader. Pass the
images the framework actually trains on (mmdet and detectron2 drop images without annotations before
computing f(c), so the fractions are over the kept images).

- ``repeat_factors`` / ``RepeatFactorSampler``: repeat-factor sampling (RFS, Gupta et al. 2019):
  f(c) = fraction of images containing c, r(c) = max(1, sqrt(t / f(c))), r(I) = max_{c in I} r(c)
  (1 for an image without categories). Rounding: ``"ceil"`` repeats image I ceil(r(I)) times every
  epoch (mmengine/mmdet ``ClassBalancedDataset``); ``"stochastic"`` repeats it floor(r) + Bernoulli(frac(r))
  times, re-drawn every epoch (detectron2 ``RepeatFactorTrainingSampler``).
- ``ClassAwareSampler``: round robin over classes (class order reshuffled every cycle), each class drawing
  from its own reshuffled image cycle (mmdet ``ClassAwareSampler``).
- ``BilevelEpisodicSampler``: SimCal's bi-level sampler, batches of (image index, sampled class) pairs;
  ``compose_bilevel_batch`` then keeps the positives of the sampled class and as many random negatives.

RoI-level: ``bags_others_weights`` is BAGS' "others" sampling inside one group.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ltbench.errors import LtbenchError
from ltbench.registry import Registry

if TYPE_CHECKING:
    import torch

ROUNDINGS = ("ceil", "stochastic")


def _as_sets(image_categories: Iterable[Iterable[int]]) -> list[set[int]]:
    return [set(cats) for cats in image_categories]


def category_image_fractions(image_categories: Sequence[Iterable[int]]) -> dict[int, float]:
    """f(c): fraction of the images that contain category c, for every category present."""
    images = _as_sets(image_categories)
    if not images:
        raise LtbenchError("repeat-factor sampling needs at least one training image", expected="a non-empty dataset")
    counts: dict[int, int] = {}
    for cats in images:
        for c in cats:
            counts[c] = counts.get(c, 0) + 1
    return {c: n / len(images) for c, n in counts.items()}


def category_repeat_factors(image_categories: Sequence[Iterable[int]], t: float) -> dict[int, float]:
    """r(c) = max(1, sqrt(t / f(c))) for every category present in the images."""
    if not t > 0:
        raise LtbenchError(f"repeat threshold t must be positive, got {t!r}", key="sampler.t", expected="t > 0")
    return {c: max(1.0, math.sqrt(t / f)) for c, f in category_image_fractions(image_categories).items()}


def repeat_factors(image_categories: Sequence[Iterable[int]], t: float) -> list[float]:
    """r(I) = max over the categories of image I of r(c); 1.0 for an image without categories."""
    images = _as_sets(image_categories)
    per_category = category_repeat_factors(images, t)
    return [max((per_category[c] for c in cats), default=1.0) for cats in images]


class RepeatFactorSampler:
    """Per-epoch index streams with repeat-factor sampling.

    Args:
        image_categories: category ids per training image.
        t: repeat threshold (1e-3 in every LVIS config).
        rounding: "ceil" (mmdet, deterministic, the default) or "stochastic" (detectron2).
        seed: seed of the generator; epoch e uses a generator seeded with (seed, e), so a resumed run
            reproduces the same stream.
        shuffle: shuffle the repeated indices (both frameworks do).
    """

    def __init__(
        self,
        image_categories: Sequence[Iterable[int]],
        t: float = 1e-3,
        *,
        rounding: str = "ceil",
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if rounding not in ROUNDINGS:
            raise LtbenchError(
                f"unknown repeat-factor rounding {rounding!r}", key="sampler.rounding", expected=" or ".join(ROUNDINGS)
            )
        self.factors = np.asarray(repeat_factors(image_categories, t), dtype=np.float64)
        self.rounding, self.seed, self.shuffle = rounding, seed, shuffle

    def repeats(self, epoch: int = 0) -> np.ndarray:
        """(N,) int: how many times each image appears in ``epoch``."""
        if self.rounding == "ceil":
            return np.ceil(self.factors).astype(np.int64)  # math.ceil per image, as mmdet
        rng = np.random.default_rng([self.seed, epoch, 0])
        whole = np.floor(self.factors)
        return (whole + (rng.random(len(self.factors)) < self.factors - whole)).astype(np.int64)

    def epoch_indices(self, epoch: int = 0) -> list[int]:
        """The image indices of ``epoch`` (each repeated per ``repeats``), shuffled if ``shuffle``."""
        indices = np.repeat(np.arange(len(self.factors)), self.repeats(epoch))
        if self.shuffle:
            np.random.default_rng([self.seed, epoch, 1]).shuffle(indices)
        return indices.tolist()

    def expected_epoch_length(self) -> float:
        """Expected number of indices per epoch (exact for "ceil")."""
        if self.rounding == "ceil":
            return float(self.repeats().sum())
        return float(self.factors.sum())

    def __iter__(self) -> Iterator[int]:
        """Infinite stream: epoch 0, then epoch 1, ... (detectron2-style iteration-based training)."""
        epoch = 0
        while True:
            yield from self.epoch_indices(epoch)
            epoch += 1


def category_to_images(image_categories: Sequence[Iterable[int]]) -> dict[int, list[int]]:
    """Category id -> ascending indices of the images containing it."""
    out: dict[int, list[int]] = {}
    for index, cats in enumerate(image_categories):
        for c in sorted(set(cats)):
            out.setdefault(c, []).append(index)
    return out


class _ShuffledCycle:
    """Endless iterator over ``items`` that reshuffles them every time it wraps around."""

    def __init__(self, items: Sequence[Any], rng: np.random.Generator) -> None:
        self.items, self.rng = list(items), rng
        self.order: list[Any] = []

    def __next__(self) -> Any:
        if not self.order:
            self.order = [self.items[i] for i in self.rng.permutation(len(self.items))]
        return self.order.pop()


def _category_map(
    image_categories: Sequence[Iterable[int]] | None, cat_to_images: Mapping[int, Sequence[int]] | None
) -> dict[int, list[int]]:
    if (image_categories is None) == (cat_to_images is None):
        raise ValueError("give exactly one of image_categories and cat_to_images")
    mapping = category_to_images(image_categories) if cat_to_images is None else {
        c: list(imgs) for c, imgs in cat_to_images.items()
    }
    mapping = {c: imgs for c, imgs in sorted(mapping.items()) if imgs}
    if not mapping:
        raise LtbenchError("class-balanced sampling needs at least one class with an image", expected="a non-empty dataset")
    return mapping


class ClassAwareSampler:
    """Class-aware sampling: visit classes round robin, draw ``num_sample_class`` images per visit.

    The class order is a shuffled cycle over the classes that have images; each class draws from its
    own shuffled cycle over its images. An epoch has ``length`` indices (default: number of images).
    The cycles start afresh every epoch from a generator seeded with (seed, epoch), so a resumed run
    reproduces the stream (mmdet's cycles run on across epochs; the distribution is the same).

    Args:
        image_categories or cat_to_images: the dataset (exactly one of them).
        num_sample_class: images drawn per class visit (mmdet default 1).
        seed: epoch e uses a generator seeded with (seed, e).
    """

    def __init__(
        self,
        image_categories: Sequence[Iterable[int]] | None = None,
        *,
        cat_to_images: Mapping[int, Sequence[int]] | None = None,
        num_sample_class: int = 1,
        length: int | None = None,
        seed: int = 0,
    ) -> None:
        if num_sample_class < 1 or (length is not None and length < 0):
            raise LtbenchError(
                f"class-aware sampling needs num_sample_class >= 1 and length >= 0, got {num_sample_class}, {length}",
                key="sampler",
                expected="num_sample_class >= 1",
            )
        self.cat_to_images = _category_map(image_categories, cat_to_images)
        num_images = (
            len(image_categories)
            if image_categories is not None
            else len({i for imgs in self.cat_to_images.values() for i in imgs})
        )
        self.length = num_images if length is None else length
        self.num_sample_class, self.seed = num_sample_class, seed

    def epoch_indices(self, epoch: int = 0) -> list[int]:
        rng = np.random.default_rng([self.seed, epoch])
        classes = _ShuffledCycle(list(self.cat_to_images), rng)
        per_class = {c: _ShuffledCycle(imgs, rng) for c, imgs in self.cat_to_images.items()}
        out: list[int] = []
        while len(out) < self.length:
            cycle = per_class[next(classes)]
            for _ in range(self.num_sample_class):
                out.append(int(next(cycle)))
        return out[: self.length]

    def __len__(self) -> int:
        return self.length


class BilevelEpisodicSampler:
    """SimCal's bi-level sampler: batches of ``(image index, sampled class)`` pairs.

    Per batch, ``classes_per_batch`` classes are drawn uniformly with replacement among the classes with
    at least one image, and ``images_per_class`` images per drawn class uniformly with replacement from
    that class's images. The caller keeps, in each image, only the positive RoIs of its sampled class
    (``compose_bilevel_batch``). SimCal: 16 classes per batch, 1000 batches per epoch; its batch is
    gpus x imgs_per_gpu images, i.e. 1 image per class with 4 GPUs x 4 images.

    Args:
        image_categories or cat_to_images: the dataset (exactly one of them).
        classes_per_batch: n (16).
        images_per_class: images per drawn class (1).
        batch_size: alternative to ``images_per_class``: images per batch, a positive multiple of
            ``classes_per_batch``.
        episodes: batches per epoch (1000).
        seed: epoch e uses a generator seeded with (seed, e).
    """

    def __init__(
        self,
        image_categories: Sequence[Iterable[int]] | None = None,
        *,
        cat_to_images: Mapping[int, Sequence[int]] | None = None,
        classes_per_batch: int = 16,
        images_per_class: int | None = None,
        batch_size: int | None = None,
        episodes: int = 1000,
        seed: int = 0,
    ) -> None:
        if images_per_class is not None and batch_size is not None:
            raise LtbenchError(
                "give images_per_class or batch_size, not both", key="sampler", expected="one of images_per_class, batch_size"
            )
        if batch_size is None:
            per_class = 1 if images_per_class is None else images_per_class
            if per_class < 1:
                raise LtbenchError(
                    f"images_per_class must be >= 1, got {per_class}", key="sampler.images_per_class", expected=">= 1"
                )
            batch_size = per_class * classes_per_batch
        if classes_per_batch < 1 or batch_size < classes_per_batch or batch_size % classes_per_batch:
            raise LtbenchError(
                f"batch_size {batch_size} is not a positive multiple of classes_per_batch {classes_per_batch}",
                key="sampler.batch_size",
                expected="batch_size = k * classes_per_batch with k >= 1",
            )
        self.cat_to_images = _category_map(image_categories, cat_to_images)
        self.classes = list(self.cat_to_images)
        self.classes_per_batch, self.batch_size = classes_per_batch, batch_size
        self.episodes, self.seed = episodes, seed

    def epoch_batches(self, epoch: int = 0) -> Iterator[list[tuple[int, int]]]:
        rng = np.random.default_rng([self.seed, epoch])
        per_class = self.batch_size // self.classes_per_batch
        for _ in range(self.episodes):
            drawn = rng.choice(len(self.classes), size=self.classes_per_batch, replace=True)
            batch = []
            for ci in drawn:
                c = self.classes[int(ci)]
                images = self.cat_to_images[c]
                for i in rng.integers(0, len(images), size=per_class):
                    batch.append((int(images[int(i)]), c))
            yield batch

    def __len__(self) -> int:
        return self.episodes


def compose_bilevel_batch(
    roi_labels: torch.Tensor,
    roi_image_index: torch.Tensor,
    sampled_classes: Sequence[int] | torch.Tensor,
    *,
    num_classes: int,
    background: str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Select SimCal's calibration samples from the RoIs of one batch.

    Keeps, in every image b, the positive RoIs whose class is ``sampled_classes[b]``, plus a uniformly
    random subset (without replacement) of all negative RoIs of the batch of the same size (fg:bg = 1:1;
    all negatives if there are fewer).

    Args:
        roi_labels: (N,) int64 labels in ``background`` convention.
        roi_image_index: (N,) int64, the batch image each RoI belongs to.
        sampled_classes: (B,) 0-based foreground class index sampled for each image.
        num_classes: C.
    Returns:
        (M,) int64 indices into the N RoIs: the kept positives (in RoI order), then the negatives.
    """
    import torch

    from ltbench.methods.conventions import check_background, is_foreground, to_foreground_index

    bg = check_background(background)
    sampled = torch.as_tensor(sampled_classes, dtype=torch.long, device=roi_labels.device)
    fg = is_foreground(roi_labels, num_classes, bg)
    target = sampled[roi_image_index]
    positive = fg & (to_foreground_index(roi_labels, bg) == target)
    pos_idx = positive.nonzero().squeeze(1)
    neg_idx = (~fg).nonzero().squeeze(1)
    take = min(len(pos_idx), len(neg_idx))
    order = torch.randperm(len(neg_idx), generator=generator, device="cpu")[:take].to(neg_idx.device)
    return torch.cat([pos_idx, neg_idx[order]])


def bags_others_weights(
    in_group_labels: torch.Tensor, beta: float = 8.0, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """BAGS' "others" sampling inside one group.

    Args:
        in_group_labels: (N,) int64 in-group labels of all RoIs of the batch, 0 = "others".
        beta: ratio of "others" to positives kept (8).
    Returns:
        (N,) float weights: 1 for every positive and for ``int(n_pos * beta)`` "others" drawn without
        replacement (all of them if there are fewer), 0 otherwise; all 0 if the group has no positive.
    """
    import torch

    positive = in_group_labels > 0
    weights = torch.zeros(in_group_labels.shape, dtype=torch.float32, device=in_group_labels.device)
    num_pos = int(positive.sum())
    if num_pos == 0:
        return weights
    weights[positive] = 1.0
    others = (~positive).nonzero().squeeze(1)
    keep = min(int(num_pos * beta), len(others))
    order = torch.randperm(len(others), generator=generator, device="cpu")[:keep].to(others.device)
    weights[others[order]] = 1.0
    return weights


class RandomSampler:
    """A seeded permutation of all images per epoch (the default "random" sampler)."""

    def __init__(self, num_images: int, *, seed: int = 0) -> None:
        self.num_images, self.seed = num_images, seed

    def epoch_indices(self, epoch: int = 0) -> list[int]:
        return np.random.default_rng([int(self.seed), int(epoch), 0x5EED]).permutation(self.num_images).tolist()


class BilevelStream:
    """``BilevelEpisodicSampler`` as an image order: the epoch's batches flattened into one list of
    ``(image index, sampled class)`` pairs, ``batch_size`` per episode (what the adapters' loaders consume)."""

    def __init__(self, sampler: BilevelEpisodicSampler) -> None:
        self.sampler = sampler

    def epoch_indices(self, epoch: int = 0) -> list[tuple[int, int]]:
        return [pair for batch in self.sampler.epoch_batches(epoch) for pair in batch]


#: sampler name (spec vocabulary) -> (allowed options, builder(options, image_categories, seed, batch_size, default_rounding))
IMAGE_SAMPLERS = Registry("image sampler", key="sampler.name")


@IMAGE_SAMPLERS.register("random")
def _random(spec: Mapping[str, Any], image_categories: Sequence[Iterable[int]], seed: int, batch_size: int, rounding: str) -> RandomSampler:
    _check_options("random", spec, ())
    return RandomSampler(len(image_categories), seed=seed)


@IMAGE_SAMPLERS.register("rfs")
def _rfs(spec: Mapping[str, Any], image_categories: Sequence[Iterable[int]], seed: int, batch_size: int, rounding: str) -> RepeatFactorSampler:
    _check_options("rfs", spec, ("t", "rounding"))
    return RepeatFactorSampler(image_categories, float(spec.get("t", 1e-3)), rounding=spec.get("rounding", rounding), seed=seed)


@IMAGE_SAMPLERS.register("class_aware")
def _class_aware(spec: Mapping[str, Any], image_categories: Sequence[Iterable[int]], seed: int, batch_size: int, rounding: str) -> ClassAwareSampler:
    _check_options("class_aware", spec, ("num_sample_class",))
    return ClassAwareSampler(image_categories, num_sample_class=int(spec.get("num_sample_class", 1)), seed=seed)


@IMAGE_SAMPLERS.register("bilevel")
def _bilevel(spec: Mapping[str, Any], image_categories: Sequence[Iterable[int]], seed: int, batch_size: int, rounding: str) -> BilevelStream:
    """``image_categories`` hold class indices here, so the sampled class is a class index. The batch is
    the run's: ``classes_per_batch`` is capped at it, and falls back to 1 class per batch when it does not
    divide the batch (small smoke batches)."""
    _check_options("bilevel", spec, ("classes_per_batch", "images_per_class", "episodes"))
    per_batch = int(spec.get("classes_per_batch", 16))
    per_batch = min(per_batch, batch_size) if batch_size % min(per_batch, batch_size) == 0 else 1
    return BilevelStream(BilevelEpisodicSampler(image_categories, classes_per_batch=per_batch, batch_size=batch_size,
                                                episodes=int(spec.get("episodes", 1000)), seed=seed))


def _check_options(name: str, spec: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise LtbenchError(f"unknown option(s) {', '.join(unknown)} for sampler {name!r}", key="sampler",
                           expected="options " + (", ".join(allowed) or "(none)"))


def build_image_sampler(
    sampler: Mapping[str, Any] | None,
    image_categories: Sequence[Iterable[int]],
    *,
    seed: int = 0,
    batch_size: int = 1,
    default_rounding: str = "ceil",
) -> RandomSampler | RepeatFactorSampler | ClassAwareSampler | BilevelStream:
    """The image sampler of a run config's ``sampler`` object; ``.epoch_indices(epoch)`` is a pure function
    of (seed, epoch), so an image stream resumes exactly from (epoch, position).

    - ``{"name": "random"}`` (or None): a seeded permutation per epoch.
    - ``{"name": "rfs", "t": 0.001, "rounding": ...}``: ``RepeatFactorSampler``; without ``rounding`` the
      framework's own is used, passed as ``default_rounding`` ("ceil" for mmdet, "stochastic" for detectron2).
    - ``{"name": "class_aware", "num_sample_class": 1}``: ``ClassAwareSampler``.
    - ``{"name": "bilevel", "classes_per_batch": 16, "episodes": 1000}``: SimCal's sampler as a stream of
      (image index, class index) pairs (``BilevelStream``), ``batch_size`` per episode.
    """
    spec = dict(sampler or {"name": "random"})
    name = spec.pop("name", "random")
    if not image_categories:
        raise LtbenchError("no training images with annotations", expected="a training split with instances")
    if name == "uniform":  # an older spelling of random
        name = "random"
    return IMAGE_SAMPLERS.get(name)(spec, image_categories, int(seed), int(batch_size), default_rounding)
