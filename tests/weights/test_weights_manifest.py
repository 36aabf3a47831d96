"""Pretrained weights: what each plan needs and the manifest of known files (their ids, URLs and the
frameworks' own names for them), all offline."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from ltbench.errors import LtbenchError
from ltbench.weights import cache as cache_mod
from ltbench.weights import fetch as fetch_mod
from ltbench.weights import manifest
from support.weights import paper_run

# ---- what the plan needs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("framework", "expected"), [
    (None, "mmdet/imagenet/r50"), ("mmdet", "mmdet/imagenet/r50"),
    ("detectron2", "detectron2/imagenet/r50"), ("torchvision", "torchvision/imagenet/r50"),
])
def test_pcb_table2_at_paper_scale_needs_exactly_one_imagenet_r50(framework, expected):
    from ltbench.plan import build_plan

    plan = build_plan(["tables/pcb_table2.md"], scale="paper", framework=framework)
    needs = fetch_mod.needs_of_plan(plan)
    assert list(needs) == [expected]
    assert sorted(needs[expected].runs) == sorted(plan.runs) and len(plan.runs) == 16
    file = manifest.by_id()[expected]
    url = {"mmdet": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
           "torchvision": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
           "detectron2": "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl"}[expected.split("/")[0]]
    assert file.url == url


def test_pcb_table2_at_smoke_scale_needs_nothing():
    from ltbench.plan import build_plan

    assert fetch_mod.needs_of_plan(build_plan(["tables/pcb_table2.md"], scale="smoke")) == {}


def test_every_paper_at_paper_scale_has_a_known_file_for_every_need():
    from ltbench.plan import build_plan

    plan = build_plan(scale="paper")
    needs = fetch_mod.needs_of_plan(plan)
    assert sorted(needs) == [
        "detectron2/coco/mask_rcnn_r50_fpn", "detectron2/imagenet/r101", "detectron2/imagenet/r50",
        "detectron2/imagenet/x101_32x8d", "mmdet/coco/cascade_rcnn_x101_64x4d_fpn", "mmdet/coco/faster_rcnn_r50_fpn",
        "mmdet/coco/faster_rcnn_x101_64x4d_fpn", "mmdet/coco/htc_x101_64x4d_dcn_fpn", "mmdet/coco/htc_x101_64x4d_fpn",
        "mmdet/coco/mask_rcnn_r50_fpn", "mmdet/imagenet/r101", "mmdet/imagenet/r50", "mmdet/imagenet/x101_64x4d",
    ]
    assert set(needs) <= set(manifest.by_id())
    # the runs without a need are the ones initialised from another run's checkpoint (BAGS COCO-LT)
    without = [r for r in plan.runs.values() if manifest.weight_id(r.config) is None]
    assert without and all(r.config["pretrain"] == "lvis" for r in without)
    # BAGS' COCO-initialised baselines start from the 2x COCO detectors
    bags = [r for r in plan.runs.values() if r.config["pretrain"] == "coco" and r.config["framework"] == "mmdet"
            and r.config["backbone"] == "r50_fpn"]
    assert {manifest.by_id()[manifest.weight_id(r.config)].url.rsplit("/", 2)[-2] for r in bags} == {
        "faster_rcnn_r50_fpn_2x_coco", "mask_rcnn_r50_fpn_2x_coco"}


def test_a_framework_without_a_known_file_is_listed_as_no_source(tmp_path):
    from ltbench.plan import build_plan

    s = cache_mod.load_settings(cache=tmp_path, environ={}, config_path=tmp_path / "none.yaml")
    items = fetch_mod.items_of(fetch_mod.needs_of_plan(build_plan(scale="paper", framework="torchvision")), s)
    unknown = {i.ids[0] for i in items if i.file is None}
    assert "torchvision/coco/htc_x101_64x4d_fpn" in unknown and "torchvision/imagenet/r50" not in unknown
    assert fetch_mod.describe(next(i for i in items if i.file is None), s, {}, "no source")[-1].startswith(
        "    fix        point weights.files")


# ---- the manifest ---------------------------------------------------------------------------------------


def test_weight_ids_of_run_configs():
    assert manifest.weight_id(paper_run("mmdet", backbone="x101_64x4d_dcn_fpn")) == "mmdet/imagenet/x101_64x4d"
    assert manifest.weight_id(paper_run("detectron2", "coco")) == "detectron2/coco/mask_rcnn_r50_fpn"
    with pytest.raises(LtbenchError, match="framework 'caffe'"):
        manifest.weight_id({**paper_run(), "framework": "caffe"})


def test_manifest_ids_are_unique_and_documented():
    files = manifest.by_id()
    doc = manifest.__doc__
    for weight_id, file in files.items():
        assert manifest.WEIGHT_ID_RE.match(weight_id)
        assert weight_id in doc and file.url in doc, weight_id
        marker = f"prefix {file.sha256_prefix}" if file.sha256_prefix else "first fetch"
        assert re.search(re.escape(weight_id) + r"[^\n]* -- " + re.escape(marker), doc), weight_id


def test_published_prefixes_are_the_url_hash_suffixes():
    for file in manifest.FILES:
        match = re.search(r"-([0-9a-f]{8})\.(pth|pkl)$", file.url)
        if file.sha256_prefix:
            assert match and match.group(1) == file.sha256_prefix, file.url
        else:
            assert file.url.startswith("https://dl.fbaipublicfiles.com/detectron2/"), file.url


def test_torchvision_urls_are_the_installed_enums():
    import torchvision.models as tvm
    from torchvision.models import detection

    files = manifest.by_id()
    expected = {
        "torchvision/imagenet/r50": tvm.ResNet50_Weights.IMAGENET1K_V1,
        "torchvision/imagenet/r101": tvm.ResNet101_Weights.IMAGENET1K_V1,
        "torchvision/imagenet/x101_32x8d": tvm.ResNeXt101_32X8D_Weights.IMAGENET1K_V1,
        "torchvision/imagenet/x101_64x4d": tvm.ResNeXt101_64X4D_Weights.IMAGENET1K_V1,
        "torchvision/coco/faster_rcnn_r50_fpn": detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1,
        "torchvision/coco/mask_rcnn_r50_fpn": detection.MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
    }
    for weight_id, enum in expected.items():
        assert files[weight_id].url == enum.url, weight_id


def _package_dir(name: str) -> Path | None:
    """Where a package is installed, found without importing it (mmdet's import needs mmcv's compiled ops)."""
    spec = importlib.util.find_spec(name)
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


@pytest.mark.skipif(_package_dir("mmengine") is None, reason="mmengine not installed (make setup-mmdet)")
def test_mmdet_names_map_to_the_manifest_urls():
    # mmengine.runner.checkpoint.get_torchvision_models() starts from hub/torchvision_0.12.json and only adds
    # `<model>.<weights>` keys for torchvision >= 0.13, so torchvision://resnet50 is this file's 'resnet50';
    # open-mmlab:// names come from hub/openmmlab.json (get_external_models).
    hub = _package_dir("mmengine") / "hub"
    torchvision_names = json.loads((hub / "torchvision_0.12.json").read_text())
    openmmlab = json.loads((hub / "openmmlab.json").read_text())
    files = manifest.by_id()
    assert files["mmdet/imagenet/r50"].url == torchvision_names["resnet50"]
    assert files["mmdet/imagenet/r101"].url == torchvision_names["resnet101"]
    assert files["mmdet/imagenet/x101_64x4d"].url == openmmlab["resnext101_64x4d"]
    assert files["mmdet/imagenet/x101_32x8d"].url == openmmlab["detectron2/resnext101_32x8d"]


@pytest.mark.skipif(_package_dir("mmdet") is None, reason="mmdet not installed (make setup-mmdet)")
def test_mmdet_coco_urls_are_in_the_installed_metafiles():
    import yaml

    configs = _package_dir("mmdet") / ".mim" / "configs"
    weights = {}
    for metafile in configs.glob("*/metafile.yml"):
        doc = yaml.safe_load(metafile.read_text())
        for model in doc.get("Models", []) if isinstance(doc, dict) else []:
            weights[model["Name"]] = model.get("Weights")
    checked = 0
    for file in manifest.FILES:
        for use in file.uses:
            if use.id.startswith("mmdet/coco/"):
                name = use.provenance.rsplit(": ", 1)[-1]
                assert weights.get(name) == file.url, (use.id, name)
                checked += 1
    assert checked == 6
