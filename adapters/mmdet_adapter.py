"""mmdetection 3.3 adapter: mmdet's own LVIS Mask R-CNN config, with the ltbench BoxHead in the box branch,
trained by mmengine's Runner.

Background convention: ``"last"`` (mmdet 2.x/3.x): foreground labels 0..C-1, background C. Box deltas:
``4 * C`` (mmdet does not regress the background).

What comes from mmdet and what is ours:
- mmdet/mmengine: the config (``mmdet/.mim/configs/lvis/mask-rcnn_r50_fpn_sample1e-3_ms-2x_lvis-v0.5.py``
  or the v1 1x one), data pipeline, backbone/FPN/RPN, RoI assignment and sampling, RoIAlign, the L1 box
  loss, multiclass NMS, the mask branch, the Runner (optimizer, LR schedulers, checkpoints, logging,
  resume), ``ClassBalancedDataset`` for RFS with mmdet's ceil rounding (the default here).
- ltbench, registered in mmdet's registries on first use:
  ``LtbenchLvisDataset`` (any LVIS-format file, image paths relative to an image root; images without
  instances are dropped for training, so ClassBalancedDataset never sees an empty ``cat_ids`` -- the
  mmdet 3.x index-shift issue of open-mmlab/mmdetection#10038 cannot arise);
  ``LtbenchBBoxHead`` (an mmdet ``BBoxHead`` whose classification is the ltbench BoxHead);
  ``LtbenchScores`` (tells mmdet's post-processing that the head already gives probabilities);
  ``LtbenchProgressHook`` (``BoxHead.set_progress`` before every iteration: PCB's start gate);
  ``LtbenchStreamSampler`` (ltbench's image samplers: RFS with stochastic rounding, class-aware, SimCal's
  bi-level stream) with ``LtbenchBilevelDataset`` and ``LtbenchRoIHead`` carrying each image's sampled
  class to the box head, which keeps SimCal's RoIs (``compose_bilevel_batch``);
  ``LtbenchIterBasedTrainLoop`` (mmengine's loop, re-seeding from (seed, iteration) before each batch so
  that a resumed run draws the same augmentation and RoI samples as an uninterrupted one).

Exact resume on CPU needs ``num_workers=0`` (the default here); with worker processes the pipeline's
random draws happen in the workers and a resumed run is equivalent but not bit-identical.

Not wired here: detectors other than Mask/Faster R-CNN (cascade, HTC) and DCN/ResNeXt backbones.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from pathlib import Path
from typing import Any

from adapters import base
from ltbench.errors import LtbenchError

#: dataset name -> config file inside mmdet's wheel (mmdet/.mim/configs/...)
BASE_CONFIGS = {
    "lvis_v0.5": "lvis/mask-rcnn_r50_fpn_sample1e-3_ms-2x_lvis-v0.5.py",
    "lvis_v1": "lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py",
}
DEFAULT_BASE_CONFIG = BASE_CONFIGS["lvis_v1"]

_REGISTERED = False


@contextlib.contextmanager
def _trusted_checkpoints():
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


def _quiet_init(model: Any) -> None:
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
    from mmdet.models.roi_heads import StandardRoIHead
    from mmdet.models.roi_heads.bbox_heads.bbox_head import BBoxHead
    from mmdet.registry import DATA_SAMPLERS, DATASETS, HOOKS, LOOPS, MODELS
    from mmengine.hooks import Hook
    from mmdet.utils import register_all_modules
    from mmengine.runner.loops import IterBasedTrainLoop
    from torch import nn

    # mmdet's own modules, with "mmdet" as the default scope so that config types resolve.
    register_all_modules(init_default_scope=True)

    @DATASETS.register_module(force=True)
    class LtbenchLvisDataset(BaseDetDataset):
        """An LVIS-format annotation file read by ltbench (``adapters.base.load_lvis_split``).

        ``ann_file``: the JSON; ``image_root``: folder of the images' ``file_name``s. Labels are class
        indices 0..C-1 in ascending category-id order; ``metainfo.category_ids`` keeps the ids.
        """

        def __init__(self, *args: Any, image_root: str = "", keep_empty: bool = False, **kwargs: Any) -> None:
            self._image_root = image_root
            self._keep_empty = keep_empty
            self._split: base.LvisSplit | None = None
            super().__init__(*args, **kwargs)

        def load_data_list(self) -> list[dict]:
            split = base.load_lvis_split(Path(self.ann_file), Path(self._image_root), keep_empty=self._keep_empty or self.test_mode)
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
        """An endless image-index stream from ``adapters.base.make_epoch_order`` (ltbench's samplers:
        random, RFS with either rounding, class-aware), seeded per (seed, epoch); mmengine's loop skips the
        batches a resumed run already consumed, so the stream resumes exactly."""

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
            self.order = base.make_epoch_order(sampler, categories, int(seed or 0), batch_size=batch_size)
            self.length = len(self.order(0))

        def __iter__(self):
            stream = base.IndexStream(self.order)
            while True:
                (item,) = stream.take(1)
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

    @MODELS.register_module(force=True)
    class LtbenchRoIHead(StandardRoIHead):
        """StandardRoIHead that hands SimCal's sampled class per image (``ltbench_class`` in the data
        samples' metainfo, from ``LtbenchBilevelDataset``) to the box head's loss."""

        def loss(self, x, rpn_results_list, batch_data_samples):  # noqa: ANN001, ANN201 - mmdet signature
            classes = [sample.metainfo.get("ltbench_class") for sample in batch_data_samples]
            self.bbox_head.bilevel_classes = classes if all(c is not None for c in classes) else None
            return super().loss(x, rpn_results_list, batch_data_samples)

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

        def __init__(self, *, head_class: str, head_params: dict, hidden: int = 1024, **kwargs: Any) -> None:
            kwargs.update(with_cls=False, with_reg=True, loss_cls=dict(type="LtbenchScores"), init_cfg=[])
            super().__init__(**kwargs)
            del self.fc_reg  # the ltbench head owns the box regressor
            head_cls = base._box_head_class(head_class)
            deltas = 4 if self.reg_class_agnostic else 4 * self.num_classes
            self.box_head = head_cls(
                self.num_classes, "last", deltas, in_channels=self.in_channels, pool_size=self.roi_feat_size[0], hidden=hidden, **head_params
            )
            self._output = None
            self.view = None
            self.fit_pass = False
            self.bilevel_classes: list[int] | None = None
            self.last_inference: list = []

        def forward(self, x: torch.Tensor) -> tuple:
            output = self.box_head(x)
            if self.training:
                self._output = output
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
            losses.update(self.box_head.classification_losses(output, labels))
            self._output = None
            return losses

        def _predict_by_feat_single(self, roi, cls_score, bbox_pred, img_meta, rescale=False, rcnn_test_cfg=None):  # noqa: ANN001
            boxes = roi[:, 1:].clone()
            sx, sy = img_meta.get("scale_factor", (1.0, 1.0))
            boxes[:, [0, 2]] /= sx
            boxes[:, [1, 3]] /= sy
            self.last_inference.append((int(img_meta["img_id"]), boxes.detach().cpu(), cls_score.detach().cpu()))
            return super()._predict_by_feat_single(roi, cls_score, bbox_pred, img_meta, rescale, rcnn_test_cfg)

    @HOOKS.register_module(force=True)
    class LtbenchProgressHook(Hook):
        """Before every training iteration: ``BoxHead.set_progress(epoch, max_epochs, iter, max_iters)``,
        epochs counted in images seen / images per epoch (the loop is iteration based)."""

        priority = "VERY_HIGH"

        def __init__(self, batch_size: int = 1, epoch_length: int = 1) -> None:
            self.batch_size = batch_size
            self.epoch_length = max(1, epoch_length)

        def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:  # noqa: ANN001
            model = runner.model.module if hasattr(runner.model, "module") else runner.model
            max_epochs = max(1, math.ceil(runner.max_iters * self.batch_size / self.epoch_length))
            epoch = (runner.iter * self.batch_size) // self.epoch_length
            model.roi_head.bbox_head.box_head.set_progress(epoch, max_epochs, runner.iter, runner.max_iters)

    @LOOPS.register_module(force=True)
    class LtbenchIterBasedTrainLoop(IterBasedTrainLoop):
        """mmengine's IterBasedTrainLoop, seeding torch/numpy/random from (seed, iteration) right before
        each batch is drawn, so augmentation and RoI sampling do not depend on where a run resumed."""

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
                base.seed_everything(base.iteration_seed(self.seed, self._iter))
                self.run_iter(next(self.dataloader_iterator))
            self.runner.call_hook("after_train_epoch")
            self.runner.call_hook("after_train")
            return self.runner.model

    _REGISTERED = True


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


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------
def base_config_path(run_config: dict) -> Path:
    import mmdet

    rel = BASE_CONFIGS.get(run_config.get("dataset", ""), DEFAULT_BASE_CONFIG)
    path = Path(mmdet.__file__).parent / ".mim" / "configs" / rel
    if not path.is_file():
        raise LtbenchError("mmdet's LVIS config is missing from the installed wheel", path=path, expected="mmdet 3.3.0 with its .mim configs")
    return path


def build_config(run_config: dict, split: base.LvisSplit, data: base.DataPaths) -> Any:
    """mmdet's LVIS Mask R-CNN config with the run's model size, head, data and schedule."""
    from mmengine.config import Config

    detector = run_config.get("detector", "mask_rcnn")
    if detector not in ("mask_rcnn", "faster_rcnn"):
        raise LtbenchError(
            f"detector {detector!r} is not wired in the mmdet adapter yet", key="detector", path=base.run_label(run_config),
            expected="mask_rcnn or faster_rcnn",
        )
    cfg = Config.fromfile(str(base_config_path(run_config)))
    model = dict(run_config.get("model") or {})
    depth = int(model.get("backbone_depth", {"r50_fpn": 50, "r101_fpn": 101, "r18_fpn": 18}.get(run_config.get("backbone", "r50_fpn"), 50)))
    fpn = int(model.get("fpn_channels", 256))
    hidden = int(model.get("box_head_hidden", 1024))
    mask_channels = int(model.get("mask_head_channels", min(256, fpn)))
    weights = model.get("weights", run_config.get("weights"))
    pretrain = run_config.get("pretrain", "imagenet")
    m = cfg.model
    m.backbone.depth = depth
    if pretrain == "coco" and not weights:
        raise LtbenchError(
            "pretrain 'coco' needs a checkpoint", path=base.run_label(run_config), key="model.weights",
            expected="a path to the COCO-trained detector's checkpoint in model.weights",
        )
    if weights and pretrain != "coco":
        m.backbone.init_cfg = dict(type="Pretrained", checkpoint=str(weights))
    elif run_config.get("scale") == "paper" and pretrain == "imagenet":
        m.backbone.init_cfg = dict(type="Pretrained", checkpoint=f"torchvision://resnet{depth}")  # mmdet's own default
    else:
        # Smoke scale: random init, trainable BN in train mode, nothing frozen (as the torchvision adapter).
        m.backbone.init_cfg = None
        m.backbone.frozen_stages = -1
        m.backbone.norm_eval = False
    cfg.ltbench_detector_weights = str(weights) if (weights and pretrain == "coco") else None
    m.neck.in_channels = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]
    m.neck.out_channels = fpn
    m.rpn_head.in_channels = fpn
    m.rpn_head.feat_channels = fpn
    rh = m.roi_head
    rh.type = "LtbenchRoIHead"
    rh.bbox_roi_extractor.out_channels = fpn
    head_cls, head_params = base.head_class_and_params(run_config, split)
    old = rh.bbox_head
    rh.bbox_head = dict(
        type="LtbenchBBoxHead",
        head_class=_registered_name(head_cls),
        head_params=head_params,
        hidden=hidden,
        in_channels=fpn,
        roi_feat_size=old.roi_feat_size,
        num_classes=split.num_classes,
        bbox_coder=old.bbox_coder,
        reg_class_agnostic=bool(run_config.get("class_agnostic", old.reg_class_agnostic)),
        loss_bbox=old.loss_bbox,
    )
    if detector == "mask_rcnn":
        rh.mask_roi_extractor.out_channels = fpn
        rh.mask_head.in_channels = fpn
        rh.mask_head.conv_out_channels = mask_channels
        rh.mask_head.num_classes = split.num_classes
        rh.mask_head.class_agnostic = bool(run_config.get("class_agnostic", False))
        mask_head_cfg = run_config.get("mask_head") or {"name": "standard"}
        if mask_head_cfg.get("name") == "normed":  # Seesaw's normed mask: mmdet's NormedConv2d (sic kwarg)
            rh.mask_head.predictor_cfg = dict(type="NormedConv2d", tempearture=float(mask_head_cfg.get("scale", 20)))
        elif mask_head_cfg.get("name") != "standard":
            raise LtbenchError(f"unknown mask head {mask_head_cfg.get('name')!r}", key="mask_head.name", expected="standard or normed")
    else:
        m.type = "FasterRCNN"
        for key in ("mask_roi_extractor", "mask_head"):
            rh.pop(key, None)
        m.data_preprocessor.pad_mask = False
        m.train_cfg.rcnn.pop("mask_size", None)
    m.train_cfg.rpn_proposal.nms_pre = int(model.get("rpn_pre_nms_top_n_train", m.train_cfg.rpn_proposal.nms_pre))
    m.train_cfg.rpn_proposal.max_per_img = int(model.get("rpn_post_nms_top_n_train", m.train_cfg.rpn_proposal.max_per_img))
    m.train_cfg.rcnn.sampler.num = int(model.get("box_batch_size_per_image", m.train_cfg.rcnn.sampler.num))
    m.test_cfg.rpn.nms_pre = int(model.get("rpn_pre_nms_top_n_test", m.test_cfg.rpn.nms_pre))
    m.test_cfg.rpn.max_per_img = int(model.get("rpn_post_nms_top_n_test", m.test_cfg.rpn.max_per_img))
    m.test_cfg.rcnn.score_thr = float(model.get("score_thresh", 1e-4))
    m.test_cfg.rcnn.max_per_img = int(model.get("detections_per_img", 300))

    # Pipelines: mmdet's, with the run's image size at smoke scale.
    if "min_size" in model or "max_size" in model:
        shorts = model.get("min_size", 800)
        shorts = [int(v) for v in shorts] if isinstance(shorts, list) else [int(shorts)]
        long = int(model.get("max_size", 1333))
        for step in cfg.train_pipeline + cfg.test_pipeline:
            if step["type"] == "RandomChoiceResize":  # multi-scale training: one of the short sides
                step["scales"] = [(long, short) for short in shorts]
            elif step["type"] == "Resize":  # testing: the largest
                step["scale"] = (long, shorts[-1])
    if detector == "faster_rcnn":
        for step in cfg.train_pipeline + cfg.test_pipeline:
            if step["type"] == "LoadAnnotations":
                step["with_mask"] = False
    cfg.ltbench_data = dict(train=str(data.train), val=str(data.val), image_root=str(data.image_root))
    return cfg


def _registered_name(head_cls: type) -> str:
    from ltbench.methods.box_head import BOX_HEADS

    for name in BOX_HEADS.names():
        if BOX_HEADS.get(name) is head_cls:
            return name
    raise LtbenchError(f"head class {head_cls.__name__} is not registered in BOX_HEADS")


def _dataset_cfg(cfg: Any, ann_file: str, *, test_mode: bool) -> dict:
    return dict(
        type="LtbenchLvisDataset",
        ann_file=str(ann_file),
        image_root=cfg.ltbench_data["image_root"],
        data_root="",
        test_mode=test_mode,
        pipeline=cfg.test_pipeline if test_mode else cfg.train_pipeline,
    )


def _train_data(cfg: Any, sampler: dict | None, seed: int, batch_size: int = 1) -> tuple[dict, dict]:
    """(train dataset config, image sampler config) for the run's sampler: RFS with mmdet's rounding (ceil)
    is mmengine's ``ClassBalancedDataset`` around the dataset, as in mmdet's LVIS configs; stochastic RFS and
    class-aware sampling use ``LtbenchStreamSampler``; random is mmengine's ``InfiniteSampler``."""
    dataset = _dataset_cfg(cfg, cfg.ltbench_data["train"], test_mode=False)
    name = (sampler or {}).get("name", "random")
    if name in ("random", "uniform"):
        return dataset, dict(type="InfiniteSampler", shuffle=True, seed=seed)
    if name == "rfs" and (sampler or {}).get("rounding", "ceil") == "ceil":
        return dict(type="ClassBalancedDataset", oversample_thr=float(sampler.get("t", 0.001)), dataset=dataset), dict(
            type="InfiniteSampler", shuffle=True, seed=seed
        )
    if name in ("rfs", "class_aware"):
        return dataset, dict(type="LtbenchStreamSampler", sampler=dict(sampler), seed=seed)
    if name == "bilevel":
        return dict(type="LtbenchBilevelDataset", dataset=dataset), dict(
            type="LtbenchStreamSampler", sampler=dict(sampler), seed=seed, batch_size=batch_size
        )
    raise LtbenchError(
        f"sampler {name!r} is not wired in the mmdet adapter",
        key="sampler.name",
        expected="random, rfs, class_aware or bilevel",
    )


# ----------------------------------------------------------------------------------------------
# The adapter
# ----------------------------------------------------------------------------------------------
class MMDetAdapter(base.Adapter):
    name = "mmdet"
    background = "last"

    def available(self) -> tuple[bool, str]:
        return mmdet_available()

    def _build_model(self, run_config: dict, split: base.LvisSplit, data: base.DataPaths, *, stage1: tuple[dict, Path | None] | None) -> Any:
        """The mmdet detector; for a stage-2 run the stage-1 detector (weights loaded when a checkpoint
        path is given) with ``build_stage2`` around its box head and everything else frozen (fine-tuning: see ``base.unfreeze_for_finetune``)."""
        register()
        from mmdet.registry import MODELS
        from mmengine.runner.checkpoint import load_checkpoint

        if stage1 is None:
            cfg = build_config(run_config, split, data)
            model = MODELS.build(cfg.model)
            _quiet_init(model)
            if cfg.ltbench_detector_weights:  # a COCO-trained detector: every tensor whose shape fits
                load_checkpoint(model, cfg.ltbench_detector_weights, map_location="cpu", strict=False, logger="current")
            return model, cfg
        stage1_config, stage1_checkpoint = stage1
        cfg = build_config(stage1_config, split, data)
        model = MODELS.build(cfg.model)
        _quiet_init(model)
        if stage1_checkpoint is not None:
            with _trusted_checkpoints():
                load_checkpoint(model, str(stage1_checkpoint), map_location="cpu", strict=True, logger="silent")
        for p in model.parameters():
            p.requires_grad_(False)
        bbox_head = model.roi_head.bbox_head
        bbox_head.box_head = base.build_stage2_head(run_config, bbox_head.box_head, split)
        trains = getattr(bbox_head.box_head, "requires_training", True)
        if trains and not any(p.requires_grad for p in bbox_head.box_head.parameters()):
            raise LtbenchError("build_stage2 returned a head without trainable parameters", key="stage2")
        base.unfreeze_for_finetune(model, run_config, "roi_head.bbox_head.box_head.", ("backbone.conv1.", "backbone.bn1."), "backbone.layer{}.")
        base.keep_batchnorm_in_eval(model)
        return model, cfg

    def train(
        self, run_config: dict, workdir: Path, data: base.DataPaths, *, stage1_workdir: Path | None = None, init_workdir: Path | None = None
    ) -> Path:
        register()
        from mmengine.runner import Runner

        from ltbench.io import write_json

        start = base.start_training(run_config, Path(workdir).resolve(), data, stage1_workdir)
        if start.finished is not None:
            return start.finished
        workdir, split = start.workdir, start.split
        seed = int(run_config.get("seed", 0))
        base.seed_everything(seed)
        stage2 = run_config.get("stage2")
        stage1 = (start.stage1_config, start.stage1_checkpoint) if stage2 else None
        model, cfg = self._build_model(run_config, split, data, stage1=stage1)
        source = base.init_checkpoint(run_config, init_workdir) if not stage2 else None
        if source is not None and base.last_checkpoint(workdir) is None:
            with _trusted_checkpoints():
                state = base.load_checkpoint(source)
            base.load_matching(model, state.get("state_dict", state), what=f"{source} (init_from)")
        write_json(workdir / "run_config.json", run_config)
        if stage2 and not getattr(model.roi_head.bbox_head.box_head, "requires_training", True):
            return self._finish_without_training(run_config, workdir, model, cfg)
        schedule = base.schedule_of(run_config, stage2=bool(stage2))
        max_iters = int(schedule["iterations"])
        batch = int(schedule["batch_size"])
        sampler = run_config.get("sampler")
        if stage2 and isinstance(stage2, dict) and "sampler" in stage2:
            sampler = stage2["sampler"]
        train_dataset, image_sampler = _train_data(cfg, sampler, seed, batch)
        warmup = int(schedule["warmup_iters"])
        schedulers = []
        if warmup > 0:
            schedulers.append(dict(type="LinearLR", start_factor=float(schedule.get("warmup_factor", 0.001)), by_epoch=False, begin=0, end=warmup))
        schedulers.append(dict(type="MultiStepLR", by_epoch=False, begin=0, end=max_iters, milestones=[int(s) for s in schedule["steps"]], gamma=float(schedule.get("gamma", 0.1))))
        period = int(schedule["checkpoint_period"])
        runner = Runner(
            model=model,
            work_dir=str(workdir),
            train_dataloader=dict(
                batch_size=batch,
                num_workers=int(schedule.get("num_workers", 0)),
                persistent_workers=False,
                sampler=image_sampler,
                batch_sampler=dict(type="AspectRatioBatchSampler"),
                dataset=train_dataset,
            ),
            train_cfg=dict(type="LtbenchIterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters + 1, seed=seed),
            optim_wrapper=dict(
                type="OptimWrapper",
                optimizer=dict(type="SGD", lr=float(schedule["lr"]), momentum=float(schedule["momentum"]), weight_decay=float(schedule["weight_decay"])),
                clip_grad=dict(max_norm=float(schedule["grad_clip"])) if schedule.get("grad_clip") else None,
            ),
            param_scheduler=schedulers,
            default_hooks=dict(
                timer=dict(type="IterTimerHook"),
                logger=dict(type="LoggerHook", interval=max(1, min(20, max_iters // 10 or 1))),
                param_scheduler=dict(type="ParamSchedulerHook"),
                checkpoint=dict(type="CheckpointHook", interval=period, by_epoch=False, save_last=True, max_keep_ckpts=base.keep_checkpoints(schedule, base.run_label(run_config))),
                sampler_seed=dict(type="DistSamplerSeedHook"),
            ),
            custom_hooks=[dict(type="LtbenchProgressHook", batch_size=batch, epoch_length=_epoch_length(train_dataset, split))],
            randomness=dict(seed=seed),
            resume=True,
            default_scope="mmdet",
            log_level="INFO",
            env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork"), dist_cfg=dict(backend="gloo")),
            visualizer=dict(type="DetLocalVisualizer", vis_backends=[]),
        )
        with _trusted_checkpoints():
            runner.train()
        final = workdir / f"iter_{max_iters}.pth"
        if not final.is_file():
            raise LtbenchError("mmengine did not write the final checkpoint", path=final, expected=f"iter_{max_iters}.pth")
        write_json(workdir / base.DONE_FILE, {"run_id": run_config.get("id"), "checkpoint": final.name, "iterations": max_iters, "framework": self.name})
        return final

    def _finish_without_training(self, run_config: dict, workdir: Path, model: Any, cfg: Any) -> Path:
        """Stage-2 heads without an optimiser: tau-norm directly; NCM after one pass over the training
        images through mmdet's training forward (RoIs assigned and sampled as in training)."""
        import torch
        from mmdet.registry import DATASETS
        from mmengine.dataset import pseudo_collate

        from ltbench.io import write_json

        bbox_head = model.roi_head.bbox_head
        if getattr(bbox_head.box_head, "fit_pass", False):
            dataset = DATASETS.build(_dataset_cfg(cfg, cfg.ltbench_data["train"], test_mode=False))
            model.train()
            bbox_head.fit_pass = True
            base.seed_everything(int(run_config.get("seed", 0)))
            with torch.no_grad():
                for i in range(len(dataset)):
                    batch = model.data_preprocessor(pseudo_collate([dataset[i]]), True)
                    model.loss(batch["inputs"], batch["data_samples"])
            bbox_head.fit_pass = False
        final = Path(workdir) / "iter_0.pth"
        base.save_checkpoint(workdir, final.name, {"state_dict": model.state_dict(), "meta": {"run_id": run_config.get("id")}}, update_pointer=False)
        write_json(Path(workdir) / base.DONE_FILE, {"run_id": run_config.get("id"), "checkpoint": final.name, "iterations": 0, "framework": self.name})
        return final

    def predict(self, run_config: dict, view_config: dict, workdir: Path, data: base.DataPaths, *, split: str = "val", out_dir: Path) -> dict:
        register()
        import torch
        from mmdet.registry import DATASETS
        from mmengine.dataset import pseudo_collate
        from mmengine.runner.checkpoint import load_checkpoint

        base.threads_from_env()
        view_config = view_config or {"id": "plain", "name": "plain"}
        if base.is_grid_view(view_config):
            return base.predict_grid_view(self, run_config, view_config, workdir, data, split=split, out_dir=out_dir)
        if split not in ("train", "val"):
            raise LtbenchError(f"unknown split {split!r}", key="split", expected="train or val")
        workdir = Path(workdir)
        checkpoint = base.final_checkpoint(workdir)
        train_split = base.load_lvis_split(Path(data.train), Path(data.image_root))
        stage1 = None
        if run_config.get("stage2"):
            stage1 = (base._read_json_file(workdir / "stage1_run_config.json"), None)
        model, cfg = self._build_model(run_config, train_split, data, stage1=stage1)
        with _trusted_checkpoints():
            load_checkpoint(model, str(checkpoint), map_location="cpu", strict=True, logger="silent")
        model.eval()
        top_k = base.per_class_top_k(view_config)
        max_per_img = cfg.model.test_cfg.rcnn.max_per_img
        if top_k is not None:
            max_per_img = base.UNCAPPED_DETECTIONS_PER_IMAGE
            for stage_cfg in _rcnn_test_cfgs(model):
                stage_cfg.max_per_img = max_per_img
        head = model.roi_head.bbox_head
        stats = {"category_ids": train_split.category_ids, "instance_counts": train_split.instance_counts, "image_counts": train_split.image_counts}
        name = view_config.get("name", "plain")
        ann = Path(data.val if split == "val" else data.train)

        def run_pass(ann_file: Path, *, detections: bool) -> dict:
            dataset = DATASETS.build(_dataset_cfg(cfg, str(ann_file), test_mode=True))
            eval_split = dataset._split
            index = {cid: k for k, cid in enumerate(train_split.category_ids)}
            gt = {r.image_id: r for r in eval_split.images}
            pstats = base.ProposalStats(train_split.category_ids, self.background)
            dets: list[dict] = []
            with torch.no_grad():
                for i in range(len(dataset)):
                    head.last_inference = []
                    (sample,) = model.test_step(pseudo_collate([dataset[i]]))
                    for image_id, rois, probs in head.last_inference:
                        record = gt[image_id]
                        pstats.add(rois.numpy(), probs.numpy(), record.boxes, [index[eval_split.category_ids[k]] for k in record.classes.tolist()])
                    if detections:
                        pred = sample.pred_instances
                        masks = pred.masks.cpu().numpy() if "masks" in pred else None
                        dets.extend(
                            base.detections_for_image(
                                int(sample.metainfo["img_id"]), pred.bboxes.cpu().numpy(), pred.scores.cpu().numpy(),
                                pred.labels.cpu().numpy(), train_split.category_ids, masks, limit=max_per_img,
                            )
                        )
            return {"detections": dets, "stats": pstats, "num_images": len(dataset)}

        source = base.confusion_source(view_config)
        if source is not None:
            source_ann = ann if source == "val" else Path(data.train)
            cm = run_pass(source_ann, detections=False)["stats"]
            stats.update({"cm_sum": cm.cm_sum, "cm_count": cm.cm_count})
        head.view = base.view_function(view_config, stats)
        result = run_pass(ann, detections=True)
        result["detections"] = base.keep_top_k_per_class(result["detections"], top_k)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        dets_path = base.write_detections(out_dir / "detections.json", result["detections"])
        stats_path = result["stats"].save(out_dir / "proposal_stats.npz")
        return {"detections": str(dets_path), "proposal_stats": str(stats_path), "num_images": result["num_images"],
                "num_detections": len(result["detections"]), "view": view_config.get("id", name)}


def _rcnn_test_cfgs(model: Any) -> list:
    """The built model's R-CNN test configs whose ``max_per_img`` caps detections per image (the RoI
    head's own; mmdet reads ``self.test_cfg`` at inference, not the config file)."""
    roi_head = model.roi_head
    cfgs = [roi_head.test_cfg] if getattr(roi_head, "test_cfg", None) is not None else []
    return [c for c in cfgs if "max_per_img" in c]


def _epoch_length(train_dataset: dict, split: base.LvisSplit) -> int:
    """Images per epoch: the split's images, or the sum of ceil(repeat factor) under mmdet's RFS (the
    stream sampler's epochs have about as many images as the split)."""
    if train_dataset.get("type") != "ClassBalancedDataset":
        return len(split.images)
    from ltbench.methods.samplers import repeat_factors

    factors = repeat_factors([set(r.classes.tolist()) for r in split.images], float(train_dataset["oversample_thr"]))
    return int(sum(math.ceil(f) for f in factors))

