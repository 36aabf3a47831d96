"""``ltbench data subset``: keeps every category, the r/c/f mix, the federated lists; deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltbench.data.layout import image_relative_path
from ltbench.data.subset import make_subset, write_subset
from ltbench.errors import LtbenchError


@pytest.fixture(scope="module")
def real_val(lvis_samples: Path) -> Path:
    return lvis_samples / "lvis_v0.5_val_100.json"


def _hand_made() -> dict:
    """12 images; category 1 rare (in image 7 only), 2 common, 3 frequent (everywhere), 4 without annotations."""
    cats = [
        {"id": 1, "name": "a", "synset": "a.n.01", "frequency": "r", "image_count": 3, "instance_count": 3},
        {"id": 2, "name": "b", "synset": "b.n.01", "frequency": "c", "image_count": 40, "instance_count": 50},
        {"id": 3, "name": "c", "synset": "c.n.01", "frequency": "f", "image_count": 900, "instance_count": 4000},
        {"id": 4, "name": "d", "synset": "d.n.01", "frequency": "r", "image_count": 1, "instance_count": 1},
    ]
    images, anns = [], []
    for i in range(1, 13):
        images.append({"id": i, "height": 10, "width": 10, "file_name": f"img{i}.jpg",
                       "neg_category_ids": [4] if i % 2 else [], "not_exhaustive_category_ids": [3] if i == 5 else []})
        anns.append({"id": 100 + i, "image_id": i, "category_id": 3, "bbox": [0, 0, 2, 2], "area": 4, "segmentation": [[0, 0, 2, 0, 2, 2]]})
        if i in (2, 9, 11):
            anns.append({"id": 200 + i, "image_id": i, "category_id": 2, "bbox": [0, 0, 2, 2], "area": 4, "segmentation": [[0, 0, 2, 0, 2, 2]]})
    anns.append({"id": 300, "image_id": 7, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4, "segmentation": [[0, 0, 2, 0, 2, 2]]})
    return {"info": {"x": 1}, "licenses": [], "categories": cats, "images": images, "annotations": anns}


def test_real_subset_keeps_what_it_must(real_val: Path, tmp_path: Path) -> None:
    src = json.loads(real_val.read_text())
    out, listing = tmp_path / "sub.json", tmp_path / "images.txt"
    summary = write_subset(real_val, out, n_images=10, seed=0, image_list=listing)
    sub = json.loads(out.read_text())
    assert sub["categories"] == src["categories"]  # every category, metadata unchanged
    assert len(sub["images"]) == 10 == summary["images"]
    src_images = {im["id"]: im for im in src["images"]}
    kept = {im["id"] for im in sub["images"]}
    for im in sub["images"]:
        assert im == src_images[im["id"]]  # federated lists and every other field unchanged
    assert sub["annotations"] == [a for a in src["annotations"] if a["image_id"] in kept]
    assert set(summary["images_with_frequency"]) == {"r", "c", "f"}
    assert all(n >= 1 for n in summary["images_with_frequency"].values())  # r/c/f all represented
    lines = listing.read_text().splitlines()
    assert lines == ["/".join(im["coco_url"].split("/")[-2:]) for im in sub["images"]]
    assert all(line.startswith("val2017/") and line.endswith(".jpg") for line in lines)
    assert sub["info"]["ltbench_subset"]["images"] == 10


def test_rare_image_is_kept_even_in_tiny_subsets(real_val: Path) -> None:
    # Only one rare category has ground truth in these 100 images; a 3-image subset must still contain it.
    src = json.loads(real_val.read_text())
    freq = {c["id"]: c["frequency"] for c in src["categories"]}
    for seed in range(3):
        sub = make_subset(src, 3, seed=seed)
        groups = {freq[a["category_id"]] for a in sub["annotations"]}
        assert groups == {"r", "c", "f"}, seed


def test_deterministic_and_seed_dependent(real_val: Path, tmp_path: Path) -> None:
    write_subset(real_val, tmp_path / "a.json", n_images=20, seed=5)
    write_subset(real_val, tmp_path / "b.json", n_images=20, seed=5)
    write_subset(real_val, tmp_path / "c.json", n_images=20, seed=6)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    ids = lambda p: {im["id"] for im in json.loads(p.read_text())["images"]}  # noqa: E731
    assert ids(tmp_path / "a.json") != ids(tmp_path / "c.json")


def test_hand_made_coverage_and_lists() -> None:
    doc = _hand_made()
    for seed in range(5):
        sub = make_subset(doc, 2, seed=seed)
        ids = {im["id"] for im in sub["images"]}
        assert 7 in ids  # the only image with the rare category
        assert ids & {2, 9, 11}  # an image with the common one
        assert {a["image_id"] for a in sub["annotations"]} <= ids
        assert len(sub["categories"]) == 4  # category 4 has no annotations but is kept
    assert doc["images"][0]["neg_category_ids"] == [4]  # input not modified
    full = make_subset(doc, 12)
    assert len(full["annotations"]) == len(doc["annotations"])


def test_image_relative_path() -> None:
    assert image_relative_path({"coco_url": "http://images.cocodataset.org/train2017/000000000009.jpg"}) == "train2017/000000000009.jpg"
    assert image_relative_path({"file_name": "img1.jpg"}) == "img1.jpg"
    with pytest.raises(LtbenchError, match="neither coco_url nor file_name"):
        image_relative_path({"id": 3})


def test_errors_name_file_and_key(tmp_path: Path) -> None:
    doc = _hand_made()
    with pytest.raises(LtbenchError, match="cannot keep 13 images.*between 1 and 12"):
        make_subset(doc, 13, label="x.json")
    with pytest.raises(LtbenchError, match="cannot keep 0 images"):
        make_subset(doc, 0)
    bad = _hand_made()
    bad["annotations"][0]["category_id"] = 99
    with pytest.raises(LtbenchError, match=r"annotations\[0\]\.category_id: annotation uses unknown category id 99"):
        make_subset(bad, 2, label="x.json")
    (tmp_path / "t.json").write_text('{"images": [')
    with pytest.raises(LtbenchError, match="truncated"):
        write_subset(tmp_path / "t.json", tmp_path / "o.json", n_images=1)


def test_cli_subset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ltbench.cli import main

    src = tmp_path / "hand.json"
    src.write_text(json.dumps(_hand_made()))
    rc = main(["data", "subset", "--ann", str(src), "--out", str(tmp_path / "s.json"), "--images", "4",
               "--image-list", str(tmp_path / "l.txt")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "4 images" in text and "4 categories" in text and "r: 1" in text
    assert len((tmp_path / "l.txt").read_text().splitlines()) == 4
    assert main(["data", "subset", "--ann", str(src), "--out", str(tmp_path / "s.json"), "--images", "40"]) == 2


def test_property_subset_invariants() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def check(data) -> None:  # type: ignore[no-untyped-def]
        freqs = data.draw(st.lists(st.sampled_from("rcf"), min_size=1, max_size=6))
        cats = [{"id": 3 * (k + 1), "frequency": f} for k, f in enumerate(freqs)]
        n_images = data.draw(st.integers(1, 20))
        images = [{"id": 100 + i, "neg_category_ids": [], "not_exhaustive_category_ids": []} for i in range(n_images)]
        anns = []
        for im in images:
            for k in data.draw(st.lists(st.integers(0, len(cats) - 1), max_size=4)):
                anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": cats[k]["id"]})
        doc = {"categories": cats, "images": images, "annotations": anns}
        n = data.draw(st.integers(1, n_images))
        sub = make_subset(doc, n, seed=data.draw(st.integers(0, 5)))
        ids = {im["id"] for im in sub["images"]}
        assert len(ids) == n and sub["categories"] == cats
        assert sub["annotations"] == [a for a in anns if a["image_id"] in ids]
        freq = {c["id"]: c["frequency"] for c in cats}
        source_groups = {freq[a["category_id"]] for a in anns}
        if n >= 3:
            assert {freq[a["category_id"]] for a in sub["annotations"]} == source_groups

    check()


def test_subset_loads_in_lvis_api(real_val: Path, tmp_path: Path) -> None:
    from lvis import LVIS

    write_subset(real_val, tmp_path / "s.json", n_images=15, seed=1)
    api = LVIS(str(tmp_path / "s.json"))
    assert len(api.get_img_ids()) == 15 and len(api.get_cat_ids()) == 1230
