"""Soft confusion matrix (PCB Eq. 3), PwB, proposal accuracy (BAGS Table 1) on hand-checkable inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ltbench.errors import LtbenchError
from ltbench.evaluation import confusion as cf

PROBS = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0], [0.1, 0.1, 0.8]])
GT = np.array([0, 0, 2])


def test_accumulate_and_soft_confusion_matrix_by_hand() -> None:
    out = cf.accumulate(PROBS, GT, [0, -1, 2, 1], [0, -1, -1, 1], 3, category_ids=[5, 7, 9])
    assert set(out) == set(cf.NPZ_KEYS)
    np.testing.assert_allclose(out["cm_sum"], [[1.2, 0.7, 0.1], [0, 0, 0], [0.1, 0.1, 0.8]])
    assert out["cm_count"].tolist() == [2, 0, 1]
    assert out["cm_sum"].dtype == np.float64 and out["cm_count"].dtype == np.int64
    assert out["category_ids"].tolist() == [5, 7, 9]
    M = cf.soft_confusion_matrix(out["cm_sum"], out["cm_count"])
    # rows normalised by count; the row without samples stays 0
    np.testing.assert_allclose(M, [[0.6, 0.35, 0.05], [0, 0, 0], [0.1, 0.1, 0.8]])
    # M - M^T has (0,1)=.35, (0,2)=-.05, (1,2)=-.1, each twice -> sqrt(2 * (.1225 + .0025 + .01))
    assert cf.pairwise_bias(M) == pytest.approx(math.sqrt(0.27))


def test_pairwise_bias_of_symmetric_matrix_is_zero() -> None:
    M = np.array([[0.8, 0.2], [0.2, 0.8]])
    assert cf.pairwise_bias(M) == 0.0
    assert cf.pairwise_bias(np.array([[0.5, 0.5], [0.0, 1.0]])) == pytest.approx(math.sqrt(2) * 0.5)


def test_background_conventions_convert_to_minus_one() -> None:
    # C = 3. "first": bg 0, classes 1..3. "last": classes 0..2, bg 3.
    first = cf.accumulate(PROBS, GT, [0, 1, 3], [0, 1, 1], 3, background="first")
    assert first["cls_pred"].tolist() == [-1, 0, 2] and first["cls_target"].tolist() == [-1, 0, 0]
    last = cf.accumulate(PROBS, GT, [3, 0, 2], [3, 0, 0], 3, background="last")
    assert last["cls_pred"].tolist() == [-1, 0, 2] and last["cls_target"].tolist() == [-1, 0, 0]
    with pytest.raises(ValueError, match="-1..2"):
        cf.accumulate(PROBS, GT, [4], [0], 3, background="last")


def test_accumulator_over_batches_equals_one_call_and_takes_tensors(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    whole = cf.accumulate(PROBS, GT, [0, -1, 2, 1], [0, -1, -1, 1], 3)
    acc = cf.ProposalStatsAccumulator(3, category_ids=[1, 2, 3])
    acc.update(torch.tensor(PROBS[:2]), torch.tensor(GT[:2]), torch.tensor([0, -1]), torch.tensor([0, -1]))
    acc.update(PROBS[2:], GT[2:], [2, 1], [-1, 1])
    acc.update(np.zeros((0, 3)), [], [], [])  # a batch without matched proposals
    got = acc.result()
    for key in cf.NPZ_KEYS:
        np.testing.assert_array_equal(got[key], whole[key])
    acc.save(tmp_path / "p.npz")
    loaded = cf.load_proposal_stats(tmp_path / "p.npz")
    for key in cf.NPZ_KEYS:
        np.testing.assert_array_equal(loaded[key], whole[key])


def test_accumulate_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        cf.accumulate(PROBS[:, :2], GT, [], [], 3)
    with pytest.raises(ValueError, match="gt_class"):
        cf.accumulate(PROBS, [0, 3, 1], [], [], 3)
    with pytest.raises(ValueError, match="same length"):
        cf.accumulate(PROBS, GT, [0, 1], [0], 3)


def test_proposal_accuracy_by_hand() -> None:
    # targets: bg, bg, bg, class 0 (bin 0), class 0, class 1 (bin 2), class 2 (no bin)
    target = [-1, -1, -1, 0, 0, 1, 2]
    pred = [-1, -1, 1, 0, 1, 1, -1]
    out = cf.proposal_accuracy(pred, target, class_bins=[0, 2, -1])
    assert out["ACC"] == pytest.approx(100 * 4 / 7)  # right at 0, 1, 3, 5
    assert out["ACCbg"] == pytest.approx(100 * 2 / 3)
    assert out["ACC1"] == pytest.approx(50.0)
    assert out["ACC2"] == -1.0  # no proposal of a bin-2 class
    assert out["ACC3"] == pytest.approx(100.0)
    assert out["ACC4"] == -1.0
    assert set(cf.proposal_accuracy(pred, target)) == {"ACC", "ACCbg"}


def test_proposal_metrics_through_evaluate(tmp_path: Path) -> None:
    """``evaluate(..., proposal_stats=)`` adds PwB and cls.ACC*, with bins from the training file."""
    from ltbench.evaluation import evaluate

    try:
        from support.lvis_hand import hand_dets as _hand_dets
        from support.lvis_hand import hand_gt as _hand_gt
    except ImportError:  # pytest run without the repository root on sys.path
        from support.lvis_hand import hand_dets as _hand_dets
        from support.lvis_hand import hand_gt as _hand_gt

    stats = cf.accumulate(PROBS, GT, [0, -1, 2, 1], [0, -1, -1, 1], 3, category_ids=[1, 2, 3])
    cf.save_proposal_stats(tmp_path / "p.npz", stats)
    (tmp_path / "gt.json").write_text(json.dumps(_hand_gt()))
    (tmp_path / "d.json").write_text(json.dumps(_hand_dets()))
    train = _hand_gt()
    train["annotations"] += [dict(train["annotations"][0], id=10 + i, category_id=2) for i in range(20)]
    (tmp_path / "train.json").write_text(json.dumps(train))  # cat 1: 2 (bin 1), cat 2: 20 (bin 2), cat 3: 0
    m = evaluate(tmp_path / "gt.json", tmp_path / "d.json", iou_types="bbox", evaluator="fast",
                 train_ann=tmp_path / "train.json", proposal_stats=tmp_path / "p.npz", workers=1)
    assert m["PwB"] == pytest.approx(math.sqrt(0.27))
    assert m["cls.ACC"] == pytest.approx(100 * 3 / 4)  # pred == target at 0, 1, 3
    assert m["cls.ACCbg"] == pytest.approx(50.0)  # targets -1 at 1 (right) and 2 (wrong)
    assert m["cls.ACC1"] == pytest.approx(100.0)  # class 0 = cat 1
    assert m["cls.ACC2"] == pytest.approx(100.0)  # class 1 = cat 2
    assert m["cls.ACC3"] == m["cls.ACC4"] == -1.0


def test_load_proposal_stats_errors(tmp_path: Path) -> None:
    stats = cf.accumulate(PROBS, GT, [0], [0], 3)
    bad = dict(stats)
    bad.pop("cm_count")
    np.savez(tmp_path / "a.npz", **bad)
    with pytest.raises(LtbenchError, match="a.npz: cm_count: missing array"):
        cf.load_proposal_stats(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", **dict(stats, cm_sum=np.zeros((3, 2))))
    with pytest.raises(LtbenchError, match=r"b.npz: cm_sum: .*expected \(3, 3\)"):
        cf.load_proposal_stats(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", **dict(stats, cls_pred=np.array([7])))
    with pytest.raises(LtbenchError, match="c.npz: cls_pred: holds values outside -1..2"):
        cf.load_proposal_stats(tmp_path / "c.npz")
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(LtbenchError, match="d.npz: not a readable .npz"):
        cf.load_proposal_stats(tmp_path / "d.npz")
    with pytest.raises(LtbenchError, match="file not found"):
        cf.load_proposal_stats(tmp_path / "none.npz")


def test_heatmap_plot(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    M = rng.dirichlet(np.ones(30), size=30)
    M[4] = 0  # a class without samples is never drawn
    drawn = cf.plot_confusion_heatmap(M, [f"c{i}" for i in range(30)], tmp_path / "h.png", num_classes=10, seed=1)
    assert len(drawn) == 10 and 4 not in drawn and drawn == sorted(drawn)
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(LtbenchError, match="no rows with samples"):
        cf.plot_confusion_heatmap(np.zeros((3, 3)), ["a", "b", "c"], tmp_path / "z.png")


def test_cli_with_proposal_stats_writes_pwb_and_heatmap(tmp_path: Path) -> None:
    from ltbench.cli import main

    try:
        from support.lvis_hand import hand_dets as _hand_dets
        from support.lvis_hand import hand_gt as _hand_gt
    except ImportError:
        from support.lvis_hand import hand_dets as _hand_dets
        from support.lvis_hand import hand_gt as _hand_gt
    cf.save_proposal_stats(tmp_path / "p.npz", cf.accumulate(PROBS, GT, [0, -1], [0, 2], 3, category_ids=[1, 2, 3]))
    (tmp_path / "gt.json").write_text(json.dumps(_hand_gt()))
    (tmp_path / "d.json").write_text(json.dumps(_hand_dets()))
    rc = main(["evaluate", "--gt", str(tmp_path / "gt.json"), "--detections", str(tmp_path / "d.json"),
               "--iou-types", "bbox", "--proposal-stats", str(tmp_path / "p.npz"), "--out", str(tmp_path / "m.json"),
               "--plot-dir", str(tmp_path / "plots")])
    assert rc == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["PwB"] == pytest.approx(math.sqrt(0.27))
    assert m["cls.ACC"] == 50.0 and m["cls.ACCbg"] == -1.0 and "cls.ACC1" not in m  # no --train-ann
    assert (tmp_path / "plots" / "confusion_log2.png").read_bytes()[:4] == b"\x89PNG"
