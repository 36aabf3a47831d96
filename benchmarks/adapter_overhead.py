"""Training-iteration time through the ltbench adapters vs the frameworks' plain models.

    .venv/bin/python benchmarks/adapter_overhead.py [--iters 20] [--warmup 3] [--threads 2] [--no-mmdet]
    .venv/bin/python benchmarks/adapter_overhead.py --predict-run R.json --predict-workdir DIR [--repeats 3]

The second form times ``ltbench predict``'s image loop (torchvision) on a trained run's val split: the
fast path (own-class mask logits, chunked paste, one RLE call per chunk) against the straightforward
torchvision path, interleaved, CPU seconds per image, and checks that both write identical detections.

What is compared, on the same images, batch and model size (the smoke scale of docs/CONTRACTS.md:
R-18 FPN 64 channels, 128-px images, 300/150 RPN proposals, 64 RoIs per image, batch 4):

- torchvision: ``adapters.torchvision_adapter.build_model`` (the ltbench BoxHead inside
  ``LtbenchRoIHeads``) vs torchvision's own ``MaskRCNN`` (``TwoMLPHead`` + ``FastRCNNPredictor`` +
  ``fastrcnn_loss``) with the same backbone, sizes and hidden width. Both run the identical loop:
  read images, forward, backward, SGD step (the model-level overhead of the BoxHead wiring). A third
  line times ``TorchvisionAdapter.train`` end to end (our loop: per-iteration re-seeding, LR setting,
  progress logging, RNG/sampler bookkeeping), per iteration after its first ``warmup`` iterations.
- mmdet (if importable): the wheel's LVIS Mask R-CNN config with our ``LtbenchBBoxHead`` vs the same
  config with mmdet's own ``Shared2FCBBoxHead``, timed on ``model.loss`` + backward + step over the same
  pipeline outputs.

Both sides start from identical weights (ours copied into the plain model, head tensors renamed), see the
same images and re-seed torch per iteration, so they sample the same RoIs and do the same mask-head work;
without that, a different initialisation changes the number of positive RoIs and the timings by +-20%.
Times are medians over ``iters`` iterations after ``warmup``; ratio = ours / plain; overhead goal <= 5%.
CPU timings on a shared machine are noisy: the two sides are interleaved iteration by iteration so that
load changes hit both alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

SMOKE_MODEL = {
    "min_size": 128, "max_size": 192, "backbone_depth": 18, "fpn_channels": 64, "box_head_hidden": 1024, "mask_head_channels": 64,
    "rpn_pre_nms_top_n_train": 300, "rpn_post_nms_top_n_train": 150, "rpn_pre_nms_top_n_test": 300,
    "rpn_post_nms_top_n_test": 150, "box_batch_size_per_image": 64, "detections_per_img": 300, "score_thresh": 0.0001,
}


def interleaved(step_a, step_b, iters: int, warmup: int) -> tuple[list[float], list[float]]:
    times_a, times_b = [], []
    for i in range(warmup + iters):
        for step, out in ((step_a, times_a), (step_b, times_b)):
            t0 = time.perf_counter()
            step(i)
            if i >= warmup:
                out.append(time.perf_counter() - t0)
    return times_a, times_b


def report(name: str, ours: list[float], plain: list[float]) -> float:
    a, b = statistics.median(ours), statistics.median(plain)
    ratio = a / b
    print(f"{name:<44} ours {a * 1000:8.1f} ms/it   plain {b * 1000:8.1f} ms/it   ratio {ratio:.3f}   overhead {100 * (ratio - 1):+.1f}%")
    return ratio


TV_HEAD_KEYS = {  # ours -> torchvision's own box head / predictor
    "roi_heads.box_head.features.fc6.": "roi_heads.box_head.fc6.",
    "roi_heads.box_head.features.fc7.": "roi_heads.box_head.fc7.",
    "roi_heads.box_head.cls_score.": "roi_heads.box_predictor.cls_score.",
    "roi_heads.box_head.bbox_pred.": "roi_heads.box_predictor.bbox_pred.",
}
MM_HEAD_KEYS = {  # ours -> mmdet's Shared2FCBBoxHead
    "roi_head.bbox_head.box_head.features.fc6.": "roi_head.bbox_head.shared_fcs.0.",
    "roi_head.bbox_head.box_head.features.fc7.": "roi_head.bbox_head.shared_fcs.1.",
    "roi_head.bbox_head.box_head.cls_score.": "roi_head.bbox_head.fc_cls.",
    "roi_head.bbox_head.box_head.bbox_pred.": "roi_head.bbox_head.fc_reg.",
}


def copy_weights(ours, plain, head_keys: dict) -> None:
    """Give the plain model exactly our weights (same initial state: same proposals, same positives, same
    mask-head work), so that the timings differ only by the code path."""
    renamed = {}
    for key, value in ours.state_dict().items():
        for src, dst in head_keys.items():
            if key.startswith(src):
                key = dst + key[len(src):]
        renamed[key] = value
    missing, unexpected = plain.load_state_dict(renamed, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weights do not map: missing {missing[:5]}, unexpected {unexpected[:5]}")


def torchvision_models(run: dict, split):
    import torch
    import torchvision
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    from adapters.torchvision_adapter import build_model

    torch.manual_seed(0)
    ours = build_model(run, split)
    m = run["model"]
    resnet = torchvision.models.resnet18(weights=None, norm_layer=torch.nn.BatchNorm2d)
    backbone = BackboneWithFPN(resnet, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}, [64, 128, 256, 512],
                               m["fpn_channels"], extra_blocks=LastLevelMaxPool())
    c = split.num_classes
    ch = min(256, m["fpn_channels"])
    plain = MaskRCNN(
        backbone, num_classes=None, min_size=m["min_size"], max_size=m["max_size"],
        rpn_pre_nms_top_n_train=m["rpn_pre_nms_top_n_train"], rpn_post_nms_top_n_train=m["rpn_post_nms_top_n_train"],
        box_batch_size_per_image=m["box_batch_size_per_image"], box_detections_per_img=300, box_score_thresh=1e-4,
        box_head=TwoMLPHead(m["fpn_channels"] * 49, m["box_head_hidden"]),
        box_predictor=FastRCNNPredictor(m["box_head_hidden"], c + 1),
        mask_head=MaskRCNNHeads(m["fpn_channels"], (ch,) * 4, 1), mask_predictor=MaskRCNNPredictor(ch, ch, c + 1),
    )
    return ours, plain


def bench_torchvision(data, iters: int, warmup: int) -> list[float]:
    import torch

    from adapters import base, get_adapter
    from adapters_support import tiny_run

    run = tiny_run(id="bench-tv-00000000", model=SMOKE_MODEL, schedule={"batch_size": 4})
    split = base.load_lvis_split(data.train, data.image_root)
    ours, plain = torchvision_models(run, split)
    copy_weights(ours, plain, TV_HEAD_KEYS)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    print(f"torchvision: parameters ours {n_ours:,} vs plain {n_plain:,} (same architecture: {n_ours == n_plain})")

    def make_step(model):
        opt = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
        model.train()

        def step(i: int, indices: list[int] | None = None) -> None:
            images, targets = [], []
            for k in range(4):
                r = split.images[indices[k] if indices is not None else (4 * i + k) % len(split.images)]
                images.append(base.read_image(r))
                targets.append({"boxes": torch.from_numpy(r.boxes), "labels": torch.from_numpy(r.classes) + 1,
                                "masks": base.instance_masks(r)})
            torch.manual_seed(i)  # same RoI sampling draws on both sides
            loss = sum(model(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step

    ratios = [report("torchvision model (BoxHead vs TwoMLPHead)", *interleaved(make_step(ours), make_step(plain), iters, warmup))]

    # End to end through TorchvisionAdapter.train (our loop: sampler stream, re-seeding, LR, progress,
    # flips, checks). A plain step runs just before each of the adapter's steps, inside the same wrapper,
    # so both see the same machine load; adapter time per iteration = next plain start - this plain end.
    with tempfile.TemporaryDirectory() as tmp:
        total = warmup + iters + 1
        run_e2e = tiny_run(id="bench-tv-e2e-00000000", model=SMOKE_MODEL,
                           schedule={"batch_size": 4, "iterations": total, "lr": 0.002, "checkpoint_period": 10**9, "warmup_iters": 1, "steps": []})
        plain_step = None
        plain_start: list[float] = []
        plain_end: list[float] = []
        real_loop = base.run_training_loop

        def timed_loop(run_config, workdir, schedule, parts, **kw):
            step = parts.step

            fresh_plain = torchvision_models(run_e2e, split)[1]
            copy_weights(parts.model, fresh_plain, TV_HEAD_KEYS)  # the adapter's initial weights
            plain_step = make_step(fresh_plain)

            def stamped(items, iteration):
                plain_start.append(time.perf_counter())
                plain_step(iteration, items)  # the same images as the adapter's step
                plain_end.append(time.perf_counter())
                return step(items, iteration)

            parts.step = stamped
            return real_loop(run_config, workdir, schedule, parts, log_every=10**9, **kw)

        base.run_training_loop = timed_loop
        try:
            get_adapter("torchvision").train(run_e2e, Path(tmp) / "w", data)
        finally:
            base.run_training_loop = real_loop
        ours_e2e = [plain_start[k + 1] - plain_end[k] for k in range(warmup, total - 1)]
        plain_e2e = [plain_end[k] - plain_start[k] for k in range(warmup, total - 1)]
        ratios.append(report("torchvision adapter.train vs plain loop", ours_e2e, plain_e2e))
    return ratios


def bench_mmdet(data, iters: int, warmup: int) -> list[float]:
    import copy

    import torch
    from mmdet.registry import DATASETS, MODELS
    from mmengine.dataset import pseudo_collate

    from adapters import base
    from adapters.mmdet_adapter import _dataset_cfg, _quiet_init, build_config, register
    from adapters_support import tiny_run

    register()
    run = tiny_run(id="bench-mm-00000000", framework="mmdet", model=SMOKE_MODEL)
    split = base.load_lvis_split(data.train, data.image_root)
    cfg = build_config(run, split, data)
    plain_cfg = copy.deepcopy(cfg.model)
    ours_head = cfg.model.roi_head.bbox_head
    plain_cfg.roi_head.bbox_head = dict(
        type="Shared2FCBBoxHead", in_channels=ours_head["in_channels"], fc_out_channels=SMOKE_MODEL["box_head_hidden"],
        roi_feat_size=7, num_classes=split.num_classes, bbox_coder=ours_head["bbox_coder"], reg_class_agnostic=False,
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0), loss_bbox=ours_head["loss_bbox"],
    )
    models = []
    for model_cfg in (cfg.model, plain_cfg):
        torch.manual_seed(0)
        model = MODELS.build(model_cfg)
        _quiet_init(model)
        models.append(model)
    copy_weights(models[0], models[1], MM_HEAD_KEYS)
    dataset = DATASETS.build(_dataset_cfg(cfg, str(data.train), test_mode=False))
    print(f"mmdet: parameters ours {sum(p.numel() for p in models[0].parameters()):,} vs plain {sum(p.numel() for p in models[1].parameters()):,}")

    def make_step(model):
        opt = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
        model.train()

        def step(i: int) -> None:
            torch.manual_seed(i)
            samples = [dataset[(4 * i + k) % len(dataset)] for k in range(4)]
            batch = model.data_preprocessor(pseudo_collate(samples), True)
            losses = model.loss(batch["inputs"], batch["data_samples"])
            loss = sum(v for k, v in losses.items() if "loss" in k and isinstance(v, torch.Tensor))
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step

    return [report("mmdet model (LtbenchBBoxHead vs Shared2FC)", *interleaved(make_step(models[0]), make_step(models[1]), iters, warmup))]


def bench_predict(run_path: Path, workdir: Path, repeats: int) -> int:
    """CPU s/img of TorchvisionAdapter._run_split, fast vs straightforward path; 1 if outputs differ."""
    import json

    from adapters import base, get_adapter
    from ltbench.commands.predict import resolve_data
    from ltbench.io import read_json

    run = read_json(run_path)
    data = resolve_data(run, run_path, data_root=None, train_ann=None, val_ann=None, image_root=None)
    adapter = get_adapter("torchvision")
    train = base.load_lvis_split(Path(data.train), Path(data.image_root))
    val = base.load_lvis_split(Path(data.val), Path(data.image_root), keep_empty=True)
    model = adapter._load_for_predict(run, workdir, train)
    times: dict[bool, list[float]] = {False: [], True: []}
    outputs: dict[bool, str] = {}
    for _ in range(repeats):
        for fast in (False, True):
            adapter.fast_predict = fast
            start = time.process_time()
            result = adapter._run_split(model, val, train.category_ids, detections=True)
            times[fast].append((time.process_time() - start) / len(val.images))
            outputs[fast] = json.dumps(result["detections"])
    for fast, label in ((False, "straightforward"), (True, "fast")):
        print(f"{label:16s} CPU s/img: median {statistics.median(times[fast]):.3f} ({', '.join(f'{t:.3f}' for t in times[fast])})")
    same = outputs[False] == outputs[True]
    print(f"{len(val.images)} images; detections identical: {same}")
    return 0 if same else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)  # 1: on a shared machine 2 threads oversubscribe
    parser.add_argument("--no-mmdet", action="store_true")
    parser.add_argument("--predict-run", type=Path, default=None, help="run config (JSON) of a trained torchvision run")
    parser.add_argument("--predict-workdir", type=Path, default=None, help="its work directory (with done.json)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    if args.predict_run or args.predict_workdir:
        if not (args.predict_run and args.predict_workdir):
            parser.error("--predict-run and --predict-workdir go together")
        torch.set_num_threads(args.threads)
        return bench_predict(args.predict_run, args.predict_workdir, args.repeats)

    from adapters.mmdet_adapter import mmdet_available
    from adapters_support import make_tiny_lvis

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.iters} timed iterations after {args.warmup} warm-up")
    with tempfile.TemporaryDirectory() as tmp:
        data = make_tiny_lvis(Path(tmp), size=128)
        ratios = bench_torchvision(data, args.iters, args.warmup)
        ok, reason = mmdet_available()
        if args.no_mmdet:
            print("mmdet: skipped (--no-mmdet)")
        elif not ok:
            print(f"mmdet: skipped ({reason})")
        else:
            ratios += bench_mmdet(data, args.iters, args.warmup)
    worst = max(ratios)
    print(f"worst ratio {worst:.3f}: {'within' if worst <= 1.05 else 'ABOVE'} the 5% overhead goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
