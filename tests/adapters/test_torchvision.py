"""torchvision adapter: a few training iterations and predictions on tiny synthetic LVIS data (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from adapters import get_adapter  # noqa: E402
from adapters.records import load_lvis_split  # noqa: E402
from adapters.torchvision.model import build_model  # noqa: E402
from ltbench.errors import LtbenchError  # noqa: E402
from support.checks import PLAIN, TOP_K_VIEW, check_detections, predict_capped_and_top_k  # noqa: E402
from support.runs import tiny_run, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


# One torch thread per test (module fixture `one_thread` in conftest.py): 2 shared CI cores.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def trained_baseline(trained_baselines):
    return trained_baselines("torchvision")


@pytest.mark.slow
def test_cli_train_killed_with_sigkill_then_resumed(tiny_data, tmp_path) -> None:
    """The real thing: `ltbench train` in a subprocess, SIGKILLed once a checkpoint exists, restarted."""
    run = tiny_run(id="tiny-kill-00000000", schedule={"iterations": 6, "checkpoint_period": 1})
    run_path = write_json(tmp_path / "run.json", run)
    args = [sys.executable, "-m", "ltbench", "train", "--run-config", str(run_path), "--train-ann", str(tiny_data.train),
            "--val-ann", str(tiny_data.val), "--image-root", str(tiny_data.image_root)]
    env = {**os.environ, "LTBENCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    straight = subprocess.run([*args, "--workdir", str(tmp_path / "straight")], env=env, capture_output=True, text=True, cwd=REPO)
    assert straight.returncode == 0, straight.stderr
    assert "iter 6/6" in straight.stderr and "eta=" in straight.stderr

    workdir = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--workdir", str(workdir)], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        pointer = workdir / "last_checkpoint"
        if pointer.is_file() and pointer.read_text().strip() not in ("", "model_final.pth"):
            break
        time.sleep(0.05)
    killed_at = (workdir / "last_checkpoint").read_text().strip() if (workdir / "last_checkpoint").is_file() else None
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed_at is not None and killed_at != "model_final.pth", "training ended before it could be killed"
    # keep_checkpoints 1: the newest checkpoint, plus at most the one it is about to replace.
    assert len(list(workdir.glob("model_0*.pth"))) <= 2
    resumed = subprocess.run([*args, "--workdir", str(workdir)], env=env, capture_output=True, text=True, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from model_" in resumed.stderr
    a = torch.load(tmp_path / "straight" / "model_final.pth", weights_only=False)["model"]
    b = torch.load(workdir / "model_final.pth", weights_only=False)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_faster_rcnn_trains_and_predicts_boxes_only(tiny_data, tmp_path) -> None:
    run = tiny_run(id="tiny-frcnn-00000000", detector="faster_rcnn", schedule={"iterations": 2, "checkpoint_period": 2})
    adapter = get_adapter("torchvision")
    adapter.train(run, tmp_path / "w", tiny_data)
    adapter.predict(run, PLAIN, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "out")
    dets = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert dets and all("segmentation" not in d for d in dets)


@pytest.mark.slow
def test_cli_predict_end_to_end(trained_baseline, tiny_data, tmp_path) -> None:
    from ltbench.cli import main

    run, workdir, _ = trained_baseline
    run_path = write_json(tmp_path / "run.json", run)
    view_path = write_json(tmp_path / "view.json", PLAIN)
    code = main(["predict", "--run-config", str(run_path), "--view-config", str(view_path), "--workdir", str(workdir),
                 "--split", "val", "--out-dir", str(tmp_path / "out"), "--train-ann", str(tiny_data.train),
                 "--val-ann", str(tiny_data.val), "--image-root", str(tiny_data.image_root)])
    assert code == 0
    check_detections(tmp_path / "out" / "detections.json", tiny_data)


def test_unsupported_detector_is_a_clear_error(tiny_data, tmp_path) -> None:
    with pytest.raises(LtbenchError, match="detector 'htc'"):
        get_adapter("torchvision").train(tiny_run(detector="htc"), tmp_path, tiny_data)


def test_multiscale_min_size_list_reaches_the_transform(tiny_data) -> None:
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    model = build_model(tiny_run(model={"min_size": [48, 56, 64]}), split)
    assert model.transform.min_size == (48, 56, 64)  # torchvision draws one per training image, tests at 64
    assert model.roi_heads.detections_per_img == 300 and model.roi_heads.score_thresh == pytest.approx(1e-4)


def test_mini_model_anchor_sizes_reach_the_rpn(tiny_data) -> None:
    """The mini model's anchors (8..128 px, one size per FPN level) replace torchvision's 32..512."""
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    default = build_model(tiny_run(), split).rpn.anchor_generator
    assert [s[0] for s in default.sizes] == [32, 64, 128, 256, 512]
    mini = build_model(tiny_run(model={"anchor_sizes": [8, 16, 32, 64, 128]}), split).rpn.anchor_generator
    assert [s[0] for s in mini.sizes] == [8, 16, 32, 64, 128]
    assert all(tuple(r) == (0.5, 1.0, 2.0) for r in mini.aspect_ratios)


def test_paper_scale_weights_come_from_the_cache_never_downloaded(tiny_data, tmp_path, monkeypatch) -> None:
    """Paper scale: no download in a job (torch.hub is cut off here); the cache's or the user's file for the
    run's weight id is loaded, a missing one is an error naming the weight id and `ltbench weights fetch`."""
    import torch
    import torchvision

    def no_download(*args, **kwargs):
        raise AssertionError("a paper-scale job tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setenv("LTBENCH_WEIGHTS", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("LTBENCH_WEIGHT_FILES", raising=False)
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    with pytest.raises(LtbenchError, match=r"(?s)torchvision/imagenet/r50 .*not in the cache.*ltbench weights fetch"):
        build_model(tiny_run(scale="paper", backbone="r50_fpn", model={"backbone_depth": 50}), split)
    run = tiny_run(scale="paper", backbone="r18_fpn")  # no download known for r18: the user's file
    with pytest.raises(LtbenchError, match="torchvision/coco/mask_rcnn"):
        build_model(tiny_run(scale="paper", pretrain="coco"), split)
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "r18.pth")
    monkeypatch.setenv("LTBENCH_WEIGHT_FILES", f"torchvision/imagenet/r18={tmp_path / 'r18.pth'}")
    model = build_model(run, split)
    assert torch.equal(model.backbone.body.layer3[0].conv1.weight, resnet.layer3[0].conv1.weight)


def test_user_backbone_weights_are_loaded_and_bn_frozen(tiny_data, tmp_path) -> None:
    import torchvision

    resnet = torchvision.models.resnet18(weights=None)
    torch.nn.init.constant_(resnet.layer3[0].conv1.weight, 0.125)
    torch.save(resnet.state_dict(), tmp_path / "r18.pth")
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    model = build_model(tiny_run(model={"weights": str(tmp_path / "r18.pth")}), split)
    body = model.backbone.body
    assert torch.all(body.layer3[0].conv1.weight == 0.125)
    assert type(body.bn1).__name__ == "FrozenBatchNorm2d"
    assert not body.conv1.weight.requires_grad and body.layer2[0].conv1.weight.requires_grad


@pytest.mark.slow
def test_init_from_loads_the_source_runs_weights(trained_baseline, tiny_data, tmp_path) -> None:
    source_run, source_dir, source_final = trained_baseline
    # lr 0: the one training iteration leaves every parameter where the initialisation put it.
    run = tiny_run(id="tiny-init-00000000", init_from=source_run["id"], pretrain="lvis",
                   schedule={"iterations": 1, "lr": 0.0, "checkpoint_period": 1, "warmup_iters": 0, "steps": []})
    final = get_adapter("torchvision").train(run, tmp_path / "w", tiny_data, init_workdir=source_dir)
    source = torch.load(source_final, weights_only=False)["model"]
    model = torch.load(final, weights_only=False)["model"]
    params = [k for k in source if "running_" not in k and "num_batches" not in k]
    assert all(torch.equal(source[k], model[k]) for k in params)
    with pytest.raises(LtbenchError, match="init_from"):
        get_adapter("torchvision").train(run, tmp_path / "w2", tiny_data, init_workdir=tmp_path / "missing")


def test_grad_clip_bounds_the_update(tiny_data, tmp_path, monkeypatch) -> None:
    """schedule.grad_clip (the smoke schedule's 10) clips the total gradient norm before the step."""
    norms = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **kw):
        params = list(params)
        total = real(params, max_norm, *a, **kw)
        norms.append((float(total), float(torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))), max_norm))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    run = tiny_run(id="tiny-clip-00000000", schedule={"iterations": 1, "checkpoint_period": 1, "grad_clip": 0.5})
    get_adapter("torchvision").train(run, tmp_path / "w", tiny_data)
    assert len(norms) == 1 and norms[0][2] == 0.5
    assert norms[0][1] <= 0.5 + 1e-4 < norms[0][0]  # clipped from a larger norm


@pytest.mark.slow
def test_fast_prediction_path_writes_the_same_detections(trained_baseline, tiny_data, tmp_path, monkeypatch) -> None:
    """Class-selective mask logits + chunked paste/RLE == torchvision's straightforward path: same
    images, categories and order, boxes/scores to 1e-5, identical RLE strings (non-empty masks included)."""
    from pycocotools import mask as mask_utils

    run, workdir, _ = trained_baseline
    adapter = get_adapter("torchvision")
    results = {}
    for fast in (False, True):
        monkeypatch.setattr(type(adapter), "fast_predict", fast)
        monkeypatch.setattr(type(adapter), "paste_chunk", 3)  # several chunks per image
        adapter.predict(run, PLAIN, workdir, tiny_data, split="val", out_dir=tmp_path / str(fast))
        results[fast] = json.loads((tmp_path / str(fast) / "detections.json").read_text())
    slow, fast = results[False], results[True]
    assert len(slow) == len(fast) > 0
    for a, b in zip(slow, fast):
        assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
        np.testing.assert_allclose(a["bbox"] + [a["score"]], b["bbox"] + [b["score"]], atol=1e-5)
        assert a["segmentation"] == b["segmentation"]
    areas = [mask_utils.area({"size": d["segmentation"]["size"], "counts": d["segmentation"]["counts"].encode()}) for d in fast]
    assert max(areas) > 0, "every mask empty: the comparison would prove nothing"


def test_fast_mask_probabilities_match_torchvision_inference(tiny_data) -> None:
    """``_mask_probs_fast`` == ``maskrcnn_inference(mask_predictor(mask_head(...)), labels)`` to 1e-5 on a
    random model; the normed mask head (not torchvision's predictor) falls back to the generic path."""
    from collections import OrderedDict

    from torchvision.models.detection.roi_heads import maskrcnn_inference

    split = load_lvis_split(Path(tiny_data.train), Path(tiny_data.image_root))
    torch.manual_seed(0)
    model = build_model(tiny_run(), split).eval()
    roi = model.roi_heads
    channels = model.backbone.out_channels
    features = OrderedDict((k, torch.randn(2, channels, 64 // s, 64 // s)) for k, s in (("0", 4), ("1", 8), ("2", 16), ("3", 32)))
    boxes = [torch.tensor([[2.0, 3.0, 40.0, 50.0], [10.0, 10.0, 20.0, 30.0], [0.0, 0.0, 63.0, 63.0]]), torch.tensor([[5.0, 5.0, 30.0, 9.0]])]
    labels = [torch.tensor([1, 4, 2]), torch.tensor([3])]
    shapes = [(64, 64), (64, 64)]
    with torch.no_grad():
        fast = roi._mask_probs_fast(features, boxes, shapes, labels)
        generic = maskrcnn_inference(roi.mask_predictor(roi.mask_head(roi.mask_roi_pool(features, boxes, shapes))), labels)
    assert [f.shape for f in fast] == [g.shape for g in generic] == [(3, 1, 28, 28), (1, 1, 28, 28)]
    for f, g in zip(fast, generic):
        torch.testing.assert_close(f, g, atol=1e-5, rtol=0)
    normed = build_model(tiny_run(mask_head={"name": "normed", "scale": 20}), split).eval()
    with torch.no_grad():
        assert normed.roi_heads._mask_probs_fast(features, boxes, shapes, labels) is None


@pytest.mark.slow
def test_per_class_top_k_chunked_masks_and_streaming_filter_change_nothing(trained_baseline, tiny_data, tmp_path, monkeypatch) -> None:
    """AP-fixed inference: the chunked mask branch (uncapped detections) writes the same detections as one
    pass, and the streaming top-k filter changes no byte (the mode itself: test_contract.py)."""
    from adapters.torchvision.roi_heads import roi_heads_class

    view = TOP_K_VIEW

    run, workdir, _ = trained_baseline
    capped_run = tiny_run(model={"detections_per_img": 3})
    adapter = get_adapter("torchvision")
    _, topk = predict_capped_and_top_k(adapter, capped_run, workdir, tiny_data, tmp_path)
    monkeypatch.setattr(roi_heads_class(), "mask_chunk", 2)
    adapter.predict(capped_run, view, workdir, tiny_data, split="val", out_dir=tmp_path / "chunked")
    chunked = json.loads((tmp_path / "chunked" / "detections.json").read_text())
    assert [(d["image_id"], d["category_id"], d["segmentation"]) for d in chunked] == [
        (d["image_id"], d["category_id"], d["segmentation"]) for d in topk
    ]
    # The streaming top-k filter (masks only for detections that can still make their class's top k)
    # changes nothing in the output: byte-identical to masking every uncapped detection first.
    monkeypatch.setattr(type(adapter), "stream_top_k", False)
    adapter.predict(capped_run, view, workdir, tiny_data, split="val", out_dir=tmp_path / "unfiltered")
    assert (tmp_path / "unfiltered" / "detections.json").read_bytes() == (tmp_path / "topk" / "detections.json").read_bytes()


