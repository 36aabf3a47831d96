"""Dataset path resolution from workflows/config/datasets.yaml: paths, errors, on-demand synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltbench.data.datasets import DatasetPaths, ensure, load_config, resolve
from ltbench.errors import LtbenchError

CONFIG = """
smoke:
  lvis_v1:
    train: ${LTBENCH_DATA}/synth/annotations/lvis_v1_train.json
    val: ${LTBENCH_DATA}/synth/annotations/lvis_v1_val.json
    image_root: ${LTBENCH_DATA}/synth/images
    synth:
      out: ${LTBENCH_DATA}/synth
      preset: tiny
      seed: 0
    make: ltbench data synth --out ${LTBENCH_DATA}/synth --preset tiny
paper:
  lvis_v1:
    train: ${LTBENCH_DATA}/lvis/lvis_v1_train.json
    val: ${LTBENCH_DATA}/lvis/lvis_v1_val.json
    image_root: ${MY_COCO}/coco
    how_to_get: Download LVIS v1 from https://www.lvisdataset.org/dataset.
"""


@pytest.fixture()
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LTBENCH_DATA", str(tmp_path / "data"))
    path = tmp_path / "datasets.yaml"
    path.write_text(CONFIG)
    return path


def test_missing_synthetic_data_names_path_and_command(config: Path, tmp_path: Path) -> None:
    with pytest.raises(LtbenchError) as info:
        resolve("lvis_v1", "smoke", config=config)
    text = str(info.value)
    assert str(tmp_path / "data/synth/annotations/lvis_v1_train.json") in text
    assert f"ltbench data synth --out {tmp_path}/data/synth --preset tiny" in text
    assert "smoke.lvis_v1.train" in text and str(config) in text


def test_unchecked_resolve_expands_variables(config: Path, tmp_path: Path) -> None:
    paths = resolve("lvis_v1", "smoke", config=config, check=False)
    assert paths == DatasetPaths(tmp_path / "data/synth/annotations/lvis_v1_train.json",
                                 tmp_path / "data/synth/annotations/lvis_v1_val.json",
                                 tmp_path / "data/synth/images", "lvis_v1", "smoke")
    assert paths.split("val") == paths.val
    with pytest.raises(LtbenchError, match="unknown split 'test'"):
        paths.split("test")


def test_ensure_generates_once_then_resolves(config: Path, tmp_path: Path) -> None:
    paths = ensure("lvis_v1", "smoke", config=config)
    assert paths.train.is_file() and paths.val.is_file() and paths.image_root.is_dir()
    stamp = paths.train.stat().st_mtime_ns
    assert ensure("lvis_v1", "smoke", config=config) == paths
    assert paths.train.stat().st_mtime_ns == stamp  # not regenerated
    assert resolve("lvis_v1", "smoke", config=config) == paths


def test_paper_scale_errors(config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MY_COCO", raising=False)
    with pytest.raises(LtbenchError, match=r"paper\.lvis_v1\.image_root: environment variable \$\{MY_COCO\} is not set"):
        resolve("lvis_v1", "paper", config=config)
    monkeypatch.setenv("MY_COCO", str(tmp_path))
    with pytest.raises(LtbenchError, match=r"(?s)looked for train at .*lvis_v1_train.json.*hint: Download LVIS v1"):
        resolve("lvis_v1", "paper", config=config)
    with pytest.raises(LtbenchError, match=r"looked for train"):
        ensure("lvis_v1", "paper", config=config)  # nothing to generate at paper scale: resolve's error


def test_unknown_names_suggest(config: Path) -> None:
    with pytest.raises(LtbenchError, match="unknown scale 'smok'.*did you mean 'smoke'"):
        resolve("lvis_v1", "smok", config=config)
    with pytest.raises(LtbenchError, match=r"no dataset 'lvis_v2' at scale 'smoke' \(did you mean 'lvis_v1'\?\)"):
        resolve("lvis_v2", "smoke", config=config)


def test_bad_entry(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("smoke:\n  x: {train: a.json, val: 3}\n")
    with pytest.raises(LtbenchError, match=r"smoke\.x\.val: missing or non-string 'val'"):
        resolve("x", "smoke", config=path)


def test_repository_config_is_complete() -> None:
    path, doc = load_config()
    assert set(doc) == {"smoke", "mini", "paper"}
    names = {"lvis_v0.5", "lvis_v1", "coco_lt_bags", "coco_lt_simcal"}  # FORMAT.md's dataset names
    for name in names:  # every mini run starts from the synthetic backbone
        assert doc["mini"][name]["backbone"]["recipe"] == "mini", name
    for scale in ("smoke", "mini", "paper"):
        assert set(doc[scale]) == names, scale
        for name, entry in doc[scale].items():
            assert {"train", "val", "image_root"} <= set(entry), (scale, name)
            assert entry.get("synth") or entry.get("how_to_get"), (scale, name)
            resolve(name, scale, check=False, config=path)
    assert doc["smoke"]["lvis_v0.5"]["synth"]["preset"] == "smoke"


def test_ensure_unwritable_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LTBENCH_DATA", str(blocker))  # <file>/synth cannot be created
    path = tmp_path / "datasets.yaml"
    path.write_text(CONFIG)
    with pytest.raises(LtbenchError, match=r"smoke\.lvis_v1\.synth\.out: cannot write synthetic data"):
        ensure("lvis_v1", "smoke", config=path)


def test_cli_resolve(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from ltbench.cli import main

    monkeypatch.setenv("LTBENCH_DATASETS_CONFIG", str(config))
    assert main(["data", "resolve", "lvis_v1", "--scale", "smoke"]) == 2
    assert "ltbench data synth --out" in capsys.readouterr().err
    assert main(["data", "resolve", "lvis_v1", "--scale", "smoke", "--ensure"]) == 0
    assert f"image_root: {tmp_path}/data/synth/images" in capsys.readouterr().out
