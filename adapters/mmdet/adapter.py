"""mmdetection 3.3 adapter: mmdet's own LVIS Mask R-CNN config (``config.py``) with the ltbench BoxHead in
the box branch (``registration.py``), trained by mmengine's Runner.

Background convention: ``"last"`` (mmdet 2.x/3.x): foreground labels 0..C-1, background C. Box deltas:
``4 * C`` (mmdet does not regress the background).

The engine hooks map onto mmengine's: ``Reseed`` is ``LtbenchIterBasedTrainLoop``, ``LRScheduler`` mmengine's
``ParamSchedulerHook`` (LinearLR warm-up + MultiStepLR), ``ProgressGate`` and ``PeriodicWriter`` ours,
``PeriodicCheckpointer`` mmengine's ``CheckpointHook``. RFS with mmdet's ceil rounding (the default here)
is mmengine's ``ClassBalancedDataset``, as in mmdet's LVIS configs.

Exact resume on CPU needs ``num_workers=0`` (the default here); with worker processes the pipeline's
random draws happen in the workers and a resumed run is equivalent but not bit-identical.
"""

from __future__ import annotations

import contextlib

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters import checkpoints as ckpt
from adapters.engine.randomness import seed_everything
from adapters.interface import Adapter, DataPaths, record_regulariser, run_label, schedule_of, training_sampler
from adapters.mmdet.config import DETECTORS, build_config, dataset_cfg, epoch_length, rcnn_test_cfgs, train_data
from adapters.mmdet.registration import (
    float32_mmcv_ops_on_cpu,
    mmdet_available,
    quiet_init,
    register,
    stage_bbox_heads,
    trusted_checkpoints,
)
from adapters.prediction import UNCAPPED_DETECTIONS_PER_IMAGE, ImagePrediction, predict_view
from adapters.records import LvisSplit
from adapters.wiring import build_stage2_head, keep_batchnorm_in_eval, unfreeze_for_finetune
from ltbench.errors import LtbenchError


class MMDetAdapter(Adapter):
    name = "mmdet"
    background = "last"
    SUPPORTED_DETECTORS = DETECTORS  # config.BASE_MODELS: mmdet's own models of each, on the LVIS data config
    SUPPORTED_BACKBONES = ("r18_fpn", "r50_fpn", "r101_fpn")

    def available(self) -> tuple[bool, str]:
        return mmdet_available()

    def _build_model(self, run_config: dict, split: LvisSplit, data: DataPaths, *, stage1: tuple[list[dict], Path | None] | None,
                     report_dir: Path | None = None) -> Any:
        """The mmdet detector; for a stage-2 run the stage-1 detector (``stage1``: the stage-1 chain, and the
        checkpoint loaded by name when given: ``adapters.stage1``, its report in ``report_dir``) with
        ``build_stage2`` around its box head(s) and everything else frozen (fine-tuning: see ``wiring.unfreeze_for_finetune``)."""
        register()
        from mmdet.registry import MODELS
        from mmengine.runner.checkpoint import load_checkpoint

        from adapters import stage1 as s1

        if stage1 is None:
            cfg = build_config(run_config, split, data)
            model = MODELS.build(cfg.model)
            quiet_init(model)
            if cfg.ltbench_detector_weights:  # a COCO-trained detector: every tensor whose shape fits
                load_checkpoint(model, cfg.ltbench_detector_weights, map_location="cpu", strict=False, logger="current")
            return model, cfg
        chain, stage1_checkpoint = stage1
        architecture = s1.stage1_architecture(run_config, chain)
        cfg = build_config(architecture[0], split, data)
        model = MODELS.build(cfg.model)
        quiet_init(model)
        for config in architecture[1:]:  # the stage-2 heads the kept stage-1 model was trained with
            for bbox_head in stage_bbox_heads(model.roi_head):
                bbox_head.box_head = build_stage2_head(config, bbox_head.box_head, split)
        report: dict = {}
        if stage1_checkpoint is not None:
            with trusted_checkpoints():
                state = ckpt.load_checkpoint(stage1_checkpoint)
            report = s1.load_stage1(model, state.get("state_dict", state), box_head_prefixes(model), what=str(chain[-1].get("id")))
        before = [{k: v.detach().clone() for k, v in h.box_head.state_dict().items()} for h in stage_bbox_heads(model.roi_head)]
        for p in model.parameters():
            p.requires_grad_(False)
        heads = stage_bbox_heads(model.roi_head)
        for bbox_head in heads:  # a cascade: the stage-2 method on the box head of every stage
            bbox_head.box_head = build_stage2_head(run_config, bbox_head.box_head, split)
        if stage1_checkpoint is not None:
            for prefix, old, bbox_head in zip(box_head_prefixes(model), before, heads):
                for key, names in s1.stage2_changes(old, bbox_head.box_head, prefix).items():
                    report.setdefault(key, []).extend(names)
            s1.write_report(report_dir, run_config, architecture, report)
        trains = getattr(heads[0].box_head, "requires_training", True)
        if trains and not any(p.requires_grad for h in heads for p in h.box_head.parameters()):
            raise LtbenchError("build_stage2 returned a head without trainable parameters", key="stage2")
        unfreeze_for_finetune(model, run_config, box_head_prefixes(model), ("backbone.conv1.", "backbone.bn1."), "backbone.layer{}.")
        keep_batchnorm_in_eval(model)
        return model, cfg

    def train(
        self, run_config: dict, workdir: Path, data: DataPaths, *, stage1_workdir: Path | None = None, init_workdir: Path | None = None,
        device: str | None = None, precision: str | None = None, ranks: int = 1,
    ) -> Path:
        register()
        from mmengine.runner import Runner

        from adapters.engine import preemption
        from adapters.engine.devices import loader_workers, resolve_device, resolve_precision, training_environment
        from adapters.engine.fabric import join_cpu_process_group, world_from_env
        from adapters.engine.schedule import epoch_note, sampler_epoch_images, split_batch
        from ltbench.io import write_json

        start = ckpt.start_training(run_config, Path(workdir).resolve(), data, stage1_workdir)
        if start.finished is not None:
            return start.finished
        workdir, split = start.workdir, start.split
        seed = int(run_config.get("seed", 0))
        seed_everything(seed)
        stage2 = run_config.get("stage2")
        stage1 = (start.stage1_chain, start.stage1_checkpoint) if stage2 else None
        model, cfg = self._build_model(run_config, split, data, stage1=stage1, report_dir=workdir)
        source = ckpt.init_checkpoint(run_config, init_workdir) if not stage2 else None
        if source is not None and ckpt.last_checkpoint(workdir) is None:
            with trusted_checkpoints():
                state = ckpt.load_checkpoint(source)
            ckpt.load_matching(model, state.get("state_dict", state), what=f"{source} (init_from)")
        write_json(workdir / "run_config.json", run_config)
        if stage2 and not getattr(stage_bbox_heads(model.roi_head)[0].box_head, "requires_training", True):
            return self._finish_without_training(run_config, workdir, model, cfg)
        scale = str(run_config.get("scale", "smoke"))
        device = resolve_device(device, scale=scale)
        if device == "cpu":
            os.environ["CUDA_VISIBLE_DEVICES"] = ""  # mmengine picks CUDA whenever it sees it: --device cpu hides it
        precision = resolve_precision(run_config, device, precision)
        world = world_from_env()
        if world.size != ranks:
            raise LtbenchError(f"{world.size} processes joined a training of {ranks} ranks", key="--ranks",
                               expected="ltbench train --ranks N started once (it launches the N ranks itself)")
        per_rank, schedule, note = split_batch(schedule_of(run_config, stage2=bool(stage2)), world.size)
        max_iters = int(schedule["iterations"])
        batch = int(schedule["batch_size"])  # the global batch
        workers = loader_workers(schedule, scale=scale, local_ranks=world.local_size)
        training = training_environment(device, precision, world_size=world.size, per_rank_batch=per_rank, total_batch=batch,
                                        workers=workers, notes=[note] if note else [])
        train_dataset, image_sampler = train_data(cfg, training_sampler(run_config), seed, batch)
        if "epoch_images" in schedule:  # the exact epoch of this data vs the plan's (assumption rfs-epoch-size)
            epoch_text = epoch_note(schedule, sampler_epoch_images(
                training_sampler(run_config), [r.category_ids for r in split.images], default_rounding="ceil"))
            training["notes"] += [epoch_text] if epoch_text else []
        warmup = int(schedule["warmup_iters"])
        schedulers = []
        if warmup > 0:
            schedulers.append(dict(type="LinearLR", start_factor=float(schedule.get("warmup_factor", 0.001)), by_epoch=False, begin=0, end=warmup))
        schedulers.append(dict(type="MultiStepLR", by_epoch=False, begin=0, end=max_iters, milestones=[int(s) for s in schedule["steps"]], gamma=float(schedule.get("gamma", 0.1))))
        period = int(schedule["checkpoint_period"])
        if device == "cpu":
            join_cpu_process_group(world)
        runner = Runner(
            model=model,
            work_dir=str(workdir),
            launcher={"none": "none", "torchrun": "pytorch", "srun": "slurm"}[world.launcher],
            train_dataloader=dict(
                batch_size=per_rank,
                num_workers=workers,
                persistent_workers=workers > 0,
                pin_memory=device == "cuda",
                sampler=image_sampler,
                batch_sampler=dict(type="AspectRatioBatchSampler"),
                dataset=train_dataset,
            ),
            train_cfg=dict(type="LtbenchIterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters + 1, seed=seed),
            optim_wrapper=dict(
                **optim_wrapper_type(precision),
                optimizer=dict(type="SGD", lr=float(schedule["lr"]), momentum=float(schedule["momentum"]), weight_decay=float(schedule["weight_decay"])),
                clip_grad=dict(max_norm=float(schedule["grad_clip"])) if schedule.get("grad_clip") else None,
            ),
            param_scheduler=schedulers,
            default_hooks=dict(
                timer=dict(type="IterTimerHook"),
                logger=dict(type="LoggerHook", interval=max(1, min(20, max_iters // 10 or 1))),
                param_scheduler=dict(type="ParamSchedulerHook"),
                checkpoint=dict(type="CheckpointHook", interval=period, by_epoch=False, save_last=True, max_keep_ckpts=ckpt.keep_checkpoints(schedule, run_label(run_config))),
                sampler_seed=dict(type="DistSamplerSeedHook"),
            ),
            custom_hooks=[dict(type="ProgressGate", batch_size=batch, epoch_length=epoch_length(train_dataset, split)),
                          dict(type="PeriodicWriter"),
                          dict(type="PeriodicCheckpointer", wall_seconds=preemption.checkpoint_seconds(schedule, run_label(run_config)))],
            randomness=dict(seed=seed),
            resume=True,
            default_scope="mmdet",
            log_level="INFO",
            env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork"),
                         dist_cfg=dict(backend="nccl" if device == "cuda" else "gloo")),
            visualizer=dict(type="DetLocalVisualizer", vis_backends=[]),
            # find_unused_parameters: stage-2 and frozen heads leave parameters out of the loss
            cfg=dict(model_wrapper_cfg=dict(
                type="LtbenchCpuDistributedDataParallel" if device == "cpu" else "MMDistributedDataParallel",
                broadcast_buffers=False, find_unused_parameters=True)) if world.size > 1 else None,
        )
        cpu_bf16 = device == "cpu" and precision == "bf16-mixed"
        with trusted_checkpoints(), preemption.handling(), float32_mmcv_ops_on_cpu() if cpu_bf16 else contextlib.nullcontext():
            runner.train()
        final = workdir / f"iter_{max_iters}.pth"
        record_regulariser(training, runner.model, split.category_ids)  # PCB; on every rank: summed over processes
        if runner.rank == 0:
            if not final.is_file():
                raise LtbenchError("mmengine did not write the final checkpoint", path=final, expected=f"iter_{max_iters}.pth")
            ckpt.write_done(workdir, run_config, final.name, max_iters, self.name, training)
        return final

    def _finish_without_training(self, run_config: dict, workdir: Path, model: Any, cfg: Any) -> Path:
        """Stage-2 heads without an optimiser: tau-norm directly; NCM after one pass over the training
        images through mmdet's training forward (RoIs assigned and sampled as in training)."""
        import torch
        from mmdet.registry import DATASETS
        from mmengine.dataset import pseudo_collate

        heads = stage_bbox_heads(model.roi_head)
        if getattr(heads[0].box_head, "fit_pass", False):
            dataset = DATASETS.build(dataset_cfg(cfg, cfg.ltbench_data["train"], test_mode=False))
            model.train()
            for bbox_head in heads:
                bbox_head.fit_pass = True
            seed_everything(int(run_config.get("seed", 0)))
            with torch.no_grad():
                for i in range(len(dataset)):
                    batch = model.data_preprocessor(pseudo_collate([dataset[i]]), True)
                    model.loss(batch["inputs"], batch["data_samples"])
            for bbox_head in heads:
                bbox_head.fit_pass = False
        final = Path(workdir) / "iter_0.pth"
        ckpt.save_checkpoint(workdir, final.name, {"state_dict": model.state_dict(), "meta": {"run_id": run_config.get("id")}}, update_pointer=False)
        ckpt.write_done(workdir, run_config, final.name, 0, self.name)
        return final

    def predict(self, run_config: dict, view_config: dict, workdir: Path, data: DataPaths, *, split: str = "val", out_dir: Path,
                device: str | None = None) -> dict:
        from adapters.engine.devices import resolve_device

        device = resolve_device(device, scale=str(run_config.get("scale", "smoke")))
        return predict_view(self, run_config, view_config, workdir, data, split=split, out_dir=out_dir,
                            load=lambda train_split: self._prediction_model(run_config, Path(workdir), train_split, data, device))

    def _prediction_model(self, run_config: dict, workdir: Path, train_split: LvisSplit, data: DataPaths,
                          device: str = "cpu") -> MMDetPredictionModel:
        from mmengine.runner.checkpoint import load_checkpoint

        from adapters.stage1 import read_chain as read_stage1_chain

        checkpoint = ckpt.final_checkpoint(workdir)
        stage1 = (read_stage1_chain(workdir), None) if run_config.get("stage2") else None
        model, cfg = self._build_model(run_config, train_split, data, stage1=stage1)
        with trusted_checkpoints():
            load_checkpoint(model, str(checkpoint), map_location="cpu", strict=True, logger="silent")
        model.to(device).eval()  # test_step's data preprocessor moves each batch to the model's device
        return MMDetPredictionModel(model, cfg)


def box_head_prefixes(model: Any) -> tuple[str, ...]:
    """State-dict prefixes of the ltbench box heads of ``model`` (one per cascade stage)."""
    heads = stage_bbox_heads(model.roi_head)
    if len(heads) == 1:
        return ("roi_head.bbox_head.box_head.",)
    return tuple(f"roi_head.bbox_head.{i}.box_head." for i in range(len(heads)))


def optim_wrapper_type(precision: str) -> dict:
    """mmengine's optimizer wrapper for a precision: ``OptimWrapper`` in float32; ``AmpOptimWrapper`` with
    dynamic loss scaling for float16 on CUDA; for bfloat16 on a CPU the same wrapper through
    ``LtbenchAmpOptimWrapper`` (mmengine asserts CUDA, though its autocast runs on a CPU; see registration)."""
    if precision == "32-true":
        return {"type": "OptimWrapper"}
    if precision == "16-mixed":
        return {"type": "AmpOptimWrapper", "loss_scale": "dynamic", "dtype": "float16"}
    return {"type": "LtbenchAmpOptimWrapper", "loss_scale": "dynamic", "dtype": "bfloat16"}


class MMDetPredictionModel:
    """A loaded mmdet detector behind ``adapters.prediction.PredictionModel``."""

    background = "last"

    def __init__(self, model: Any, cfg: Any) -> None:
        self.model, self.cfg = model, cfg
        # a cascade: every stage reads its probabilities through the view (mmdet averages them over the
        # stages, as detectron2's cascade does); the last stage's post-processing sees the average and
        # records the scored RoIs
        self.heads = stage_bbox_heads(model.roi_head)
        self.head = self.heads[-1]
        self.detections_per_image = cfg.model.test_cfg.rcnn.max_per_img

    def uncap(self) -> None:
        self.detections_per_image = UNCAPPED_DETECTIONS_PER_IMAGE
        for stage_cfg in rcnn_test_cfgs(self.model):  # mmdet reads the built head's test_cfg, not the file
            stage_cfg.max_per_img = UNCAPPED_DETECTIONS_PER_IMAGE

    def set_view(self, view: Any) -> None:
        for head in self.heads:
            head.view = view

    def set_detection_filter(self, keep: Any) -> bool:
        return False  # every detection gets its mask; the per-class top-k selection follows

    def images(self, split: LvisSplit, *, detections: bool) -> Iterator[ImagePrediction]:
        import torch
        from mmdet.registry import DATASETS
        from mmengine.dataset import pseudo_collate

        dataset = DATASETS.build(dataset_cfg(self.cfg, str(split.annotation_file), test_mode=True))
        records = {r.image_id: r for r in split.images}
        with torch.no_grad():
            for i in range(len(dataset)):
                self.head.last_inference = []
                (sample,) = self.model.test_step(pseudo_collate([dataset[i]]))
                record = records.get(int(sample.metainfo["img_id"]))
                if record is None:  # an image without annotations: nothing to score against
                    continue
                prediction = ImagePrediction(record, scored_rois=[(rois.numpy(), probs.numpy()) for _, rois, probs in self.head.last_inference])
                if detections:
                    pred = sample.pred_instances
                    prediction.masks = pred.masks.cpu().numpy() if "masks" in pred else None
                    prediction.boxes, prediction.scores = pred.bboxes.cpu().numpy(), pred.scores.cpu().numpy()
                    prediction.classes = pred.labels.cpu().numpy()
                yield prediction
