"""Real LVIS on disk: the paper-scale layout (``<data>/lvis/lvis_v0.5_{train,val}.json`` and COCO 2017's
``<data>/coco/val2017/000000xxxxxx.jpg``) resolved, trained, predicted and evaluated through every adapter.

The annotation file is the real LVIS v0.5 val sample (real ``file_name`` ``COCO_val2014_...jpg``, real
``coco_url`` ``.../val2017/...jpg``, all 1230 categories); the images are generated at their annotated sizes
and real COCO 2017 paths. The run is a paper-scale run config from the plan with only the image size, the
model's width/depth, the detections per image and the schedule's length shrunk (LR scaled to the batch). Also: the one function that maps an image record to its
path under the COCO image root (``ltbench.data.layout.image_relative_path``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ltbench.data.layout import image_relative_path
from ltbench.errors import LtbenchError

V05_IMAGE = {"id": 266409, "file_name": "COCO_val2014_000000266409.jpg", "width": 640, "height": 480,
             "coco_url": "http://images.cocodataset.org/val2017/000000266409.jpg"}
V1_IMAGE = {"id": 9, "width": 640, "height": 480, "coco_url": "http://images.cocodataset.org/train2017/000000000009.jpg"}
SYNTH_IMAGE = {"id": 3, "width": 128, "height": 128, "file_name": "val/000003.png"}


def test_real_v05_record_resolves_to_its_coco_2017_path() -> None:
    assert image_relative_path(V05_IMAGE) == "val2017/000000266409.jpg"


def test_v1_record_without_file_name_resolves_from_coco_url() -> None:
    assert image_relative_path(V1_IMAGE) == "train2017/000000000009.jpg"


def test_synthetic_record_uses_its_relative_file_name() -> None:
    assert image_relative_path(SYNTH_IMAGE) == "val/000003.png"
    assert image_relative_path({"id": 4, "file_name": "img4.jpg"}) == "img4.jpg"


def test_record_without_path_names_file_image_and_what_was_expected() -> None:
    with pytest.raises(LtbenchError) as info:
        image_relative_path({"id": 7, "width": 4, "height": 4}, source="ann.json")
    text = str(info.value)
    assert "ann.json" in text and "images[id=7]" in text
    assert "neither coco_url nor file_name" in text and "coco_url" in text and "relative" in text


@pytest.mark.parametrize("image, found", [
    ({"id": 8, "file_name": "COCO_val2014_000000266409.jpg"}, "COCO 2014"),  # v0.5's name, without coco_url
    ({"id": 8, "file_name": "/abs/val2017/000000266409.jpg"}, "absolute"),
    ({"id": 8, "file_name": "../val2017/000000266409.jpg"}, ".."),
    ({"id": 8, "coco_url": "000000266409.jpg"}, "coco_url"),
    ({"id": 8, "file_name": ""}, "neither"),
])
def test_unusable_paths_are_errors_naming_the_image(image: dict, found: str) -> None:
    with pytest.raises(LtbenchError) as info:
        image_relative_path(image, source="ann.json")
    text = str(info.value)
    assert "ann.json: images[id=8]" in text and found in text


# --- the real layout, end to end ---------------------------------------------------------------------

FRAMEWORKS = [
    "torchvision",
    pytest.param("mmdet", marks=pytest.mark.mmdet),
    pytest.param("detectron2", marks=pytest.mark.detectron2),
]
#: the paper's settings except these: the image size, a tiny model, two iterations of 2 images (the paper's LR
#: scaled linearly to the batch; at the full LR two steps of a random backbone can push every foreground score
#: below 1e-4, leaving nothing to evaluate). 30 detections per image, not 300: mmdet and detectron2 compute all
#: 1230 classes' 28x28 mask logits per detection, minutes of CPU time over 100 images at 300.
SMALL_MODEL = {"min_size": [64, 96], "max_size": 128, "backbone_depth": 18, "fpn_channels": 32, "box_head_hidden": 128,
               "mask_head_channels": 32, "rpn_pre_nms_top_n_train": 100, "rpn_post_nms_top_n_train": 50,
               "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 50, "box_batch_size_per_image": 32,
               "detections_per_img": 30}
SHORT_SCHEDULE = {"iterations": 2, "batch_size": 2, "warmup_iters": 1, "steps": [1], "checkpoint_period": 2}


@pytest.fixture(scope="module")
def real_layout(tmp_path_factory, lvis_samples: Path) -> Path:
    """``$LTBENCH_DATA`` of the real paper layout: LVIS v0.5 annotation files under ``lvis/`` (val: the real
    sample; train: a subset of the same images, as the sample has no training images) and COCO 2017's
    ``coco/val2017/<id:012d>.jpg`` at each image's annotated size (``coco/train2017`` exists, empty)."""
    import numpy as np
    from PIL import Image

    from ltbench.data.subset import make_subset

    root = tmp_path_factory.mktemp("real_layout")
    doc = json.loads((lvis_samples / "lvis_v0.5_val_100.json").read_text())
    (root / "lvis").mkdir()
    (root / "lvis" / "lvis_v0.5_val.json").write_text(json.dumps(doc))
    (root / "lvis" / "lvis_v0.5_train.json").write_text(json.dumps(make_subset(doc, 24, seed=0)))
    (root / "coco" / "train2017").mkdir(parents=True)
    (root / "coco" / "val2017").mkdir()
    rng = np.random.default_rng(0)
    for im in doc["images"]:
        assert im["file_name"].startswith("COCO_val2014_")  # the real v0.5 record, not a rewritten one
        coarse = rng.integers(0, 256, size=(im["height"] // 16 + 1, im["width"] // 16 + 1, 3), dtype=np.uint8)
        pixels = Image.fromarray(coarse, "RGB").resize((im["width"], im["height"]), Image.NEAREST)
        pixels.save(root / "coco" / "val2017" / f"{im['id']:012d}.jpg", quality=75)
    return root


def paper_run(framework: str, weights: Path) -> dict:
    """PCB's LVIS v0.5 RFS softmax baseline at paper scale, shrunk in size and length only (``SMALL_MODEL``,
    ``SHORT_SCHEDULE``); the ImageNet backbone is ``weights``."""
    from ltbench.plan import build_plan

    plan = build_plan(papers=["pcb"], scale="paper", framework=framework)
    run = next(r.config for _, r in sorted(plan.runs.items())
               if r.config["dataset"] == "lvis_v0.5" and r.config["sampler"]["name"] == "rfs"
               and r.config["loss"]["name"] == "ce" and r.config["head"]["name"] == "standard"
               and not r.config.get("regularizer") and not r.config.get("stage2"))
    assert run["scale"] == "paper" and run["framework"] == framework and run["pretrain"] == "imagenet"
    run = json.loads(json.dumps(run))
    run["id"] = f"real-layout-{framework}-00000000"
    run["schedule"].update(SHORT_SCHEDULE, lr=run["schedule"]["lr"] * SHORT_SCHEDULE["batch_size"] / run["schedule"]["batch_size"])
    run["model"].update(SMALL_MODEL, weights=str(weights))
    return run


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_real_lvis_v05_layout_trains_predicts_and_evaluates(framework: str, real_layout: Path, resnet18_weights: Path,
                                                            tmp_path: Path, monkeypatch, one_thread) -> None:
    from adapters import get_adapter
    from ltbench.data.datasets import resolve
    from ltbench.evaluation import evaluate

    adapter = get_adapter(framework)
    ok, reason = adapter.available()
    if not ok:
        pytest.skip(reason)
    monkeypatch.setenv("LTBENCH_DATA", str(real_layout))
    monkeypatch.delenv("LTBENCH_DATASETS_CONFIG", raising=False)  # the committed workflows/config/datasets.yaml
    data = resolve("lvis_v0.5", "paper")
    assert data.image_root == real_layout / "coco" and data.val == real_layout / "lvis" / "lvis_v0.5_val.json"

    run = paper_run(framework, resnet18_weights)
    final = adapter.train(run, tmp_path / "work", data, device="cpu")
    assert final.is_file()
    done = json.loads((tmp_path / "work" / "done.json").read_text())
    assert done["iterations"] == 2

    out = tmp_path / "pred"
    summary = adapter.predict(run, {"id": "plain", "name": "plain"}, tmp_path / "work", data, split="val", out_dir=out,
                              device="cpu")
    dets = json.loads((out / "detections.json").read_text())
    val = json.loads(data.val.read_text())
    assert summary["num_detections"] == len(dets) > 0
    assert max(Counter(d["image_id"] for d in dets).values()) <= SMALL_MODEL["detections_per_img"]
    assert {d["image_id"] for d in dets} <= {im["id"] for im in val["images"]}
    assert {d["category_id"] for d in dets} <= {c["id"] for c in val["categories"]}

    metrics = evaluate(data.val, out / "detections.json", evaluator="fast", train_ann=data.train,
                       proposal_stats=out / "proposal_stats.npz", workers=1)
    for key in ("bbox.AP", "segm.AP", "segm.APr", "segm.APc", "segm.APf", "PwB", "cls.ACC"):
        assert key in metrics and -1 <= metrics[key] <= 100, (key, metrics.get(key))
