"""``ltbench data coco-lt``: per-class training instances follow each paper's target; deterministic."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from ltbench.data.coco_lt import build_coco_lt, targets_bags, targets_simcal, write_coco_lt
from ltbench.errors import LtbenchError

NUM_CATS = 8


def _coco(seed: int = 0, num_images: int = 400) -> dict:
    """A COCO-format file: class k appears in about num_images * 0.8**k images, 1-4 instances each,
    plus a few crowd annotations (which must never count as instances)."""
    rng = random.Random(seed)
    cats = [{"id": 10 + 3 * k, "name": f"class{k}", "supercategory": "x"} for k in range(NUM_CATS)]
    images, anns = [], []
    aid = 1
    for i in range(1, num_images + 1):
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "height": 64, "width": 64,
                       "coco_url": f"http://images.cocodataset.org/train2017/{i:012d}.jpg"})
        for k, c in enumerate(cats):
            if rng.random() < 0.8 ** k:
                for _ in range(rng.randint(1, 4)):
                    anns.append({"id": aid, "image_id": i, "category_id": c["id"], "bbox": [1, 1, 5, 5], "area": 25,
                                 "iscrowd": 0, "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]]})
                    aid += 1
        if i % 50 == 0:
            anns.append({"id": aid, "image_id": i, "category_id": cats[0]["id"], "bbox": [0, 0, 9, 9], "area": 81,
                         "iscrowd": 1, "segmentation": {"counts": [0, 81], "size": [64, 64]}})
            aid += 1
    return {"info": {"description": "hand-made"}, "licenses": [], "categories": cats, "images": images, "annotations": anns}


def _lvis_categories(n: int = 50) -> list[dict]:
    # Long tail: instance counts 600 * 0.88**r for rank r (600 .. 1), shuffled ids.
    counts = [max(1, int(600 * 0.88 ** r)) for r in range(n)]
    ids = list(range(1, n + 1))
    random.Random(1).shuffle(ids)
    return [{"id": i, "name": f"l{i}", "synset": f"l{i}.n.01", "instance_count": c, "image_count": max(1, c // 2)}
            for i, c in zip(ids, counts)]


def _available(coco: dict) -> dict[int, int]:
    out = {c["id"]: 0 for c in coco["categories"]}
    for a in coco["annotations"]:
        if not a["iscrowd"]:
            out[a["category_id"]] += 1
    return out


def _kept(doc: dict) -> dict[int, int]:
    return _available(doc)


def test_bags_counts_match_lvis_sorted_counts() -> None:
    coco, lvis = _coco(), _lvis_categories()
    doc, report = build_coco_lt(coco, "bags", lvis_categories={"categories": lvis})
    available = _available(coco)
    lvis_sorted = sorted((c["instance_count"] for c in lvis), reverse=True)
    coco_sorted = sorted(available, key=lambda cid: (-available[cid], cid))
    kept = _kept(doc)
    for k, cid in enumerate(coco_sorted):
        target = lvis_sorted[round(k * (len(lvis) - 1) / (NUM_CATS - 1))]
        assert report[cid]["target"] == target
        assert kept[cid] == min(target, available[cid]) == report[cid]["kept"]
    # Ends of the tail are LVIS's ends: the head class gets LVIS's largest count, the last its smallest.
    assert report[coco_sorted[0]]["target"] == lvis_sorted[0]
    assert kept[coco_sorted[-1]] == lvis_sorted[-1] == 1
    cats = {c["id"]: c for c in doc["categories"]}
    assert all(cats[cid]["instance_count"] == kept[cid] for cid in kept)
    assert len(doc["images"]) < len(coco["images"])  # only as many images as the targets need


def test_simcal_counts_decay_exponentially() -> None:
    coco = _coco()
    available = _available(coco)
    doc, report = build_coco_lt(coco, "simcal", min_count=2)
    order = sorted(available, key=lambda cid: (-available[cid], cid))
    kept = _kept(doc)
    assert kept[order[0]] == available[order[0]]  # head keeps everything
    assert kept[order[-1]] == 2
    ratio = (2 / available[order[0]]) ** (1 / (NUM_CATS - 1))
    for k, cid in enumerate(order):
        assert kept[cid] == report[cid]["target"] == max(2, round(available[order[0]] * ratio ** k))
    logs = [math.log(kept[cid]) for cid in order]
    steps = [a - b for a, b in zip(logs, logs[1:])]
    assert max(steps) - min(steps) < 0.35  # a straight line in log-count: exponential decay
    assert targets_simcal({1: 1000, 2: 10}, min_count=1) == {1: 1000, 2: 1}


def test_sampled_images_and_annotations_are_consistent() -> None:
    coco = _coco()
    doc, _ = build_coco_lt(coco, "simcal")
    ids = {im["id"] for im in doc["images"]}
    assert {a["image_id"] for a in doc["annotations"]} == ids  # every selected image holds a kept instance
    assert len({a["id"] for a in doc["annotations"]}) == len(doc["annotations"])
    crowd_src = {a["id"] for a in coco["annotations"] if a["iscrowd"] and a["image_id"] in ids}
    assert crowd_src == {a["id"] for a in doc["annotations"] if a["iscrowd"]}  # crowd kept as ignore regions
    assert all(im["file_name"].startswith("train2017/") for im in doc["images"])
    # SimCal keeps the head class whole, so every image with it is selected (here: all of them).
    assert len(doc["images"]) == len(coco["images"])


def test_deterministic_and_seeded(tmp_path: Path) -> None:
    src = tmp_path / "coco.json"
    src.write_text(json.dumps(_coco()))
    lv = tmp_path / "lvis.json"
    lv.write_text(json.dumps({"categories": _lvis_categories()}))
    for name in ("a", "b"):
        write_coco_lt(src, tmp_path / f"{name}.json", variant="bags", lvis_categories=lv, seed=3)
    write_coco_lt(src, tmp_path / "c.json", variant="bags", lvis_categories=lv, seed=4)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    a, c = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("a", "c"))
    assert {im["id"] for im in a["images"]} != {im["id"] for im in c["images"]}
    assert _kept(a) == _kept(c)  # the seed changes which images, never the counts


def test_short_classes_get_everything_coco_has() -> None:
    coco = _coco(num_images=60)
    lvis = [{"id": i, "synset": f"s{i}", "instance_count": 10_000 - i} for i in range(20)]
    doc, report = build_coco_lt(coco, "bags", lvis_categories=lvis)
    for cid, r in report.items():
        assert r["kept"] == min(r["target"], r["available"])
    assert any(r["kept"] < r["target"] for r in report.values())


def test_synset_alignment(lvis_samples: Path) -> None:
    synset_map = json.loads((lvis_samples / "coco_to_synset.json").read_text())
    chosen = sorted(synset_map.items(), key=lambda kv: kv[1]["coco_cat_id"])[:NUM_CATS]
    coco = _coco()
    old_to_new = {c["id"]: v["coco_cat_id"] for c, (_, v) in zip(coco["categories"], chosen)}
    for c in coco["categories"]:
        c["id"] = old_to_new[c["id"]]
    for a in coco["annotations"]:
        a["category_id"] = old_to_new[a["category_id"]]
    lvis = [{"id": 500 + k, "synset": v["synset"], "instance_count": 3 + k} for k, (_, v) in enumerate(chosen)]
    targets = targets_bags(_available(coco), coco["categories"], lvis, align="synset", synset_map=synset_map)
    assert targets == {v["coco_cat_id"]: 3 + k for k, (_, v) in enumerate(chosen)}
    with pytest.raises(LtbenchError, match="has no LVIS category with synset"):
        targets_bags(_available(coco), coco["categories"], lvis[1:], align="synset", synset_map=synset_map)


def test_errors() -> None:
    coco = _coco(num_images=20)
    with pytest.raises(LtbenchError, match="needs LVIS training counts.*\n  hint: pass --lvis-categories"):
        build_coco_lt(coco, "bags")
    zeros = [{"id": 1, "instance_count": 0}, {"id": 2, "instance_count": 0}]
    with pytest.raises(LtbenchError, match="every instance_count is 0"):
        build_coco_lt(coco, "bags", lvis_categories=zeros)
    no_field = [{"id": 1, "image_count": 5}]
    with pytest.raises(LtbenchError, match=r"(?s)categories\[0\]\.instance_count.*--count-field image_count"):
        build_coco_lt(coco, "bags", lvis_categories=no_field, lvis_label="v1.json")
    doc, report = build_coco_lt(coco, "bags", lvis_categories=no_field * 1, count_field="image_count")
    assert {r["target"] for r in report.values()} == {5}
    with pytest.raises(LtbenchError, match="unknown variant"):
        build_coco_lt(coco, "bogus")
    with pytest.raises(LtbenchError, match="min_count"):
        build_coco_lt(coco, "simcal", min_count=0)
    broken = _coco(num_images=5)
    broken["annotations"][0]["category_id"] = 999
    with pytest.raises(LtbenchError, match=r"annotations\[0\]\.category_id"):
        build_coco_lt(broken, "simcal")


def test_cli_coco_lt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ltbench.cli import main

    src = tmp_path / "coco.json"
    src.write_text(json.dumps(_coco()))
    assert main(["data", "coco-lt", "--variant", "simcal", "--coco", str(src), "--out", str(tmp_path / "o.json")]) == 0
    out = capsys.readouterr().out
    assert "COCO-LT (simcal)" in out and f"{NUM_CATS} categories" in out and "down to 1" in out
    assert main(["data", "coco-lt", "--variant", "bags", "--coco", str(src), "--out", str(tmp_path / "o.json")]) == 2


def _random_coco(data) -> dict:  # type: ignore[no-untyped-def]
    from hypothesis import strategies as st

    n_cats = data.draw(st.integers(1, 5))
    n_images = data.draw(st.integers(1, 25))
    cats = [{"id": 7 * (k + 1), "name": f"k{k}"} for k in range(n_cats)]
    images, anns, aid = [], [], 1
    for i in range(1, n_images + 1):
        images.append({"id": i, "file_name": f"{i}.jpg"})
        for cat_index in data.draw(st.lists(st.integers(0, n_cats - 1), max_size=6)):
            crowd = data.draw(st.integers(0, 9)) == 0
            anns.append({"id": aid, "image_id": i, "category_id": cats[cat_index]["id"], "iscrowd": int(crowd)})
            aid += 1
    return {"categories": cats, "images": images, "annotations": anns}


def test_property_kept_is_capped_target_for_any_input() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def check(data) -> None:  # type: ignore[no-untyped-def]
        coco = _random_coco(data)
        if data.draw(st.booleans()):
            doc, report = build_coco_lt(coco, "simcal", min_count=data.draw(st.integers(1, 4)), seed=data.draw(st.integers(0, 3)))
        else:
            lvis = [{"id": i, "instance_count": n} for i, n in enumerate(data.draw(st.lists(st.integers(1, 30), min_size=1, max_size=9)))]
            doc, report = build_coco_lt(coco, "bags", lvis_categories=lvis)
        available = _available(coco)
        kept = _kept(doc)
        for cid, r in report.items():
            assert kept[cid] == r["kept"] == min(r["target"], available[cid])
        selected = {im["id"] for im in doc["images"]}
        assert {a["image_id"] for a in doc["annotations"]} <= selected
        assert {a["image_id"] for a in doc["annotations"] if not a["iscrowd"]} == selected

    check()
