"""Synthetic long-tailed LVIS: shape of the tail, validity, determinism, caching, learnability cues."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ltbench.data import synth
from ltbench.data.shapes import SHAPES, polygon_area, shape_polygons

FILES = synth.ANNOTATION_FILES


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "synth"
    result = synth.generate(out, seed=0, preset="tiny")
    assert not result.skipped
    return out


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "synth"
    synth.generate(out, seed=0, preset="smoke")
    return out


def _load(root: Path, name: str) -> dict:
    return json.loads((root / "annotations" / name).read_text())


def _train_counts(doc: dict) -> tuple[Counter, Counter]:
    images: dict[int, set[int]] = {}
    instances: Counter = Counter()
    for a in doc["annotations"]:
        instances[a["category_id"]] += 1
        images.setdefault(a["category_id"], set()).add(a["image_id"])
    return Counter({c: len(s) for c, s in images.items()}), instances


def test_smoke_long_tail_has_lvis_shape(smoke: Path) -> None:
    train = _load(smoke, "lvis_v1_train.json")
    assert len(train["images"]) == 600 and len(train["categories"]) == 40
    image_counts, instance_counts = _train_counts(train)
    freq = Counter()
    for c in train["categories"]:
        # Category metadata are the real training counts, and r/c/f follows LVIS thresholds on them.
        assert c["image_count"] == image_counts[c["id"]] >= 1
        assert c["instance_count"] == instance_counts[c["id"]] >= c["image_count"]
        expected = "r" if c["image_count"] <= 10 else ("c" if c["image_count"] <= 100 else "f")
        assert c["frequency"] == expected
        freq[c["frequency"]] += 1
    # LVIS v1 has 337 r / 461 c / 405 f of 1203: about 28 / 38 / 34 %.
    assert 8 <= freq["r"] <= 14 and 12 <= freq["c"] <= 18 and 11 <= freq["f"] <= 17, freq
    assert min(c["image_count"] for c in train["categories"]) == 1
    assert max(c["instance_count"] for c in train["categories"]) >= 1000  # BAGS' ">= 1000" group is populated


def test_every_category_in_val_with_federated_lists(smoke: Path) -> None:
    for version in ("v0.5", "v1"):
        train = _load(smoke, f"lvis_{version}_train.json")
        val = _load(smoke, f"lvis_{version}_val.json")
        assert val["categories"] == train["categories"]  # val carries the training metadata, as LVIS does
        cat_ids = {c["id"] for c in val["categories"]}
        present = {a["category_id"] for a in val["annotations"]}
        assert present == cat_ids
        pos: dict[int, set[int]] = {}
        for a in val["annotations"]:
            pos.setdefault(a["image_id"], set()).add(a["category_id"])
        negs = Counter()
        for im in val["images"]:
            assert set(im["neg_category_ids"]) <= cat_ids
            assert not set(im["neg_category_ids"]) & pos.get(im["id"], set()), "a negative class is present"
            assert set(im["not_exhaustive_category_ids"]) <= pos.get(im["id"], set())
            negs.update(im["neg_category_ids"])
        assert set(negs) == cat_ids  # every class has verified-negative images, so its AP is defined
        assert sum(len(im["not_exhaustive_category_ids"]) for im in val["images"]) > 0


def test_v05_and_v1_files_share_images_and_instances(tiny: Path) -> None:
    a, b = _load(tiny, "lvis_v0.5_train.json"), _load(tiny, "lvis_v1_train.json")
    assert [im["id"] for im in a["images"]] == [im["id"] for im in b["images"]]
    synsets_a = {c["id"]: c["synset"] for c in a["categories"]}
    synsets_b = {c["id"]: c["synset"] for c in b["categories"]}
    assert [synsets_a[x["category_id"]] for x in a["annotations"]] == [synsets_b[x["category_id"]] for x in b["annotations"]]
    assert [x["bbox"] for x in a["annotations"]] == [x["bbox"] for x in b["annotations"]]


def test_real_lvis_names_and_ids(tiny: Path) -> None:
    from ltbench.data.lvis_category_table import LVIS_CATEGORY_TABLE

    by_v1 = {row[0]: row for row in LVIS_CATEGORY_TABLE}
    by_v05 = {row[4]: row for row in LVIS_CATEGORY_TABLE}
    for c in _load(tiny, "lvis_v1_val.json")["categories"]:
        assert by_v1[c["id"]][1] == c["name"] and by_v1[c["id"]][2] == c["synset"]
    for c in _load(tiny, "lvis_v0.5_val.json")["categories"]:
        assert by_v05[c["id"]][5] == c["name"] and by_v05[c["id"]][2] == c["synset"]


def test_lvis_api_loads_every_file(tiny: Path) -> None:
    from lvis import LVIS

    for name in FILES:
        api = LVIS(str(tiny / "annotations" / name))
        assert len(api.get_img_ids()) in (130, 30)
        assert len(api.get_cat_ids()) == 12


def test_annotations_match_pixels(tiny: Path) -> None:
    """Every annotated polygon covers pixels of its class colour; bbox and area agree with the mask."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    manifest = json.loads((tiny / "manifest.json").read_text())
    rgb = {c["v1_id"]: np.array(c["rgb"], dtype=float) for c in manifest["classes"]}
    doc = _load(tiny, "lvis_v1_val.json")
    images = {im["id"]: im for im in doc["images"]}
    for a in doc["annotations"][:60]:
        im = images[a["image_id"]]
        pixels = np.asarray(Image.open(tiny / "images" / im["file_name"]), dtype=float)
        rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], im["height"], im["width"]))
        m = mask_utils.decode(rle).astype(bool)
        assert abs(m.sum() - a["area"]) <= 0.25 * a["area"] + 8
        ys, xs = np.nonzero(m)
        x, y, w, h = a["bbox"]
        # sharp tips (star, triangle) rasterise up to ~2 px inside their polygon vertex
        assert abs(xs.min() - x) <= 2.5 and abs(ys.min() - y) <= 2.5 and abs(xs.max() + 1 - (x + w)) <= 2.5
        mean = pixels[m].mean(axis=0)
        assert np.abs(mean - rgb[a["category_id"]]).max() < 25, (a["id"], mean, rgb[a["category_id"]])


def test_classes_distinct_except_confusable_pairs() -> None:
    classes = synth.select_classes(synth.PRESETS["smoke"])
    looks = [(c.shape, c.colour) for c in classes]
    assert len(set(looks)) == len(looks)
    pairs = [(c, classes[c.confusable_with]) for c in classes if c.confusable_with is not None]
    assert len(pairs) == 3
    for tail, head in pairs:
        assert tail.shape == head.shape
        assert tail.target_train_images <= 100 < head.target_train_images
        distance = np.abs(np.subtract(tail.colour, head.colour)).max()
        assert 2 * synth.COLOUR_JITTER < distance <= 80  # separable beyond jitter, yet close
    for c in classes:  # non-confusable classes differ from each other in shape or clearly in colour
        assert c.shape in SHAPES


def test_deterministic_byte_identical(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    synth.generate(again, seed=0, preset="tiny")
    manifest = json.loads((tiny / "manifest.json").read_text())
    for rel in [f"annotations/{n}" for n in FILES] + [f"images/{r}" for r in manifest["images"]] + ["manifest.json"]:
        assert (again / rel).read_bytes() == (tiny / rel).read_bytes(), rel


def test_other_seed_differs(tiny: Path, tmp_path: Path) -> None:
    other = tmp_path / "seed1"
    synth.generate(other, seed=1, preset="tiny")
    assert (other / "annotations/lvis_v1_train.json").read_bytes() != (tiny / "annotations/lvis_v1_train.json").read_bytes()
    # Same classes whatever the seed.
    assert _load(other, "lvis_v1_val.json")["categories"][0]["name"] == _load(tiny, "lvis_v1_val.json")["categories"][0]["name"]


def test_skip_when_complete_and_regenerate_when_changed(tmp_path: Path) -> None:
    out = tmp_path / "s"
    assert not synth.generate(out, seed=3, preset="tiny").skipped
    assert synth.generate(out, seed=3, preset="tiny").skipped
    assert not synth.is_complete(out, preset="tiny", seed=4)  # other parameters: not the same dataset
    ann = out / "annotations" / "lvis_v1_val.json"
    original = ann.read_bytes()
    ann.write_text("{}")  # a damaged file is noticed through its hash
    assert not synth.is_complete(out, preset="tiny", seed=3)
    assert not synth.generate(out, seed=3, preset="tiny").skipped
    assert ann.read_bytes() == original


def test_unknown_preset_is_a_clear_error(tmp_path: Path) -> None:
    from ltbench.errors import LtbenchError

    with pytest.raises(LtbenchError, match="unknown preset 'smok'.*did you mean 'smoke'"):
        synth.generate(tmp_path, preset="smok")


def test_cli_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ltbench.cli import main

    assert main(["data", "synth", "--out", str(tmp_path / "c"), "--preset", "tiny", "--seed", "2"]) == 0
    assert "12 classes, 130 train / 30 val images" in capsys.readouterr().out
    assert main(["data", "synth", "--out", str(tmp_path / "c"), "--preset", "tiny", "--seed", "2"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_shapes_geometry() -> None:
    for shape in SHAPES:
        polys = shape_polygons(shape, 50, 50, 20, 20)
        area = sum(polygon_area(p) for p in polys)
        xs = [x for p in polys for x, _ in p]
        assert 0.2 * 400 < area <= 400 + 1e-6, shape
        assert min(xs) >= 40 - 1e-9 and max(xs) <= 60 + 1e-9
    with pytest.raises(ValueError):
        shape_polygons("blob", 0, 0, 1, 1)


def test_category_table_matches_shared_sources(lvis_samples: Path) -> None:
    from ltbench.data.lvis_category_table import LVIS_CATEGORY_TABLE

    v1 = {c["id"]: c for c in json.loads((lvis_samples / "lvis_v1_categories.json").read_text())}
    v05 = {c["synset"]: c for c in json.loads((lvis_samples / "lvis_v0.5_val_100.json").read_text())["categories"]}
    expected = [(c["id"], c["name"], c["synset"], c["image_count"], v05[c["synset"]]["id"], v05[c["synset"]]["name"])
                for _, c in sorted(v1.items()) if c["synset"] in v05]
    assert list(LVIS_CATEGORY_TABLE) == expected


def test_image_counts_hit_their_targets(smoke: Path) -> None:
    manifest = json.loads((smoke / "manifest.json").read_text())
    targets = {c.rank: c.target_train_images for c in synth.select_classes(synth.PRESETS["smoke"])}
    for c in manifest["classes"]:
        assert c["train_image_count"] == targets[c["rank"]], c["name"]


def test_layout_draws_every_assigned_class_even_when_crowded() -> None:
    preset = synth.PRESETS["smoke"]
    classes = synth.select_classes(preset)
    for seed in range(25):
        rng = np.random.default_rng(seed)
        members = [0] + sorted(rng.choice(np.arange(1, 40), size=9, replace=False).tolist())  # ~2x the usual load
        pixels, instances, not_exhaustive = synth._draw_image(classes, members, preset, rng)
        assert pixels.shape == (128, 128, 3) and pixels.dtype == np.uint8
        annotated = {i.cls for i in instances if i.annotated}
        assert annotated == set(members)  # the first instance of a class is always drawn and annotated
        assert not_exhaustive <= annotated


def test_assignment_is_exact_and_balanced() -> None:
    rng = np.random.default_rng(0)
    counts = [90, 60, 30, 5, 1]
    members = synth._assign_images(counts, 100, rng)
    for j, n in enumerate(counts):
        assert sum(j in m for m in members) == n
    loads = [len(m) for m in members]
    assert max(loads) - min(loads) <= 1


def test_regenerating_smaller_removes_stale_images(tmp_path: Path) -> None:
    out = tmp_path / "s"
    synth.generate(out, seed=0, preset="tiny")
    stale = out / "images" / "val" / "999999.png"  # pretend an earlier, larger dataset left this one
    stale.write_bytes(b"x")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["images"].append("val/999999.png")
    manifest["params_hash"] = "older"
    (out / "manifest.json").write_text(json.dumps(manifest))
    unrelated = out / "images" / "notes.txt"
    unrelated.write_text("user file")
    assert not synth.generate(out, seed=0, preset="tiny").skipped
    assert not stale.exists() and unrelated.exists()
    assert synth.is_complete(out, preset="tiny", seed=0)
