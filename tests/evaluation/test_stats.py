"""Dataset statistics (SimCal Table 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltbench.errors import LtbenchError
from ltbench.evaluation.stats import dataset_statistics, format_statistics


def _ann(cats: list[tuple[int, str | None]], instances: dict[int, int], first_id: int = 1) -> dict:
    anns, k = [], first_id
    for cid, n in instances.items():
        for j in range(n):
            anns.append({"id": k, "image_id": j % 150, "category_id": cid, "bbox": [0, 0, 1, 1], "area": 1})
            k += 1
    categories = [{"id": cid, "name": f"c{cid}", **({"frequency": f} if f else {})} for cid, f in cats]
    return {"images": [{"id": i, "height": 10, "width": 10} for i in range(150)], "annotations": anns,
            "categories": categories}


def test_counts_by_hand(tmp_path: Path) -> None:
    cats = [(1, "r"), (2, "r"), (3, "c"), (4, "f"), (5, "f")]
    train = _ann(cats, {1: 3, 2: 10, 3: 99, 4: 100, 5: 1000})  # bins 1, 2, 2, 3, 4
    val = _ann(cats, {2: 1, 5: 4})
    (tmp_path / "t.json").write_text(json.dumps(train))
    (tmp_path / "v.json").write_text(json.dumps(val))
    s = dataset_statistics(tmp_path / "t.json", tmp_path / "v.json")
    assert s["train"]["total"] == 5
    assert s["train"]["frequency"] == {"r": 2, "c": 1, "f": 2}
    assert s["train"]["bins"] == {"(0, 10)": 1, "[10, 100)": 2, "[100, 1000)": 1, "[1000, inf)": 1}
    assert s["train"]["instances"] == 1212
    assert s["train-on-val"]["total"] == 2
    assert s["train-on-val"]["frequency"] == {"r": 1, "c": 0, "f": 1}
    assert s["train-on-val"]["bins"] == {"(0, 10)": 0, "[10, 100)": 1, "[100, 1000)": 0, "[1000, inf)": 1}
    coco = dataset_statistics(tmp_path / "t.json", scheme="coco-lt")
    assert coco["train"]["bins"] == {"[1, 20)": 2, "[20, 400)": 2, "[400, 8000)": 1, "[8000, inf)": 0}


def test_frequency_from_image_counts_without_field(tmp_path: Path) -> None:
    cats = [(1, None), (2, None), (3, None)]
    train = _ann(cats, {1: 10, 2: 11, 3: 150})  # distinct images: 10, 11, 150 -> r, c, f
    train["annotations"].append({"id": 9999, "image_id": 0, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1})
    (tmp_path / "t.json").write_text(json.dumps(train))
    s = dataset_statistics(tmp_path / "t.json")
    assert s["train"]["frequency"] == {"r": 1, "c": 1, "f": 1}
    assert "image counts" in s["frequency_source"]
    assert s["train"]["no_instances"] == 0


def test_real_lvis_v05_split_matches_simcal_table1(lvis_samples: Path) -> None:
    """The v0.5 categories' r/c/f split is SimCal Table 1's Train row (1230 = 454 + 461 + 315)."""
    path = lvis_samples / "lvis_v0.5_val_100.json"
    s = dataset_statistics(path, path)
    assert s["train"]["total"] == 1230
    assert s["train"]["frequency"] == {"r": 454, "c": 461, "f": 315}
    present = {a["category_id"] for a in json.loads(path.read_text())["annotations"]}
    assert s["train-on-val"]["total"] == len(present)
    assert sum(s["train"]["bins"].values()) + s["train"]["no_instances"] == 1230


def test_formats_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ltbench.cli import main

    cats = [(1, "r"), (2, "f")]
    (tmp_path / "t.json").write_text(json.dumps(_ann(cats, {1: 2, 2: 2000})))
    s = dataset_statistics(tmp_path / "t.json")
    md = format_statistics(s, "markdown")
    assert md.splitlines()[0].startswith("| Set") and "|:-" in md.splitlines()[1]
    assert json.loads(format_statistics(s, "json")) == s
    assert main(["stats", "--ann", str(tmp_path / "t.json"), "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "Train" in out and "[1000, inf)" in out
    assert main(["stats", "--ann", str(tmp_path / "t.json"), "--format", "json", "--out", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["train"]["total"] == 2


def test_errors(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps(_ann([(1, "r")], {1: 2})))
    bad = _ann([(1, "r")], {1: 2})
    bad["annotations"][1]["category_id"] = 77
    (tmp_path / "b.json").write_text(json.dumps(bad))
    with pytest.raises(LtbenchError, match=r"b.json: annotations\[1\]\.category_id: unknown category_id 77"):
        dataset_statistics(tmp_path / "b.json")
    val = _ann([(1, "r"), (5, "r")], {5: 1})
    (tmp_path / "v.json").write_text(json.dumps(val))
    with pytest.raises(LtbenchError, match="v.json: annotations: 1 val categories are not in the training"):
        dataset_statistics(tmp_path / "t.json", tmp_path / "v.json")
    (tmp_path / "e.json").write_text("")
    with pytest.raises(LtbenchError, match="file is empty"):
        dataset_statistics(tmp_path / "e.json")
    with pytest.raises(LtbenchError, match="unknown bin scheme"):
        dataset_statistics(tmp_path / "t.json", scheme="lvis-v2")
