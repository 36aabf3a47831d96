"""detectron2 adapter: detectron2's own LVIS Mask R-CNN config, ROI heads registered for the ltbench
methods, training by detectron2's ``DefaultTrainer``.

detectron2 is not on the package registry; this module imports it only inside functions, and
``detectron2_available()`` says in one line why it is missing. Nothing here is detectron2 code.

Background convention: ``"last"`` (detectron2's): foreground 0..C-1, background C. Box deltas ``4 * C``
(``4`` with ``CLS_AGNOSTIC_BBOX_REG``).

What is detectron2's and what is ours:
- detectron2: the config (``LVISv0.5-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml`` or the v1 one
  from its model zoo), ``DatasetMapper`` augmentation, backbone/FPN/RPN, proposal matching and sampling,
  ``ROIPooler``, ``FastRCNNOutputLayers.box_reg_loss`` (its smooth-L1 / normalisation),
  ``fast_rcnn_inference`` (score threshold, NMS, top-k), the mask head, ``DefaultTrainer`` (SGD,
  warmup + multi-step LR, ``PeriodicCheckpointer``, metric printing with ETA, ``resume_or_load``).
- ltbench: ``LtbenchStandardROIHeads`` (registered in ``ROI_HEADS_REGISTRY``) whose box predictor
  ``LtbenchBoxPredictor`` runs the ltbench ``BoxHead`` (features, classifier, classification loss,
  probabilities, views); the image order (``adapters.base.make_epoch_order``: random, RFS with
  detectron2's stochastic rounding, class-aware) through a resumable sampler; a hook that calls
  ``BoxHead.set_progress`` and re-seeds from (seed, iteration) before every step.

Stage-2 heads without an optimiser: tau-norm saves the re-normalised model directly; NCM first runs one
statistics pass (training-mode forwards, no augmentation, ``LtbenchBoxPredictor.fit_pass``) over the
training images. Seesaw's normed mask head replaces the mask head's 1x1 ``predictor`` conv.

SimCal's bi-level sampler: (image, class) pairs packed as ``image * C + class`` through the sampler,
the class carried as the per-instance ``gt_bilevel_class`` field into ``LtbenchStandardROIHeads``, whose
``_forward_box`` keeps the ``compose_bilevel_batch`` RoIs.

Known gaps (see ``GAPS``): exact resume holds only with ``num_workers=0`` and one aspect-ratio group
(detectron2's ``AspectRatioGroupedDataset`` buffers are not checkpointed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from adapters import base
from ltbench.errors import LtbenchError

#: dataset name -> config inside detectron2's model zoo
BASE_CONFIGS = {
    "lvis_v0.5": "LVISv0.5-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
    "lvis_v1": "LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
}
DEFAULT_BASE_CONFIG = BASE_CONFIGS["lvis_v1"]

#: what the detectron2 adapter does not cover (the torchvision and mmdet adapters do)
GAPS = (
    "class_aware sampling only via ltbench's sampler (detectron2 has none of its own)",
    "Faster R-CNN only through MASK_ON=False of the Mask R-CNN config",
    "exact resume needs num_workers=0 and a single aspect-ratio group",
)

_REGISTERED = False


def detectron2_available() -> tuple[bool, str]:
    try:
        import detectron2  # noqa: F401
        from detectron2 import _C  # noqa: F401  (compiled ops)
    except Exception as exc:
        return False, f"detectron2 is not importable here ({type(exc).__name__}: {exc}); install it from its own instructions"
    return True, ""


def _require() -> None:
    ok, reason = detectron2_available()
    if not ok:
        raise LtbenchError(reason, key="framework", expected="an environment with detectron2 (built against this torch)")


def register() -> None:
    """Register ``LtbenchStandardROIHeads`` in detectron2's ``ROI_HEADS_REGISTRY`` (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _require()
    import torch
    from detectron2.layers import ShapeSpec, cat
    from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
    from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
    from torch import nn

    class LtbenchBoxPredictor(FastRCNNOutputLayers):
        """detectron2's FastRCNNOutputLayers with classification by an ltbench ``BoxHead`` (bg last).

        ``forward(pooled (R, C_in, P, P))``: training -> (final logits (R, K), deltas (R, D)), keeping the
        ``BoxHeadOutput`` for ``losses``; eval -> (probabilities (R, C+1) through ``view``, deltas).
        ``predict_probs`` returns those probabilities (no second softmax) and records
        (proposal boxes, probs) per image in ``last_inference`` for the proposal statistics.
        """

        def __init__(self, input_shape: Any, *, box_head: nn.Module, **kwargs: Any) -> None:
            super().__init__(input_shape, **kwargs)
            del self.cls_score, self.bbox_pred  # the BoxHead owns classifier and box regressor
            self.box_head = box_head
            self._output = None
            self.view = None
            self.fit_pass = False  # NCM: training forwards feed box_head.accumulate instead of losses
            self.last_inference: list = []

        def forward(self, x: torch.Tensor) -> tuple:
            output = self.box_head(x)
            if self.training:
                self._output = output
                return output.final_logits, self.box_head.regression_deltas(output)
            probs = self.view(self.box_head, output) if self.view is not None else self.box_head.probabilities(output)
            return probs, self.box_head.regression_deltas(output)

        def losses(self, predictions: tuple, proposals: list) -> dict:
            _, deltas = predictions
            gt_classes = cat([p.gt_classes for p in proposals], dim=0)
            if self.fit_pass:
                self.box_head.accumulate(self._output, gt_classes)  # labels bg-last, as the head's convention
                self._output = None
                return {}
            proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
            gt_boxes = cat([(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals], dim=0)
            losses = dict(self.box_head.classification_losses(self._output, gt_classes))
            losses["loss_box_reg"] = self.box_reg_loss(proposal_boxes, gt_boxes, deltas, gt_classes) * self.loss_weight.get("loss_box_reg", 1.0)
            self._output = None
            return losses

        def predict_probs(self, predictions: tuple, proposals: list) -> list:
            probs, _ = predictions
            per_image = probs.split([len(p) for p in proposals])
            for p, pr in zip(proposals, per_image):
                self.last_inference.append((p.image_size, p.proposal_boxes.tensor.detach().cpu(), pr.detach().cpu()))
            return list(per_image)

    @ROI_HEADS_REGISTRY.register()
    class LtbenchStandardROIHeads(StandardROIHeads):
        """StandardROIHeads whose box head + predictor is the ltbench BoxHead of ``cfg.LTBENCH_HEAD``
        (JSON: registered head name, params, hidden width)."""

        @classmethod
        def _init_box_head(cls, cfg: Any, input_shape: dict) -> dict:
            ret = super()._init_box_head(cfg, input_shape)
            spec = json.loads(cfg.LTBENCH_HEAD)
            channels = input_shape[cfg.MODEL.ROI_HEADS.IN_FEATURES[0]].channels
            res = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
            c = cfg.MODEL.ROI_HEADS.NUM_CLASSES
            deltas = 4 if cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG else 4 * c
            head = base._box_head_class(spec["name"])(
                c, "last", deltas, in_channels=channels, pool_size=res, hidden=spec["hidden"], **spec["params"]
            )
            shape = ShapeSpec(channels=channels, height=res, width=res)
            kwargs = FastRCNNOutputLayers.from_config(cfg, shape)
            kwargs.pop("input_shape")
            ret["box_head"] = nn.Identity()  # pooled features go straight to the BoxHead
            ret["box_predictor"] = LtbenchBoxPredictor(shape, box_head=head, **kwargs)
            return ret

        def _forward_box(self, features: dict, proposals: list) -> Any:
            # SimCal's bi-level sampler: images carry their sampled class as ``gt_bilevel_class`` (copied to
            # every sampled RoI by label_and_sample_proposals); only the calibration RoIs reach the box head.
            if self.training and any(p.has("gt_bilevel_class") for p in proposals):
                proposals = self._bilevel_select(proposals)
            return super()._forward_box(features, proposals)

        def _bilevel_select(self, proposals: list) -> list:
            """Per image, the RoIs kept by ``compose_bilevel_batch`` (labels bg-last; -1 = no class)."""
            from ltbench.methods.samplers import compose_bilevel_batch

            counts = [len(p) for p in proposals]
            labels = cat([p.gt_classes for p in proposals], dim=0)
            image_index = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
            classes = [int(p.gt_bilevel_class[0]) if len(p) and p.has("gt_bilevel_class") else -1 for p in proposals]
            keep = compose_bilevel_batch(labels, image_index, classes, num_classes=self.num_classes, background="last")
            out, offset = [], 0
            for p, n in zip(proposals, counts):
                mine = keep[(keep >= offset) & (keep < offset + n)] - offset
                out.append(p[mine])
                offset += n
            return out

    _REGISTERED = True


def base_config_path(run_config: dict) -> Path:
    """The LVIS config in detectron2's model zoo (``detectron2/model_zoo/configs/...``; found by path,
    since ``detectron2.model_zoo`` imports ``pkg_resources``, which newer setuptools no longer ship)."""
    import detectron2

    rel = BASE_CONFIGS.get(run_config.get("dataset", ""), DEFAULT_BASE_CONFIG)
    package = Path(detectron2.__file__).parent
    for candidate in (package / "model_zoo" / "configs" / rel, package.parent / "configs" / rel):
        if candidate.is_file():
            return candidate
    raise LtbenchError("detectron2's LVIS config is not found", path=package / "model_zoo" / "configs" / rel,
                       expected="a detectron2 installation with its model-zoo configs")


def build_cfg(run_config: dict, split: base.LvisSplit, workdir: Path) -> Any:
    """detectron2's LVIS config with the run's model size, schedule, sampler and head."""
    from detectron2.config import get_cfg

    if run_config.get("detector", "mask_rcnn") not in ("mask_rcnn", "faster_rcnn"):
        raise LtbenchError(f"detector {run_config.get('detector')!r} is not wired in the detectron2 adapter", key="detector",
                           expected="mask_rcnn or faster_rcnn")
    cfg = get_cfg()
    cfg.merge_from_file(str(base_config_path(run_config)))
    model = dict(run_config.get("model") or {})
    schedule = base.schedule_of(run_config, stage2=bool(run_config.get("stage2")))
    depth = int(model.get("backbone_depth", {"r50_fpn": 50, "r101_fpn": 101, "r18_fpn": 18}.get(run_config.get("backbone", "r50_fpn"), 50)))
    cfg.MODEL.DEVICE = "cpu" if not _cuda() else "cuda"
    cfg.MODEL.MASK_ON = run_config.get("detector", "mask_rcnn") == "mask_rcnn"
    cfg.MODEL.RESNETS.DEPTH = depth
    if depth < 50:
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64  # basic blocks
    weights = model.get("weights", run_config.get("weights"))
    cfg.MODEL.WEIGHTS = str(weights) if weights else ""
    if not weights:
        if run_config.get("scale") == "paper":
            raise LtbenchError("detectron2 runs at paper scale need ImageNet or detector weights", key="model.weights",
                               path=base.run_label(run_config), expected="a path (e.g. detectron2's R-50.pkl) in model.weights")
        cfg.MODEL.BACKBONE.FREEZE_AT = 0  # random init: train everything, BN trainable
        cfg.MODEL.RESNETS.NORM = "BN"
    fpn = int(model.get("fpn_channels", 256))
    cfg.MODEL.FPN.OUT_CHANNELS = fpn
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = int(model.get("mask_head_channels", min(256, fpn)))
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = int(model.get("rpn_pre_nms_top_n_train", cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN))
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = int(model.get("rpn_post_nms_top_n_train", cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN))
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = int(model.get("rpn_pre_nms_top_n_test", cfg.MODEL.RPN.PRE_NMS_TOPK_TEST))
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = int(model.get("rpn_post_nms_top_n_test", cfg.MODEL.RPN.POST_NMS_TOPK_TEST))
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = int(model.get("box_batch_size_per_image", 512))
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = split.num_classes
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = bool(run_config.get("class_agnostic", False))
    cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK = bool(run_config.get("class_agnostic", False))
    if (run_config.get("mask_head") or {"name": "standard"}).get("name") not in ("standard", "normed"):
        raise LtbenchError(f"unknown mask head {(run_config.get('mask_head') or {}).get('name')!r}", key="mask_head.name",
                           expected="standard or normed")
    cfg.MODEL.ROI_HEADS.NAME = "LtbenchStandardROIHeads"
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(model.get("score_thresh", 1e-4))
    cfg.TEST.DETECTIONS_PER_IMAGE = int(model.get("detections_per_img", 300))
    if "min_size" in model:
        sizes = model["min_size"] if isinstance(model["min_size"], list) else [model["min_size"]]
        cfg.INPUT.MIN_SIZE_TRAIN = tuple(int(v) for v in sizes)
        cfg.INPUT.MIN_SIZE_TEST = int(sizes[-1])
    if "max_size" in model:
        cfg.INPUT.MAX_SIZE_TRAIN = cfg.INPUT.MAX_SIZE_TEST = int(model["max_size"])
    cfg.SOLVER.IMS_PER_BATCH = int(schedule["batch_size"])
    cfg.SOLVER.BASE_LR = float(schedule["lr"])
    cfg.SOLVER.MOMENTUM = float(schedule["momentum"])
    cfg.SOLVER.WEIGHT_DECAY = float(schedule["weight_decay"])
    cfg.SOLVER.MAX_ITER = int(schedule["iterations"])
    # fvcore refuses a step at or after the last iteration (where it would change nothing anyway).
    cfg.SOLVER.STEPS = tuple(int(s) for s in schedule["steps"] if int(s) < int(schedule["iterations"]))
    cfg.SOLVER.WARMUP_ITERS = int(schedule["warmup_iters"])
    cfg.SOLVER.WARMUP_FACTOR = float(schedule.get("warmup_factor", 0.001))
    cfg.SOLVER.CHECKPOINT_PERIOD = int(schedule["checkpoint_period"])
    if schedule.get("grad_clip"):  # gradient-norm clipping (the smoke schedule sets it)
        cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
        cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
        cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = float(schedule["grad_clip"])
    cfg.DATALOADER.NUM_WORKERS = int(schedule.get("num_workers", 0))
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()
    cfg.TEST.EVAL_PERIOD = 0
    cfg.SEED = int(run_config.get("seed", 0))
    cfg.OUTPUT_DIR = str(workdir)
    head_cls, params = base.head_class_and_params(run_config if not run_config.get("stage2") else _stage1_config(run_config, workdir), split)
    cfg.set_new_allowed(True)
    cfg.LTBENCH_HEAD = json.dumps({"name": _registered_name(head_cls), "params": params, "hidden": int(model.get("box_head_hidden", 1024))})
    return cfg


def _stage1_config(run_config: dict, workdir: Path) -> dict:
    return base._read_json_file(Path(workdir) / "stage1_run_config.json")


def _registered_name(head_cls: type) -> str:
    from ltbench.methods.box_head import BOX_HEADS

    for name in BOX_HEADS.names():
        if BOX_HEADS.get(name) is head_cls:
            return name
    raise LtbenchError(f"head class {head_cls.__name__} is not registered in BOX_HEADS")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _records(split: base.LvisSplit) -> list[dict]:
    """detectron2 dataset dicts (``category_id`` = class index, XYXY_ABS boxes, polygons)."""
    from detectron2.structures import BoxMode

    out = []
    for r in split.images:
        anns = []
        for box, label, seg in zip(r.boxes.tolist(), r.classes.tolist(), r.segmentations):
            x0, y0, x1, y1 = box
            anns.append({"bbox": [x0, y0, x1, y1], "bbox_mode": BoxMode.XYXY_ABS, "category_id": int(label),
                         "segmentation": seg if seg else [[x0, y0, x1, y0, x1, y1, x0, y1]], "iscrowd": 0})
        out.append({"file_name": str(r.path), "image_id": r.image_id, "height": r.height, "width": r.width, "annotations": anns})
    return out


class _BilevelRecords:
    """Dataset of (image, sampled class) pairs for SimCal's bi-level sampler, indexed by ``image * C + class``:
    item -> the image's dataset dict plus ``bilevel_class``. (Map-style: detectron2's MapDataset takes
    ``int(index)``, so the pair is packed into one int.)"""

    def __init__(self, records: list[dict], num_classes: int) -> None:
        self.records, self.num_classes = records, num_classes

    def __len__(self) -> int:
        # The number of images, not of codes: detectron2's MapDataset builds set(range(len)) as retry
        # candidates (images x 1230 classes would not fit); it retries only when the mapper returns None.
        return len(self.records)

    def __getitem__(self, code: int) -> dict:
        image, cls = divmod(int(code), self.num_classes)
        return {**self.records[image], "bilevel_class": cls}


def _BilevelMapper(cfg: Any, *, is_train: bool) -> Any:  # noqa: N802 - a class built lazily (detectron2 import)
    """detectron2's DatasetMapper that turns ``bilevel_class`` into the per-instance ``gt_bilevel_class``
    field, which label_and_sample_proposals copies to every sampled RoI of the image."""
    import torch
    from detectron2.data.dataset_mapper import DatasetMapper

    class BilevelMapper(DatasetMapper):
        def __call__(self, dataset_dict: dict) -> dict:
            dataset_dict = dict(dataset_dict)
            cls = dataset_dict.pop("bilevel_class")
            out = super().__call__(dataset_dict)
            instances = out["instances"]
            instances.gt_bilevel_class = torch.full((len(instances),), int(cls), dtype=torch.int64)
            return out

    return BilevelMapper(cfg, is_train=is_train)


class Detectron2Adapter(base.Adapter):
    name = "detectron2"
    background = "last"

    def available(self) -> tuple[bool, str]:
        return detectron2_available()

    def _model(self, cfg: Any, run_config: dict, split: base.LvisSplit, stage1_checkpoint: Path | None) -> Any:
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.modeling import build_model

        model = build_model(cfg)
        mask_head_cfg = run_config.get("mask_head") or {"name": "standard"}
        if mask_head_cfg.get("name") == "normed" and cfg.MODEL.MASK_ON:
            from adapters.torchvision_adapter import _normed_conv_class

            old = model.roi_heads.mask_head.predictor  # Conv2d(conv_dims, mask classes, 1): same tensor names
            model.roi_heads.mask_head.predictor = _normed_conv_class()(old.in_channels, old.out_channels, float(mask_head_cfg.get("scale", 20)))
        if run_config.get("stage2"):
            if stage1_checkpoint is not None:
                DetectionCheckpointer(model).load(str(stage1_checkpoint))
            for p in model.parameters():
                p.requires_grad_(False)
            predictor = model.roi_heads.box_predictor
            predictor.box_head = base.build_stage2_head(run_config, predictor.box_head, split)
            base.unfreeze_for_finetune(model, run_config, "roi_heads.box_predictor.box_head.", ("backbone.bottom_up.stem.",),
                                       "backbone.bottom_up.res{}.", first_stage=2)
            base.keep_batchnorm_in_eval(model)
        return model

    def _finish_without_training(self, cfg: Any, run_config: dict, split: base.LvisSplit, stage1_checkpoint: Path | None,
                                 workdir: Path) -> Path | None:
        """Stage-2 heads without an optimiser (tau-norm; NCM after one statistics pass over the training
        images in training mode, so that RoIs are sampled and labelled as in training, no augmentation):
        ``model_final.pth`` + ``done.json`` (0 iterations). None when the head trains."""
        import copy

        import torch
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.data import transforms as T
        from detectron2.data.dataset_mapper import DatasetMapper
        from detectron2.utils.events import EventStorage

        from ltbench.io import write_json

        model = self._model(cfg, run_config, split, stage1_checkpoint)
        predictor = model.roi_heads.box_predictor
        head = predictor.box_head
        if getattr(head, "requires_training", True):
            return None
        if getattr(head, "fit_pass", False):
            mapper = DatasetMapper(is_train=True, augmentations=[T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)],
                                   image_format=cfg.INPUT.FORMAT, use_instance_mask=cfg.MODEL.MASK_ON,
                                   instance_mask_format=cfg.INPUT.MASK_FORMAT)
            model.train()
            base.keep_batchnorm_in_eval(model)
            predictor.fit_pass = True
            base.seed_everything(int(run_config.get("seed", 0)))
            with torch.no_grad(), EventStorage(0):  # training-mode forwards log proposal statistics
                for record in _records(split):
                    model([mapper(copy.deepcopy(record))])
            predictor.fit_pass = False
        model.eval()
        DetectionCheckpointer(model, save_dir=str(workdir)).save(Path(base.FINAL_CHECKPOINT).stem)
        write_json(workdir / base.DONE_FILE, {"run_id": run_config.get("id"), "checkpoint": base.FINAL_CHECKPOINT,
                                              "iterations": 0, "framework": self.name})
        return workdir / base.FINAL_CHECKPOINT

    def train(
        self, run_config: dict, workdir: Path, data: base.DataPaths, *, stage1_workdir: Path | None = None, init_workdir: Path | None = None
    ) -> Path:
        register()
        import torch
        from detectron2.data import build_detection_train_loader
        from detectron2.data.dataset_mapper import DatasetMapper
        from detectron2.engine import DefaultTrainer, HookBase, hooks
        from detectron2.utils.events import CommonMetricPrinter, JSONWriter
        from detectron2.utils.logger import setup_logger

        from ltbench.io import write_json

        start = base.start_training(run_config, Path(workdir).resolve(), data, stage1_workdir)
        if start.finished is not None:
            return start.finished
        workdir, split, stage1_checkpoint = start.workdir, start.split, start.stage1_checkpoint
        setup_logger(output=str(workdir / "log.txt"), name="detectron2")
        write_json(workdir / "run_config.json", run_config)
        cfg = build_cfg(run_config, split, workdir)
        if stage1_checkpoint is not None:
            cfg.MODEL.WEIGHTS = ""  # the stage-1 weights are loaded in _model; nothing may overwrite them
        source = base.init_checkpoint(run_config, init_workdir) if stage1_checkpoint is None else None
        if source is not None:
            cfg.MODEL.WEIGHTS = str(source)  # detectron2's checkpointer skips tensors whose shapes differ
        if stage1_checkpoint is not None:
            final = self._finish_without_training(cfg, run_config, split, stage1_checkpoint, workdir)
            if final is not None:
                return final
        seed = int(run_config.get("seed", 0))
        base.seed_everything(seed)
        sampler_cfg = run_config.get("sampler")
        if isinstance(run_config.get("stage2"), dict) and "sampler" in run_config["stage2"]:
            sampler_cfg = run_config["stage2"]["sampler"]
        bilevel = (sampler_cfg or {}).get("name") == "bilevel"
        if (sampler_cfg or {}).get("name") == "rfs" and "rounding" not in sampler_cfg:
            sampler_cfg = {**sampler_cfg, "rounding": "stochastic"}  # detectron2's RepeatFactorTrainingSampler
        # The bi-level sampler draws (image, class index) pairs; they travel as one int, image * C + class.
        categories = [set(r.classes.tolist()) for r in split.images] if bilevel else [r.category_ids for r in split.images]
        order = base.make_epoch_order(sampler_cfg, categories, seed, batch_size=int(cfg.SOLVER.IMS_PER_BATCH) if bilevel else 1)
        records = _records(split)
        num_classes = split.num_classes
        dataset: Any = _BilevelRecords(records, num_classes) if bilevel else records
        adapter = self

        class ResumableSampler(torch.utils.data.Sampler):
            """Endless image indices from ``IndexStream``, fast-forwarded past the images a resumed run has
            already consumed (detectron2's own samplers restart their stream on resume)."""

            def __init__(self) -> None:
                self.skip = 0

            def __iter__(self):
                stream = base.IndexStream(order)
                stream.take(self.skip)
                while True:
                    (item,) = stream.take(1)
                    yield int(item[0]) * num_classes + int(item[1]) if bilevel else item

        sampler = ResumableSampler()

        class ProgressHook(HookBase):
            """Re-seeds from (seed, iteration) and calls ``BoxHead.set_progress`` before every step."""

            def before_step(self) -> None:
                base.seed_everything(base.iteration_seed(seed, self.trainer.iter))
                max_iter = self.trainer.max_iter
                batch = cfg.SOLVER.IMS_PER_BATCH
                epochs = max(1, math.ceil(max_iter * batch / len(records)))
                head = self.trainer.model.roi_heads.box_predictor.box_head
                head.set_progress((self.trainer.iter * batch) // len(records), epochs, self.trainer.iter, max_iter)

        class ReseedAfterFetch:
            """Re-seeds torch again once a batch is fetched: the data loader's iterator is created at the
            first fetch and draws from torch's RNG, which a resumed run does at a later iteration."""

            def __init__(self, loader: Any) -> None:
                self.loader = loader

            def __iter__(self):
                for batch in self.loader:
                    torch.manual_seed(base.iteration_seed(seed + 7919, trainer.iter))
                    yield batch

        trainer = None
        keep = base.keep_checkpoints(base.schedule_of(run_config, stage2=bool(run_config.get("stage2"))), base.run_label(run_config))

        class Trainer(DefaultTrainer):
            @classmethod
            def build_model(cls, cfg):  # noqa: ANN001, ANN206 - detectron2 signature
                return adapter._model(cfg, run_config, split, stage1_checkpoint)

            @classmethod
            def build_train_loader(cls, cfg):  # noqa: ANN001, ANN206
                mapper = _BilevelMapper(cfg, is_train=True) if bilevel else DatasetMapper(cfg, is_train=True)
                return ReseedAfterFetch(build_detection_train_loader(
                    dataset=dataset, mapper=mapper, sampler=sampler,
                    total_batch_size=cfg.SOLVER.IMS_PER_BATCH, aspect_ratio_grouping=True, num_workers=cfg.DATALOADER.NUM_WORKERS,
                ))

            def build_writers(self):  # noqa: ANN201
                return [CommonMetricPrinter(self.max_iter), JSONWriter(str(workdir / "metrics.json"))]

            def build_hooks(self):  # noqa: ANN201
                kept = [h for h in super().build_hooks() if not isinstance(h, (hooks.EvalHook, hooks.PreciseBN))]
                for hook in kept:  # fvcore's PeriodicCheckpointer deletes all but the newest max_to_keep
                    if isinstance(hook, hooks.PeriodicCheckpointer) and keep > 0:
                        hook.max_to_keep = keep
                return [ProgressHook(), *kept]

        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=True)
        sampler.skip = trainer.start_iter * cfg.SOLVER.IMS_PER_BATCH
        trainer.train()
        final = workdir / base.FINAL_CHECKPOINT
        write_json(workdir / base.DONE_FILE, {"run_id": run_config.get("id"), "checkpoint": final.name,
                                              "iterations": cfg.SOLVER.MAX_ITER, "framework": self.name})
        base.prune_checkpoints(workdir, keep, finished=True)  # same names as ours: model_<7 digits>.pth
        return final

    def predict(self, run_config: dict, view_config: dict, workdir: Path, data: base.DataPaths, *, split: str = "val", out_dir: Path) -> dict:
        register()
        import torch
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.data import detection_utils

        base.threads_from_env()
        view_config = view_config or {"id": "plain", "name": "plain"}
        if base.is_grid_view(view_config):
            return base.predict_grid_view(self, run_config, view_config, workdir, data, split=split, out_dir=out_dir)
        if split not in ("train", "val"):
            raise LtbenchError(f"unknown split {split!r}", key="split", expected="train or val")
        workdir = Path(workdir).resolve()
        checkpoint = base.final_checkpoint(workdir)
        train_split = base.load_lvis_split(Path(data.train), Path(data.image_root))
        cfg = build_cfg(run_config, train_split, workdir)
        model = self._model(cfg, run_config, train_split, None)
        DetectionCheckpointer(model).load(str(checkpoint))
        model.eval()
        predictor = model.roi_heads.box_predictor
        top_k = base.per_class_top_k(view_config)
        per_image = cfg.TEST.DETECTIONS_PER_IMAGE
        if top_k is not None:
            # FastRCNNOutputLayers caps detections with its own copy of TEST.DETECTIONS_PER_IMAGE.
            per_image = predictor.test_topk_per_image = base.UNCAPPED_DETECTIONS_PER_IMAGE
        index = {cid: k for k, cid in enumerate(train_split.category_ids)}
        min_size, max_size = cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
        from detectron2.data import transforms as T

        resize = T.ResizeShortestEdge([min_size, min_size], max_size)

        def run_pass(ann: Path, *, detections: bool) -> dict:
            eval_split = base.load_lvis_split(ann, Path(data.image_root), keep_empty=True)
            stats = base.ProposalStats(train_split.category_ids, self.background)
            dets: list[dict] = []
            with torch.no_grad():
                for record in eval_split.images:
                    image = detection_utils.read_image(str(record.path), format=cfg.INPUT.FORMAT)
                    resized = resize.get_transform(image).apply_image(image)
                    tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
                    predictor.last_inference = []
                    (out,) = model([{"image": tensor, "height": record.height, "width": record.width}])
                    for (h, w), boxes, probs in predictor.last_inference:
                        scaled = boxes.clone()
                        scaled[:, [0, 2]] *= record.width / w
                        scaled[:, [1, 3]] *= record.height / h
                        gt = [index[eval_split.category_ids[k]] for k in record.classes.tolist()]
                        stats.add(scaled.numpy(), probs.numpy(), record.boxes, gt)
                    if detections:
                        inst = out["instances"].to("cpu")
                        masks = inst.pred_masks.numpy() if inst.has("pred_masks") else None
                        dets.extend(base.detections_for_image(record.image_id, inst.pred_boxes.tensor.numpy(), inst.scores.numpy(),
                                                              inst.pred_classes.numpy(), train_split.category_ids, masks,
                                                              limit=per_image))
            return {"detections": dets, "stats": stats, "num_images": len(eval_split.images)}

        ann = Path(data.val if split == "val" else data.train)
        stats = {"category_ids": train_split.category_ids, "instance_counts": train_split.instance_counts, "image_counts": train_split.image_counts}
        source = base.confusion_source(view_config)
        if source is not None:
            cm = run_pass(ann if source == "val" else Path(data.train), detections=False)["stats"]
            stats.update({"cm_sum": cm.cm_sum, "cm_count": cm.cm_count})
        predictor.view = base.view_function(view_config, stats)
        result = run_pass(ann, detections=True)
        result["detections"] = base.keep_top_k_per_class(result["detections"], top_k)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        dets_path = base.write_detections(out_dir / "detections.json", result["detections"])
        stats_path = result["stats"].save(out_dir / "proposal_stats.npz")
        return {"detections": str(dets_path), "proposal_stats": str(stats_path), "num_images": result["num_images"],
                "num_detections": len(result["detections"]), "view": view_config.get("id", view_config.get("name"))}
