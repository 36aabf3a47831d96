"""Registration of ltbench's mmdet components in mmdet's/mmengine's registries (``register()``, idempotent).

- ``LtbenchLvisDataset``: any LVIS-format file read by ``adapters.records`` (images without instances, and
  images with a short side under 32 px as mmdet's LVIS ``filter_cfg``, are dropped for training, so
  ``ClassBalancedDataset`` never sees an empty ``cat_ids``: the mmdet 3.x index-shift issue of open-mmlab/mmdetection#10038 cannot arise);
- ``LtbenchStreamSampler``: ltbench's image streams (stochastic RFS, class-aware, SimCal's bi-level with
  ``LtbenchBilevelDataset`` and ``LtbenchRoIHead`` / ``LtbenchCascadeRoIHead`` /
  ``LtbenchHybridTaskCascadeRoIHead`` carrying each image's sampled class to the box head of every stage);
- ``LtbenchBBoxHead``: an mmdet ``BBoxHead`` whose classification is the ltbench ``BoxHead``, with
  ``LtbenchScores`` telling mmdet's post-processing that the head already gives probabilities;
- the engine hooks ``ProgressGate`` and ``PeriodicWriter`` and ``LtbenchIterBasedTrainLoop`` (``Reseed``).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters.engine import preemption
from adapters.engine.progress import ProgressLogger
from adapters.engine.randomness import iteration_seed, seed_everything
from adapters.engine.schedule import epoch_progress
from adapters.engine.stream import IndexStream, epoch_order, rank_slice
from adapters.records import LvisSplit, load_lvis_split
from adapters.wiring import build_head, classification_losses
from ltbench.errors import LtbenchError
from ltbench.io import write_text

_REGISTERED = False


@contextlib.contextmanager
def trusted_checkpoints():
    """mmengine 0.10 calls ``torch.load`` without ``weights_only``; torch >= 2.6 then refuses its own
    checkpoints (they pickle mmengine's HistoryBuffer). Within this block -- only around checkpoints this
    adapter wrote in the run's work directory -- torch falls back to full unpickling."""
    key = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    previous = os.environ.get(key)
    os.environ[key] = "1"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.*")
            yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def quiet_init(model: Any) -> None:
    """``init_weights`` logs one INFO block per parameter; keep those out of the training log."""
    import logging

    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def float32_mmcv_ops_on_cpu() -> Iterator[None]:
    """mmcv's CPU kernels of NMS and RoIAlign take float32 only (its CUDA kernels also take float16): under
    CPU bfloat16 autocast their inputs are cast to float32, the policy torch's autocast applies to
    torchvision's own nms and roi_align. Only for CPU bfloat16 training; CUDA float16 needs nothing."""
    import importlib

    import torch

    # the modules themselves: mmcv.ops re-exports functions of the same names over them
    nms_module, roi_align_module = importlib.import_module("mmcv.ops.nms"), importlib.import_module("mmcv.ops.roi_align")

    def float32(x: Any) -> Any:
        return x.float() if isinstance(x, torch.Tensor) and x.dtype == torch.bfloat16 else x

    nms, roi_align = nms_module.nms, roi_align_module.roi_align

    def nms_float32(boxes: Any, scores: Any, *args: Any, **kwargs: Any) -> Any:
        return nms(float32(boxes), float32(scores), *args, **kwargs)

    def roi_align_float32(features: Any, rois: Any, *args: Any) -> Any:
        # back in the features' dtype: mmdet's RoI extractor writes into a buffer of that dtype
        return roi_align(float32(features), float32(rois), *args).to(features.dtype)

    nms_module.nms, roi_align_module.roi_align = nms_float32, roi_align_float32  # batched_nms looks nms up by name
    try:
        yield
    finally:
        nms_module.nms, roi_align_module.roi_align = nms, roi_align


def mmdet_available() -> tuple[bool, str]:
    try:
        import mmcv  # noqa: F401
        import mmdet  # noqa: F401
        import mmengine  # noqa: F401
    except Exception as exc:  # ImportError, or mmcv's compiled ops failing to load
        return False, f"mmdet 3.3 is not importable here ({type(exc).__name__}: {exc}); install the mmdet extra (make setup-mmdet)"
    return True, ""


def _require_mmdet() -> None:
    ok, reason = mmdet_available()
    if not ok:
        raise LtbenchError(reason, key="framework", expected="an environment with mmcv 2.1, mmengine 0.10, mmdet 3.3")


def register() -> None:
    """Register ltbench's dataset, head, activation, hook and loop in mmdet's registries (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _require_mmdet()
    import torch
    from mmdet.datasets.base_det_dataset import BaseDetDataset
    from mmdet.models.roi_heads import CascadeRoIHead, HybridTaskCascadeRoIHead, StandardRoIHead
    from mmdet.models.roi_heads.bbox_heads.bbox_head import BBoxHead
    from mmdet.registry import DATA_SAMPLERS, DATASETS, HOOKS, LOOPS, MODELS, OPTIM_WRAPPERS
    from mmengine.model import MMDistributedDataParallel
    from mmengine.registry import MODEL_WRAPPERS  # the Runner looks wrappers up in mmengine's root registry
    from mmengine.hooks import Hook
    from mmengine.optim import AmpOptimWrapper
    from mmdet.utils import register_all_modules
    from mmengine.runner.loops import IterBasedTrainLoop
    from torch import nn

    # mmdet's own modules, with "mmdet" as the default scope so that config types resolve.
    register_all_modules(init_default_scope=True)

    @DATASETS.register_module(force=True)
    class LtbenchLvisDataset(BaseDetDataset):
        """An LVIS-format annotation file read by ltbench (``adapters.records.load_lvis_split``).

        ``ann_file``: the JSON; ``image_root``: folder of the image paths (``ltbench.data.layout``). Labels are class
        indices 0..C-1 in ascending category-id order; ``metainfo.category_ids`` keeps the ids.
        """

        def __init__(self, *args: Any, image_root: str = "", keep_empty: bool = False, **kwargs: Any) -> None:
            self._image_root = image_root
            self._keep_empty = keep_empty
            self._split: LvisSplit | None = None
            super().__init__(*args, **kwargs)

        def load_data_list(self) -> list[dict]:
            split = load_lvis_split(Path(self.ann_file), Path(self._image_root), keep_empty=self._keep_empty or self.test_mode)
            self._split = split
            self._metainfo["classes"] = tuple(str(c) for c in split.category_ids)
            self._metainfo["category_ids"] = list(split.category_ids)
            data = []
            for r in split.images:
                instances = []
                for box, label, seg in zip(r.boxes.tolist(), r.classes.tolist(), r.segmentations):
                    x0, y0, x1, y1 = box
                    instance = {"bbox": [x0, y0, x1, y1], "bbox_label": int(label), "ignore_flag": 0}
                    instance["mask"] = seg if seg else [[x0, y0, x1, y0, x1, y1, x0, y1]]
                    instances.append(instance)
                data.append({"img_path": str(r.path), "img_id": r.image_id, "height": r.height, "width": r.width, "instances": instances})
            return data

    @DATA_SAMPLERS.register_module(force=True)
    class LtbenchStreamSampler(torch.utils.data.Sampler):
        """An endless image-index stream from ``adapters.engine.stream.epoch_order`` (ltbench's samplers:
        random, RFS with either rounding, class-aware), seeded per (seed, epoch); mmengine's loop skips the
        batches a resumed run already consumed, so the stream resumes exactly. Under data parallelism each
        rank yields its slice of every global batch of ``batch_size`` (``stream.rank_slice``)."""

        def __init__(self, dataset: Any, sampler: dict | None = None, seed: int | None = None, batch_size: int = 1) -> None:
            self.dataset = dataset  # AspectRatioBatchSampler reads image sizes through it
            inner = dataset
            while not hasattr(inner, "_split") and hasattr(inner, "dataset"):
                inner = inner.dataset
            inner.full_init()
            self.bilevel = (sampler or {}).get("name") == "bilevel"
            images = inner._split.images
            # bi-level: class indices, and (image, class) pairs encoded as LtbenchBilevelDataset indices
            categories = [set(r.classes.tolist()) for r in images] if self.bilevel else [r.category_ids for r in images]
            self.num_images = len(images)
            self.order = epoch_order(sampler, categories, int(seed or 0), batch_size=batch_size, default_rounding="ceil")
            self.length = len(self.order(0))
            self.batch_size = batch_size

        def __iter__(self):
            from mmengine.dist import get_dist_info

            rank, world = get_dist_info()
            stream = IndexStream(self.order)
            while True:
                for item in rank_slice(stream.take(self.batch_size), rank, world):
                    yield item[1] * self.num_images + item[0] if self.bilevel else item

        def __len__(self) -> int:
            return self.length

        def set_epoch(self, epoch: int) -> None:  # the stream carries its own epochs
            pass

    @DATASETS.register_module(force=True)
    class LtbenchBilevelDataset(torch.utils.data.Dataset):
        """SimCal's bi-level items: index ``k * N + i`` is image i sampled for class k (N images); the
        sampled class travels in the data sample's metainfo as ``ltbench_class``."""

        def __init__(self, dataset: dict) -> None:
            self.dataset = DATASETS.build(dataset)
            self._fully_initialized = False

        def full_init(self) -> None:
            self.dataset.full_init()
            self._split = self.dataset._split
            self.num_images = len(self.dataset)
            self._fully_initialized = True

        @property
        def metainfo(self) -> dict:
            return self.dataset.metainfo

        def __len__(self) -> int:
            return self.num_images * len(self._split.category_ids)

        def get_data_info(self, index: int) -> dict:
            return self.dataset.get_data_info(index % self.num_images)

        def __getitem__(self, index: int) -> dict:
            item = self.dataset[index % self.num_images]
            item["data_samples"].set_metainfo({"ltbench_class": int(index // self.num_images)})
            return item

    class BilevelClasses:
        """Hands SimCal's sampled class per image (``ltbench_class`` in the data samples' metainfo, from
        ``LtbenchBilevelDataset``) to the loss of the box head of every stage."""

        def loss(self, x, rpn_results_list, batch_data_samples):  # noqa: ANN001, ANN201 - mmdet signature
            classes = [sample.metainfo.get("ltbench_class") for sample in batch_data_samples]
            for bbox_head in stage_bbox_heads(self):
                bbox_head.bilevel_classes = classes if all(c is not None for c in classes) else None
            return super().loss(x, rpn_results_list, batch_data_samples)

    @MODELS.register_module(force=True)
    class LtbenchRoIHead(BilevelClasses, StandardRoIHead):
        """mmdet's StandardRoIHead (Mask / Faster R-CNN) with ``BilevelClasses``."""

    @MODELS.register_module(force=True)
    class LtbenchCascadeRoIHead(BilevelClasses, CascadeRoIHead):
        """mmdet's CascadeRoIHead (Cascade (Mask) R-CNN) with ``BilevelClasses``."""

    @MODELS.register_module(force=True)
    class LtbenchHybridTaskCascadeRoIHead(BilevelClasses, HybridTaskCascadeRoIHead):
        """mmdet's HybridTaskCascadeRoIHead (HTC) with ``BilevelClasses``."""

    @MODELS.register_module(force=True)
    class LtbenchScores(nn.Module):
        """Placeholder ``loss_cls``: tells mmdet's BBoxHead that the head already outputs class
        probabilities (``get_activation`` is the identity); the loss is the ltbench BoxHead's."""

        custom_cls_channels = True
        custom_activation = True
        custom_accuracy = True

        def get_cls_channels(self, num_classes: int) -> int:
            return num_classes + 1

        def get_activation(self, cls_score: torch.Tensor) -> torch.Tensor:
            return cls_score

        def get_accuracy(self, cls_score: torch.Tensor, labels: torch.Tensor) -> dict:
            return {}

        def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
            raise RuntimeError("LtbenchScores is not a loss: LtbenchBBoxHead computes the classification loss")

    @MODELS.register_module(force=True)
    class LtbenchBBoxHead(BBoxHead):
        """mmdet BBoxHead (bg last, 4*C deltas) whose features, classifier and classification loss are
        an ltbench ``BoxHead``.

        ``forward(x (R, in_channels, 7, 7)) -> (cls_score, bbox_pred)``: in training ``cls_score`` is
        the final logits (R, K) and the full ``BoxHeadOutput`` is kept for ``loss``; in eval it is the
        class probabilities (R, C+1), bg last, read through ``view`` ((head, output) -> probs; None =
        ``head.probabilities``). ``fit_pass``: ``loss`` feeds ``head.accumulate(output, labels)`` (NCM)
        instead. ``last_inference`` collects (image id, rois in original-image coordinates, probs) per
        image for the proposal statistics.
        """

        def __init__(self, *, head: dict, hidden: int = 1024, **kwargs: Any) -> None:
            kwargs.update(with_cls=False, with_reg=True, loss_cls=dict(type="LtbenchScores"), init_cfg=[])
            super().__init__(**kwargs)
            del self.fc_reg  # the ltbench head owns the box regressor
            deltas = 4 if self.reg_class_agnostic else 4 * self.num_classes
            self.box_head = build_head(head, num_classes=self.num_classes, background="last", num_box_deltas=deltas,
                                       in_channels=self.in_channels, pool_size=self.roi_feat_size[0], hidden=hidden)
            self._output = None
            self._refine_output = None  # the training output a cascade stage refines its boxes with
            self.view = None
            self.fit_pass = False
            self.bilevel_classes: list[int] | None = None
            self.last_inference: list = []

        def forward(self, x: torch.Tensor) -> tuple:
            output = self.box_head(x)
            if self.training:
                self._output = self._refine_output = output
                return output.final_logits, self.box_head.regression_deltas(output)
            probs = self.view(self.box_head, output) if self.view is not None else self.box_head.probabilities(output)
            return probs, self.box_head.regression_deltas(output)

        def loss(self, cls_score, bbox_pred, rois, labels, label_weights, bbox_targets, bbox_weights, reduction_override=None):  # noqa: ANN001
            if self.fit_pass:
                self.box_head.accumulate(self._output, labels)
                self._output = None
                return {}
            output = self._output
            if self.bilevel_classes is not None:  # SimCal: the sampled class's positives + as many negatives
                from ltbench.methods.samplers import compose_bilevel_batch

                keep = compose_bilevel_batch(labels, rois[:, 0].long(), self.bilevel_classes, num_classes=self.num_classes, background="last")
                output = _subset(output, keep, len(labels))
                bbox_pred, rois, labels, label_weights, bbox_targets, bbox_weights = (
                    t[keep] for t in (bbox_pred, rois, labels, label_weights, bbox_targets, bbox_weights)
                )
            losses = super().loss(None, bbox_pred, rois, labels, label_weights, bbox_targets, bbox_weights, reduction_override)
            losses.update(classification_losses(self.box_head, output, labels))
            self._output = None
            return losses

        def refine_bboxes(self, sampling_results, bbox_results, batch_img_metas):  # noqa: ANN001, ANN201 - mmdet signature
            """A cascade stage's boxes for the next stage (training). mmdet reads the class scores, C or C + 1 columns,
            for the labels of background RoIs; a head with other logits (BAGS' group "others") gives its
            probabilities (R, C + 1) instead."""
            scores = bbox_results["cls_score"]
            if scores.shape[-1] not in (self.num_classes, self.num_classes + 1) and self._refine_output is not None:
                with torch.no_grad():
                    bbox_results = {**bbox_results, "cls_score": self.box_head.probabilities(self._refine_output)}
            self._refine_output = None
            return super().refine_bboxes(sampling_results, bbox_results, batch_img_metas)

        def _predict_by_feat_single(self, roi, cls_score, bbox_pred, img_meta, rescale=False, rcnn_test_cfg=None):  # noqa: ANN001
            boxes = roi[:, 1:].clone()
            sx, sy = img_meta.get("scale_factor", (1.0, 1.0))
            boxes[:, [0, 2]] /= sx
            boxes[:, [1, 3]] /= sy
            self.last_inference.append((int(img_meta["img_id"]), boxes.detach().cpu(), cls_score.detach().cpu()))
            return super()._predict_by_feat_single(roi, cls_score, bbox_pred, img_meta, rescale, rcnn_test_cfg)

    @HOOKS.register_module(name="ProgressGate", force=True)
    class ProgressGate(Hook):
        """The engine hook ``ProgressGate`` (``adapters.engine.hooks``): before every training iteration,
        ``BoxHead.set_progress(epoch, max_epochs, iter, max_iters)``, epochs counted in images seen / images
        per epoch of the sampler (the loop is iteration based); ``batch_size`` is the global batch."""

        priority = "VERY_HIGH"

        def __init__(self, batch_size: int = 1, epoch_length: int = 1) -> None:
            self.batch_size = batch_size
            self.epoch_length = max(1, epoch_length)

        def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:  # noqa: ANN001
            model = runner.model.module if hasattr(runner.model, "module") else runner.model
            epoch, epochs = epoch_progress(runner.iter, runner.max_iters, self.batch_size, self.epoch_length)
            for bbox_head in stage_bbox_heads(model.roi_head):
                bbox_head.box_head.set_progress(epoch, epochs, runner.iter, runner.max_iters)

    @HOOKS.register_module(name="PeriodicWriter", force=True)
    class PeriodicWriter(Hook):
        """The engine hook ``PeriodicWriter``: the same progress lines in ``work/<run>/log.txt`` as every
        adapter writes (``adapters.engine.progress``), besides mmengine's own logger; the losses shown are
        the mean over the ranks (one all-reduce on the iterations that are logged), as in the other adapters."""

        priority = "BELOW_NORMAL"

        def __init__(self, every: int | None = None) -> None:
            self.every = every
            self.logger: ProgressLogger | None = None

        def before_train(self, runner) -> None:  # noqa: ANN001
            self.logger = ProgressLogger(Path(runner.work_dir), runner.max_iters, start_iteration=runner.iter, every=self.every)
            if runner.iter and runner.rank == 0:  # mmengine resumed (resume=True) from its last_checkpoint pointer
                pointer = (Path(runner.work_dir) / "last_checkpoint").read_text(encoding="utf-8").strip()
                self.logger.note(f"resuming from {Path(pointer).name} at iteration {runner.iter}/{runner.max_iters}")

        def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:  # noqa: ANN001
            if self.logger is None or not self.logger.due(runner.iter):
                return
            losses = {k: float(v.detach()) if hasattr(v, "detach") else float(v)
                      for k, v in (outputs or {}).items() if k.rsplit(".", 1)[-1].startswith("loss") and k != "loss"}  # s0.loss_cls: cascade stages
            if runner.world_size > 1:  # every rank takes part: the decision above depends on the iteration only
                from mmengine.dist import all_reduce

                mean = torch.tensor(list(losses.values()), dtype=torch.float64)
                all_reduce(mean, op="mean")
                losses = dict(zip(losses, mean.tolist()))
            if runner.rank == 0:
                self.logger(runner.iter, losses, float(runner.optim_wrapper.get_lr()["lr"][0]), force=True)

    @MODEL_WRAPPERS.register_module(force=True)
    class LtbenchCpuDistributedDataParallel(MMDistributedDataParallel):
        """mmengine's ``MMDistributedDataParallel`` for a model on the CPU (gloo ranks): the Runner passes
        ``device_ids=[LOCAL_RANK]``, which torch's DDP accepts only for a GPU module."""

        def __init__(self, module: Any, device_ids: Any = None, **kwargs: Any) -> None:
            super().__init__(module=module, device_ids=None, **kwargs)

    @OPTIM_WRAPPERS.register_module(force=True)
    class LtbenchAmpOptimWrapper(AmpOptimWrapper):
        """mmengine's ``AmpOptimWrapper`` (dynamic loss scaling, mmengine's ``autocast``), usable for bfloat16
        on a CPU: mmengine asserts CUDA in ``__init__`` although its ``autocast`` runs on a CPU, and torch's
        GradScaler disables itself there (bfloat16 needs no loss scaling). Only the assertion is bypassed."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            import mmengine.optim.optimizer.amp_optimizer_wrapper as amp

            if torch.cuda.is_available() or kwargs.get("dtype") not in ("bfloat16", torch.bfloat16):
                super().__init__(*args, **kwargs)
                return
            check = amp.is_cuda_available
            amp.is_cuda_available = lambda: True
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*GradScaler.*CUDA is not available.*")
                    super().__init__(*args, **kwargs)
            finally:
                amp.is_cuda_available = check

    @HOOKS.register_module(name="PeriodicCheckpointer", force=True)
    class PeriodicCheckpointer(Hook):
        """The engine hook ``PeriodicCheckpointer`` besides mmengine's ``CheckpointHook`` (the iteration
        period): a checkpoint every ``wall_seconds`` of wall time, and on the time-limit signal
        (``adapters.engine.preemption``) a checkpoint, then exit 75 so that the job is resubmitted. Rank 0's
        clock and signal decide for every rank."""

        priority = "LOW"  # after the optimizer step of the iteration

        def __init__(self, wall_seconds: float | None = None) -> None:
            self.wall = preemption.WallClock(wall_seconds)

        def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:  # noqa: ANN001
            from mmengine.dist import broadcast_object_list

            done = runner.iter + 1
            decision = [(preemption.requested() is not None, self.wall.due())]
            broadcast_object_list(decision, src=0)
            stop, by_time = decision[0]
            if done >= runner.max_iters or not (stop or by_time):
                return
            name = f"iter_{done}.pth"
            runner.save_checkpoint(runner.work_dir, name, save_optimizer=True, save_param_scheduler=True, by_epoch=False)
            self.wall.reset()
            if runner.rank == 0:  # what mmengine's CheckpointHook writes, so that resume=True finds it
                write_text(Path(runner.work_dir) / "last_checkpoint", str(Path(runner.work_dir) / name))
            if stop:
                if runner.rank == 0:
                    preemption.exit_for_resubmission(done, runner.max_iters, Path(runner.work_dir) / name, Path(runner.work_dir))
                raise SystemExit(preemption.EXIT_CODE)

    @LOOPS.register_module(force=True)
    class LtbenchIterBasedTrainLoop(IterBasedTrainLoop):
        """mmengine's IterBasedTrainLoop with the engine's ``Reseed``: torch/numpy/random seeded from (seed,
        iteration, rank) right before each batch is drawn, so augmentation and RoI sampling do not depend on
        where a run resumed."""

        def __init__(self, *args: Any, seed: int = 0, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.seed = seed

        def run(self):  # noqa: ANN201 - mmengine signature
            self.runner.call_hook("before_train")
            self.runner.call_hook("before_train_epoch")
            for _ in range(self._iter):  # skip the batches a resumed run already trained on
                next(self.dataloader_iterator)
            while self._iter < self._max_iters and not self.stop_training:
                self.runner.model.train()
                seed_everything(iteration_seed(self.seed, self._iter, self.runner.rank))
                self.run_iter(next(self.dataloader_iterator))
            self.runner.call_hook("after_train_epoch")
            self.runner.call_hook("after_train")
            return self.runner.model

    _REGISTERED = True


def stage_bbox_heads(roi_head: Any) -> list:
    """The box heads of an mmdet RoI head: the three stages of a cascade / HTC, else the one head."""
    import torch

    heads = roi_head.bbox_head
    return list(heads) if isinstance(heads, torch.nn.ModuleList) else [heads]


def _subset(value: Any, keep: Any, rows: int) -> Any:
    """``value`` (a BoxHeadOutput, or tensors/lists/dicts inside one) restricted to the RoIs ``keep``:
    every tensor whose first dimension is the number of RoIs ``rows`` is indexed."""
    import dataclasses

    import torch

    if isinstance(value, torch.Tensor):
        return value[keep] if value.dim() > 0 and value.shape[0] == rows else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value)(**{f.name: _subset(getattr(value, f.name), keep, rows) for f in dataclasses.fields(value)})
    if isinstance(value, list):
        return [_subset(v, keep, rows) for v in value]
    if isinstance(value, dict):
        return {k: _subset(v, keep, rows) for k, v in value.items()}
    return value


