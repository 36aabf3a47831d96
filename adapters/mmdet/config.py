"""mmdet configs of a run: mmdet's own LVIS Mask R-CNN config (from the installed wheel) with the run's
detector, model size, head, data, sampler and schedule.

``lvis/mask-rcnn_r50_fpn_sample1e-3_ms-2x_lvis-v0.5.py`` (or the v1 1x one) is the base: data pipeline,
backbone/FPN/RPN, RoI assignment and sampling, RoIAlign, the L1 box loss, multiclass NMS, the mask branch.
Faster R-CNN is that model without its mask branch. Cascade (Mask) R-CNN and HTC take mmdet's own model of
that detector (``BASE_MODELS``: its three stages with their IoU thresholds, box coders, loss weights and
mask heads) on the same LVIS data config; HTC is mmdet's variant without the semantic branch (LVIS has
no stuff segmentation; the papers' HTC rows state none), with interleaved mask branches and mask
information flow. The ltbench ``BoxHead`` replaces the classification of every stage's box head
(``LtbenchBBoxHead``), as it replaces Mask R-CNN's; the stages keep mmdet's class-agnostic regression.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from adapters.interface import MASK_DETECTORS, DataPaths, run_label
from adapters.records import LvisSplit
from adapters.wiring import head_config, mask_head_name
from ltbench.errors import LtbenchError
from ltbench.weights import resolve as resolve_weights

#: dataset name -> config file inside mmdet's wheel (mmdet/.mim/configs/...)
BASE_CONFIGS = {
    "lvis_v0.5": "lvis/mask-rcnn_r50_fpn_sample1e-3_ms-2x_lvis-v0.5.py",
    "lvis_v1": "lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py",
}
DEFAULT_BASE_CONFIG = BASE_CONFIGS["lvis_v1"]
#: detector -> mmdet's model config whose ``model`` replaces the LVIS config's (None: the LVIS Mask R-CNN)
BASE_MODELS: dict[str, str | None] = {
    "mask_rcnn": None,
    "faster_rcnn": None,
    "cascade_rcnn": "cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py",
    "cascade_mask_rcnn": "cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py",
    "htc": "htc/htc-without-semantic_r50_fpn_1x_coco.py",
}
DETECTORS = tuple(BASE_MODELS)
#: mmdet RoI head -> the ltbench subclass (it hands SimCal's sampled classes to every stage's box head)
ROI_HEADS = {"StandardRoIHead": "LtbenchRoIHead", "CascadeRoIHead": "LtbenchCascadeRoIHead",
             "HybridTaskCascadeRoIHead": "LtbenchHybridTaskCascadeRoIHead"}


def _config_file(rel: str, what: str) -> Path:
    import mmdet

    path = Path(mmdet.__file__).parent / ".mim" / "configs" / rel
    if not path.is_file():
        raise LtbenchError(f"mmdet's {what} config is missing from the installed wheel", path=path, expected="mmdet 3.3.0 with its .mim configs")
    return path


def base_config_path(run_config: dict) -> Path:
    """mmdet's LVIS config of the run's dataset: the data pipeline, and the model of Mask/Faster R-CNN runs."""
    return _config_file(BASE_CONFIGS.get(run_config.get("dataset", ""), DEFAULT_BASE_CONFIG), "LVIS")


def base_model_path(run_config: dict) -> Path | None:
    """mmdet's config whose model a cascade / HTC run takes (None: the LVIS config's own Mask R-CNN)."""
    detector = run_config.get("detector", "mask_rcnn")
    if detector not in BASE_MODELS:
        raise LtbenchError(f"detector {detector!r} is not wired in the mmdet adapter", key="detector", path=run_label(run_config),
                           expected=", ".join(DETECTORS))
    rel = BASE_MODELS[detector]
    return None if rel is None else _config_file(rel, detector)


def stages(part: Any) -> list:
    """The per-stage entries of a cascade's config part (a list), or ``[part]`` for a single-stage one."""
    return list(part) if isinstance(part, (list, tuple)) else [part]


def build_config(run_config: dict, split: LvisSplit, data: DataPaths) -> Any:
    """mmdet's LVIS config with the run's detector, model size, head (in every stage), data and schedule."""
    from mmengine.config import Config

    detector = run_config.get("detector", "mask_rcnn")
    model_path = base_model_path(run_config)
    cfg = Config.fromfile(str(base_config_path(run_config)))
    if model_path is not None:  # the detector's own model; the LVIS config's data preprocessor (mask padding)
        preprocessor = cfg.model.data_preprocessor
        cfg.model = Config.fromfile(str(model_path)).model
        cfg.model.data_preprocessor = preprocessor
    masks = detector in MASK_DETECTORS
    model = dict(run_config.get("model") or {})
    depth = int(model.get("backbone_depth", {"r50_fpn": 50, "r101_fpn": 101, "r18_fpn": 18}.get(run_config.get("backbone", "r50_fpn"), 50)))
    fpn = int(model.get("fpn_channels", 256))
    hidden = int(model.get("box_head_hidden", 1024))
    mask_channels = int(model.get("mask_head_channels", min(256, fpn)))
    pretrain = run_config.get("pretrain", "imagenet")
    # The run's pretrained file: a path in its config, else at paper scale the weight cache's file (`ltbench
    # weights fetch` beforehand): mmdet's own torchvision:// / http checkpoints would be downloaded in the job.
    found = resolve_weights(run_config)
    m = cfg.model
    m.backbone.depth = depth
    if pretrain == "coco" and "coco" not in found and run_config.get("scale") == "paper":  # smoke/mini: no COCO file (resolve: {})
        raise LtbenchError(
            "pretrain 'coco' needs a checkpoint", path=run_label(run_config), key="model.weights",
            expected="a path to the COCO-trained detector's checkpoint in model.weights",
        )
    if "imagenet" in found:
        m.backbone.init_cfg = dict(type="Pretrained", checkpoint=str(found["imagenet"]))
    elif not found:
        # Smoke scale: random init, trainable BN in train mode, nothing frozen (as the torchvision adapter).
        m.backbone.init_cfg = None
        m.backbone.frozen_stages = -1
        m.backbone.norm_eval = False
    else:  # the COCO detector's checkpoint replaces the whole model (cfg.ltbench_detector_weights)
        m.backbone.init_cfg = None
    cfg.ltbench_detector_weights = str(found["coco"]) if "coco" in found else None
    m.neck.in_channels = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]
    m.neck.out_channels = fpn
    m.rpn_head.in_channels = fpn
    m.rpn_head.feat_channels = fpn
    anchor_sizes = model.get("anchor_sizes")
    if anchor_sizes:  # mini scale: one size per FPN level, as in the torchvision adapter (size = scale x stride)
        strides = list(m.rpn_head.anchor_generator.strides)
        scales = {size / stride for size, stride in zip(anchor_sizes, strides)}
        if len(anchor_sizes) != len(strides) or len(scales) != 1:
            raise LtbenchError(f"anchor sizes {anchor_sizes} are not one multiple of the FPN strides {strides}",
                               path=run_label(run_config), key="model.anchor_sizes",
                               expected=f"{len(strides)} sizes k x {strides}")
        m.rpn_head.anchor_generator.scales = [scales.pop()]
    rh = m.roi_head
    rh.type = ROI_HEADS[rh.type]
    agnostic = bool(run_config.get("class_agnostic", False))
    for extractor in stages(rh.bbox_roi_extractor):
        extractor.out_channels = fpn
    head = head_config(run_config, split.class_stats)
    bbox_heads = [
        dict(
            type="LtbenchBBoxHead",
            head=head,
            hidden=hidden,
            in_channels=fpn,
            roi_feat_size=old.roi_feat_size,
            num_classes=split.num_classes,
            bbox_coder=old.bbox_coder,
            # the cascade stages regress class-agnostically in mmdet (and in the papers' code); Mask R-CNN
            # per class unless the run says class_agnostic
            reg_class_agnostic=bool(old.get("reg_class_agnostic", False)) or agnostic,
            loss_bbox=old.loss_bbox,
        )
        for old in stages(rh.bbox_head)
    ]
    rh.bbox_head = bbox_heads if isinstance(rh.bbox_head, (list, tuple)) else bbox_heads[0]
    if masks:
        for extractor in stages(rh.mask_roi_extractor):
            extractor.out_channels = fpn
        for mask_head in stages(rh.mask_head):
            mask_head.in_channels = fpn
            mask_head.conv_out_channels = mask_channels
            mask_head.num_classes = split.num_classes
            mask_head.class_agnostic = agnostic
            if mask_head_name(run_config) == "normed":  # Seesaw's normed mask: mmdet's NormedConv2d (sic kwarg)
                scale = float((run_config.get("mask_head") or {}).get("scale", 20))
                mask_head.predictor_cfg = dict(type="NormedConv2d", tempearture=scale)
    elif detector == "faster_rcnn":  # the LVIS Mask R-CNN without its mask branch
        m.type = "FasterRCNN"
        for key in ("mask_roi_extractor", "mask_head"):
            rh.pop(key, None)
        m.train_cfg.rcnn.pop("mask_size", None)
    if not masks:
        m.data_preprocessor.pad_mask = False
    rcnn_train = stages(m.train_cfg.rcnn)
    m.train_cfg.rpn_proposal.nms_pre = int(model.get("rpn_pre_nms_top_n_train", m.train_cfg.rpn_proposal.nms_pre))
    m.train_cfg.rpn_proposal.max_per_img = int(model.get("rpn_post_nms_top_n_train", m.train_cfg.rpn_proposal.max_per_img))
    for stage_cfg in rcnn_train:
        stage_cfg.sampler.num = int(model.get("box_batch_size_per_image", stage_cfg.sampler.num))
    m.train_cfg.rpn.sampler.num = int(model.get("rpn_batch_size_per_image", m.train_cfg.rpn.sampler.num))
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
    if not masks:
        for step in cfg.train_pipeline + cfg.test_pipeline:
            if step["type"] == "LoadAnnotations":
                step["with_mask"] = False
    cfg.ltbench_data = dict(train=str(data.train), val=str(data.val), image_root=str(data.image_root))
    return cfg


def dataset_cfg(cfg: Any, ann_file: str, *, test_mode: bool) -> dict:
    return dict(
        type="LtbenchLvisDataset",
        ann_file=str(ann_file),
        image_root=cfg.ltbench_data["image_root"],
        data_root="",
        test_mode=test_mode,
        pipeline=cfg.test_pipeline if test_mode else cfg.train_pipeline,
    )


def train_data(cfg: Any, sampler: dict | None, seed: int, batch_size: int = 1) -> tuple[dict, dict]:
    """(train dataset config, image sampler config) for the run's sampler: RFS with mmdet's rounding (ceil)
    is mmengine's ``ClassBalancedDataset`` around the dataset, as in mmdet's LVIS configs; stochastic RFS and
    class-aware sampling use ``LtbenchStreamSampler``; random is mmengine's ``InfiniteSampler``."""
    dataset = dataset_cfg(cfg, cfg.ltbench_data["train"], test_mode=False)
    name = (sampler or {}).get("name", "random")
    if name in ("random", "uniform"):
        return dataset, dict(type="InfiniteSampler", shuffle=True, seed=seed)
    if name == "rfs" and (sampler or {}).get("rounding", "ceil") == "ceil":
        return dict(type="ClassBalancedDataset", oversample_thr=float(sampler.get("t", 0.001)), dataset=dataset), dict(
            type="InfiniteSampler", shuffle=True, seed=seed
        )
    if name in ("rfs", "class_aware"):
        return dataset, dict(type="LtbenchStreamSampler", sampler=dict(sampler), seed=seed, batch_size=batch_size)
    if name == "bilevel":
        return dict(type="LtbenchBilevelDataset", dataset=dataset), dict(
            type="LtbenchStreamSampler", sampler=dict(sampler), seed=seed, batch_size=batch_size
        )
    raise LtbenchError(
        f"sampler {name!r} is not wired in the mmdet adapter",
        key="sampler.name",
        expected="random, rfs, class_aware or bilevel",
    )


def rcnn_test_cfgs(model: Any) -> list:
    """The built model's R-CNN test configs whose ``max_per_img`` caps detections per image (the RoI
    head's own; mmdet reads ``self.test_cfg`` at inference, not the config file)."""
    roi_head = model.roi_head
    cfgs = [roi_head.test_cfg] if getattr(roi_head, "test_cfg", None) is not None else []
    return [c for c in cfgs if "max_per_img" in c]


def epoch_length(train_dataset: dict, split: LvisSplit) -> int:
    """Images per epoch: the split's images, or the sum of ceil(repeat factor) under mmdet's RFS (the
    stream sampler's epochs have about as many images as the split)."""
    if train_dataset.get("type") != "ClassBalancedDataset":
        return len(split.images)
    from ltbench.methods.samplers import repeat_factors

    factors = repeat_factors([set(r.classes.tolist()) for r in split.images], float(train_dataset["oversample_thr"]))
    return int(sum(math.ceil(f) for f in factors))
