"""The interface every framework adapter implements, and the training utilities they share.

An adapter turns a resolved run config (docs/CONTRACTS.md, "Resolved run config") into its framework's
model and code path. It exposes two calls:

- ``train(run_config, workdir, data, *, stage1_workdir=None) -> Path``: trains into ``workdir``; every
  ``schedule.checkpoint_period`` iterations it writes ``model_<iter>.pth`` atomically and then the
  ``last_checkpoint`` pointer; a restarted ``train`` resumes from that pointer and (on CPU with fixed
  seeds) reaches the same final weights as an uninterrupted run. ``done.json`` is written last.
  ``schedule.keep_checkpoints`` (default 1, -1 keeps all) bounds how many checkpoints stay on disk: a
  resume needs only the newest, and at paper scale every extra one is hundreds of MB per run.
- ``predict(run_config, view_config, workdir, data, *, split, out_dir) -> dict``: writes
  ``out_dir/detections.json`` (LVIS results format) and ``out_dir/proposal_stats.npz``.

Determinism across a kill/resume: the image order is an ``IndexStream`` whose whole state is
``(epoch, position)``; every iteration re-seeds torch/numpy/random from ``(seed, iteration)`` so that
RPN/RoI sampling and augmentation draw the same numbers whether or not the process was restarted; the
learning rate is a pure function of the iteration. The checkpoint still stores the RNG states so that a
framework that draws outside our loop can restore them.

Class indices: "class index k" is the 0-based foreground index in ascending LVIS category-id order.
Each adapter converts to its own background convention at its boundary.

Heavy imports (torch, numpy, pycocotools) are inside functions: ``ltbench --help`` imports nothing here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from adapters import preemption
from ltbench.errors import LtbenchError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

LOG = logging.getLogger("ltbench.adapters")

LAST_CHECKPOINT = "last_checkpoint"
DONE_FILE = "done.json"
FINAL_CHECKPOINT = "model_final.pth"


class DataPaths(Protocol):
    """What an adapter needs from ``ltbench.data.datasets.resolve``: annotation files and image root."""

    train: Path
    val: Path
    image_root: Path


# ----------------------------------------------------------------------------------------------
# The adapter interface
# ----------------------------------------------------------------------------------------------
class Adapter(ABC):
    """One framework. Subclasses set ``name`` and ``background`` and implement ``train``/``predict``."""

    name: str = ""
    background: str = "first"

    @abstractmethod
    def train(
        self, run_config: dict, workdir: Path, data: DataPaths, *, stage1_workdir: Path | None = None, init_workdir: Path | None = None
    ) -> Path:
        """Train ``run_config`` into ``workdir``; returns the final checkpoint path. ``init_workdir``: the
        work directory of the ``init_from`` run (default ``$LTBENCH_WORK/<init_from>``)."""

    @abstractmethod
    def predict(
        self, run_config: dict, view_config: dict, workdir: Path, data: DataPaths, *, split: str = "val", out_dir: Path
    ) -> dict:
        """Predict (run, view) on ``split``; returns a summary dict (files written, counts)."""

    def available(self) -> tuple[bool, str]:
        """(True, "") when the framework imports here, else (False, one-line reason)."""
        return True, ""


# ----------------------------------------------------------------------------------------------
# Run-config access with clear errors
# ----------------------------------------------------------------------------------------------
SCHEDULE_KEYS = ("iterations", "batch_size", "lr", "momentum", "weight_decay", "warmup_iters", "steps", "checkpoint_period")

#: Checkpoints kept on disk when the schedule does not say (``schedule.keep_checkpoints``).
DEFAULT_KEEP_CHECKPOINTS = 1


def require(config: dict, key: str, where: str = "run config") -> Any:
    """``config[key]`` or a ``LtbenchError`` naming the key."""
    if not isinstance(config, dict) or key not in config:
        raise LtbenchError(f"missing key {key!r}", path=where, key=key, expected=f"the resolved run config key {key!r}")
    return config[key]


def schedule_of(run_config: dict, *, stage2: bool = False) -> dict:
    """The schedule of this run: ``stage2.schedule`` for a stage-2 run when present, else ``schedule``."""
    schedule = dict(require(run_config, "schedule"))
    if stage2 and isinstance(run_config.get("stage2"), dict) and isinstance(run_config["stage2"].get("schedule"), dict):
        schedule = {**schedule, **run_config["stage2"]["schedule"]}
    for key in SCHEDULE_KEYS:
        if key not in schedule:
            raise LtbenchError(
                f"schedule has no {key!r}",
                path=run_config.get("id", "run config"),
                key=f"schedule.{key}",
                expected="a resolved schedule with " + ", ".join(SCHEDULE_KEYS),
            )
    return schedule


def run_label(run_config: dict) -> str:
    return str(run_config.get("id", "<run without id>"))


# ----------------------------------------------------------------------------------------------
# Seeding
# ----------------------------------------------------------------------------------------------
def iteration_seed(seed: int, iteration: int) -> int:
    """A 31-bit seed for (run seed, iteration); distinct iterations get unrelated seeds."""
    return (int(seed) * 1_000_003 + int(iteration) * 7919 + 12345) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict:
    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


# ----------------------------------------------------------------------------------------------
# Learning rate: linear warmup then step decay, a pure function of the iteration
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# Image order: a resumable stream of dataset indices
# ----------------------------------------------------------------------------------------------
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


def make_epoch_order(sampler: dict | None, image_categories: list[set[int]], seed: int, *, batch_size: int = 1) -> Callable[[int], list]:
    """``epoch -> list of stream items`` for the run's ``sampler``, built on ``ltbench.methods.samplers``.

    Every sampler seeds its generator from (seed, epoch), so the stream is resumable from (epoch, position).

    - ``random``: a seeded permutation of the images per epoch.
    - ``rfs`` (``t``, ``rounding`` ``ceil`` | ``stochastic``): ``RepeatFactorSampler``.
    - ``class_aware`` (``num_sample_class``): ``ClassAwareSampler``.
    - ``bilevel`` (``classes_per_batch``, ``episodes``): SimCal's ``BilevelEpisodicSampler``; items are
      ``(image index, sampled class)`` pairs, ``batch_size`` per episode. ``image_categories`` then
      hold class indices, so the sampled class is a class index.
    """
    import numpy as np

    from ltbench.methods import samplers

    sampler = sampler or {"name": "random"}
    name = sampler.get("name", "random")
    n = len(image_categories)
    if n == 0:
        raise LtbenchError("no training images with annotations", expected="a training split with instances")
    if name in ("random", "uniform"):
        return lambda epoch: np.random.default_rng([int(seed), int(epoch), 0x5EED]).permutation(n).tolist()
    if name == "rfs":
        rfs = samplers.RepeatFactorSampler(
            image_categories, float(sampler.get("t", 0.001)), rounding=sampler.get("rounding", "ceil"), seed=int(seed)
        )
        return rfs.epoch_indices
    if name == "class_aware":
        aware = samplers.ClassAwareSampler(image_categories, num_sample_class=int(sampler.get("num_sample_class", 1)), seed=int(seed))
        return aware.epoch_indices
    if name == "bilevel":
        per_batch = int(sampler.get("classes_per_batch", 16))
        per_batch = min(per_batch, batch_size) if batch_size % min(per_batch, batch_size) == 0 else 1
        bilevel = samplers.BilevelEpisodicSampler(
            image_categories, classes_per_batch=per_batch, batch_size=batch_size, episodes=int(sampler.get("episodes", 1000)), seed=int(seed)
        )
        return lambda epoch: [pair for batch in bilevel.epoch_batches(epoch) for pair in batch]
    raise LtbenchError(
        f"sampler {name!r} is not supported by this adapter",
        key="sampler.name",
        expected="random, rfs, class_aware or bilevel",
    )


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def checkpoint_name(iteration: int) -> str:
    return f"model_{iteration:07d}.pth"


def save_checkpoint(workdir: Path, name: str, state: dict, *, update_pointer: bool = True) -> Path:
    """Write ``state`` to ``workdir/name`` atomically, then (optionally) point ``last_checkpoint`` at it."""
    import torch

    from ltbench.io import atomic_open, write_text

    path = Path(workdir) / name
    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)
    if update_pointer:
        write_text(Path(workdir) / LAST_CHECKPOINT, name + "\n")
    return path


def keep_checkpoints(schedule: dict, where: str = "run config") -> int:
    """How many checkpoints stay on disk (the final one counts): ``schedule.keep_checkpoints``, default
    ``DEFAULT_KEEP_CHECKPOINTS``; -1 keeps every one."""
    value = schedule.get("keep_checkpoints", DEFAULT_KEEP_CHECKPOINTS)
    if isinstance(value, bool) or not isinstance(value, int) or value == 0 or value < -1:
        raise LtbenchError(
            f"schedule.keep_checkpoints is {value!r}",
            path=where,
            key="schedule.keep_checkpoints",
            expected="a positive integer, or -1 to keep every checkpoint",
        )
    return value


def prune_checkpoints(workdir: Path, keep: int, *, finished: bool = False) -> list[Path]:
    """Delete all but the newest periodic ``model_<iter>.pth`` so that at most ``keep`` checkpoints
    remain (``model_final.pth`` counts once ``finished``). Never deletes the one ``last_checkpoint``
    points at: call it after the pointer moved, so a kill at any moment leaves a resumable directory.
    Returns the deleted paths."""
    if keep < 0:
        return []
    workdir = Path(workdir)
    pointer = workdir / LAST_CHECKPOINT
    current = pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None
    periodic = sorted(p for p in workdir.glob("model_*.pth") if p.name != FINAL_CHECKPOINT and p.stem[6:].isdigit())
    allowed = keep - 1 if finished else keep
    doomed = periodic[: max(0, len(periodic) - allowed)]
    deleted = []
    for path in doomed:
        if path.name == current:
            continue
        path.unlink(missing_ok=True)
        deleted.append(path)
    return deleted


def last_checkpoint(workdir: Path) -> Path | None:
    """The checkpoint ``last_checkpoint`` points at, or None when training has not checkpointed yet."""
    pointer = Path(workdir) / LAST_CHECKPOINT
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    path = Path(workdir) / name
    if not path.is_file():
        raise LtbenchError(
            f"last_checkpoint points at {name!r}, which does not exist",
            path=pointer,
            expected="the name of a checkpoint file in the same directory",
            hint="delete the pointer to restart training from scratch",
        )
    return path


@dataclass
class TrainingStart:
    """What every adapter's ``train`` establishes before building its model (``start_training``).

    ``finished``: the final checkpoint when ``done.json`` already exists (return it; nothing else is
    loaded then). ``stage1_config`` / ``stage1_checkpoint``: the stage-1 run of a stage-2 run (its
    config is also copied to ``workdir/stage1_run_config.json``: prediction rebuilds the stage-1
    architecture from it without the stage-1 work directory)."""

    workdir: Path
    finished: Path | None = None
    split: "LvisSplit | None" = None
    stage1_config: dict | None = None
    stage1_checkpoint: Path | None = None


def start_training(run_config: dict, workdir: Path, data: DataPaths, stage1_workdir: Path | None) -> TrainingStart:
    """The shared opening of ``Adapter.train``: threads from the environment, the work directory, the
    finished-run short cut, the training split, and the stage-1 run of a stage-2 run."""
    from ltbench.io import write_json

    threads_from_env()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / DONE_FILE).is_file():
        return TrainingStart(workdir, finished=final_checkpoint(workdir))
    start = TrainingStart(workdir, split=load_lvis_split(Path(data.train), Path(data.image_root)))
    if run_config.get("stage2"):
        if stage1_workdir is None:
            raise LtbenchError(
                "a stage-2 run needs the stage-1 work directory",
                path=run_label(run_config),
                key="stage1",
                hint=f"pass --stage1-workdir DIR (the work directory of run {run_config.get('stage1')})",
            )
        start.stage1_checkpoint = final_checkpoint(Path(stage1_workdir), what="stage-1 model")
        start.stage1_config = _read_json_file(Path(stage1_workdir) / "run_config.json")
        write_json(workdir / "stage1_run_config.json", start.stage1_config)
    return start


def load_checkpoint(path: Path) -> dict:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise LtbenchError(f"cannot read checkpoint: {exc}", path=path, expected="a checkpoint written by ltbench train") from None


def final_checkpoint(workdir: Path, *, what: str = "trained model") -> Path:
    """The final checkpoint of a finished training run (``done.json`` must exist)."""
    workdir = Path(workdir)
    done = workdir / DONE_FILE
    if not done.is_file():
        raise LtbenchError(
            f"no {what}: training has not finished in this work directory",
            path=done,
            expected="done.json written by `ltbench train`",
            hint=f"run `ltbench train --run-config R.json --workdir {workdir}` first",
        )
    info = json.loads(done.read_text(encoding="utf-8"))
    path = workdir / info.get("checkpoint", FINAL_CHECKPOINT)
    if not path.is_file():
        raise LtbenchError("done.json names a checkpoint that does not exist", path=done, key="checkpoint")
    return path


# ----------------------------------------------------------------------------------------------
# Progress
# ----------------------------------------------------------------------------------------------
class ProgressLogger:
    """One log line every ``every`` iterations: iteration, losses, lr, seconds/iteration, ETA.

    Lines go to stderr and are appended to ``workdir/log.txt`` (an append-only log, the one file the
    harness does not write atomically: it is meant to be read while training runs).
    """

    def __init__(self, workdir: Path, max_iterations: int, *, start_iteration: int = 0, every: int | None = None, stream=None) -> None:
        self.max_iterations = max_iterations
        self.every = every or max(1, min(20, max_iterations // 10 or 1))
        self.start_iteration = start_iteration
        self.t0 = time.perf_counter()
        self.log_path = Path(workdir) / "log.txt"
        self.stream = stream if stream is not None else sys.stderr

    def __call__(self, iteration: int, losses: dict[str, float], lr: float, *, force: bool = False) -> str | None:
        done = iteration + 1
        if not force and done % self.every and done != self.max_iterations:
            return None
        elapsed = time.perf_counter() - self.t0
        per_iter = elapsed / max(1, done - self.start_iteration)
        eta = per_iter * (self.max_iterations - done)
        total = sum(losses.values())
        parts = " ".join(f"{k}={v:.4f}" for k, v in losses.items())
        line = (
            f"iter {done}/{self.max_iterations} loss={total:.4f} {parts} lr={lr:.6g} "
            f"{per_iter:.2f}s/it eta={_format_seconds(eta)}"
        )
        print(line, file=self.stream, flush=True)
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return line


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


# ----------------------------------------------------------------------------------------------
# The shared training loop
# ----------------------------------------------------------------------------------------------
@dataclass
class LoopParts:
    """What a framework hands to ``run_training_loop``.

    ``step(indices, iteration) -> dict[str, Tensor]`` computes the losses of one batch (the model is
    already in train mode); ``set_progress(epoch, max_epochs, iteration, max_iterations)`` is called
    before every step (PCB's start gate reads it).
    """

    model: Any
    optimizer: Any
    stream: IndexStream
    step: Callable[[list[int], int], dict]
    set_progress: Callable[[int, int, int, int], None]
    extra_state: dict = field(default_factory=dict)


def run_training_loop(run_config: dict, workdir: Path, schedule: dict, parts: LoopParts, *, log_every: int | None = None) -> Path:
    """Train from the last checkpoint (or iteration 0) to ``schedule.iterations``; returns the final
    checkpoint. Writes ``model_<iter>.pth`` + ``last_checkpoint`` every ``checkpoint_period`` and every
    ``checkpoint_minutes`` of wall time, then ``model_final.pth`` and ``done.json`` (last). On SIGURG,
    SIGUSR1 or SIGTERM (``adapters.preemption``) it checkpoints after the current iteration and exits
    with ``preemption.EXIT_CODE``: run it again to continue."""
    with preemption.handling():
        return _training_loop(run_config, workdir, schedule, parts, log_every=log_every)


def _training_loop(run_config: dict, workdir: Path, schedule: dict, parts: LoopParts, *, log_every: int | None = None) -> Path:
    import torch

    from ltbench.io import write_json

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    max_iter = int(schedule["iterations"])
    batch_size = int(schedule["batch_size"])
    period = max(1, int(schedule["checkpoint_period"]))
    keep = keep_checkpoints(schedule, run_label(run_config))
    seed = int(run_config.get("seed", 0))
    clip = schedule.get("grad_clip")

    start = 0
    resume_from = last_checkpoint(workdir)
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        if state.get("run_id") not in (None, run_config.get("id")):
            raise LtbenchError(
                f"work directory holds a checkpoint of run {state.get('run_id')!r}",
                path=resume_from,
                expected=f"a checkpoint of run {run_config.get('id')!r}",
                hint="use a fresh --workdir for each run",
            )
        parts.model.load_state_dict(state["model"])
        parts.optimizer.load_state_dict(state["optimizer"])
        parts.stream.load_state_dict(state["sampler"])
        set_rng_state(state["rng"])
        start = int(state["iteration"])
        LOG.info("resuming %s from %s (iteration %d)", run_label(run_config), resume_from, start)
        print(f"resuming from {resume_from.name} at iteration {start}/{max_iter}", file=sys.stderr, flush=True)

    def snapshot(iteration: int) -> dict:
        return {
            "run_id": run_config.get("id"),
            "iteration": iteration,
            "model": parts.model.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "sampler": parts.stream.state_dict(),
            "rng": rng_state(),
            "schedule": schedule,
            **parts.extra_state,
        }

    progress = ProgressLogger(workdir, max_iter, start_iteration=start, every=log_every)
    parts.model.train()
    epoch_len = parts.stream.epoch_length
    max_epochs = max(1, math.ceil(max_iter * batch_size / epoch_len))
    # Checkpoints by wall time too; on a stop signal: checkpoint, exit preemption.EXIT_CODE (resubmit me).
    wall = preemption.WallClock(preemption.checkpoint_seconds(schedule, run_label(run_config)))
    for iteration in range(start, max_iter):
        seed_everything(iteration_seed(seed, iteration))
        lr = lr_at(schedule, iteration)
        for group in parts.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        epoch = (iteration * batch_size) // epoch_len
        parts.set_progress(epoch, max_epochs, iteration, max_iter)
        indices = parts.stream.take(batch_size)
        losses = parts.step(indices, iteration)
        total = sum(losses.values())
        if not torch.isfinite(total):
            raise LtbenchError(
                f"training diverged at iteration {iteration + 1}: loss is {float(total)}",
                path=workdir,
                expected="a finite loss",
                hint="lower schedule.lr or raise schedule.warmup_iters",
            )
        parts.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_([p for g in parts.optimizer.param_groups for p in g["params"]], float(clip))
        parts.optimizer.step()
        progress(iteration, {k: float(v.detach()) for k, v in losses.items()}, lr)
        done = iteration + 1
        if done < max_iter and (done % period == 0 or wall.due() or preemption.requested()):
            saved = save_checkpoint(workdir, checkpoint_name(done), snapshot(done))
            prune_checkpoints(workdir, keep)
            wall.reset()
            if preemption.requested():
                preemption.exit_for_resubmission(done, max_iter, saved, workdir)

    final = save_checkpoint(workdir, FINAL_CHECKPOINT, snapshot(max_iter))
    write_json(
        workdir / DONE_FILE,
        {"run_id": run_config.get("id"), "checkpoint": FINAL_CHECKPOINT, "iterations": max_iter, "finished_at": time.time()},
    )
    prune_checkpoints(workdir, keep, finished=True)
    return final


# ----------------------------------------------------------------------------------------------
# LVIS-format data, framework-free
# ----------------------------------------------------------------------------------------------
@dataclass
class ImageRecord:
    """One image and its instances. ``boxes`` (N, 4) xyxy float32 in pixels; ``classes`` (N,) class
    indices (0-based, category-id order); ``segmentations``: the raw LVIS polygons/RLE per instance."""

    image_id: int
    path: Path
    width: int
    height: int
    boxes: Any
    classes: Any
    segmentations: list
    category_ids: set[int]


@dataclass
class LvisSplit:
    """An LVIS-format annotation file, indexed for training/prediction."""

    annotation_file: Path
    category_ids: list[int]  # ascending; position = class index
    images: list[ImageRecord]
    instance_counts: list[int]  # per class index, in this split
    image_counts: list[int]

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def class_index(self) -> dict[int, int]:
        return {cid: k for k, cid in enumerate(self.category_ids)}


def load_lvis_split(annotation_file: Path, image_root: Path, *, keep_empty: bool = False) -> LvisSplit:
    """Read an LVIS-format file. Boxes with width or height < 1 px are dropped (as every framework does).

    ``keep_empty=False`` drops images without any instance (training); prediction keeps them.
    """
    import numpy as np

    from ltbench.io import read_json

    annotation_file = Path(annotation_file)
    doc = read_json(annotation_file)
    for key in ("images", "annotations", "categories"):
        if key not in doc:
            raise LtbenchError(f"no {key!r} list", path=annotation_file, key=key, expected="an LVIS-format annotation file")
    category_ids = sorted(int(c["id"]) for c in doc["categories"])
    index = {cid: k for k, cid in enumerate(category_ids)}
    by_image: dict[int, list[dict]] = {}
    for i, ann in enumerate(doc["annotations"]):
        cid = int(ann.get("category_id", -1))
        if cid not in index:
            raise LtbenchError(
                f"annotation category_id {cid} is not in categories",
                path=annotation_file,
                key=["annotations", i, "category_id"],
                expected="an id listed in categories",
            )
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    instance_counts = [0] * len(category_ids)
    image_counts = [0] * len(category_ids)
    images = []
    for img in doc["images"]:
        anns = [a for a in by_image.get(int(img["id"]), []) if a["bbox"][2] >= 1 and a["bbox"][3] >= 1]
        if not anns and not keep_empty:
            continue
        file_name = img.get("file_name")
        if not file_name and img.get("coco_url"):
            file_name = "/".join(img["coco_url"].split("/")[-2:])
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns], dtype=np.float32).reshape(-1, 4)
        classes = np.array([index[int(a["category_id"])] for a in anns], dtype=np.int64)
        for k in classes.tolist():
            instance_counts[k] += 1
        for k in set(classes.tolist()):
            image_counts[k] += 1
        images.append(
            ImageRecord(
                image_id=int(img["id"]),
                path=Path(image_root) / file_name,
                width=int(img["width"]),
                height=int(img["height"]),
                boxes=boxes,
                classes=classes,
                segmentations=[a.get("segmentation") for a in anns],
                category_ids={int(a["category_id"]) for a in anns},
            )
        )
    return LvisSplit(annotation_file, category_ids, images, instance_counts, image_counts)


def read_image(record: ImageRecord) -> "torch.Tensor":
    """(3, H, W) float32 in [0, 1], RGB."""
    import numpy as np
    import torch
    from PIL import Image

    if not record.path.is_file():
        raise LtbenchError(
            "image file not found",
            path=record.path,
            expected=f"the image of image_id {record.image_id} under the dataset's image_root",
            hint="check image_root in workflows/config/datasets.yaml (or $LTBENCH_DATA)",
        )
    with Image.open(record.path) as pil:
        array = np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def instance_masks(record: ImageRecord) -> "torch.Tensor":
    """(N, H, W) uint8 masks decoded from the LVIS polygons/RLE of ``record``."""
    import numpy as np
    import torch
    from pycocotools import mask as mask_utils

    h, w = record.height, record.width
    out = np.zeros((len(record.segmentations), h, w), dtype=np.uint8)
    for i, seg in enumerate(record.segmentations):
        if not seg:
            x0, y0, x1, y1 = record.boxes[i].round().astype(int).tolist()
            out[i, y0:y1, x0:x1] = 1
            continue
        if isinstance(seg, list):
            rles = mask_utils.frPyObjects(seg, h, w)
            rle = mask_utils.merge(rles)
        elif isinstance(seg.get("counts"), list):
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = seg
        out[i] = mask_utils.decode(rle)
    return torch.from_numpy(out)


# ----------------------------------------------------------------------------------------------
# Methods wiring (head selection, stage 2, views) with clear errors while pieces are missing
# ----------------------------------------------------------------------------------------------
def head_for_run(run_config: dict) -> tuple[str, dict]:
    """(registered head name, params) for the run: ``ltbench.methods.head_for_run`` when it exists;
    until then only the plain softmax baseline is accepted."""
    try:
        from ltbench.methods import head_for_run as methods_head_for_run  # type: ignore[attr-defined]
    except ImportError:
        methods_head_for_run = None
    if methods_head_for_run is not None:
        name, params = methods_head_for_run(run_config)
        return name, dict(params or {})
    plain = (
        (run_config.get("classifier") or {"name": "linear"}).get("name") == "linear"
        and (run_config.get("loss") or {"name": "ce"}).get("name") == "ce"
        and (run_config.get("head") or {"name": "standard"}).get("name") == "standard"
        and not run_config.get("regularizer")
    )
    if not plain:
        raise LtbenchError(
            "this run needs a method head, but ltbench.methods.head_for_run is not available",
            path=run_label(run_config),
            key="classifier/loss/head/regularizer",
            expected="linear + ce + standard (the only head available without the methods library)",
        )
    return "softmax", {}


def head_class_and_params(run_config: dict, split: LvisSplit) -> tuple[Any, dict]:
    """(BoxHead subclass, constructor params) of the run's head, with the statistics of the training
    split (``instance_counts``, ``image_counts`` per class; ``num_images``) added for heads whose
    constructor takes them (a head with ``**kwargs`` all the way up gets all three)."""
    name, params = head_for_run(run_config)
    stats = {"instance_counts": list(split.instance_counts), "image_counts": list(split.image_counts), "num_images": len(split.images)}
    head_cls = _box_head_class(name)
    accepted = _accepted_kwargs(head_cls)
    for key, value in stats.items():
        if accepted is None or key in accepted:
            params.setdefault(key, value)
    return head_cls, params


def build_head(run_config: dict, *, num_classes: int, background: str, num_box_deltas: int, split: LvisSplit, in_channels: int, hidden: int) -> Any:
    """Build the run's BoxHead (C = ``num_classes``, D = ``num_box_deltas``) in ``background`` convention."""
    head_cls, params = head_class_and_params(run_config, split)
    return head_cls(num_classes, background, num_box_deltas, in_channels=in_channels, hidden=hidden, **params)


def _box_head_class(name: str) -> Any:
    """The registered head class; importing ``ltbench.methods.heads`` (when present) registers the
    method heads, as ``build_box_head`` does."""
    import importlib

    from ltbench.methods.box_head import BOX_HEADS

    try:
        importlib.import_module("ltbench.methods.heads")
    except ModuleNotFoundError as exc:
        if exc.name != "ltbench.methods.heads":
            raise
    return BOX_HEADS.get(name)


def _accepted_kwargs(cls: Any) -> set[str] | None:
    """Names a head's ``__init__`` accepts (through the MRO), or None when it takes ``**kwargs`` all the way."""
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        sig = inspect.signature(init)
        names.update(p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            return names
    return None


def build_stage2_head(run_config: dict, stage1_head: Any, split: LvisSplit) -> Any:
    """``ltbench.methods.build_stage2`` with the training split's class statistics."""
    from ltbench.methods import build_stage2

    return build_stage2(run_config, stage1_head, instance_counts=list(split.instance_counts), image_counts=list(split.image_counts))


#: views calibrated with the confusion matrix of a first, plain pass over ``source`` (val or train).
CONFUSION_VIEWS = ("cm_calibration", "ms_calibration")


def confusion_source(view_config: dict) -> str | None:
    """"val"/"train" when the view needs a plain pass to collect the confusion matrix, else None."""
    view_config = view_config or {}
    if view_config.get("name") not in CONFUSION_VIEWS:
        return None
    source = view_config.get("source", "val")
    if source not in ("val", "train"):
        raise LtbenchError(f"unknown confusion-matrix source {source!r}", key="view.source", expected="val or train")
    return source


def view_function(view_config: dict, stats: dict) -> Callable[[Any, Any], "torch.Tensor"]:
    """``(head, BoxHeadOutput) -> probs (R, C+1)`` for a view: ``ltbench.methods.view_probabilities``,
    which reads recurrent steps and stage-1 probabilities from the head and applies post-hoc
    calibrations (``stats``: class counts, and ``cm_sum``/``cm_count`` for ``cm_calibration``)."""
    from ltbench.methods import view_probabilities

    view_config = dict(view_config or {"name": "plain"})
    if view_config.get("name", "plain") == "plain":
        return lambda head, output: head.probabilities(output)
    return lambda head, output: view_probabilities(head, output, view_config, stats)


# ----------------------------------------------------------------------------------------------
# Outputs: LVIS detections and proposal statistics
# ----------------------------------------------------------------------------------------------
def encode_mask(mask: "np.ndarray") -> dict:
    """(H, W) bool/uint8 -> LVIS RLE with ``counts`` as str."""
    import numpy as np
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def detections_for_image(
    image_id: int, boxes_xyxy: Any, scores: Any, classes: Any, category_ids: list[int], masks: Any = None, *,
    limit: int | None = 300, rles: list[dict] | None = None,
) -> list[dict]:
    """LVIS results entries for one image: top ``limit`` by score (None: all); ``classes`` are class
    indices. Segmentation from ``masks`` (N, H, W) bool, or from ready ``rles`` (N RLE dicts) when given."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")[:limit]
    out = []
    for i in order.tolist():
        x0, y0, x1, y1 = (float(v) for v in boxes_xyxy[i])
        det = {
            "image_id": int(image_id),
            "category_id": int(category_ids[int(classes[i])]),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "score": float(scores[i]),
        }
        if rles is not None:
            det["segmentation"] = rles[i]
        elif masks is not None:
            det["segmentation"] = encode_mask(np.asarray(masks[i]))
        out.append(det)
    return out


def box_iou_numpy(a: "np.ndarray", b: "np.ndarray") -> "np.ndarray":
    import numpy as np

    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(axis=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


class ProposalStats:
    """Accumulates ``proposal_stats.npz`` over images (format in docs/CONTRACTS.md).

    ``add(proposals (R,4) xyxy, probs (R, C+1) in ``background`` convention, gt_boxes (G,4), gt_classes (G,))``:
    each proposal takes the label of its best-IoU GT box when IoU >= 0.5, else -1 (background). The CM
    row of a matched proposal gets the foreground probabilities renormalised to sum 1 -- for a softmax
    head exactly the softmax over the C foreground logits, and the same quantity for any other head.
    Uses ``ltbench.evaluation.confusion.accumulate`` when the evaluation component provides it.
    """

    def __init__(self, category_ids: list[int], background: str) -> None:
        import numpy as np

        self.category_ids = list(category_ids)
        self.background = background
        c = len(category_ids)
        self.cm_sum = np.zeros((c, c), dtype=np.float64)
        self.cm_count = np.zeros(c, dtype=np.int64)
        self.cls_pred: list = []
        self.cls_target: list = []

    def add(self, proposals: Any, probs: Any, gt_boxes: Any, gt_classes: Any) -> None:
        import numpy as np

        from ltbench.methods.conventions import foreground_slice

        probs = np.asarray(probs, dtype=np.float64)
        c = len(self.category_ids)
        fg = probs[:, foreground_slice(c, self.background)]
        target = np.full(len(probs), -1, dtype=np.int64)
        gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
        if len(gt_boxes) and len(probs):
            iou = box_iou_numpy(proposals, gt_boxes)
            best = iou.argmax(axis=1)
            matched = iou[np.arange(len(best)), best] >= 0.5
            target[matched] = np.asarray(gt_classes, dtype=np.int64)[best[matched]]
        argmax = probs.argmax(axis=1)
        bg_index = 0 if self.background == "first" else c
        pred = np.where(argmax == bg_index, -1, argmax - (1 if self.background == "first" else 0)).astype(np.int64)
        sel = target >= 0
        matched_fg = fg[sel] / np.maximum(fg[sel].sum(axis=1, keepdims=True), 1e-12)
        accumulate = _evaluation_accumulate()
        if accumulate is not None:
            part = accumulate(matched_fg, target[sel], pred, target, c, background=None, category_ids=self.category_ids)
            self.cm_sum += part["cm_sum"]
            self.cm_count += part["cm_count"]
            self.cls_pred.append(part["cls_pred"])
            self.cls_target.append(part["cls_target"])
            return
        self.cls_pred.append(pred)
        self.cls_target.append(target)
        if sel.any():
            np.add.at(self.cm_sum, target[sel], matched_fg)
            np.add.at(self.cm_count, target[sel], 1)

    def arrays(self) -> dict:
        import numpy as np

        return {
            "category_ids": np.asarray(self.category_ids, dtype=np.int64),
            "cm_sum": self.cm_sum,
            "cm_count": self.cm_count,
            "cls_pred": np.concatenate(self.cls_pred) if self.cls_pred else np.zeros(0, dtype=np.int64),
            "cls_target": np.concatenate(self.cls_target) if self.cls_target else np.zeros(0, dtype=np.int64),
        }

    def save(self, path: Path) -> Path:
        import numpy as np

        from ltbench.io import atomic_open

        with atomic_open(path, "wb") as handle:
            np.savez(handle, **self.arrays())
        return Path(path)


def _evaluation_accumulate() -> Any:
    """``ltbench.evaluation.confusion.accumulate`` (the evaluation component's definition of these
    arrays), or None where it is absent -- then ``ProposalStats`` computes the same sums itself."""
    try:
        from ltbench.evaluation.confusion import accumulate
    except ImportError:
        return None
    return accumulate


def write_detections(path: Path, detections: list[dict]) -> Path:
    from ltbench.io import atomic_open

    with atomic_open(path, "w") as handle:
        json.dump(detections, handle)
    return Path(path)


def threads_from_env() -> None:
    """Honour ``LTBENCH_THREADS`` (default: leave torch's choice) -- CI and shared machines set 1-2."""
    value = os.environ.get("LTBENCH_THREADS")
    if value:
        import torch

        torch.set_num_threads(max(1, int(value)))


def init_checkpoint(run_config: dict, init_workdir: Path | None = None) -> Path | None:
    """The final checkpoint of the run named by ``init_from`` (docs/CONTRACTS.md: it initialises this
    run's whole model), looked for in ``init_workdir`` or ``$LTBENCH_WORK/<init_from>``; None without
    ``init_from``."""
    source = run_config.get("init_from")
    if not source:
        return None
    from ltbench.paths import work_root

    workdir = Path(init_workdir) if init_workdir is not None else work_root() / str(source)
    return final_checkpoint(workdir, what=f"checkpoint of run {source} (init_from)")


def load_matching(module: Any, state: dict, *, what: str) -> tuple[int, int]:
    """Load the tensors of ``state`` whose name and shape fit ``module`` (a model initialised from a run on
    another dataset keeps its own classifier); returns (loaded, total)."""
    own = module.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not fitting:
        raise LtbenchError(f"no tensor of {what} fits this model", expected="a checkpoint of the same architecture")
    module.load_state_dict(fitting, strict=False)
    print(f"initialised {len(fitting)}/{len(own)} tensors from {what}", file=sys.stderr, flush=True)
    return len(fitting), len(own)


#: The per-image detection limit of the per-class top-k mode: large enough to be no cap in practice.
UNCAPPED_DETECTIONS_PER_IMAGE = 1_000_000
DETECTION_MODES = ("per_image", "per_class_top_k")


def per_class_top_k(view_config: dict | None) -> int | None:
    """``k`` of a view in AP-fixed inference mode (Dave et al. 2021), else None.

    ``view_config["detections"]``: absent or ``{"mode": "per_image"}`` -- the run's per-image cap
    (``model.detections_per_img``, 300); ``{"mode": "per_class_top_k", "k": K}`` -- no per-image cap
    (score threshold unchanged, 1e-4), then the K highest-scoring detections of every category over
    the whole split (``ltbench.evaluation.ap_fixed.top_k_per_class``)."""
    spec = (view_config or {}).get("detections")
    if spec is None:
        return None
    where = str((view_config or {}).get("id", "view config"))
    if not isinstance(spec, dict) or spec.get("mode", "per_image") not in DETECTION_MODES:
        raise LtbenchError(f"unknown detections mode {spec!r}", path=where, key="detections.mode",
                           expected="{mode: per_image} or {mode: per_class_top_k, k: <int >= 1>}")
    if spec.get("mode", "per_image") == "per_image":
        return None
    from ltbench.evaluation.ap_fixed import DETS_PER_CLASS

    k = spec.get("k", DETS_PER_CLASS)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise LtbenchError(f"detections.k must be a positive integer, got {k!r}", path=where, key="detections.k",
                           expected="e.g. 10000 (Dave et al. 2021)")
    return k


def keep_top_k_per_class(detections: list[dict], k: int | None) -> list[dict]:
    """The split's detections reduced to the ``k`` best per category (None: unchanged), in their
    original (image, score) order so that detections.json stays grouped by image."""
    if k is None:
        return detections
    from ltbench.evaluation.ap_fixed import top_k_per_class

    kept = top_k_per_class(({**d, "_order": i} for i, d in enumerate(detections)), k)
    kept.sort(key=lambda d: d["_order"])
    for d in kept:
        del d["_order"]
    return kept


class StreamingTopK:
    """Drops, image by image, the detections that can no longer be among the ``k`` best of their class.

    The per-class top-k mode has no per-image cap, so a small model can score thousands of (box, class)
    pairs above 1e-4 in every image; pasting and encoding a mask for each is most of the cost. Images go
    through in split order; a detection is kept while its class has fewer than ``k`` kept scores or it
    beats the k-th best so far. Ties go to the earlier detection, as in ``keep_top_k_per_class``'s stable
    sort, so the final ``keep_top_k_per_class`` gives exactly what it gives without this filter."""

    def __init__(self, k: int) -> None:
        self.k = int(k)
        self.best: dict[int, list[float]] = {}  # class -> min-heap of the k best scores kept so far

    def __call__(self, scores: Any, labels: Any) -> list[int]:
        """scores (N,), labels (N,) of one image, in the order detections are written -> kept indices."""
        import heapq

        keep = []
        for i, (score, label) in enumerate(zip(scores.tolist(), labels.tolist())):
            heap = self.best.setdefault(int(label), [])
            if len(heap) < self.k:
                heapq.heappush(heap, score)
            elif score > heap[0]:
                heapq.heapreplace(heap, score)
            else:
                continue
            keep.append(i)
        return keep


def is_grid_view(view_config: dict) -> bool:
    """A view with a parameter grid (``gamma_grid``) selected by a metric (``select_by``): NorCal's protocol."""
    return bool((view_config or {}).get("gamma_grid"))


def predict_grid_view(adapter: Adapter, run_config: dict, view_config: dict, workdir: Path, data: DataPaths, *, split: str, out_dir: Path) -> dict:
    """Predict every ``gamma`` of ``view_config["gamma_grid"]``, evaluate each on ``split`` with the
    evaluator of record (``ltbench.evaluation.evaluate``), and keep the best by ``select_by`` (default
    ``segm.AP``; ties: the first gamma). Writes the chosen detections.json / proposal_stats.npz to
    ``out_dir``, every candidate under ``out_dir/grid/gamma_<g>/`` and ``out_dir/view_selection.json``."""
    from ltbench.evaluation import evaluate
    from ltbench.io import atomic_open, write_json

    select_by = view_config.get("select_by", "segm.AP")
    iou_type = select_by.split(".", 1)[0]
    if iou_type not in ("bbox", "segm"):
        raise LtbenchError(f"select_by {select_by!r} is not a bbox/segm metric", key="view.select_by", expected="e.g. segm.AP or bbox.AP")
    gt = Path(data.val if split == "val" else data.train)
    values: dict[str, float] = {}
    best: tuple[float, float] | None = None
    out_dir = Path(out_dir)
    fixed = {k: v for k, v in view_config.items() if k not in ("gamma_grid", "select_by")}
    for gamma in view_config["gamma_grid"]:
        candidate = out_dir / "grid" / f"gamma_{gamma}"
        view = {**fixed, "gamma": float(gamma), "id": f"{view_config.get('id', 'grid')}-g{gamma}"}
        adapter.predict(run_config, view, workdir, data, split=split, out_dir=candidate)
        metrics = evaluate(gt, candidate / "detections.json", iou_types=(iou_type,))
        if select_by not in metrics:
            raise LtbenchError(f"the evaluator gives no {select_by!r}", key="view.select_by", expected="one of " + ", ".join(sorted(metrics)))
        values[str(gamma)] = float(metrics[select_by])
        if best is None or values[str(gamma)] > best[1]:
            best = (float(gamma), values[str(gamma)])
    assert best is not None
    chosen = out_dir / "grid" / f"gamma_{_grid_label(view_config['gamma_grid'], best[0])}"
    for name in ("detections.json", "proposal_stats.npz"):
        with atomic_open(out_dir / name, "wb") as handle:
            handle.write((chosen / name).read_bytes())
    write_json(out_dir / "view_selection.json", {"select_by": select_by, "split": split, "values": values, "gamma": best[0]})
    return {"detections": str(out_dir / "detections.json"), "proposal_stats": str(out_dir / "proposal_stats.npz"),
            "view": view_config.get("id"), "selected_gamma": best[0], select_by: best[1]}


def _grid_label(grid: list, value: float) -> Any:
    for g in grid:
        if float(g) == value:
            return g
    return value


def unfreeze_for_finetune(model: Any, run_config: dict, head_prefix: str, stem_prefixes: tuple[str, ...], stage_prefix: str, first_stage: int = 1) -> None:
    """Stage-2 ``finetune`` recipes with ``frozen_stages: k`` train the whole detector except the backbone
    stem and its first k stages (mmdet's ``frozen_stages`` semantics); the box head's own trainable set is
    ``build_stage2``'s. Without ``frozen_stages`` stage 2 trains the new head only (nothing to do here).

    ``stage_prefix`` is the backbone stage name pattern with ``{}`` for the stage number, counted from
    ``first_stage`` (torchvision/mmdet ``layer1``, detectron2 ``res2``)."""
    stage2 = run_config.get("stage2") or {}
    if "frozen_stages" not in stage2:
        return
    k = int(stage2["frozen_stages"])
    frozen = stem_prefixes + tuple(stage_prefix.format(first_stage + i) for i in range(k))
    for name, parameter in model.named_parameters():
        if name.startswith(head_prefix):
            continue
        parameter.requires_grad_(not name.startswith(frozen))


def keep_batchnorm_in_eval(model: Any) -> None:
    """Pin every BatchNorm layer in eval mode, also under a later ``model.train()``: stage 2 trains only
    the new head, so the stage-1 BN statistics must not move either."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
            module.train = lambda mode=True, _m=module: _m  # type: ignore[method-assign]


def _read_json_file(path: Path) -> dict:
    """A JSON file the adapters wrote themselves (run_config.json, stage1_run_config.json)."""
    from ltbench.io import read_json

    return read_json(path)
