"""``docs/official_vs_ltbench.md``: each paper's official training recipe beside what ltbench plans for it.

The official values are hand-written below (``RECIPES``), each with its source (the official configs as read
in research/official_implementations.md, whose section is named). ltbench's values are read from the plan at
paper scale: the paper's own framework and every forced framework (``--framework``), from the resolved run
config of the named row. Regenerate with ``python -m ltbench.plan.official`` (``--check`` compares instead);
``tests/plan/test_official_table.py`` fails when the file is stale.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench import paths
from ltbench.spec import vocab

OUTPUT = paths.REPO_ROOT / "docs" / "official_vs_ltbench.md"
FIELDS = ("batch", "iterations", "lr", "LR steps", "warm-up", "train scales", "test thresholds", "sampler",
          "initialisation", "precision", "grad clip", "filters")
SOURCE = "research/official_implementations.md"


@dataclass(frozen=True)
class Recipe:
    """One official recipe: the plan row whose run ltbench trains for it, and the official values."""

    paper: str
    name: str
    table: str
    row: str  # the plan row's label
    official: dict[str, str]
    source: str
    notes: list[str] = field(default_factory=list)


# The mmdet v1 1x recipe BAGS and SimCal's base models share (official_implementations.md §3.1, §4.1).
_MMDET_V1_1X = {
    "iterations": "12 epochs",
    "lr": "0.01",
    "LR steps": "epochs 8, 11",
    "warm-up": "500 iterations, linear from 1/3",
    "train scales": "single scale 1333x800",
    "test thresholds": "score 0.0, NMS 0.5, 300 per image",
    "precision": "fp32",
    "grad clip": "35",
    "filters": "not recorded",
}


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "pcb", "RFS + PCB (CE), Mask R-CNN R-50-FPN, LVIS v1.0", "2", "RFS [12] + PCB (LVIS v1.0)",
        {
            "batch": "16 (8 GPUs x 2)",
            "iterations": "24 epochs of mmdet's ClassBalancedDataset (a public log of mmdet's LVIS v1 RFS config: "
                          "7674 iterations of 16 per epoch, about 184k)",
            "lr": "0.02, momentum 0.9, wd 1e-4",
            "LR steps": "epochs 16, 22",
            "warm-up": "500 iterations, linear from 0.001",
            "train scales": "(1333, 640..800 step 32), 'value'; test 1333x800",
            "test thresholds": "score 1e-4, NMS 0.5, 300 per image",
            "sampler": "RFS t = 0.001, ceil (ClassBalancedDataset)",
            "initialisation": "ImageNet torchvision://resnet50 (frozen_stages 1, BN eval)",
            "precision": "fp16, dynamic loss scale",
            "grad clip": "none",
            "filters": "not recorded",
        },
        f"{SOURCE} §0.1, §1.1 (configs/pcb/mask_rcnn_r50_fpn_sample1e-3_mstrain_pcb_2x_lvis_v1_fp16.py); "
        "open-mmlab/mmdetection#7439 (epoch length)",
        ["PCB's start: start_epoch 17 of 24 (the epoch hook is missing from the release; ltbench: 1-based, "
         "assumption pcb-start-epoch)."],
    ),
    Recipe(
        "disalign", "Stage 1 (baseline), Mask R-CNN R-50-FPN, LVIS v0.5", "7", "R-50 Baseline (Mask R-CNN)",
        {
            "batch": "16",
            "iterations": "90k",
            "lr": "0.02, momentum 0.9, wd 1e-4 (0 on norm layers)",
            "LR steps": "60k, 80k",
            "warm-up": "1000 iterations, linear from 0.001",
            "train scales": "short side 640..800 step 32 'choice', max 1333; test 800/1333",
            "test thresholds": "score 0 (v0.5 stage 1), NMS 0.5, 300 per image",
            "sampler": "uniform (the RFS variants: detectron2's RepeatFactorTrainingSampler, stochastic)",
            "initialisation": "ImageNet detectron2://ImageNetPretrained/MSRA/R-50.pkl (caffe style)",
            "precision": "not recorded",
            "grad clip": "not recorded",
            "filters": "not recorded",
        },
        f"{SOURCE} §2.2",
    ),
    Recipe(
        "disalign", "Stage 2 (DisAlign), Mask R-CNN R-50-FPN, LVIS v0.5", "7", "R-50 DisAlign (Mask R-CNN)",
        {
            "batch": "16",
            "iterations": "4.5k",
            "lr": "0.02 (wd 1e-4 also on alpha/beta)",
            "LR steps": "4k",
            "warm-up": "1000 iterations (cvpods default)",
            "train scales": "as stage 1",
            "test thresholds": "score 1e-4, 300 per image",
            "sampler": "uniform (even after an RFS stage 1)",
            "initialisation": "the stage-1 model; only alpha, beta and the confidence layer train",
            "precision": "not recorded",
            "grad clip": "not recorded",
            "filters": "not recorded",
        },
        f"{SOURCE} §2.3",
    ),
    Recipe(
        "bags", "Stage 1 (baseline (1)), Faster R-CNN R-50-FPN, LVIS v0.5", "1", "(1) R50-FPN",
        {
            **_MMDET_V1_1X,
            "batch": "16 (8 GPUs x 2, README)",
            "test thresholds": "score 0.0 (Faster R-CNN configs), NMS 0.5, 300 per image",
            "sampler": "uniform (no RFS)",
            "initialisation": "COCO-trained mmdet faster_rcnn_r50_fpn_2x checkpoint (load_from)",
        },
        f"{SOURCE} §3.1",
    ),
    Recipe(
        "bags", "Stage 2 (BAGS (14)), Faster R-CNN R-50-FPN, LVIS v0.5", "1", "(14) Ours",
        {
            **_MMDET_V1_1X,
            "batch": "16 (8 GPUs x 2)",
            "sampler": "uniform",
            "initialisation": "the LVIS baseline (load_from); only the new fc_cls (1236 outputs) trains, from its init",
        },
        f"{SOURCE} §3.1",
    ),
    Recipe(
        "simcal", "Base model (r50), Mask R-CNN R-50-FPN, LVIS v0.5", "2", "r50",
        {
            **_MMDET_V1_1X,
            "batch": "2 per GPU, GPUs not stated",
            "sampler": "uniform (no RFS)",
            "initialisation": "ImageNet modelzoo://resnet50",
        },
        f"{SOURCE} §4.1",
    ),
    Recipe(
        "simcal", "Calibration (3fc_ft), r50-ag, LVIS v0.5", "3", "r50-ag cal (mask)",
        {
            "batch": "GPUs x 4 images (16 with 4 GPUs)",
            "iterations": "1000 steps per epoch, loop to 120 epochs (the epoch used is not documented)",
            "lr": "0.01, no momentum, no weight decay",
            "LR steps": "x0.1 from epoch 8, x0.01 from epoch 11",
            "warm-up": "none",
            "train scales": "as the base model",
            "test thresholds": "score 0.0, 300 per image; dual head T = 100 in code (paper T = 300)",
            "sampler": "bi-level: 16 classes uniformly with replacement, bs/16 images per class",
            "initialisation": "the base detector (frozen); 3fc_ft from shared_fcs and fc_cls",
            "precision": "fp32",
            "grad clip": "none",
            "filters": "not recorded",
        },
        f"{SOURCE} §4.2, §4.3",
    ),
)

#: The images every adapter drops from training (adapters.records.load_lvis_split; mmdet's LVIS filter_cfg).
LTBENCH_FILTERS = "images without instances or with a short side under 32 px dropped for training"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def ltbench_values(config: dict[str, Any], framework_rounding: str | None = None) -> dict[str, str]:
    """The FIELDS of a resolved run config, as text."""
    from ltbench.plan import scales
    from ltbench.weights.manifest import by_id, weight_id

    schedule, model = config["schedule"], config["model"]
    if "epochs" in schedule:
        iterations = f"{_num(schedule['iterations'])} ({_num(schedule['epochs'])} epochs of {_num(schedule['epoch_images'])} images)"
        steps = ", ".join(_num(s) for s in schedule["steps"]) + " (epochs " + ", ".join(_num(s) for s in schedule["steps_epochs"]) + ")"
    else:
        iterations = _num(schedule["iterations"])
        steps = ", ".join(_num(s) for s in schedule["steps"]) or "none"
    lr = f"{_num(schedule['lr'])}, momentum {_num(schedule['momentum'])}, wd {_num(schedule['weight_decay'])}"
    factor = schedule.get("warmup_factor", 0.001)
    factor_text = "1/3" if abs(factor * 3 - 1) < 1e-9 else _num(factor)
    warmup = (f"{_num(schedule['warmup_iters'])} iterations, linear from {factor_text}"
              if schedule["warmup_iters"] else "none")
    sides = model["min_size"] if isinstance(model["min_size"], list) else [model["min_size"]]
    scales_text = (f"short side {sides[0]}..{sides[-1]} ({len(sides)} sizes)" if len(sides) > 1 else f"short side {sides[0]}")
    scales_text += f", max {model['max_size']}; test {sides[-1]}/{model['max_size']}"
    sampler = config.get("sampler") or {"name": "random"}
    stage2 = config.get("stage2") or {}
    if isinstance(stage2.get("sampler"), dict):
        sampler = stage2["sampler"]
    if sampler["name"] == "rfs":
        sampler_text = f"RFS t = {_num(sampler['t'])}, {scales.sampler_rounding(sampler, config['framework'])}"
    else:
        sampler_text = ", ".join(f"{k} {_num(v)}" for k, v in sampler.items() if k != "name")
        sampler_text = sampler["name"] + (f" ({sampler_text})" if sampler_text else "")
    if config.get("stage1"):
        init = "the stage-1 run's final checkpoint"
    elif config.get("init_from"):
        init = f"the final checkpoint of run {config['init_from']}"
    else:
        wid = weight_id(config)
        uses = [u.convention for f in by_id().values() for u in f.uses if u.id == wid] if wid else []
        init = f"{wid} ({uses[0]})" if uses else str(wid or config.get("pretrain"))
    return {
        "batch": _num(schedule["batch_size"]),
        "iterations": iterations,
        "lr": lr,
        "LR steps": steps,
        "warm-up": warmup,
        "train scales": scales_text,
        "test thresholds": f"score {_num(model['score_thresh'])}, {_num(model['detections_per_img'])} per image",
        "sampler": sampler_text,
        "initialisation": init,
        "precision": "fp16 mixed" if config.get("fp16") else "fp32",
        "grad clip": _num(schedule["grad_clip"]) if schedule.get("grad_clip") else "none",
        "filters": LTBENCH_FILTERS,
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The whole Markdown file."""
    from ltbench.plan import build_plan

    papers = sorted({r.paper for r in RECIPES}, key=vocab.PAPERS.index)
    frameworks = list(vocab.FRAMEWORKS)
    plans = {fw: build_plan(papers=papers, scale="paper", framework=fw) for fw in frameworks}
    lines = [
        "# Official recipes beside ltbench's (paper scale)",
        "",
        "Generated by `python -m ltbench.plan.official` from the plan (`ltbench plan --scale paper`, each framework "
        "forced in turn) and the hand-written official values in `ltbench/plan/official.py` (sources per recipe). "
        "Do not edit by hand; `tests/plan/test_official_table.py` checks that this file is current.",
        "",
        "ltbench trains the paper's schedule in every framework (assumption `forced-framework-schedule`): the columns "
        "differ in the framework's own conventions only (sampler rounding, initialisation file). An epoch schedule "
        "counts epochs of the sampler's real epoch; with RFS that is the plan's estimate of sum_I repeat(I) "
        "(assumption `rfs-epoch-size`, `ltbench/plan/scales.py`).",
    ]
    for recipe in RECIPES:
        configs = {}
        for fw in frameworks:
            row = next((r for r in plans[fw].rows if r.paper == recipe.paper and r.table == recipe.table
                        and r.label == recipe.row), None)
            if row is None or not row.run_ids:
                raise LookupError(f"{recipe.paper} table {recipe.table} row {recipe.row!r} has no planned run")
            configs[fw] = plans[fw].runs[row.run_ids[0]].config
        values = {fw: ltbench_values(c) for fw, c in configs.items()}
        lines += ["", f"## {recipe.paper.upper()}: {recipe.name}", "",
                  f"ltbench row: {recipe.paper} table {recipe.table}, {recipe.row!r}. Official values: {recipe.source}.", "",
                  "| | official | " + " | ".join(f"ltbench ({fw})" for fw in frameworks) + " |",
                  "|---|---|" + "---|" * len(frameworks)]
        for name in FIELDS:
            lines.append(f"| {name} | {_cell(recipe.official[name])} | "
                         + " | ".join(_cell(values[fw][name]) for fw in frameworks) + " |")
        lines += [f"\n{note}" for note in recipe.notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltbench.plan.official", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m ltbench.plan.official", file=sys.stderr)
            return 1
        return 0
    from ltbench import io

    io.write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
