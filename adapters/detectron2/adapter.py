"""detectron2 adapter: detectron2's own LVIS Mask R-CNN config (``config.py``), ROI heads registered for the
ltbench methods (``registration.py``), training by detectron2's ``DefaultTrainer``.

Background convention: ``"last"`` (detectron2's): foreground 0..C-1, background C. Box deltas ``4 * C``
(``4`` with ``CLS_AGNOSTIC_BBOX_REG``).

The engine hooks map onto detectron2's: ``Reseed`` and ``ProgressGate`` are ours (``HookBase``),
``LRScheduler``, ``PeriodicCheckpointer`` and ``PeriodicWriter`` are detectron2's hooks of those names.
The image order is ``adapters.engine.stream`` (random, RFS with detectron2's stochastic rounding,
class-aware, bi-level) through a resumable sampler.

Stage-2 heads without an optimiser: tau-norm saves the re-normalised model directly; NCM first runs one
statistics pass (training-mode forwards, no augmentation, ``LtbenchBoxPredictor.fit_pass``) over the
training images. Seesaw's normed mask head replaces the mask head's 1x1 ``predictor`` conv.

Known gaps (see ``GAPS``): exact resume holds only with ``num_workers=0`` and one aspect-ratio group
(detectron2's ``AspectRatioGroupedDataset`` buffers are not checkpointed).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters import checkpoints as ckpt
from adapters.detectron2.config import BilevelMapper, BilevelRecords, build_cfg, dataset_dicts
from adapters.detectron2.registration import detectron2_available, register
from adapters.engine.devices import resolve_device
from adapters.engine.progress import log_period
from adapters.engine.randomness import iteration_seed, seed_everything
from adapters.engine.schedule import epoch_progress
from adapters.engine.stream import IndexStream, epoch_order, rank_slice
from adapters.interface import Adapter, DataPaths, record_regulariser, run_label, schedule_of, training_sampler
from adapters.prediction import UNCAPPED_DETECTIONS_PER_IMAGE, ImagePrediction, predict_view
from adapters.records import LvisSplit
from ltbench.errors import LtbenchError
from adapters.wiring import build_stage2_head, keep_batchnorm_in_eval, mask_head_name, normed_conv_class, unfreeze_for_finetune

#: what the detectron2 adapter does not cover (the torchvision and mmdet adapters do)
GAPS = (
    "class_aware sampling only via ltbench's sampler (detectron2 has none of its own)",
    "Faster R-CNN only through MASK_ON=False of the Mask R-CNN config",
    "exact resume needs num_workers=0 and a single aspect-ratio group",
)


class Detectron2Adapter(Adapter):
    name = "detectron2"
    SUPPORTED_DETECTORS = ("mask_rcnn", "faster_rcnn")  # config.build_cfg
    SUPPORTED_BACKBONES = ("r18_fpn", "r50_fpn", "r101_fpn")
    background = "last"

    def available(self) -> tuple[bool, str]:
        return detectron2_available()

    def _model(self, cfg: Any, run_config: dict, split: LvisSplit, stage1_checkpoint: Path | None) -> Any:
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.modeling import build_model

        model = build_model(cfg)
        if mask_head_name(run_config) == "normed" and cfg.MODEL.MASK_ON:
            old = model.roi_heads.mask_head.predictor  # Conv2d(conv_dims, mask classes, 1): same tensor names
            scale = float((run_config.get("mask_head") or {}).get("scale", 20))
            model.roi_heads.mask_head.predictor = normed_conv_class()(old.in_channels, old.out_channels, scale)
        if run_config.get("stage2"):
            if stage1_checkpoint is not None:
                DetectionCheckpointer(model).load(str(stage1_checkpoint))
            for p in model.parameters():
                p.requires_grad_(False)
            predictor = model.roi_heads.box_predictor
            predictor.box_head = build_stage2_head(run_config, predictor.box_head, split)
            unfreeze_for_finetune(model, run_config, "roi_heads.box_predictor.box_head.", ("backbone.bottom_up.stem.",),
                                       "backbone.bottom_up.res{}.", first_stage=2)
            keep_batchnorm_in_eval(model)
        return model

    def _finish_without_training(self, cfg: Any, run_config: dict, split: LvisSplit, stage1_checkpoint: Path | None,
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
            keep_batchnorm_in_eval(model)
            predictor.fit_pass = True
            seed_everything(int(run_config.get("seed", 0)))
            with torch.no_grad(), EventStorage(0):  # training-mode forwards log proposal statistics
                for record in dataset_dicts(split):
                    model([mapper(copy.deepcopy(record))])
            predictor.fit_pass = False
        model.eval()
        DetectionCheckpointer(model, save_dir=str(workdir)).save(Path(ckpt.FINAL_CHECKPOINT).stem)
        ckpt.write_done(workdir, run_config, ckpt.FINAL_CHECKPOINT, 0, self.name)
        return workdir / ckpt.FINAL_CHECKPOINT

    def train(
        self, run_config: dict, workdir: Path, data: DataPaths, *, stage1_workdir: Path | None = None, init_workdir: Path | None = None,
        device: str | None = None, precision: str | None = None, ranks: int = 1,
    ) -> Path:
        """Train on this process, or with ``ranks`` > 1 through ``detectron2.engine.launch``: it spawns one
        worker per GPU of this node (gloo workers on a CPU) and joins the nodes of a SLURM job (one task
        per node: ``SLURM_NODEID``/``SLURM_NNODES``)."""
        from adapters.engine.launch import inside_launcher

        if ranks > 1 and not inside_launcher():
            register()
            from detectron2.engine import launch

            nodes, node, url = _machines()
            launch(_train_worker, ranks // nodes, num_machines=nodes, machine_rank=node, dist_url=url,
                   args=(run_config, str(workdir), data, stage1_workdir, init_workdir, device, precision, ranks))
            return Path(workdir).resolve() / ckpt.FINAL_CHECKPOINT
        return self._train_here(run_config, workdir, data, stage1_workdir=stage1_workdir, init_workdir=init_workdir,
                                device=device, precision=precision, ranks=ranks)

    def _train_here(
        self, run_config: dict, workdir: Path, data: DataPaths, *, stage1_workdir: Path | None, init_workdir: Path | None,
        device: str | None, precision: str | None, ranks: int,
    ) -> Path:
        register()
        import torch
        from detectron2.data import build_detection_train_loader
        from detectron2.data.dataset_mapper import DatasetMapper
        from detectron2.engine import DefaultTrainer, HookBase, hooks
        from detectron2.utils import comm
        from detectron2.utils.events import CommonMetricPrinter, JSONWriter
        from detectron2.utils.logger import setup_logger

        from adapters.engine import preemption
        from adapters.engine.devices import loader_workers, resolve_precision, training_environment
        from adapters.engine.schedule import epoch_note, sampler_epoch_images, split_batch
        from ltbench.io import write_json

        start = ckpt.start_training(run_config, Path(workdir).resolve(), data, stage1_workdir)
        if start.finished is not None:
            return start.finished
        workdir, split, stage1_checkpoint = start.workdir, start.split, start.stage1_checkpoint
        setup_logger(output=str(workdir / "detectron2.log"), name="detectron2")  # log.txt: the engine's progress lines
        if comm.get_world_size() != ranks:
            raise LtbenchError(f"{comm.get_world_size()} processes joined a training of {ranks} ranks", key="--ranks",
                               expected="ltbench train --ranks N started once (it launches the N ranks itself)")
        write_json(workdir / "run_config.json", run_config)
        scale = str(run_config.get("scale", "smoke"))
        device = resolve_device(device, scale=scale)
        precision = resolve_precision(run_config, device, precision)
        if precision == "bf16-mixed":
            raise LtbenchError("detectron2's AMPTrainer runs on CUDA only", key="--precision", expected="32-true on a CPU, or a GPU")
        per_rank, schedule, note = split_batch(schedule_of(run_config, stage2=bool(run_config.get("stage2"))), ranks)
        workers = loader_workers(schedule, scale=scale, local_ranks=comm.get_local_size())
        training = training_environment(device, precision, world_size=ranks, per_rank_batch=per_rank,
                                        total_batch=int(schedule["batch_size"]), workers=workers, notes=[note] if note else [])
        cfg = build_cfg(run_config, split, workdir, device)
        cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.BASE_LR = int(schedule["batch_size"]), float(schedule["lr"])
        cfg.SOLVER.AMP.ENABLED = precision == "16-mixed"
        cfg.DATALOADER.NUM_WORKERS = workers
        if stage1_checkpoint is not None:
            cfg.MODEL.WEIGHTS = ""  # the stage-1 weights are loaded in _model; nothing may overwrite them
        source = ckpt.init_checkpoint(run_config, init_workdir) if stage1_checkpoint is None else None
        if source is not None:
            cfg.MODEL.WEIGHTS = str(source)  # detectron2's checkpointer skips tensors whose shapes differ
        if stage1_checkpoint is not None:
            final = self._finish_without_training(cfg, run_config, split, stage1_checkpoint, workdir)
            if final is not None:
                return final
        seed = int(run_config.get("seed", 0))
        seed_everything(seed)
        sampler_cfg = training_sampler(run_config)
        bilevel = (sampler_cfg or {}).get("name") == "bilevel"
        # The bi-level sampler draws (image, class index) pairs; they travel as one int, image * C + class.
        categories = [set(r.classes.tolist()) for r in split.images] if bilevel else [r.category_ids for r in split.images]
        # RFS rounds stochastically as detectron2's RepeatFactorTrainingSampler does, unless the run says otherwise
        order = epoch_order(sampler_cfg, categories, seed, batch_size=int(cfg.SOLVER.IMS_PER_BATCH) if bilevel else 1,
                            default_rounding="stochastic")
        if "epoch_images" in schedule:  # the exact epoch of this data vs the plan's (assumption rfs-epoch-size)
            epoch_text = epoch_note(schedule, sampler_epoch_images(sampler_cfg, categories, default_rounding="stochastic"))
            training["notes"] += [epoch_text] if epoch_text else []
        records = dataset_dicts(split)
        num_classes = split.num_classes
        dataset: Any = BilevelRecords(records, num_classes) if bilevel else records
        adapter = self

        class ResumableSampler(torch.utils.data.Sampler):
            """Endless image indices from ``IndexStream``, fast-forwarded past the images a resumed run has
            already consumed (detectron2's own samplers restart their stream on resume)."""

            def __init__(self) -> None:
                self.skip = 0

            def __iter__(self):
                stream = IndexStream(order)
                stream.take(self.skip)
                while True:  # this rank's slice of every global batch
                    for item in rank_slice(stream.take(cfg.SOLVER.IMS_PER_BATCH), comm.get_rank(), comm.get_world_size()):
                        yield int(item[0]) * num_classes + int(item[1]) if bilevel else item

        sampler = ResumableSampler()

        class Reseed(HookBase):
            """The engine hook ``Reseed``: torch/numpy/random from (seed, iteration, rank) before every step."""

            def before_step(self) -> None:
                seed_everything(iteration_seed(seed, self.trainer.iter, comm.get_rank()))

        class ProgressGate(HookBase):
            """The engine hook ``ProgressGate``: ``BoxHead.set_progress`` before every step."""

            def before_step(self) -> None:
                epoch, epochs = epoch_progress(self.trainer.iter, self.trainer.max_iter, cfg.SOLVER.IMS_PER_BATCH, len(records))
                model = self.trainer.model.module if hasattr(self.trainer.model, "module") else self.trainer.model
                model.roi_heads.box_predictor.box_head.set_progress(epoch, epochs, self.trainer.iter, self.trainer.max_iter)

        class PeriodicCheckpointer(HookBase):
            """The engine hook ``PeriodicCheckpointer`` besides detectron2's own (the iteration period): a
            checkpoint every ``schedule.checkpoint_minutes`` of wall time, and on the time-limit signal a
            checkpoint, then exit 75 (``adapters.engine.preemption``); rank 0 decides for every rank."""

            def __init__(self) -> None:
                self.wall = preemption.WallClock(preemption.checkpoint_seconds(schedule, run_label(run_config)))

            def after_step(self) -> None:
                done = self.trainer.iter + 1
                stop, by_time = comm.all_gather((preemption.requested() is not None, self.wall.due()))[0]
                if done >= self.trainer.max_iter or not (stop or by_time):
                    return
                name = ckpt.checkpoint_name(done)
                self.trainer.checkpointer.save(Path(name).stem, iteration=done - 1)  # writes last_checkpoint (rank 0)
                self.wall.reset()
                if stop:
                    if comm.is_main_process():
                        preemption.exit_for_resubmission(done, self.trainer.max_iter, workdir / name, workdir)
                    raise SystemExit(preemption.EXIT_CODE)

        class ReseedAfterFetch:
            """Re-seeds torch again once a batch is fetched: the data loader's iterator is created at the
            first fetch and draws from torch's RNG, which a resumed run does at a later iteration."""

            def __init__(self, loader: Any) -> None:
                self.loader = loader

            def __iter__(self):
                for batch in self.loader:
                    torch.manual_seed(iteration_seed(seed + 7919, trainer.iter, comm.get_rank()))
                    yield batch

        trainer = None
        keep = ckpt.keep_checkpoints(schedule_of(run_config, stage2=bool(run_config.get("stage2"))), run_label(run_config))

        class Trainer(DefaultTrainer):
            @classmethod
            def build_model(cls, cfg):  # noqa: ANN001, ANN206 - detectron2 signature
                return adapter._model(cfg, run_config, split, stage1_checkpoint)

            @classmethod
            def build_train_loader(cls, cfg):  # noqa: ANN001, ANN206
                mapper = BilevelMapper(cfg, is_train=True) if bilevel else DatasetMapper(cfg, is_train=True)
                return ReseedAfterFetch(build_detection_train_loader(
                    dataset=dataset, mapper=mapper, sampler=sampler,
                    total_batch_size=cfg.SOLVER.IMS_PER_BATCH, aspect_ratio_grouping=True, num_workers=cfg.DATALOADER.NUM_WORKERS,
                ))

            def build_writers(self):  # noqa: ANN201
                return [CommonMetricPrinter(self.max_iter), JSONWriter(str(workdir / "metrics.json")),
                        progress_writer(workdir, self)]

            def build_hooks(self):  # noqa: ANN201
                kept = [h for h in super().build_hooks() if not isinstance(h, (hooks.EvalHook, hooks.PreciseBN))]
                for hook in kept:  # fvcore's PeriodicCheckpointer deletes all but the newest max_to_keep
                    if isinstance(hook, hooks.PeriodicCheckpointer) and keep > 0:
                        hook.max_to_keep = keep
                    if isinstance(hook, hooks.PeriodicWriter):  # every adapter's progress-line period
                        hook._period = log_period(self.max_iter)
                return [Reseed(), ProgressGate(), *kept, PeriodicCheckpointer()]

        with cpu_ddp(device):
            trainer = Trainer(cfg)
        trainer.resume_or_load(resume=True)
        sampler.skip = trainer.start_iter * cfg.SOLVER.IMS_PER_BATCH
        with preemption.handling():
            trainer.train()
        final = workdir / ckpt.FINAL_CHECKPOINT
        record_regulariser(training, trainer.model, split.category_ids)  # PCB; on every rank: summed over processes
        if comm.is_main_process():
            ckpt.write_done(workdir, run_config, final.name, cfg.SOLVER.MAX_ITER, self.name, training)
            ckpt.prune_checkpoints(workdir, keep, finished=True)  # same names as ours: model_<7 digits>.pth
        comm.synchronize()
        return final

    def predict(self, run_config: dict, view_config: dict, workdir: Path, data: DataPaths, *, split: str = "val", out_dir: Path,
                device: str | None = None) -> dict:
        device = resolve_device(device, scale=str(run_config.get("scale", "smoke")))
        return predict_view(self, run_config, view_config, workdir, data, split=split, out_dir=out_dir,
                            load=lambda train_split: self._prediction_model(run_config, Path(workdir).resolve(), train_split, device))

    def _prediction_model(self, run_config: dict, workdir: Path, train_split: LvisSplit, device: str) -> Detectron2PredictionModel:
        register()
        from detectron2.checkpoint import DetectionCheckpointer

        checkpoint = ckpt.final_checkpoint(workdir)
        cfg = build_cfg(run_config, train_split, workdir, device)
        model = self._model(cfg, run_config, train_split, None)
        DetectionCheckpointer(model).load(str(checkpoint))
        model.eval()
        return Detectron2PredictionModel(model, cfg)


def _train_worker(run_config: dict, workdir: str, data: Any, stage1_workdir: Any, init_workdir: Any, device: Any, precision: Any,
                  ranks: int) -> None:
    """One worker of ``detectron2.engine.launch`` (a module-level function: the workers are spawned)."""
    Detectron2Adapter()._train_here(run_config, Path(workdir), data, stage1_workdir=stage1_workdir, init_workdir=init_workdir,
                                    device=device, precision=precision, ranks=ranks)


def _machines() -> tuple[int, int, str]:
    """(machines, this machine's rank, rendezvous URL) of ``launch``: the SLURM job's nodes (one task per
    node) when there are several, else this node with a free port ("auto")."""
    import os
    import subprocess

    nodes = int(os.environ.get("SLURM_NNODES", "1"))
    if nodes <= 1:
        return 1, 0, "auto"
    first = subprocess.run(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]], capture_output=True, text=True,
                           check=True).stdout.split()[0]
    port = 20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000
    return nodes, int(os.environ.get("SLURM_NODEID", "0")), f"tcp://{first}:{port}"


@contextlib.contextmanager
def cpu_ddp(device: str) -> Iterator[None]:
    """detectron2's ``DefaultTrainer`` wraps the model with ``create_ddp_model``, which passes
    ``device_ids=[local_rank]``: torch's DDP accepts that only for a GPU module. On CPU ranks (gloo) the
    wrapper gets ``device_ids=None``, detectron2's own function otherwise unchanged."""
    if device != "cpu":
        yield
        return
    import detectron2.engine.defaults as defaults

    create = defaults.create_ddp_model
    defaults.create_ddp_model = functools.partial(create, device_ids=None)
    try:
        yield
    finally:
        defaults.create_ddp_model = create


def progress_writer(workdir: Path, trainer: Any) -> Any:
    """A detectron2 ``EventWriter`` (run by its ``PeriodicWriter`` hook) writing the engine's progress lines to
    ``log.txt`` (``adapters.engine.progress``), the same lines as every adapter's. Built inside the trainer's
    ``__init__``, before ``resume_or_load``: the start iteration is read at the first write."""
    from detectron2.utils.events import EventWriter, get_event_storage

    from adapters.engine.progress import ProgressLogger

    class ProgressWriter(EventWriter):
        def __init__(self) -> None:
            self.logger: ProgressLogger | None = None

        def write(self) -> None:
            storage = get_event_storage()
            if storage.iter >= trainer.max_iter:  # detectron2's after_train writes once more, at iter = max_iter
                return
            if self.logger is None:
                start = trainer.start_iter
                self.logger = ProgressLogger(workdir, trainer.max_iter, start_iteration=start, every=1)
                if start:  # DefaultTrainer resumed from its last_checkpoint (writers live on the main process)
                    pointer = (Path(workdir) / "last_checkpoint").read_text(encoding="utf-8").strip()
                    self.logger.note(f"resuming from {Path(pointer).name} at iteration {start}/{trainer.max_iter}")
            latest = storage.latest()
            losses = {k: float(v[0]) for k, v in latest.items() if k.startswith("loss")}
            self.logger(storage.iter, losses, float(latest.get("lr", (0.0,))[0]), force=True)

    return ProgressWriter()


class Detectron2PredictionModel:
    """A loaded detectron2 model behind ``adapters.prediction.PredictionModel``."""

    background = "last"

    def __init__(self, model: Any, cfg: Any) -> None:
        self.model, self.cfg = model, cfg
        self.predictor = model.roi_heads.box_predictor
        self.detections_per_image = cfg.TEST.DETECTIONS_PER_IMAGE

    def uncap(self) -> None:
        # FastRCNNOutputLayers caps detections with its own copy of TEST.DETECTIONS_PER_IMAGE
        self.detections_per_image = self.predictor.test_topk_per_image = UNCAPPED_DETECTIONS_PER_IMAGE

    def set_view(self, view: Any) -> None:
        self.predictor.view = view

    def set_detection_filter(self, keep: Any) -> bool:
        return False  # every detection gets its mask; the per-class top-k selection follows

    def images(self, split: LvisSplit, *, detections: bool) -> Iterator[ImagePrediction]:
        import torch
        from detectron2.data import detection_utils
        from detectron2.data import transforms as T

        size = self.cfg.INPUT.MIN_SIZE_TEST
        resize = T.ResizeShortestEdge([size, size], self.cfg.INPUT.MAX_SIZE_TEST)
        with torch.no_grad():
            for record in split.images:
                image = detection_utils.read_image(str(record.path), format=self.cfg.INPUT.FORMAT)
                resized = resize.get_transform(image).apply_image(image)
                tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
                self.predictor.last_inference = []
                (out,) = self.model([{"image": tensor, "height": record.height, "width": record.width}])
                scored = []
                for (h, w), boxes, probs in self.predictor.last_inference:
                    scaled = boxes.clone()
                    scaled[:, [0, 2]] *= record.width / w
                    scaled[:, [1, 3]] *= record.height / h
                    scored.append((scaled.numpy(), probs.numpy()))
                prediction = ImagePrediction(record, scored_rois=scored)
                if detections:
                    inst = out["instances"].to("cpu")
                    prediction.masks = inst.pred_masks.numpy() if inst.has("pred_masks") else None
                    prediction.boxes, prediction.scores = inst.pred_boxes.tensor.numpy(), inst.scores.numpy()
                    prediction.classes = inst.pred_classes.numpy()
                yield prediction
