"""Property test: on randomly shaped LVIS-format data the fast path equals the LVIS API on every metric.

Each example draws the dataset's shape (images, categories, objects per image, detections per image,
share of tied scores, how boxes and categories are jittered via the seed) and compares all 26 bbox and
segm metrics and the four instance-count bins.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ltbench.evaluation import lvis_eval as le
from ltbench.evaluation import synthetic


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    images=st.integers(1, 12),
    categories=st.integers(1, 25),
    max_objects=st.integers(1, 6),
    per_image=st.integers(1, 40),
    tie_fraction=st.sampled_from([0.0, 0.5, 1.0]),
    seed=st.integers(0, 10_000),
)
def test_fast_equals_lvis_api(tmp_path: Path, images: int, categories: int, max_objects: int,
                              per_image: int, tie_fraction: float, seed: int) -> None:
    gt = synthetic.make_ground_truth(images, categories, seed=seed, max_objects=max_objects,
                                     image_size=(64, 80))
    dets = synthetic.make_detections(gt, per_image, seed=seed + 1, tie_fraction=tie_fraction)
    gt_file, dets_file = tmp_path / "gt.json", tmp_path / "dets.json"
    gt_file.write_text(json.dumps(gt))
    dets_file.write_text(json.dumps(dets))
    counts = {c["id"]: (c["id"] * 7919 + seed) % 1500 for c in gt["categories"]}
    ref = le.evaluate(gt_file, dets_file, evaluator="lvis-api", train_counts=counts)
    fast = le.evaluate(gt_file, dets_file, evaluator="fast", train_counts=counts, workers=1)
    assert ref.keys() == fast.keys()
    worst = max(ref, key=lambda k: abs(ref[k] - fast[k]))
    assert abs(ref[worst] - fast[worst]) < 1e-9, (worst, ref[worst], fast[worst])
