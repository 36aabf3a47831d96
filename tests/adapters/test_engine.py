"""Framework-free parts of the adapters: the engine (LR schedule, resumable image stream, RFS), checkpoints,
records, outputs and the per-class top-k of prediction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import checkpoints, get_adapter, outputs, prediction
from adapters.engine import schedule, stream
from adapters.interface import schedule_of
from adapters.records import load_lvis_split
from ltbench.errors import LtbenchError

SCHEDULE = {"lr": 0.02, "warmup_iters": 10, "warmup_factor": 0.001, "steps": [80, 110]}


def test_lr_warmup_then_steps() -> None:
    assert schedule.lr_at(SCHEDULE, 0) == pytest.approx(0.02 * 0.001)
    assert schedule.lr_at(SCHEDULE, 5) == pytest.approx(0.02 * (0.001 * 0.5 + 0.5))
    assert schedule.lr_at(SCHEDULE, 10) == pytest.approx(0.02)
    assert schedule.lr_at(SCHEDULE, 79) == pytest.approx(0.02)
    assert schedule.lr_at(SCHEDULE, 80) == pytest.approx(0.002)
    assert schedule.lr_at(SCHEDULE, 110) == pytest.approx(0.0002)


def test_index_stream_resumes_exactly() -> None:
    cats = [{1}, {2}, {1, 3}, {3}, {2}]
    order = stream.epoch_order({"name": "random"}, cats, seed=3)
    straight = stream.IndexStream(order)
    expected = straight.take(13)  # crosses two epoch boundaries
    first = stream.IndexStream(order)
    head = first.take(6)
    resumed = stream.IndexStream(order)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert head + resumed.take(7) == expected
    assert sorted(expected[:5]) == [0, 1, 2, 3, 4]  # an epoch is a permutation


def test_rfs_ceil_repeats_rare_images_every_epoch() -> None:
    # 10 images; class 1 in all, class 2 in one image. t = 0.5: r_2 = sqrt(0.5 / 0.1) = sqrt(5) -> ceil 3.
    cats = [{1}] * 9 + [{1, 2}]
    order = stream.epoch_order({"name": "rfs", "t": 0.5, "rounding": "ceil"}, cats, seed=0)
    epoch = order(0)
    assert len(epoch) == 9 + math.ceil(math.sqrt(5))
    assert epoch.count(9) == 3
    assert order(0) == epoch and order(1) != epoch  # seeded per epoch


def test_rfs_stochastic_rounding_mean() -> None:
    cats = [{1}] * 9 + [{1, 2}]
    order = stream.epoch_order({"name": "rfs", "t": 0.5, "rounding": "stochastic"}, cats, seed=0)
    counts = [order(e).count(9) for e in range(400)]
    assert set(counts) <= {2, 3}
    assert np.mean(counts) == pytest.approx(math.sqrt(5), abs=0.08)


def test_bilevel_stream_yields_image_class_pairs() -> None:
    cats = [{0}, {0}, {1}, {2}, {0, 2}]
    order = stream.epoch_order({"name": "bilevel", "classes_per_batch": 2, "episodes": 5}, cats, seed=1, batch_size=4)
    items = order(0)
    assert len(items) == 20
    for image, cls in items:
        assert cls in cats[image]
    source = stream.IndexStream(order)
    first = source.take(6)
    again = stream.IndexStream(order)
    again.load_state_dict(source.state_dict())
    assert first + again.take(14) == items


def test_unknown_sampler_is_a_clear_error() -> None:
    with pytest.raises(LtbenchError, match="sampler 'nope'"):
        stream.epoch_order({"name": "nope"}, [{1}], seed=0)


def test_unknown_framework_suggests() -> None:
    with pytest.raises(LtbenchError, match="did you mean 'mmdet'"):
        get_adapter("mmdett")


def test_checkpoint_pointer_roundtrip(tmp_path) -> None:
    assert checkpoints.last_checkpoint(tmp_path) is None
    checkpoints.save_checkpoint(tmp_path, checkpoints.checkpoint_name(40), {"iteration": 40})
    path = checkpoints.last_checkpoint(tmp_path)
    assert path is not None and path.name == "model_0000040.pth"
    assert checkpoints.load_checkpoint(path)["iteration"] == 40
    (tmp_path / "model_0000040.pth").unlink()
    with pytest.raises(LtbenchError, match="does not exist"):
        checkpoints.last_checkpoint(tmp_path)


def test_prune_keeps_newest_and_never_the_pointer_target(tmp_path) -> None:
    for it in (10, 20, 30):
        checkpoints.save_checkpoint(tmp_path, checkpoints.checkpoint_name(it), {"iteration": it})
    (tmp_path / "model_notes.pth").write_bytes(b"x")  # not a periodic checkpoint name: left alone
    deleted = checkpoints.prune_checkpoints(tmp_path, 2)
    assert [p.name for p in deleted] == ["model_0000010.pth"]
    assert sorted(p.name for p in tmp_path.glob("model_*.pth")) == ["model_0000020.pth", "model_0000030.pth", "model_notes.pth"]
    # A stale pointer (kill between the save and the pointer update) keeps its target alive.
    (tmp_path / checkpoints.LAST_CHECKPOINT).write_text("model_0000020.pth\n")
    checkpoints.prune_checkpoints(tmp_path, 1)
    assert (tmp_path / "model_0000020.pth").is_file() and (tmp_path / "model_0000030.pth").is_file()
    checkpoints.save_checkpoint(tmp_path, checkpoints.FINAL_CHECKPOINT, {"iteration": 40})
    checkpoints.prune_checkpoints(tmp_path, 1, finished=True)
    assert sorted(p.name for p in tmp_path.glob("model_*.pth")) == ["model_final.pth", "model_notes.pth"]
    assert checkpoints.prune_checkpoints(tmp_path, -1) == []


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "2"])
def test_keep_checkpoints_rejects_bad_values(value) -> None:
    with pytest.raises(LtbenchError, match="keep_checkpoints") as info:
        checkpoints.keep_checkpoints({"keep_checkpoints": value}, "runs/x.json")
    assert "positive integer, or -1" in str(info.value) and "runs/x.json" in str(info.value)
    assert checkpoints.keep_checkpoints({}) == checkpoints.DEFAULT_KEEP_CHECKPOINTS == 1


def test_final_checkpoint_needs_done(tmp_path) -> None:
    with pytest.raises(LtbenchError, match="training has not finished"):
        checkpoints.final_checkpoint(tmp_path)


def test_schedule_missing_key_names_it() -> None:
    with pytest.raises(LtbenchError, match=r"schedule\.warmup_iters"):
        schedule_of({"id": "r", "schedule": {"iterations": 1, "batch_size": 1, "lr": 0.1, "momentum": 0.9,
                                                  "weight_decay": 0.0, "steps": [], "checkpoint_period": 1}})


def test_proposal_stats_matches_by_iou_and_renormalises_foreground() -> None:
    stats = outputs.ProposalStats([5, 9], background="first")
    proposals = np.array([[0, 0, 10, 10], [0, 0, 9, 10], [50, 50, 60, 60]], dtype=np.float64)
    # columns: bg, class0 (id 5), class1 (id 9)
    probs = np.array([[0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.9, 0.05, 0.05]])
    stats.add(proposals, probs, gt_boxes=np.array([[0, 0, 10, 10]]), gt_classes=[1])
    arrays = stats.arrays()
    assert arrays["cls_target"].tolist() == [1, 1, -1]
    assert arrays["cls_pred"].tolist() == [-1, 1, -1]
    assert arrays["cm_count"].tolist() == [0, 2]
    np.testing.assert_allclose(arrays["cm_sum"][1], [0.8 + 0.25, 0.2 + 0.75])
    np.testing.assert_allclose(arrays["cm_sum"][0], [0, 0])
    assert arrays["category_ids"].tolist() == [5, 9]


def test_proposal_stats_background_last() -> None:
    stats = outputs.ProposalStats([5, 9], background="last")
    stats.add(np.array([[0, 0, 10, 10]]), np.array([[0.1, 0.3, 0.6]]), np.array([[0, 0, 10, 10]]), [0])
    arrays = stats.arrays()
    assert arrays["cls_pred"].tolist() == [-1]
    np.testing.assert_allclose(arrays["cm_sum"][0], [0.25, 0.75])


def test_detections_use_category_ids_and_rle_strings() -> None:
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[0, 1:4, 1:4] = True
    dets = outputs.detections_for_image(
        7, np.array([[1, 2, 5, 6], [0, 0, 2, 2]]), [0.2, 0.9], [1, 0], [3, 12], masks, limit=300
    )
    assert [d["category_id"] for d in dets] == [3, 12]  # sorted by score, ids not indices
    assert dets[1]["bbox"] == [1.0, 2.0, 4.0, 4.0]
    assert isinstance(dets[1]["segmentation"]["counts"], str)
    assert dets[1]["segmentation"]["size"] == [8, 8]
    assert len(outputs.detections_for_image(7, np.zeros((5, 4)), np.ones(5), [0] * 5, [3], limit=2)) == 2


def test_load_lvis_split_rejects_unknown_category(tmp_path) -> None:
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 99, "bbox": [0, 0, 2, 2]}],
           "categories": [{"id": 1}]}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(LtbenchError, match=r"annotations\[0\]\.category_id"):
        load_lvis_split(path, tmp_path)


def test_training_split_drops_images_with_a_short_side_under_32_px(tmp_path) -> None:
    """mmdet's LVIS filter_cfg (filter_empty_gt=True, min_size=32), for every adapter: training drops images
    without instances or with min(width, height) < 32; prediction keeps every image."""
    sizes = {1: (31, 500), 2: (500, 31), 3: (32, 32), 4: (640, 480), 5: (640, 480)}  # 5 has no annotation
    doc = {"images": [{"id": i, "file_name": f"{i}.png", "width": w, "height": h} for i, (w, h) in sizes.items()],
           "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [0, 0, 8, 8]} for i in (1, 2, 3, 4)],
           "categories": [{"id": 1}]}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    train = load_lvis_split(path, tmp_path)
    assert [r.image_id for r in train.images] == [3, 4]
    assert train.class_stats.num_images == 2
    assert [r.image_id for r in load_lvis_split(path, tmp_path, keep_empty=True).images] == [1, 2, 3, 4, 5]


def test_proposal_stats_add_up_over_images() -> None:
    """Accumulating image by image equals one call on all RoIs (the sums are evaluation.confusion's)."""
    rng = np.random.default_rng(0)
    proposals = rng.uniform(0, 30, size=(40, 2))
    proposals = np.concatenate([proposals, proposals + rng.uniform(2, 20, size=(40, 2))], axis=1)
    logits = rng.normal(size=(40, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    gt = np.array([[0, 0, 20, 20], [10, 10, 30, 35]], dtype=np.float64)
    whole = outputs.ProposalStats([2, 4, 8], background="last")
    whole.add(proposals, probs, gt, [2, 0])
    parts = outputs.ProposalStats([2, 4, 8], background="last")
    parts.add(proposals[:15], probs[:15], gt, [2, 0])
    parts.add(proposals[15:], probs[15:], gt, [2, 0])
    for key in ("cm_sum", "cm_count", "cls_pred", "cls_target"):
        np.testing.assert_allclose(whole.arrays()[key], parts.arrays()[key], err_msg=key)
    assert whole.arrays()["cm_count"].sum() > 0


def test_detections_writer_writes_json_dump_bytes_and_nothing_when_aborted(tmp_path) -> None:
    dets = [{"image_id": i, "category_id": 3, "bbox": [0.5, 1.0, 2.0, 3.0], "score": 0.25 * i} for i in range(4)]
    writer = outputs.DetectionsWriter(tmp_path / "d.json")
    writer.write(dets[:1])
    writer.write([])
    writer.write(dets[1:])
    writer.close()
    assert (tmp_path / "d.json").read_text() == json.dumps(dets) and writer.count == 4
    outputs.write_detections(tmp_path / "empty.json", [])
    assert json.loads((tmp_path / "empty.json").read_text()) == []
    aborted = outputs.DetectionsWriter(tmp_path / "d.json")
    aborted.write(dets[:2])
    aborted.abort()
    assert (tmp_path / "d.json").read_text() == json.dumps(dets)  # the old file stays, no temporary left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "empty.json"]


def test_rank_batches_split_each_global_batch_and_cover_the_single_process_stream() -> None:
    cats = [{1}] * 9 + [{1, 2}]
    order = stream.epoch_order({"name": "rfs", "t": 0.5, "rounding": "stochastic"}, cats, seed=4)
    single = stream.IndexStream(order).take(8 * 3)
    state = stream.IndexStream(order).state_dict()
    ranks = [iter(stream.RankBatches(order, state, 8, rank, 2)) for rank in (0, 1)]
    merged = [item for _ in range(3) for r in ranks for item in next(r)]
    assert merged == single  # rank 0 then rank 1 of every global batch = the single-process order
    with pytest.raises(LtbenchError, match="multiple of 3"):
        stream.rank_slice(list(range(8)), 0, 3)


def test_epoch_progress_counts_images_seen() -> None:
    assert schedule.epoch_progress(0, 60, 4, 100) == (0, 3)
    assert schedule.epoch_progress(25, 60, 4, 100) == (1, 3)
    assert schedule.epoch_progress(59, 60, 4, 100) == (2, 3)


def test_epoch_note_compares_the_planned_epoch_with_the_data_and_sampler() -> None:
    cats = [{1}] * 9 + [{1, 2}]  # category 2 in 1 of 10 images: r = sqrt(0.5 / 0.1) = 2.24
    rfs = {"name": "rfs", "t": 0.5}
    assert schedule.sampler_epoch_images(rfs, cats, default_rounding="ceil") == 9 + 3
    assert schedule.sampler_epoch_images(rfs, cats, default_rounding="stochastic") == pytest.approx(9 + math.sqrt(5))
    assert schedule.sampler_epoch_images({"name": "random"}, cats, default_rounding="ceil") == 10
    planned = {"epochs": 24, "epoch_images": 12, "iterations": 72, "batch_size": 4}
    assert schedule.epoch_note(planned, 12) is None  # as planned
    assert schedule.epoch_note({"iterations": 72, "batch_size": 4}, 11) is None  # an iteration schedule: no epochs
    note = schedule.epoch_note(planned, 11.2)
    assert note.startswith("rfs-epoch-size: planned epoch 12 images, this sampler's epoch 11;")
    assert "the 72 planned iterations are 25.71 of its epochs (planned 24)" in note


def test_per_class_top_k_reads_the_view_and_validates() -> None:
    assert prediction.per_class_top_k({"id": "plain"}) is None
    assert prediction.per_class_top_k({"detections": {"mode": "per_image"}}) is None
    assert prediction.per_class_top_k({"detections": {"mode": "per_class_top_k", "k": 7}}) == 7
    assert prediction.per_class_top_k({"detections": {"mode": "per_class_top_k"}}) == 10_000
    for bad in ({"mode": "top_k"}, {"mode": "per_class_top_k", "k": 0}, {"mode": "per_class_top_k", "k": 2.5}, "top_k"):
        with pytest.raises(LtbenchError, match="detections"):
            prediction.per_class_top_k({"id": "v", "detections": bad})


@settings(max_examples=200, deadline=None)
@given(
    images=st.lists(st.lists(st.tuples(st.sampled_from([0.1, 0.25, 0.5, 0.75, 0.9]), st.integers(1, 3)), max_size=8), max_size=6),
    k=st.integers(1, 4),
)
def test_streaming_top_k_filter_changes_nothing(images, k) -> None:
    """Filtering image by image, then the final top-k == the final top-k alone (ties included)."""
    import numpy as np

    dets = [{"image_id": i, "category_id": c, "score": s} for i, image in enumerate(images) for s, c in image]
    stream = prediction.StreamingTopK(k)
    filtered = []
    for i, image in enumerate(images):
        scores = np.array([s for s, _ in image], dtype=float)
        labels = np.array([c for _, c in image], dtype=int)
        filtered += [{"image_id": i, "category_id": image[j][1], "score": image[j][0]} for j in stream(scores, labels)]
    assert prediction.keep_top_k_per_class(filtered, k) == prediction.keep_top_k_per_class(dets, k)


def test_keep_top_k_per_class_keeps_the_best_in_file_order() -> None:
    dets = [
        {"image_id": 1, "category_id": 3, "score": 0.2},
        {"image_id": 1, "category_id": 5, "score": 0.9},
        {"image_id": 2, "category_id": 3, "score": 0.8},
        {"image_id": 2, "category_id": 3, "score": 0.5},
        {"image_id": 3, "category_id": 5, "score": 0.1},
    ]
    kept = prediction.keep_top_k_per_class(dets, 1)
    assert kept == [dets[1], dets[2]]
    assert prediction.keep_top_k_per_class(dets, 2) == [dets[1], dets[2], dets[3], dets[4]]
    assert prediction.keep_top_k_per_class(dets, None) is dets
    assert "_order" not in dets[0]


def test_drawn_images_counts_what_the_sampler_feeds_a_run_per_frequency_group():
    """Of the images a run draws, the percentage holding a rare / common / frequent class: uniform sampling gives the
    data's own shares, RFS raises the rare share (r = sqrt(t / f) per class)."""
    from adapters.engine.stream import drawn_images, epoch_order
    from types import SimpleNamespace

    # 100 images: class 1 (rare) in 2 of them, class 2 (common) in 20, class 3 (frequent) in all
    images = [{1, 3} if i < 2 else ({2, 3} if i < 22 else {3}) for i in range(100)]
    stats = SimpleNamespace(category_ids=[1, 2, 3], frequencies=["r", "c", "f"])
    uniform = drawn_images(epoch_order(None, images, 0), images, stats, 300)  # 3 epochs
    assert uniform["images"] == 300 and uniform["frequent_pct"] == 100.0
    assert uniform["rare_pct"] == 2.0 and uniform["common_pct"] == 20.0  # 6 of 300; 60 of 300
    rfs = drawn_images(epoch_order({"name": "rfs", "t": 0.5, "rounding": "ceil"}, images, 0), images, stats, 5 * 128)
    # r(rare) = sqrt(0.5 / 0.02) = 5, r(common) = sqrt(0.5 / 0.2) = 1.58 -> ceil 2: an epoch of 2 x 5 + 20 x 2 + 78 = 128
    assert rfs["images"] == 640 and rfs["rare_pct"] == pytest.approx(100 * 10 / 128, abs=1e-3)
    assert rfs["common_pct"] == pytest.approx(100 * 40 / 128, abs=1e-3)
