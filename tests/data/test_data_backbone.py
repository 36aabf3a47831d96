"""The mini scale's synthetic backbone (ltbench.data.backbone): trained once, verified by checksum, found by runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltbench.data import backbone
from ltbench.errors import LtbenchError

CONFIG = """
mini:
  lvis_v1:
    train: ${LTBENCH_DATA}/synth/annotations/lvis_v1_train.json
    val: ${LTBENCH_DATA}/synth/annotations/lvis_v1_val.json
    image_root: ${LTBENCH_DATA}/synth/images
    synth: {out: "${LTBENCH_DATA}/synth", preset: tiny, seed: 0}
    backbone: {out: "${LTBENCH_DATA}/backbone", recipe: tiny, seed: 0}
  lvis_v0.5:
    train: ${LTBENCH_DATA}/synth/annotations/lvis_v0.5_train.json
    val: ${LTBENCH_DATA}/synth/annotations/lvis_v0.5_val.json
    image_root: ${LTBENCH_DATA}/synth/images
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("backbone")
    backbone.pretrain(out, recipe="tiny", seed=0, log=lambda line: None)
    return out


def test_object_images_are_normalised_and_labelled_by_class_rank() -> None:
    import numpy as np

    from ltbench.data.synth import PRESETS, select_classes

    classes = select_classes(PRESETS["tiny"])
    x, y = backbone.object_images(classes, 6, 32, np.random.default_rng(0))
    assert tuple(x.shape) == (6, 3, 32, 32) and tuple(y.shape) == (6,)
    assert int(y.min()) >= 0 and int(y.max()) < len(classes)
    assert -3.0 < float(x.mean()) < 3.0  # ImageNet-normalised, as torchvision's detection transform expects


def test_pretrain_writes_a_torchvision_resnet18_body_with_its_checksum(trained: Path) -> None:
    import torch
    import torchvision

    marker = json.loads((trained / backbone.MARKER_FILE).read_text())
    assert marker["params_hash"] == backbone.params_hash(backbone.params_for("tiny", 0))
    assert 0.0 <= marker["held_out_accuracy"] <= 1.0 and marker["classes"] == 12
    state = torch.load(backbone.verified_path(trained), map_location="cpu")
    assert not any(k.startswith("fc.") for k in state)
    missing, unexpected = torchvision.models.resnet18(weights=None).load_state_dict(state, strict=False)
    assert set(missing) == {"fc.weight", "fc.bias"} and not unexpected
    assert backbone.is_complete(trained, "tiny", 0)
    assert not backbone.is_complete(trained, "tiny", 1)  # another seed is another backbone
    assert not backbone.is_complete(trained, "mini", 0)


def test_a_changed_file_fails_its_checksum(trained: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    with open(copy / backbone.WEIGHTS_FILE, "ab") as handle:
        handle.write(b"x")
    assert not backbone.is_complete(copy, "tiny", 0)
    with pytest.raises(LtbenchError, match="checksum") as err:
        backbone.verified_path(copy)
    assert "sha256" in str(err.value) and str(copy / backbone.WEIGHTS_FILE) in str(err.value)
    with pytest.raises(LtbenchError, match="no finished synthetic backbone"):
        backbone.verified_path(tmp_path / "nowhere")


def test_mini_runs_resolve_their_backbone_and_name_the_command_when_it_is_missing(
        trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from ltbench.weights import resolve

    monkeypatch.setenv("LTBENCH_DATA", str(tmp_path / "data"))
    config = tmp_path / "datasets.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv("LTBENCH_DATASETS_CONFIG", str(config))
    run = {"scale": "mini", "pretrain": "imagenet", "dataset": "lvis_v1", "framework": "torchvision", "backbone": "r50_fpn"}
    with pytest.raises(LtbenchError, match="not trained") as err:
        resolve(run)
    assert "ltbench data backbone --dataset lvis_v1 --scale mini" in str(err.value)
    shutil.copytree(trained, tmp_path / "data" / "backbone")
    assert resolve(run) == {"imagenet": tmp_path / "data" / "backbone" / backbone.WEIGHTS_FILE}
    assert resolve({**run, "pretrain": "none"}) == {}  # a row that trains from scratch stays random
    with pytest.raises(LtbenchError, match="names no synthetic backbone") as err:
        resolve({**run, "dataset": "lvis_v0.5"})
    assert "backbone" in str(err.value)


def test_mini_run_configs_name_the_backbone_version() -> None:
    """A new backbone recipe (BACKBONE_VERSION) changes every mini run's config, hence its id: no stale reuse."""
    from ltbench.plan import scales

    assert scales.MINI_MODEL["synthetic_backbone"] == backbone.BACKBONE_VERSION
