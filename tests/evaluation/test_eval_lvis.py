"""LVIS evaluation: federated rules on a hand-checked case, fast path == LVIS API on every metric,
instance-count bins, the 300-per-image truncation, and the bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltbench.errors import LtbenchError
from ltbench.evaluation import lvis_eval as le
from ltbench.evaluation import lvis_fast, lvis_inputs, lvis_summary
from ltbench.evaluation import synthetic
from support.lvis_hand import det as _det
from support.lvis_hand import hand_dets as _hand_dets
from support.lvis_hand import hand_gt as _hand_gt
from support.lvis_hand import rle as _rle
from support.lvis_hand import square as _square

EVALUATORS = ("lvis-api", "fast")


def _write(tmp_path: Path, name: str, obj: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


# Counted in score order: TP (0.9), FP (0.8), TP (0.7) of 2 GT -> precision 1 up to recall 0.5, then
# 2/3 -> AP = (51 * 1 + 50 * 2/3) / 101 at every IoU threshold (boxes match exactly).
HAND_AP = (51 + 50 * 2 / 3) / 101 * 100


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_federated_rules_hand_checked(tmp_path: Path, evaluator: str) -> None:
    gt = _write(tmp_path, "gt.json", _hand_gt())
    dets = _write(tmp_path, "dets.json", _hand_dets())
    m = le.evaluate(gt, dets, evaluator=evaluator, workers=1)
    for t in ("bbox", "segm"):
        assert m[f"{t}.AP"] == pytest.approx(HAND_AP, abs=1e-9)
        assert m[f"{t}.AP50"] == pytest.approx(HAND_AP, abs=1e-9)
        assert m[f"{t}.APs"] == pytest.approx(HAND_AP, abs=1e-9)  # all objects are small (area 100)
        assert m[f"{t}.APf"] == pytest.approx(HAND_AP, abs=1e-9)
        assert m[f"{t}.AR@300"] == pytest.approx(100.0)
        # no ground truth in these groups: LVIS leaves them undefined
        for key in ("APm", "APl", "APr", "APc", "ARm@300", "ARl@300"):
            assert m[f"{t}.{key}"] == -1.0, key


def test_each_federated_rule_moves_the_number(tmp_path: Path) -> None:
    """Without the not-exhaustive rule the 0.95 detection would be a FP; without the negative list the
    0.8 one would not count; the check above would then fail."""
    gt_obj = _hand_gt()
    gt_obj["images"][2]["not_exhaustive_category_ids"] = []  # now the 0.95 detection is a FP
    m = le.evaluate(_write(tmp_path, "gt.json", gt_obj), _write(tmp_path, "d.json", _hand_dets()),
                    iou_types="bbox", evaluator="fast", workers=1)
    # FP(0.95) TP(0.9) FP(0.8) TP(0.7): interpolated precision 0.5 everywhere
    assert m["bbox.AP"] == pytest.approx(50.0, abs=1e-9)
    gt_obj = _hand_gt()
    gt_obj["images"][1]["neg_category_ids"] = []  # now the 0.8 detection is not evaluated
    m = le.evaluate(_write(tmp_path, "gt2.json", gt_obj), _write(tmp_path, "d.json", _hand_dets()),
                    iou_types="bbox", evaluator="lvis-api")
    assert m["bbox.AP"] == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_top_300_per_image_across_categories(tmp_path: Path, evaluator: str) -> None:
    """301 detections in I1: the true positive scored lowest is cut, whatever its category."""
    dets = [_det(1, 1, [80, 80, 5, 5], 0.5) for _ in range(300)]  # FPs of cat 1 in I1
    dets.append(_det(1, 1, [10, 10, 10, 10], 0.1))  # the TP, 301st by score
    dets.append(_det(3, 1, [50, 50, 10, 10], 0.7))  # TP in I3 (own image budget)
    m = le.evaluate(_write(tmp_path, "gt.json", _hand_gt()), _write(tmp_path, "d.json", dets),
                    iou_types="bbox", evaluator=evaluator, workers=1)
    assert m["bbox.AR@300"] == pytest.approx(50.0)  # A is never found
    dets[-2]["score"] = 0.6  # now within the top 300
    m = le.evaluate(_write(tmp_path, "gt.json", _hand_gt()), _write(tmp_path, "d.json", dets),
                    iou_types="bbox", evaluator=evaluator, workers=1)
    assert m["bbox.AR@300"] == pytest.approx(100.0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # lvis 0.5.3 calls Logger.warn
def test_limit_dets_per_image_matches_lvis_results() -> None:
    _, LVISResults, _ = le._lvis_api()
    gt = synthetic.make_ground_truth(5, 6, seed=3)
    dets = synthetic.make_detections(gt, 40, seed=4, masks=False, tie_fraction=0.6)
    lvis_gt = le._lvis_from_dict(gt)
    ours = lvis_inputs.limit_dets_per_image([dict(d) for d in dets], 25)
    theirs = LVISResults(lvis_gt, [dict(d) for d in dets], max_dets=25).dataset["annotations"]
    key = lambda d: (d["image_id"], d["category_id"], tuple(d["bbox"]), d["score"])  # noqa: E731
    assert [key(d) for d in ours] == [key(d) for d in theirs]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(abs(a[k] - b[k]) for k in a)


def test_fast_equals_lvis_api_on_real_lvis_val_sample(tmp_path: Path, lvis_samples: Path) -> None:
    """Real federated lists and polygons (LVIS v0.5 val, 100 images), synthetic detections over 300
    per image (so the truncation matters) with score ties; every bbox and segm metric and AP1..AP4."""
    gt_path = lvis_samples / "lvis_v0.5_val_100.json"
    gt = json.loads(gt_path.read_text())
    gt["images"] = gt["images"][:40]
    keep = {i["id"] for i in gt["images"]}
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
    gt_file = _write(tmp_path, "gt.json", gt)
    dets = synthetic.make_detections(gt, 120, seed=5, extra_per_image=190, tie_fraction=0.4)
    dets_file = _write(tmp_path, "dets.json", dets)
    counts = {c["id"]: (c["id"] * 37) % 2000 for c in gt["categories"]}  # spread over all 4 bins
    ref = le.evaluate(gt_file, dets_file, evaluator="lvis-api", train_counts=counts)
    fast = le.evaluate(gt_file, dets_file, evaluator="fast", train_counts=counts, workers=2)
    assert len(ref) == 2 * (len(lvis_summary.METRIC_NAMES) + 4)
    assert _max_diff(ref, fast) < 1e-9
    assert all(ref[f"segm.AP{b}"] != -1 for b in range(1, 5))
    assert 0 < ref["segm.AP"] < 100 and 0 < ref["bbox.AP"] < 100


def test_fast_paths_agree_across_workers_and_shards(tmp_path: Path) -> None:
    gt = synthetic.make_ground_truth(25, 30, seed=7)
    dets = synthetic.make_detections(gt, 60, seed=8, tie_fraction=0.5)
    gt_file, dets_file = _write(tmp_path, "gt.json", gt), _write(tmp_path, "d.json", dets)
    ref = le.evaluate(gt_file, dets_file, evaluator="lvis-api")
    one = le.evaluate(gt_file, dets_file, evaluator="fast", workers=1, category_shards=1)
    many = le.evaluate(gt_file, dets_file, evaluator="fast", workers=2, category_shards=3)
    assert _max_diff(ref, one) < 1e-9
    assert _max_diff(one, many) < 1e-12


def test_bbox_only_needs_no_masks(tmp_path: Path) -> None:
    dets = [{k: v for k, v in d.items() if k != "segmentation"} for d in _hand_dets()]
    gt, d = _write(tmp_path, "gt.json", _hand_gt()), _write(tmp_path, "d.json", dets)
    for evaluator in EVALUATORS:
        m = le.evaluate(gt, d, iou_types="bbox", evaluator=evaluator, workers=1)
        assert set(m) == {f"bbox.{k}" for k in lvis_summary.METRIC_NAMES}
        assert m["bbox.AP"] == pytest.approx(HAND_AP)
    with pytest.raises(LtbenchError, match=r"\[0\]\.segmentation"):
        le.evaluate(gt, d, iou_types="segm")


def test_bins_and_per_category_ap(tmp_path: Path) -> None:
    import numpy as np

    # precision (T, R, K, A): category k has AP (k + 1) / 10, category 3 has no GT
    precision = np.zeros((10, 101, 4, 4))
    for k in range(3):
        precision[:, :, k, :] = (k + 1) / 10
    precision[:, :, 3, :] = -1
    res = lvis_summary.IouTypeResult("bbox", {}, precision, np.zeros((10, 4, 4)), [10, 20, 30, 40])
    assert lvis_summary.per_category_ap(res) == pytest.approx({10: 0.1, 20: 0.2, 30: 0.3, 40: -1.0})
    counts = {10: 3, 20: 9, 30: 150, 40: 5000}  # bins 1, 1, 3, 4 (4 has no GT)
    out = lvis_summary.bin_summary(res, counts, "lvis")
    assert out == pytest.approx({"AP1": 0.15, "AP2": -1.0, "AP3": 0.3, "AP4": -1.0})
    out = lvis_summary.bin_summary(res, {10: 0, 20: 19, 30: 20, 40: 8000}, "coco-lt")  # 0 instances: no bin
    assert out == pytest.approx({"AP1": 0.2, "AP2": 0.3, "AP3": -1.0, "AP4": -1.0})


def test_bins_from_train_ann_file(tmp_path: Path) -> None:
    train = _hand_gt()
    train["annotations"] = [dict(train["annotations"][0], id=i + 1) for i in range(12)]  # cat 1: 12
    m = le.evaluate(_write(tmp_path, "gt.json", _hand_gt()), _write(tmp_path, "d.json", _hand_dets()),
                    iou_types="segm", evaluator="fast", train_ann=_write(tmp_path, "train.json", train), workers=1)
    assert m["segm.AP2"] == pytest.approx(HAND_AP)  # 12 instances: [10, 100)
    assert m["segm.AP1"] == m["segm.AP3"] == m["segm.AP4"] == -1.0


def test_numpy_shim_is_local_to_lvis() -> None:
    import numpy as np

    le._lvis_api()
    import lvis.eval

    assert lvis.eval.np.float is float
    assert lvis.eval.np.linspace is np.linspace
    assert not hasattr(np, "float") or np.__version__ < "1.24"


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------
def _bad(tmp_path: Path, mutate, match: str, iou_types: str = "bbox,segm") -> None:
    dets = _hand_dets()
    mutate(dets)
    with pytest.raises(LtbenchError, match=match) as info:
        le.evaluate(_write(tmp_path, "gt.json", _hand_gt()), _write(tmp_path, "dets.json", dets),
                    iou_types=iou_types, evaluator="fast", workers=1)
    assert "dets.json" in str(info.value)


def test_bad_detections_name_the_first_offending_record(tmp_path: Path) -> None:
    def setitem(i, key, value):
        return lambda d: d[i].__setitem__(key, value)

    _bad(tmp_path, setitem(2, "image_id", 99), r"\[2\]\.image_id: unknown image_id 99")
    _bad(tmp_path, setitem(4, "category_id", 7), r"\[4\]\.category_id: unknown category_id 7")
    _bad(tmp_path, setitem(1, "bbox", [1, 2, 3]), r"\[1\]\.bbox: malformed bbox")
    _bad(tmp_path, setitem(1, "bbox", [1, 2, "3", 4]), r"\[1\]\.bbox: malformed bbox")
    _bad(tmp_path, setitem(3, "bbox", [1, 2, -3, 4]), r"\[3\]\.bbox: .*negative width")
    _bad(tmp_path, setitem(0, "score", "high"), r"\[0\]\.score")
    _bad(tmp_path, setitem(0, "score", float("nan")), r"\[0\]\.score")
    _bad(tmp_path, lambda d: d[5].pop("score"), r"\[5\]\.score")
    _bad(tmp_path, lambda d: d.__setitem__(2, [1, 2]), r"\[2\]: detection is a list")
    _bad(tmp_path, setitem(1, "segmentation", [[1, 2, 3, 4, 5, 6]]), r"\[1\]\.segmentation: .*compressed RLE")
    _bad(tmp_path, lambda d: d[1]["segmentation"].__setitem__("size", [50, 100]),
         r"\[1\]\.segmentation\.size: RLE size \[50, 100\]")
    _bad(tmp_path, lambda d: d[2]["segmentation"].__setitem__("counts", [100, 200]),
         r"\[2\]\.segmentation\.counts: RLE counts is list")
    _bad(tmp_path, lambda d: d[2]["segmentation"].__setitem__("counts", "ab~c"),
         r"\[2\]\.segmentation\.counts: .*character '~' at position 2")
    _bad(tmp_path, lambda d: d[0]["segmentation"].__setitem__("counts", ""), r"\[0\]\.segmentation\.counts: .*empty")
    # masks are not needed for bbox only: a broken mask is then no error
    dets = _hand_dets()
    dets[0]["segmentation"] = "junk"
    lvis_inputs.load_detections("d.json", lvis_inputs.load_ground_truth("gt.json", _hand_gt()), ("bbox",), data=dets)


def test_rle_runs_check_catches_truncated_masks() -> None:
    gt = lvis_inputs.load_ground_truth("gt.json", _hand_gt())
    dets = _hand_dets()
    counts = dets[1]["segmentation"]["counts"]
    assert sum(lvis_inputs.decode_rle_counts(counts)) == 100 * 100
    dets[1]["segmentation"]["counts"] = counts[:-2]
    lvis_inputs.load_detections("d.json", gt, ("segm",), data=dets)  # structure and alphabet are fine
    with pytest.raises(LtbenchError, match=r"\[1\]\.segmentation\.counts: RLE counts do not add up"):
        lvis_inputs.load_detections("d.json", gt, ("segm",), data=dets, check_rle_runs=True)


def test_empty_truncated_and_wrong_files(tmp_path: Path) -> None:
    gt = _write(tmp_path, "gt.json", _hand_gt())
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(LtbenchError, match="empty.json: file is empty"):
        le.evaluate(gt, tmp_path / "empty.json")
    (tmp_path / "trunc.json").write_text(json.dumps(_hand_dets())[:-40])
    with pytest.raises(LtbenchError, match="trunc.json: invalid JSON .*truncated"):
        le.evaluate(gt, tmp_path / "trunc.json")
    with pytest.raises(LtbenchError, match="no detections"):
        le.evaluate(gt, _write(tmp_path, "none.json", []))
    with pytest.raises(LtbenchError, match="holds a dict"):
        le.evaluate(gt, _write(tmp_path, "dict.json", {"annotations": []}))
    with pytest.raises(LtbenchError, match="missing.json: file not found"):
        le.evaluate(gt, tmp_path / "missing.json")
    with pytest.raises(LtbenchError, match="unknown evaluator"):
        le.evaluate(gt, tmp_path / "none.json", evaluator="coco")
    with pytest.raises(LtbenchError, match="unknown iou type 'mask'"):
        le.evaluate(gt, tmp_path / "none.json", iou_types="bbox,mask")


def test_bad_ground_truth(tmp_path: Path) -> None:
    bad = _hand_gt()
    del bad["images"][2]["not_exhaustive_category_ids"]
    with pytest.raises(LtbenchError, match=r"images\[2\]\.not_exhaustive_category_ids"):
        lvis_inputs.load_ground_truth(_write(tmp_path, "gt.json", bad))
    bad = _hand_gt()
    bad["categories"][1]["frequency"] = "x"
    with pytest.raises(LtbenchError, match=r"categories\[1\]\.frequency"):
        lvis_inputs.load_ground_truth(_write(tmp_path, "gt.json", bad))
    bad = _hand_gt()
    bad["annotations"][1]["image_id"] = 42
    with pytest.raises(LtbenchError, match=r"annotations\[1\]\.image_id: unknown image_id 42"):
        lvis_inputs.load_ground_truth(_write(tmp_path, "gt.json", bad))
    with pytest.raises(LtbenchError, match="not an LVIS annotation file"):
        lvis_inputs.load_ground_truth(_write(tmp_path, "gt.json", [1, 2]))


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def test_cli_evaluate_writes_flat_metrics(tmp_path: Path) -> None:
    from ltbench.cli import main

    gt, dets = _write(tmp_path, "gt.json", _hand_gt()), _write(tmp_path, "d.json", _hand_dets())
    train = _write(tmp_path, "train.json", _hand_gt())  # cat 1: 2 instances -> bin 1
    out = tmp_path / "m.json"
    rc = main(["evaluate", "--gt", str(gt), "--detections", str(dets), "--iou-types", "segm",
               "--evaluator", "fast", "--train-ann", str(train), "--out", str(out),
               "--plot-dir", str(tmp_path / "plots")])
    assert rc == 0
    metrics = json.loads(out.read_text())
    assert metrics["segm.AP"] == pytest.approx(HAND_AP)
    assert metrics["segm.AP1"] == pytest.approx(HAND_AP)
    assert "bbox.AP" not in metrics
    assert (tmp_path / "plots" / "segm_ap_vs_instances.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_input_exits_2_with_the_record(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ltbench.cli import main

    dets = _hand_dets()
    dets[3]["category_id"] = 12345
    rc = main(["evaluate", "--gt", str(_write(tmp_path, "gt.json", _hand_gt())),
               "--detections", str(_write(tmp_path, "d.json", dets)), "--out", str(tmp_path / "m.json")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "d.json: [3].category_id: unknown category_id 12345" in err
    assert not (tmp_path / "m.json").exists()


def test_crowd_and_ignore_flags_follow_the_lvis_api(tmp_path: Path) -> None:
    """LVIS ignores ``iscrowd`` but honours ``ignore``; the fast path must give the same numbers."""
    gt = synthetic.make_ground_truth(12, 8, seed=11)
    dets = synthetic.make_detections(gt, 40, seed=12)
    for k, ann in enumerate(gt["annotations"]):
        if k % 3 == 0:
            ann["iscrowd"] = 1
    gt_file, dets_file = _write(tmp_path, "gt.json", gt), _write(tmp_path, "d.json", dets)
    ref = le.evaluate(gt_file, dets_file, evaluator="lvis-api")
    assert _max_diff(ref, le.evaluate(gt_file, dets_file, evaluator="fast", workers=1)) < 1e-9
    for k, ann in enumerate(gt["annotations"]):
        ann["ignore"] = int(k % 4 == 0)
    gt_file = _write(tmp_path, "gt2.json", gt)
    ref2 = le.evaluate(gt_file, dets_file, evaluator="lvis-api")
    assert ref2 != ref
    assert _max_diff(ref2, le.evaluate(gt_file, dets_file, evaluator="fast", workers=1)) < 1e-9


@pytest.mark.parametrize("use_orjson", [True, False])
def test_json_loader_with_and_without_orjson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_orjson: bool) -> None:
    import sys

    from ltbench.evaluation.jsonload import load_json

    if not use_orjson:
        monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson -> ImportError
    elif "orjson" not in sys.modules:
        pytest.importorskip("orjson")
    (tmp_path / "ok.json").write_text('[{"a": 1.5}]')
    assert load_json(tmp_path / "ok.json") == [{"a": 1.5}]
    (tmp_path / "t.json").write_text('[{"a": 1.5}, {"b"')
    with pytest.raises(LtbenchError, match="t.json: invalid JSON at line 1.*truncated"):
        load_json(tmp_path / "t.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe[1]")
    with pytest.raises(LtbenchError, match="bin.json: "):
        load_json(tmp_path / "bin.json")


def test_default_workers_counts_idle_allowed_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert lvis_fast.default_workers() == 3
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert lvis_fast.default_workers() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert lvis_fast.default_workers() == 4


def test_bin_edges() -> None:
    from ltbench.evaluation.bins import bin_index, bin_label

    assert [bin_index(n) for n in (0, 1, 9, 10, 99, 100, 999, 1000, 10**6)] == [-1, 0, 0, 1, 1, 2, 2, 3, 3]
    assert [bin_index(n, "coco-lt") for n in (0, 1, 19, 20, 399, 400, 7999, 8000)] == [-1, 0, 0, 1, 1, 2, 2, 3]
    assert [bin_label(b) for b in range(4)] == ["(0, 10)", "[10, 100)", "[100, 1000)", "[1000, inf)"]
    with pytest.raises(LtbenchError, match="unknown bin scheme 'lvis1'.*did you mean 'lvis'"):
        bin_index(3, "lvis1")
