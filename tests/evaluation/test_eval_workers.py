"""The fast path gives the same numbers whatever its worker processes and category shards.

Worker processes are sent their shard's ground truth and detections (for bbox without masks and
polygons) instead of reading the parent's parsed objects; the metrics must not change in the last bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltbench.evaluation import lvis_eval as le
from ltbench.evaluation import lvis_fast, lvis_inputs
from ltbench.evaluation import synthetic


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("workers")
    gt = synthetic.make_ground_truth(40, 30, seed=3, max_objects=8, image_size=(64, 80))
    dets = synthetic.make_detections(gt, 40, seed=4, extra_per_image=5)
    (tmp / "gt.json").write_text(json.dumps(gt))
    (tmp / "dets.json").write_text(json.dumps(dets))
    return tmp / "gt.json", tmp / "dets.json"


@pytest.mark.parametrize(("workers", "shards"), [(2, 1), (2, 2), (3, 5)])
def test_workers_and_shards_change_no_number(files, workers, shards):
    gt, dets = files
    counts = {c: c * 37 % 1500 for c in range(1, 31)}
    one = le.evaluate(gt, dets, evaluator="fast", workers=1, category_shards=1, train_counts=counts)
    many = le.evaluate(gt, dets, evaluator="fast", workers=workers, category_shards=shards, train_counts=counts)
    assert many == one


def test_shard_inputs_hold_only_the_shard_and_strip_masks_for_bbox(files):
    gt_path, dets_path = files
    gt = lvis_inputs.load_ground_truth(gt_path)
    dets = lvis_inputs.load_detections(dets_path, gt, ("bbox", "segm"))
    shard = [1, 2, 3]
    anns, mine = lvis_fast._shard_inputs(gt, dets, "segm", shard)
    assert {a["category_id"] for a in anns} <= set(shard) and {d["category_id"] for d in mine} <= set(shard)
    assert len(mine) == sum(d["category_id"] in shard for d in dets)
    assert all("segmentation" in d for d in mine)
    box_anns, box_dets = lvis_fast._shard_inputs(gt, dets, "bbox", shard)
    assert len(box_dets) == len(mine) and len(box_anns) == len(anns)
    assert not any("segmentation" in r for r in box_anns + box_dets)
    assert all("segmentation" in d for d in dets)  # the caller's records are left as they were


def test_default_workers_stay_within_the_slurm_allocation(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)  # CPUs not bound
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert lvis_fast.default_workers() == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    assert lvis_fast.default_workers() == 4
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "")  # set but empty: the CPUs this process may use
    assert lvis_fast.default_workers() == 16
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert lvis_fast.default_workers() == 16
