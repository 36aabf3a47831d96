"""The interface every framework adapter implements, and checked access to the resolved run config.

An adapter turns a resolved run config (docs/CONTRACTS.md, "Resolved run config") into its framework's
model and code path. It exposes two calls:

- ``train(run_config, workdir, data, *, stage1_workdir=None, init_workdir=None) -> Path``: trains into
  ``workdir`` through its engine's training loop and hooks (``adapters.engine``); checkpoints are
  ``model_<iter>.pth`` written atomically, then the ``last_checkpoint`` pointer; a restarted ``train``
  resumes from that pointer and (on CPU with fixed seeds) reaches the same final weights as an
  uninterrupted run; ``done.json`` is written last (``adapters.checkpoints``).
- ``predict(run_config, view_config, workdir, data, *, split, out_dir) -> dict``: writes
  ``out_dir/detections.json`` (LVIS results format) and ``out_dir/proposal_stats.npz``
  (``adapters.prediction``).

Class indices: "class index k" is the 0-based foreground index in ascending LVIS category-id order.
Each adapter converts to its own background convention (``background``: "first" = torchvision, label 0
is background; "last" = mmdet 3.x and detectron2, label C) at its boundary.

Heavy imports (torch, numpy, pycocotools) are inside functions: ``ltbench --help`` imports nothing here.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ltbench.errors import LtbenchError
from ltbench.render.run_notes import pcb_never_on_note
from ltbench.spec import vocab

_LOG = logging.getLogger(__name__)


class DataPaths(Protocol):
    """What an adapter needs from ``ltbench.data.datasets.resolve``: annotation files and image root."""

    train: Path
    val: Path
    image_root: Path


class Adapter(ABC):
    """One framework. Subclasses set ``name`` and ``background``, declare what they build
    (``SUPPORTED_*``) and implement ``train``/``predict``.

    The declarations are plain class attributes (no framework import), read by the planner to choose the
    smoke-scale framework of a row (``ltbench.plan.scales.smoke_framework``) and by ``unsupported`` to check
    a planned row before any job starts (tests/plan/test_plan_capabilities.py)."""

    name: str = ""
    background: str = "first"
    #: detectors (spec vocabulary names) the adapter builds
    SUPPORTED_DETECTORS: tuple[str, ...] = ()
    #: backbones it builds as named; at smoke scale the run's ``model.backbone_depth`` (the tiny stand-in of
    #: ``ltbench.plan.scales.SMOKE_MODEL``) replaces the named backbone, so ``r<depth>_fpn`` is what is checked
    SUPPORTED_BACKBONES: tuple[str, ...] = ()
    #: image samplers (``sampler.name``, also a stage-2 recipe's ``stage2.sampler``)
    SUPPORTED_SAMPLERS: tuple[str, ...] = vocab.SAMPLERS
    #: stage-2 methods (``stage2.name``): ``ltbench.methods.build_stage2`` around the adapter's stage-1 box head
    SUPPORTED_STAGE2: tuple[str, ...] = vocab.STAGE2_METHODS
    #: views (``view.name``): ``adapters.wiring.view_function`` on the adapter's box head
    SUPPORTED_VIEWS: tuple[str, ...] = vocab.VIEWS

    @classmethod
    def unsupported(cls, run_config: dict, view_config: dict | None = None) -> list[str]:
        """What of ``run_config`` (and ``view_config``) this adapter cannot run, one line each; [] when it can."""
        gaps = []
        detector = run_config.get("detector", "mask_rcnn")
        if detector not in cls.SUPPORTED_DETECTORS:
            gaps.append(f"detector {detector!r} (the {cls.name} adapter builds " + ", ".join(cls.SUPPORTED_DETECTORS) + ")")
        backbone = built_backbone(run_config)
        if backbone not in cls.SUPPORTED_BACKBONES:
            gaps.append(f"backbone {backbone!r} (the {cls.name} adapter builds " + ", ".join(cls.SUPPORTED_BACKBONES) + ")")
        for sampler in (run_config.get("sampler"), (run_config.get("stage2") or {}).get("sampler")):
            name = (sampler or {}).get("name", "random") if isinstance(sampler, dict) else sampler
            if sampler is not None and name not in cls.SUPPORTED_SAMPLERS:
                gaps.append(f"sampler {name!r}")
        stage2 = run_config.get("stage2")
        if isinstance(stage2, dict) and stage2.get("name") not in cls.SUPPORTED_STAGE2:
            gaps.append(f"stage-2 method {stage2.get('name')!r}")
        if view_config is not None and view_config.get("name", "plain") not in cls.SUPPORTED_VIEWS:
            gaps.append(f"view {view_config.get('name')!r}")
        return gaps

    @abstractmethod
    def train(self, run_config: dict, workdir: Path, data: DataPaths, *, stage1_workdir: Path | None = None,
              init_workdir: Path | None = None, device: str | None = None, precision: str | None = None, ranks: int = 1) -> Path:
        """Train ``run_config`` into ``workdir``; returns the final checkpoint path. ``init_workdir``: the
        work directory of the ``init_from`` run (default ``$LTBENCH_WORK/<init_from>``). ``device`` and
        ``precision``: ``adapters.engine.devices``; ``ranks``: the data-parallel ranks of this training, already
        started by a launcher (``adapters.engine.launch``) or, for detectron2, launched by the adapter."""

    @abstractmethod
    def predict(self, run_config: dict, view_config: dict, workdir: Path, data: DataPaths, *, split: str = "val",
                out_dir: Path, device: str | None = None) -> dict:
        """Predict (run, view) on ``split``; returns a summary dict (files written, counts)."""

    def available(self) -> tuple[bool, str]:
        """(True, "") when the framework imports here, else (False, one-line reason)."""
        return True, ""


def built_backbone(run_config: dict) -> str:
    """The backbone an adapter builds for ``run_config``: the named one, or at smoke scale the tiny stand-in
    ``r<model.backbone_depth>_fpn`` that replaces it (``ltbench.plan.scales.SMOKE_MODEL``)."""
    depth = (run_config.get("model") or {}).get("backbone_depth")
    if run_config.get("scale") in ("smoke", "mini") and depth is not None:
        return f"r{int(depth)}_fpn"
    return str(run_config.get("backbone", "r50_fpn"))


SCHEDULE_KEYS = ("iterations", "batch_size", "lr", "momentum", "weight_decay", "warmup_iters", "steps", "checkpoint_period")
#: detectors that predict instance masks (the others give boxes only)
MASK_DETECTORS = vocab.MASK_DETECTORS


def require(config: dict, key: str, where: str = "run config") -> Any:
    """``config[key]`` or a ``LtbenchError`` naming the key."""
    if not isinstance(config, dict) or key not in config:
        raise LtbenchError(f"missing key {key!r}", path=where, key=key, expected=f"the resolved run config key {key!r}")
    return config[key]


def run_label(run_config: dict) -> str:
    return str(run_config.get("id", "<run without id>"))


def schedule_of(run_config: dict, *, stage2: bool = False) -> dict:
    """The schedule of this run: ``stage2.schedule`` over ``schedule`` for a stage-2 run, every key checked."""
    schedule = dict(require(run_config, "schedule"))
    if stage2 and isinstance(run_config.get("stage2"), dict) and isinstance(run_config["stage2"].get("schedule"), dict):
        schedule = {**schedule, **run_config["stage2"]["schedule"]}
    for key in SCHEDULE_KEYS:
        if key not in schedule:
            raise LtbenchError(f"schedule has no {key!r}", path=run_config.get("id", "run config"), key=f"schedule.{key}",
                               expected="a resolved schedule with " + ", ".join(SCHEDULE_KEYS))
    return schedule


def training_sampler(run_config: dict) -> dict | None:
    """The image sampler this run trains with: a stage-2 recipe's own ``stage2.sampler`` wins."""
    stage2 = run_config.get("stage2")
    if isinstance(stage2, dict) and "sampler" in stage2:
        return stage2["sampler"]
    return run_config.get("sampler")


def has_masks(run_config: dict) -> bool:
    """Whether the run's detector predicts instance masks (Faster R-CNN does not)."""
    return run_config.get("detector", "mask_rcnn") in MASK_DETECTORS


def record_regulariser(training: dict, model: Any, category_ids: Sequence[int]) -> None:
    """Puts what a training regulariser of ``model`` did (PCB: ``IterativeBoxHead.regulariser_statistics``) into
    done.json's ``training`` block as ``training.pcb`` (read by the regression check as ``train.pcb.*``), with the
    classes never seen as LVIS category ids (class index k is ``category_ids[k]``, ascending in every adapter).
    A regulariser that never turned on is logged as a warning and noted in ``training.notes`` (the table marks
    such runs). Nothing for models without one. Every rank must call it: the statistics sum over processes."""
    for module in model.modules():
        statistics = getattr(module, "regulariser_statistics", None)
        out = statistics() if callable(statistics) else None
        if not out:  # not a head, or a head without PCB
            continue
        out["classes_never_seen"] = [int(category_ids[k]) for k in out.get("classes_never_seen", [])]
        training["pcb"] = out
        if out.get("regularised_iterations") == 0:
            note = pcb_never_on_note(out)
            _LOG.warning(note)
            if note not in training.setdefault("notes", []):
                training["notes"].append(note)
        return
