"""torchvision adapter (the CPU default): Mask R-CNN / Faster R-CNN with a ResNet-FPN backbone whose box
branch is the ltbench ``BoxHead`` of the run's method (``model.py``, ``roi_heads.py``).

Training is ``adapters.engine.Trainer`` with the five shared hooks; Lightning Fabric runs the device, the
data-parallel ranks and mixed precision. Background convention ``"first"``: label 0 is background.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters import checkpoints as ckpt
from adapters.engine import hooks, preemption
from adapters.engine.randomness import iteration_seed, rng_state, seed_everything, set_rng_state
from adapters.engine.stream import IndexStream, RankBatches, drawn_images, epoch_order, rank_slice
from adapters.engine.trainer import Trainer
from adapters.interface import Adapter, DataPaths, has_masks, record_regulariser, run_label, schedule_of, training_sampler
from adapters.prediction import UNCAPPED_DETECTIONS_PER_IMAGE, ImagePrediction, predict_view
from adapters.records import LvisSplit, instance_masks, read_image
from adapters.torchvision.model import build_model
from adapters.wiring import build_stage2_head, keep_batchnorm_in_eval, unfreeze_for_finetune
from ltbench.errors import LtbenchError


class TorchvisionAdapter(Adapter):
    name = "torchvision"
    background = "first"
    SUPPORTED_DETECTORS = ("mask_rcnn", "faster_rcnn")  # model.build_model; no cascade or HTC in torchvision
    SUPPORTED_BACKBONES = ("r18_fpn", "r34_fpn", "r50_fpn", "r101_fpn")

    #: Prediction fast path (class-selective mask logits, chunked paste + one RLE call per chunk). False
    #: gives the straightforward torchvision path; tests compare the two.
    fast_predict = True
    #: Per-class top-k mode: drop detections that cannot reach their class's top k before their masks are
    #: computed (``prediction.StreamingTopK``). False masks every detection first; tests compare the two.
    stream_top_k = True
    #: Masks pasted at once (bounds memory: a chunk is ``chunk * H * W`` floats at the original size).
    paste_chunk = 64
    #: Images per forward at prediction, per device (fixed: the batch composition changes the padded input).
    predict_batch = {"cpu": 2, "cuda": 8}

    # -- training --------------------------------------------------------------------------------
    def train(self, run_config: dict, workdir: Path, data: DataPaths, *, stage1_workdir: Path | None = None,
              init_workdir: Path | None = None, device: str | None = None, precision: str | None = None, ranks: int = 1) -> Path:
        import torch

        from adapters.engine.devices import loader_workers, resolve_device, resolve_precision, training_environment
        from adapters.engine.fabric import build_fabric, world_from_env
        from adapters.engine.schedule import epoch_note, sampler_epoch_images, split_batch
        from adapters.torchvision.data import TrainingImages, hflip
        from ltbench.io import write_json

        start = ckpt.start_training(run_config, workdir, data, stage1_workdir)
        if start.finished is not None:
            return start.finished
        workdir, split = start.workdir, start.split
        seed = int(run_config.get("seed", 0))
        seed_everything(seed)
        stage2 = run_config.get("stage2")
        if stage2:
            model = self._stage2_model(run_config, split, start.stage1_chain, ckpt.load_checkpoint(start.stage1_checkpoint),
                                       report_dir=workdir)
            if not getattr(model.roi_heads.box_head, "requires_training", True):
                write_json(workdir / "run_config.json", run_config)
                return self._finish_without_training(run_config, workdir, model, split)
        else:
            model = build_model(run_config, split)
            source = ckpt.init_checkpoint(run_config, init_workdir)
            if source is not None and ckpt.last_checkpoint(workdir) is None:
                ckpt.load_matching(model, ckpt.load_checkpoint(source)["model"], what=f"{source} (init_from)")
        write_json(workdir / "run_config.json", run_config)
        schedule = schedule_of(run_config, stage2=bool(stage2))
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise LtbenchError("the model has no trainable parameter", path=run_label(run_config), key="stage2")
        optimizer = torch.optim.SGD(params, lr=float(schedule["lr"]), momentum=float(schedule["momentum"]),
                                    weight_decay=float(schedule["weight_decay"]))

        scale = str(run_config.get("scale", "smoke"))
        device = resolve_device(device, scale=scale)
        precision = resolve_precision(run_config, device, precision)
        fabric = build_fabric(device, precision)
        if fabric.world_size != ranks:
            raise LtbenchError(f"{fabric.world_size} processes joined a training of {ranks} ranks", key="--ranks",
                               expected="ltbench train --ranks N started once (it launches the N ranks itself)")
        per_rank, schedule, note = split_batch(schedule, fabric.world_size)
        global_batch = int(schedule["batch_size"])
        workers = loader_workers(schedule, scale=scale, local_ranks=world_from_env().local_size)
        training = training_environment(device, precision, world_size=fabric.world_size, per_rank_batch=per_rank,
                                        total_batch=global_batch, workers=workers, notes=[note] if note else [])
        sampler = training_sampler(run_config)
        bilevel = (sampler or {}).get("name") == "bilevel"
        # The bi-level sampler draws class indices (so the sampled class is the RoI label space's).
        categories = [set(r.classes.tolist()) for r in split.images] if bilevel else [r.category_ids for r in split.images]
        # torchvision follows detectron2's RFS (stochastic rounding) unless the run says otherwise
        order = epoch_order(sampler, categories, seed, batch_size=global_batch, default_rounding="stochastic")
        if not bilevel:  # what the sampler feeds the whole run, per frequency group (regression check: train.sampler.*)
            training["sampler"] = drawn_images(order, categories, split.class_stats, int(schedule["iterations"]) * global_batch)
        if "epoch_images" in schedule:  # the exact epoch of this data vs the plan's (assumption rfs-epoch-size)
            epoch_text = epoch_note(schedule, sampler_epoch_images(sampler, categories, default_rounding="stochastic"))
            training["notes"] += [epoch_text] if epoch_text else []
        stream = IndexStream(order)  # the checkpointed position: one global batch per step

        resume_from = ckpt.last_checkpoint(workdir)
        state = None
        if resume_from is not None:
            state = ckpt.load_checkpoint(resume_from)
            if state.get("run_id") not in (None, run_config.get("id")):
                raise LtbenchError(f"work directory holds a checkpoint of run {state.get('run_id')!r}", path=resume_from,
                                   expected=f"a checkpoint of run {run_config.get('id')!r}", hint="use a fresh --workdir for each run")
            model.load_state_dict(state["model"])
            stream.load_state_dict(state["sampler"])
        module = model
        model, optimizer = fabric.setup(model, optimizer)
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            set_rng_state(state["rng"])
        start_iter = int(state["iteration"]) if state is not None else 0

        loader = torch.utils.data.DataLoader(
            TrainingImages(split, with_masks=has_masks(run_config)),
            batch_sampler=RankBatches(order, stream.state_dict(), global_batch, fabric.global_rank, fabric.world_size),
            num_workers=workers, collate_fn=list, pin_memory=device == "cuda", persistent_workers=workers > 0,
        )
        head = module.roi_heads.box_head

        rank, world = fabric.global_rank, fabric.world_size

        def step(batch: list) -> dict:
            stream.take(global_batch)
            images, targets = [], []
            if bilevel:
                module.roi_heads.bilevel_classes = [int(sampled) for _, _, sampled in batch]
            for image, target, _ in batch:
                if flips.popleft():
                    image, target = hflip(image, target)
                images.append(image)
                targets.append(target)
            losses = model(fabric.to_device(images), fabric.to_device(targets))
            if stage2:  # frozen parts still produce (constant) losses: keep only what trains
                losses = {k: v for k, v in losses.items() if v.requires_grad}
            return losses

        def save(iteration: int, final: bool) -> Path:
            path = workdir / (ckpt.FINAL_CHECKPOINT if final else ckpt.checkpoint_name(iteration))
            if final:  # PCB: what its regulariser did (on every rank: summed over processes)
                record_regulariser(training, module, split.category_ids)
            if fabric.global_rank == 0:
                snapshot = {"run_id": run_config.get("id"), "iteration": iteration, "model": module.state_dict(),
                            "optimizer": optimizer.state_dict(), "sampler": stream.state_dict(), "rng": rng_state(),
                            "schedule": schedule, "framework": self.name, "category_ids": split.category_ids}
                ckpt.save_checkpoint(workdir, path.name, snapshot)
                if final:
                    ckpt.write_done(workdir, run_config, path.name, iteration, self.name, training)
                ckpt.prune_checkpoints(workdir, ckpt.keep_checkpoints(schedule, run_label(run_config)), finished=final)
            fabric.barrier()
            return path

        trainer = Trainer(fabric=fabric, model=model, module=module, optimizer=optimizer, batches=iter(loader), step=step,
                          max_iter=int(schedule["iterations"]), start_iter=start_iter, grad_clip=schedule.get("grad_clip"),
                          where=str(workdir))
        flips: collections.deque = collections.deque()

        class GlobalFlips(hooks.HookBase):
            """After the re-seed: the horizontal flips of the whole global batch, drawn from rank 0's stream
            (a generator with rank 0's seed on the other ranks), and this rank's share of them: every image gets
            the flip it would get in a single-process run, whatever the number of ranks."""

            def before_step(self) -> None:
                generator = None
                if rank:
                    generator = torch.Generator().manual_seed(iteration_seed(seed, self.trainer.iter, 0))
                draws = [bool(torch.rand((), generator=generator) < 0.5) for _ in range(global_batch)]
                flips.extend(rank_slice(draws, rank, world))

        trainer.register_hooks([
            hooks.Reseed(seed),
            GlobalFlips(),
            hooks.LRScheduler(schedule),
            hooks.ProgressGate(head.set_progress, global_batch, len(order(0))),
            hooks.PeriodicWriter(workdir),
            hooks.PeriodicCheckpointer(save, int(schedule["checkpoint_period"]), workdir=workdir,
                                       wall_seconds=preemption.checkpoint_seconds(schedule, run_label(run_config))),
        ])
        trainer.train()
        return workdir / ckpt.FINAL_CHECKPOINT

    def _stage2_model(self, run_config: dict, split: LvisSplit, chain: list[dict], stage1_state: dict | None,
                      report_dir: Path | None = None) -> Any:
        """The stage-1 model (``adapters.stage1``: built from the stage-1 chain; ``stage1_state`` loaded by
        name when given, box-head tensors of another layout re-initialised and named in ``report_dir``) with
        its box head replaced by ``build_stage2(run_config, stage1_head)``. Everything outside the new
        head is frozen, BatchNorm statistics included: stage 2 learns only the new head's parameters."""
        from adapters import stage1 as s1

        architecture = s1.stage1_architecture(run_config, chain)
        model = build_model(architecture[0], split)
        for config in architecture[1:]:  # the stage-2 heads the kept stage-1 model was trained with
            model.roi_heads.box_head = build_stage2_head(config, model.roi_heads.box_head, split)
        report: dict = {}
        if stage1_state is not None:
            report = s1.load_stage1(model, stage1_state["model"], ("roi_heads.box_head.",), what=str(chain[-1].get("id")))
        for p in model.parameters():
            p.requires_grad_(False)
        before = {k: v.detach().clone() for k, v in model.roi_heads.box_head.state_dict().items()}
        new_head = build_stage2_head(run_config, model.roi_heads.box_head, split)
        model.roi_heads.box_head = new_head
        if stage1_state is not None:
            report.update(s1.stage2_changes(before, new_head, "roi_heads.box_head."))
            s1.write_report(report_dir, run_config, architecture, report)
        trains = getattr(new_head, "requires_training", True)
        if trains and not any(p.requires_grad for p in new_head.parameters()):
            raise LtbenchError("build_stage2 returned a head without trainable parameters", key="stage2", path=run_label(run_config))
        unfreeze_for_finetune(model, run_config, "roi_heads.box_head.", ("backbone.body.conv1.", "backbone.body.bn1."), "backbone.body.layer{}.")
        keep_batchnorm_in_eval(model)
        return model

    def _finish_without_training(self, run_config: dict, workdir: Path, model: Any, split: LvisSplit) -> Path:
        """Stage-2 heads without an optimiser (tau-norm; NCM after its one statistics pass over the
        training images, in training mode so that RoIs are sampled and labelled as in training)."""
        import torch

        head = model.roi_heads.box_head
        if getattr(head, "fit_pass", False):
            model.train()
            model.roi_heads.fit_pass = True
            seed_everything(int(run_config.get("seed", 0)))
            with torch.no_grad():
                for record in split.images:
                    target = {"boxes": torch.from_numpy(record.boxes), "labels": torch.from_numpy(record.classes) + 1}
                    if has_masks(run_config):
                        target["masks"] = instance_masks(record)
                    model([read_image(record)], [target])
            model.roi_heads.fit_pass = False
        state = {"run_id": run_config.get("id"), "iteration": 0, "model": model.state_dict(), "framework": self.name,
                 "category_ids": split.category_ids}
        final = ckpt.save_checkpoint(workdir, ckpt.FINAL_CHECKPOINT, state)
        ckpt.write_done(workdir, run_config, ckpt.FINAL_CHECKPOINT, 0, self.name)
        return final

    # -- prediction ------------------------------------------------------------------------------
    def load_for_predict(self, run_config: dict, workdir: Path, split_for_classes: LvisSplit) -> Any:
        from adapters.stage1 import read_chain as read_stage1_chain

        workdir = Path(workdir)
        checkpoint = ckpt.final_checkpoint(workdir)
        state = ckpt.load_checkpoint(checkpoint)
        if run_config.get("stage2"):
            model = self._stage2_model(run_config, split_for_classes, read_stage1_chain(workdir), None)
        else:
            model = build_model(run_config, split_for_classes)
        model.load_state_dict(state["model"])
        if state.get("category_ids") and list(state["category_ids"]) != split_for_classes.category_ids:
            raise LtbenchError("the model was trained on different categories than the prediction split lists", path=checkpoint,
                               key="category_ids", expected=f"{len(state['category_ids'])} categories with the same ids")
        model.eval()
        return model

    def predict(self, run_config: dict, view_config: dict, workdir: Path, data: DataPaths, *, split: str = "val", out_dir: Path,
                device: str | None = None) -> dict:
        from adapters.engine.devices import resolve_device

        device = resolve_device(device, scale=str(run_config.get("scale", "smoke")))
        return predict_view(self, run_config, view_config, workdir, data, split=split, out_dir=out_dir,
                            load=lambda train_split: TorchvisionPredictionModel(
                                self, self.load_for_predict(run_config, workdir, train_split).to(device), device))


class TorchvisionPredictionModel:
    """A loaded torchvision model behind ``adapters.prediction.PredictionModel``."""

    background = "first"

    def __init__(self, adapter: TorchvisionAdapter, model: Any, device: str = "cpu") -> None:
        self.adapter, self.model, self.device = adapter, model, device
        self.detections_per_image = model.roi_heads.detections_per_img

    def uncap(self) -> None:
        self.model.roi_heads.detections_per_img = self.detections_per_image = UNCAPPED_DETECTIONS_PER_IMAGE

    def set_view(self, view: Any) -> None:
        self.model.roi_heads.view = view

    def set_detection_filter(self, keep: Any) -> bool:
        if keep is not None and not self.adapter.stream_top_k:
            return False
        self.model.roi_heads.detection_filter = keep
        return True

    def images(self, split: LvisSplit, *, detections: bool) -> Iterator[ImagePrediction]:
        """Images ``predict_batch`` at a time through the model (the same batches on every run)."""
        import torch
        from torchvision.models.detection.transform import resize_boxes

        from adapters.torchvision.data import masks_to_rles

        roi = self.model.roi_heads
        roi.fast_masks = roi.keep_mask_probs = bool(self.adapter.fast_predict)
        batch = self.adapter.predict_batch[self.device]
        try:
            with torch.no_grad():
                for start in range(0, len(split.images), batch):
                    records = split.images[start:start + batch]
                    outputs = self.model([read_image(r).to(self.device) for r in records])
                    info = roi.last_inference
                    for j, (record, out) in enumerate(zip(records, outputs)):
                        size = (record.height, record.width)
                        on_device, out = out, {k: v.cpu() for k, v in out.items() if k != "mask_probs"}
                        rois = resize_boxes(info["proposals"][j], info["image_shapes"][j], size).cpu()
                        prediction = ImagePrediction(record, scored_rois=[(rois.numpy(), info["probs"][j].cpu().numpy())])
                        if detections:
                            if "mask_probs" in on_device:
                                # pasted where the model ran (a GPU pastes 300 masks of 800 px fast), encoded on the CPU
                                prediction.rles = masks_to_rles(on_device["mask_probs"], on_device["boxes"], size, self.adapter.paste_chunk)
                            elif "masks" in out:
                                prediction.masks = (out["masks"][:, 0] > 0.5).numpy()
                            prediction.boxes, prediction.scores = out["boxes"].numpy(), out["scores"].numpy()
                            prediction.classes = (out["labels"] - 1).numpy()
                        yield prediction
        finally:
            roi.keep_mask_probs = False

