"""GPU check at paper settings (issue 12): does one GPU node train and predict the paper-scale model through
each framework's adapter, how fast, and in how much memory? Meant to finish in at most 8 minutes on one GPU.

    benchmarks/gpu_check.sh [--iterations 200] [--frameworks torchvision,mmdet,detectron2] [--heads softmax,pcb]
                            [--image-size 1333x800] [--predict-images 20] [--device cuda] [--out gpu_check.json]
    benchmarks/gpu_check.sh --device cpu --iterations 2 --image-size 128 --predict-images 2   # tests the script
    benchmarks/gpu_check.sh --device cpu --precision 32-true ... --frameworks mmdet           # mmdet on a CPU

For every framework (torchvision, mmdet, and detectron2 where it imports; a framework that does not import gets a
row saying "not installed") and every head (``softmax``: PCB Table 2's Softmax baseline; ``pcb``: the same with
PCB's 3-step iterative head and its regulariser, alpha 0.4, momentum 0.99), one worker process

1. trains ``--iterations`` iterations through ``adapter.train(run, workdir, data, device=..., precision=...)``, the
   call ``ltbench train`` makes: images/s over the iterations after the first progress line (so start-up, the
   first iterations' autotuning and the final checkpoint are left out), the peak GPU memory
   (``torch.cuda.max_memory_allocated``), and the loss (the sum of the loss terms, from ``log.txt``'s progress
   lines) at the first and at the last progress line (iteration N/10, at most 20, and N);
2. predicts through ``adapter.predict(...)`` (``ltbench predict``) once on 1 image and once on
   ``--predict-images`` images, each call loading the model: images/s = (P - 1) / (t_P - t_1), so the model
   loading cancels out; detections per image (the cap is 300) and the peak GPU memory of the P-image call.

The table is printed as Markdown, with each row's wall time, and written with the settings as JSON to ``--out``.

What runs is a paper-scale run config of PCB's plan (``ltbench.plan.build_plan(papers=["pcb"], scale="paper")``,
the LVIS v0.5 rows of Table 2), unchanged except for what a short check on one GPU needs:

- Mask R-CNN R-50-FPN, 1230 classes (LVIS v0.5), multi-scale training (short side 640-800, long side at most
  1333), RPN/RoI sizes and the 300-detection cap as the plan has them; ``--image-size`` other than 1333x800
  scales the short sides and the long-side cap by height/800 (for tests on a CPU);
- 2 images per GPU (one GPU) with the paper's lr 0.02 for 16 images scaled linearly to 0.0025, warm-up
  min(500, N/4) iterations, no lr step, no periodic checkpoint (only the final one);
- float16 mixed precision (``16-mixed``) on CUDA; ``--device cpu`` runs ``bf16-mixed``, for testing the script
  (mmdet needs ``--precision 32-true`` there: under CPU bfloat16 autocast its RPN hands bfloat16 boxes to mmcv's
  CPU NMS, which takes float32 only);
- backbone weights: a random ResNet-50 written to the temporary folder (``zero_init_residual``, so that its
  frozen BatchNorm keeps activations bounded) in place of the ImageNet file, so that nothing is downloaded and
  the backbone is frozen exactly as with ImageNet weights (frozen BN; stem and first stage frozen). The losses
  show that training runs, not what a pretrained model would reach;
- PCB: its start gate set to iteration 0 instead of epoch 17 of 24. PCB's regulariser also waits until every
  class has been a foreground RoI; the check's training images cover all 1230 classes within about one
  epoch (103 images), and the ``notes`` column says how many classes had been seen at the end (1230: the
  regulariser ran for the rest of the run).

Data: synthetic, in the real LVIS layout, written to a temporary folder: ``annotations/lvis_v0.5_{train,val}.json``
with LVIS v0.5's 1230 category ids (names and synsets from ``ltbench.data.lvis_category_table`` where LVIS v1
shares the category), COCO-style ``train2017/<id>.jpg`` images of exactly ``--image-size`` pixels (so the largest
training scale is a full 1333x800 input), 12 instances per image (about LVIS's mean) drawn with the shapes and
colours of ``ltbench.data.synth`` (``ltbench.data.shapes`` polygons as segmentations). ``ltbench data synth``
itself cannot make this: its presets have at most 48 classes and square images of 128 px.

Budget: 8 minutes on one GPU for 2 frameworks x 2 heads at the defaults (200 iterations, 20 prediction images).
Estimated, not measured: this script has not been run on a GPU yet. Published figures for the same model on a
V100 in fp32 (detectron2's LVIS Mask R-CNN R-50-FPN: about 0.3 s per iteration of 2 images) make 200 iterations
about 1 minute per row, plus about 20 s of start-up, checkpoint and data per row and the predictions (300 masks
per image are pasted and RLE-encoded; about 1-2 images/s). The total is printed against the budget; when it is
over, lower ``--iterations`` (the images/s and memory figures need only a few dozen iterations).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FRAMEWORKS = ("torchvision", "mmdet", "detectron2")
HEADS = ("softmax", "pcb")
PAPER_SIZE = (1333, 800)
NUM_CLASSES = 1230  # LVIS v0.5
INSTANCES_PER_IMAGE = 12  # about LVIS's mean number of instances per image
TRAIN_IMAGES = math.ceil(NUM_CLASSES / INSTANCES_PER_IMAGE)  # every class in the first epoch
IMAGES_PER_GPU = 2
BUDGET_S = 8 * 60
PROGRESS = re.compile(r"^iter (\d+)/(\d+) loss=(\S+)")


@dataclass(frozen=True)
class DataPaths:
    """What ``adapters.interface.DataPaths`` asks for."""

    train: Path
    val: Path
    image_root: Path


def parse_size(text: str) -> tuple[int, int]:
    """``"1333x800"`` -> (width, height); ``"128"`` -> (128, 128)."""
    parts = text.lower().split("x")
    try:
        w, h = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"image size {text!r}: expected WIDTHxHEIGHT (1333x800) or one number") from None
    if w < 32 or h < 32 or len(parts) > 2:
        raise argparse.ArgumentTypeError(f"image size {text!r}: expected WIDTHxHEIGHT, each at least 32")
    return w, h


def parse_list(allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        names = [t.strip() for t in text.split(",") if t.strip()]
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated subset of {','.join(allowed)}")
        return names
    return parse


# --- data --------------------------------------------------------------------------------------------------
def make_data(root: Path, size: tuple[int, int], *, train_images: int, val_images: int, seed: int = 0) -> dict[str, Path]:
    """Synthetic LVIS v0.5-layout data under ``root`` (see the module docstring); returns the paths."""
    import numpy as np
    from PIL import Image, ImageDraw

    from ltbench.data.lvis_category_table import LVIS_CATEGORY_TABLE
    from ltbench.data.lvis_meta import lvis_frequency
    from ltbench.data.shapes import SHAPES, polygon_area, shape_polygons
    from ltbench.data.synth import PALETTE
    from ltbench.io import write_json

    width, height = size
    rng = np.random.default_rng(seed)
    known = {row[4]: (row[5], row[2]) for row in LVIS_CATEGORY_TABLE}  # v0.5 id -> (v0.5 name, synset)
    images: dict[str, list[dict]] = {"train": [], "val": []}
    annotations: dict[str, list[dict]] = {"train": [], "val": []}
    next_image, next_ann = 1, 1
    for split, count in (("train", train_images), ("val", val_images)):
        folder = root / "images" / f"{split}2017"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            if split == "train":  # classes in turn: every class appears within the first epoch
                classes = [1 + (i * INSTANCES_PER_IMAGE + j) % NUM_CLASSES for j in range(INSTANCES_PER_IMAGE)]
            else:
                classes = [int(c) for c in rng.integers(1, NUM_CLASSES + 1, INSTANCES_PER_IMAGE)]
            pixels = (rng.integers(95, 150) + rng.integers(-20, 21, size=(height, width, 3))).clip(0, 255).astype(np.uint8)
            image = Image.fromarray(pixels, "RGB")
            draw = ImageDraw.Draw(image)
            for cid in classes:
                side = float(rng.uniform(0.05, 0.35)) * min(width, height)
                aspect = float(rng.uniform(0.7, 1.4))
                w, h = max(4.0, side * aspect), max(4.0, side / aspect)
                cx, cy = float(rng.uniform(w / 2 + 1, width - w / 2 - 1)), float(rng.uniform(h / 2 + 1, height - h / 2 - 1))
                polygons = [[(round(x, 2), round(y, 2)) for x, y in poly] for poly in shape_polygons(SHAPES[cid % len(SHAPES)], cx, cy, w, h)]
                colour = PALETTE[(cid // len(SHAPES)) % len(PALETTE)][1]
                for poly in polygons:
                    draw.polygon(poly, fill=colour)
                xs = [x for poly in polygons for x, _ in poly]
                ys = [y for poly in polygons for _, y in poly]
                annotations[split].append({
                    "id": next_ann, "image_id": next_image, "category_id": cid,
                    "bbox": [round(min(xs), 2), round(min(ys), 2), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)],
                    "area": round(sum(polygon_area(poly) for poly in polygons), 2),
                    "segmentation": [[c for xy in poly for c in xy] for poly in polygons],
                })
                next_ann += 1
            rel = f"{split}2017/{next_image:012d}.jpg"
            image.save(root / "images" / rel, format="JPEG", quality=90)
            images[split].append({"id": next_image, "file_name": rel, "coco_url": f"http://images.cocodataset.org/{rel}",
                                  "height": height, "width": width, "license": 1,
                                  "neg_category_ids": [], "not_exhaustive_category_ids": []})
            next_image += 1
    image_count, instance_count = [0] * (NUM_CLASSES + 1), [0] * (NUM_CLASSES + 1)
    seen: set[tuple[int, int]] = set()
    for ann in annotations["train"]:
        instance_count[ann["category_id"]] += 1
        if (ann["image_id"], ann["category_id"]) not in seen:
            seen.add((ann["image_id"], ann["category_id"]))
            image_count[ann["category_id"]] += 1
    categories = []
    for cid in range(1, NUM_CLASSES + 1):
        name, synset = known.get(cid, (f"lvis_v0.5_category_{cid}", f"category_{cid}.n.01"))
        categories.append({"id": cid, "name": name, "synset": synset, "synonyms": [name], "def": "synthetic (gpu_check)",
                           "frequency": lvis_frequency(image_count[cid]), "image_count": image_count[cid],
                           "instance_count": instance_count[cid]})
    info = {"description": "ltbench gpu_check: synthetic LVIS v0.5-layout data", "version": "v0.5"}
    paths = {"image_root": root / "images"}
    for name, split, keep in (("train", "train", None), ("val", "val", None), ("val_first", "val", 1)):
        split_images = images[split][:keep] if keep else images[split]
        ids = {im["id"] for im in split_images}
        doc = {"info": info, "licenses": [{"id": 1, "name": "synthetic"}], "categories": categories, "images": split_images,
               "annotations": [a for a in annotations[split] if a["image_id"] in ids]}
        paths[name] = root / "annotations" / f"lvis_v0.5_{name}.json"
        write_json(paths[name], doc, indent=None)
    return paths


def write_backbone_weights(folder: Path, detectron2: bool) -> dict[str, Path]:
    """A random ResNet-50 (torchvision's layout; detectron2's too when asked) standing in for ImageNet weights."""
    import pickle

    import torch
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.resnet50(weights=None, zero_init_residual=True).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    paths = {"torchvision": folder / "resnet50-random.pth"}
    torch.save(state, paths["torchvision"])
    paths["mmdet"] = paths["torchvision"]  # mmdet loads torchvision's ResNet layout (torchvision://resnet50)
    if detectron2:  # detectron2's converter of torchvision ResNets (tools/convert-torchvision-to-d2.py), same renaming
        converted = {}
        for key, value in state.items():
            new = key if "layer" in key else "stem." + key
            for t in (1, 2, 3, 4):
                new = new.replace(f"layer{t}", f"res{t + 1}")
            for t in (1, 2, 3):
                new = new.replace(f"bn{t}", f"conv{t}.norm")
            new = new.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")
            converted[new] = value.numpy()
        paths["detectron2"] = folder / "resnet50-random-d2.pkl"
        with open(paths["detectron2"], "wb") as handle:
            pickle.dump({"model": converted, "__author__": "torchvision", "matching_heuristics": True}, handle)
    return paths


# --- run configs ---------------------------------------------------------------------------------------------
def is_head(config: dict, head: str) -> bool:
    """PCB Table 2's LVIS v0.5 Softmax row (``softmax``) or its PCB row with the 3-step head (``pcb``)."""
    if not (config.get("dataset") == "lvis_v0.5" and config.get("backbone") == "r50_fpn" and config.get("detector") == "mask_rcnn"
            and not config.get("stage2") and (config.get("sampler") or {}).get("name") == "random"
            and (config.get("loss") or {}).get("name") == "ce" and (config.get("classifier") or {}).get("name") == "linear"):
        return False
    head_cfg, reg = config.get("head") or {}, config.get("regularizer") or {}
    if head == "softmax":
        return head_cfg.get("name") == "standard" and not reg
    return (head_cfg.get("name") == "iterative" and head_cfg.get("steps") == 3 and reg.get("name") == "pcb"
            and float(reg.get("alpha", -1)) == 0.4 and float(reg.get("momentum", -1)) == 0.99)


def paper_run(framework: str, head: str, plans: dict) -> dict:
    """The paper-scale run of ``head`` from PCB's plan for ``framework``."""
    from ltbench.plan import build_plan

    if framework not in plans:
        plans[framework] = build_plan(papers=["pcb"], scale="paper", framework=framework)
    runs = sorted((rp.config for rp in plans[framework].runs.values() if is_head(rp.config, head)), key=lambda c: c["id"])
    if not runs:
        raise SystemExit(f"gpu_check: error: PCB's paper-scale plan has no LVIS v0.5 {head} run for {framework} (workflows/papers/pcb.yaml)")
    return copy.deepcopy(runs[0])


def check_run(run: dict, framework: str, head: str, *, iterations: int, size: tuple[int, int], device: str, weights: Path) -> dict:
    """``run`` with the changes the check needs (module docstring), and a new id."""
    from ltbench.plan.canonical import config_hash

    paper = run["schedule"]
    scale = size[1] / PAPER_SIZE[1]
    shorts = run["model"]["min_size"] if isinstance(run["model"]["min_size"], list) else [run["model"]["min_size"]]
    run["schedule"] = {
        "name": "gpu-check", "iterations": iterations, "batch_size": IMAGES_PER_GPU,
        "lr": float(paper["lr"]) * IMAGES_PER_GPU / int(paper["batch_size"]),
        "momentum": paper["momentum"], "weight_decay": paper["weight_decay"],
        "warmup_iters": min(int(paper["warmup_iters"]), max(1, iterations // 4)), "steps": [], "checkpoint_period": iterations,
    }
    if device == "cpu":
        run["schedule"]["num_workers"] = 0
    run["model"] = {**run["model"], "weights": str(weights), "max_size": round(run["model"]["max_size"] * scale),
                    "min_size": sorted({max(16, round(s * scale)) for s in shorts})}
    if (run.get("regularizer") or {}).get("name") == "pcb":
        run["regularizer"] = {**run["regularizer"], "gate_unit": "iteration", "start_iteration": 0}
    run.pop("id", None)
    run["id"] = f"gpucheck-{framework}-{head}-{config_hash(run)[:8]}"
    return run


# --- one framework x head, in its own process ----------------------------------------------------------------
class LogWatcher(threading.Thread):
    """When each progress line of ``log.txt`` appears: {iteration: (loss, seconds since start)}."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.lines, self.done, self.t0 = path, {}, threading.Event(), time.perf_counter()

    def poll(self) -> None:
        if not self.path.is_file():
            return
        now = time.perf_counter() - self.t0
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            match = PROGRESS.match(line)
            if match and int(match.group(1)) not in self.lines:
                self.lines[int(match.group(1))] = (float(match.group(3)), now)

    def run(self) -> None:
        while not self.done.is_set():
            self.poll()
            self.done.wait(0.02)

    def stop(self) -> None:
        self.done.set()
        self.join()
        self.poll()


def peak_memory_gib(device: str) -> float:
    """The peak since the last reset: ``torch.cuda.max_memory_allocated`` on CUDA, the process's max RSS on a CPU."""
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def worker(spec_path: Path) -> None:
    """Train, predict and measure one (framework, head); writes the result JSON named in the spec."""
    import torch

    from adapters import get_adapter
    from ltbench.io import write_json

    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    run, device, work = spec["run"], spec["device"], Path(spec["workdir"])
    adapter = get_adapter(spec["framework"])
    paths = {k: Path(v) for k, v in spec["data"].items()}
    data = DataPaths(paths["train"], paths["val"], paths["image_root"])
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    watcher = LogWatcher(work / "train" / "log.txt")
    watcher.start()
    t0 = time.perf_counter()
    final = adapter.train(run, work / "train", data, device=device, precision=spec["precision"])
    train_s = time.perf_counter() - t0
    watcher.stop()
    peak_train = peak_memory_gib(device)
    logged = sorted(watcher.lines)
    if not logged:
        raise SystemExit(f"no progress line in {work / 'train' / 'log.txt'}")
    first, last = logged[0], logged[-1]
    if last > first and watcher.lines[last][1] > watcher.lines[first][1]:
        train_ips = (last - first) * IMAGES_PER_GPU / (watcher.lines[last][1] - watcher.lines[first][1])
        timed = f"iterations {first + 1}-{last}"
    else:
        train_ips, timed = last * IMAGES_PER_GPU / train_s, "whole train() call"
    view = {"id": "plain", "name": "plain"}
    t0 = time.perf_counter()
    adapter.predict(run, view, work / "train", DataPaths(paths["train"], paths["val_first"], paths["image_root"]),
                    split="val", out_dir=work / "predict_1", device=device)
    one_s = time.perf_counter() - t0
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    summary = adapter.predict(run, view, work / "train", data, split="val", out_dir=work / "predict_all", device=device)
    all_s = time.perf_counter() - t0
    peak_predict = peak_memory_gib(device)
    images = int(summary["num_images"])
    predict_ips = (images - 1) / (all_s - one_s) if images > 1 and all_s > one_s else images / all_s
    notes = [f"train img/s over {timed}"]
    if spec["head"] == "pcb":
        state = torch.load(final, map_location="cpu", weights_only=False, mmap=True)
        tensors = state.get("model") or state.get("state_dict") or state
        seen = [v for k, v in tensors.items() if k.endswith("confusion.seen")]
        if seen:
            count = int((seen[0] > 0).sum())
            notes.append(f"{count}/{seen[0].numel()} classes seen" + (" (PCB term ran)" if count == seen[0].numel() else " (PCB term gated off)"))
    write_json(Path(spec["result"]), {
        "train_images_per_s": train_ips, "peak_train_gib": peak_train,
        "loss_start": watcher.lines[first][0], "loss_start_iter": first, "loss_end": watcher.lines[last][0], "loss_end_iter": last,
        "train_s": train_s, "predict_images_per_s": predict_ips, "predict_images": images,
        "detections_per_image": int(summary["num_detections"]) / max(1, images), "peak_predict_gib": peak_predict,
        "predict_s": one_s + all_s, "notes": "; ".join(notes),
    })


# --- the check ---------------------------------------------------------------------------------------------
def fmt(value: object, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else ("" if value is None else str(value))


def markdown(rows: list[dict], memory: str) -> str:
    head = ["framework", "head", "train img/s", f"peak train mem GiB ({memory})", "loss start -> end (iter)", "predict img/s",
            "dets/img", "peak predict mem GiB", "wall s", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["status"] != "ok":
            cells = [r["framework"], r.get("head", "-"), *[""] * 7, r["status"]]
        else:
            loss = f"{r['loss_start']:.3f} ({r['loss_start_iter']}) -> {r['loss_end']:.3f} ({r['loss_end_iter']})"
            cells = [r["framework"], r["head"], fmt(r["train_images_per_s"]), fmt(r["peak_train_gib"]), loss,
                     fmt(r["predict_images_per_s"]), fmt(r["detections_per_image"], 1), fmt(r["peak_predict_gib"]),
                     fmt(r["wall_s"], 0), r["notes"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def device_description(device: str) -> dict:
    import platform

    import torch

    info = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda, "host": platform.node()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    else:
        info["gpu"] = None
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cuda (default); cpu tests the script (bf16-mixed)")
    parser.add_argument("--iterations", type=int, default=200, help="training iterations per framework x head (default 200)")
    parser.add_argument("--image-size", type=parse_size, default=PAPER_SIZE, metavar="WxH", help="image size (default 1333x800)")
    parser.add_argument("--frameworks", type=parse_list(FRAMEWORKS), default=list(FRAMEWORKS), help="default: torchvision,mmdet,detectron2")
    parser.add_argument("--heads", type=parse_list(HEADS), default=list(HEADS), help="default: softmax,pcb")
    parser.add_argument("--precision", choices=("auto", "16-mixed", "bf16-mixed", "32-true"), default="auto",
                        help="auto (default): 16-mixed on CUDA (the paper's fp16), bf16-mixed on a CPU")
    parser.add_argument("--predict-images", type=int, default=20, help="images per prediction (default 20)")
    parser.add_argument("--out", type=Path, help="write the table and settings as JSON here")
    parser.add_argument("--workdir", type=Path, help="keep data, checkpoints and logs here (default: a temporary folder, deleted)")
    parser.add_argument("--timeout-s", type=int, default=1800, help="give up on one framework x head after this (default 1800)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    if args.iterations < 1 or args.predict_images < 1:
        parser.error("--iterations and --predict-images must be at least 1")
    if args.device == "cuda":  # never fall back to the CPU silently
        from adapters.engine.devices import cuda_problem

        problem = cuda_problem()
        if problem is not None:
            print(f"gpu_check: error: --device cuda, but CUDA is not usable here: {problem}\n"
                  "gpu_check: run it on a GPU node (`make setup-gpu` installs a torch build for its driver); "
                  "--device cpu only tests this script", file=sys.stderr)
            return 2
    started = time.perf_counter()
    precision = args.precision if args.precision != "auto" else ("16-mixed" if args.device == "cuda" else "bf16-mixed")
    if precision == "16-mixed" and args.device != "cuda":
        parser.error("16-mixed (float16 AMP) needs --device cuda; a CPU runs bf16-mixed or 32-true")
    from adapters import get_adapter

    available = {fw: get_adapter(fw).available() for fw in args.frameworks}
    rows: list[dict] = [{"framework": fw, "head": "-", "status": f"not installed: {available[fw][1]}"}
                        for fw in args.frameworks if not available[fw][0]]
    todo = [(fw, head) for fw in args.frameworks if available[fw][0] for head in args.heads]
    settings = {
        "model": "Mask R-CNN R-50-FPN", "classes": NUM_CLASSES, "dataset_layout": "LVIS v0.5 (synthetic)",
        "image_size": "x".join(map(str, args.image_size)), "images_per_gpu": IMAGES_PER_GPU, "precision": precision,
        "iterations": args.iterations, "predict_images": args.predict_images, "max_detections_per_image": 300,
        "budget_s": BUDGET_S, **device_description(args.device),
    }
    memory = "max_memory_allocated" if args.device == "cuda" else "CPU: process max RSS"
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ltbench-gpu-check-"))
    failed = False
    try:
        if todo:
            t0 = time.perf_counter()
            data = make_data(work / "data", args.image_size, train_images=TRAIN_IMAGES, val_images=args.predict_images)
            weights = write_backbone_weights(work, detectron2=any(fw == "detectron2" for fw, _ in todo))
            print(f"gpu_check: data and weights in {time.perf_counter() - t0:.0f} s ({work})", file=sys.stderr, flush=True)
        plans: dict = {}
        for fw, head in todo:
            run = check_run(paper_run(fw, head, plans), fw, head, iterations=args.iterations, size=args.image_size,
                            device=args.device, weights=weights[fw])
            folder = work / f"{fw}-{head}"
            folder.mkdir(parents=True, exist_ok=True)
            spec = {"framework": fw, "head": head, "run": run, "device": args.device, "precision": precision, "workdir": str(folder),
                    "data": {k: str(v) for k, v in data.items()}, "result": str(folder / "result.json")}
            (folder / "spec.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
            print(f"gpu_check: {fw} / {head}: {args.iterations} iterations, then prediction on {args.predict_images} images ...",
                  file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            log = folder / "worker.log"
            with open(log, "w", encoding="utf-8") as out:
                try:
                    code = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(folder / "spec.json")],
                                          stdout=out, stderr=subprocess.STDOUT, timeout=args.timeout_s, cwd=REPO).returncode
                except subprocess.TimeoutExpired:
                    code = "timeout"
            wall = time.perf_counter() - t0
            row = {"framework": fw, "head": head, "run_id": run["id"], "wall_s": wall}
            if code == 0:
                row.update(json.loads((folder / "result.json").read_text(encoding="utf-8")), status="ok")
            else:
                failed = True
                tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-25:]
                reason = "timed out" if code == "timeout" else f"exit {code}"
                last = next((line for line in reversed(tail) if line.strip()), "")
                row["status"] = f"failed ({reason}): {last[:200]}"
                print(f"gpu_check: {fw} / {head} failed ({reason}); last lines of {log}:\n" + "\n".join(tail), file=sys.stderr)
            print(f"gpu_check: {fw} / {head}: {wall:.0f} s", file=sys.stderr, flush=True)
            rows.append(row)
    finally:
        if args.workdir is None:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - started
    table = markdown(rows, memory)
    print(f"GPU check: {settings['model']}, {NUM_CLASSES} classes ({settings['dataset_layout']}), images {settings['image_size']} "
          f"(multi-scale), {IMAGES_PER_GPU} images/GPU, {precision}, {args.iterations} iterations, prediction on "
          f"{args.predict_images} images (at most 300 detections each)")
    print(f"device: {settings['gpu'] or 'cpu'} · torch {settings['torch']} (CUDA {settings['cuda']}) · {settings['host']}")
    print()
    print(table)
    print()
    verdict = "within" if total <= BUDGET_S else "OVER"
    print(f"total {total:.0f} s ({verdict} the {BUDGET_S // 60}-minute budget)"
          + ("" if total <= BUDGET_S else "; lower --iterations or --predict-images"))
    if args.out:
        from ltbench.io import write_json

        write_json(args.out, {"settings": settings, "rows": rows, "table": table, "total_s": total, "within_budget": total <= BUDGET_S})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
