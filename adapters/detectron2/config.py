"""detectron2 configs of a run: detectron2's own LVIS Mask R-CNN config from its model zoo
(``LVISv0.5-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml`` or the v1 one) with the run's model size,
schedule and head, and the dataset dicts / mappers of the training data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.interface import run_label, schedule_of
from adapters.records import LvisSplit
from adapters.wiring import head_config, mask_head_name
from ltbench.errors import LtbenchError
from ltbench.weights import resolve as resolve_weights
from ltbench.io import read_json

#: dataset name -> config inside detectron2's model zoo
BASE_CONFIGS = {
    "lvis_v0.5": "LVISv0.5-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
    "lvis_v1": "LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
}
DEFAULT_BASE_CONFIG = BASE_CONFIGS["lvis_v1"]


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


def build_cfg(run_config: dict, split: LvisSplit, workdir: Path, device: str = "cpu") -> Any:
    """detectron2's LVIS config with the run's model size, schedule, sampler and head."""
    from detectron2.config import get_cfg

    if run_config.get("detector", "mask_rcnn") not in ("mask_rcnn", "faster_rcnn"):
        raise LtbenchError(f"detector {run_config.get('detector')!r} is not wired in the detectron2 adapter", key="detector",
                           expected="mask_rcnn or faster_rcnn")
    cfg = get_cfg()
    cfg.merge_from_file(str(base_config_path(run_config)))
    model = dict(run_config.get("model") or {})
    schedule = schedule_of(run_config, stage2=bool(run_config.get("stage2")))
    depth = int(model.get("backbone_depth", {"r50_fpn": 50, "r101_fpn": 101, "r18_fpn": 18}.get(run_config.get("backbone", "r50_fpn"), 50)))
    cfg.MODEL.DEVICE = device
    cfg.MODEL.MASK_ON = run_config.get("detector", "mask_rcnn") == "mask_rcnn"
    cfg.MODEL.RESNETS.DEPTH = depth
    if depth < 50:
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64  # basic blocks
    # The run's pretrained file: a path in its config, else at paper scale the weight cache's (detectron2's
    # R-50.pkl or a COCO model, `ltbench weights fetch` beforehand); a missing one is an error naming the fetch.
    if run_config.get("scale") == "mini":
        # the synthetic backbone is a torchvision state dict and the mini anchors are not wired here
        raise LtbenchError("the detectron2 adapter does not run mini-scale models", path=run_label(run_config),
                           key="framework", expected="torchvision or mmdet at mini scale (the default)")
    weights = next(iter(resolve_weights(run_config).values()), None)
    cfg.MODEL.WEIGHTS = str(weights) if weights else ""
    if not weights:
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
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = int(model.get("rpn_batch_size_per_image", cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE))
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = split.num_classes
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = bool(run_config.get("class_agnostic", False))
    cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK = bool(run_config.get("class_agnostic", False))
    mask_head_name(run_config)  # validated here; the normed predictor replaces the conv in the adapter
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
    head_run = read_json(Path(workdir) / "stage1_run_config.json") if run_config.get("stage2") else run_config
    cfg.set_new_allowed(True)
    cfg.LTBENCH_HEAD = json.dumps({"head": head_config(head_run, split.class_stats), "hidden": int(model.get("box_head_hidden", 1024))})
    return cfg


def dataset_dicts(split: LvisSplit) -> list[dict]:
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


class BilevelRecords:
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


def BilevelMapper(cfg: Any, *, is_train: bool) -> Any:  # noqa: N802 - a class built lazily (detectron2 import)
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
