"""Dataset path resolution: (dataset name, scale) -> annotation files and image root.

All paths come from ``workflows/config/datasets.yaml`` (``ltbench.paths.DATASETS_CONFIG``), with
``${LTBENCH_DATA}`` (default ``<repo>/data``) and any other ``${VAR}`` expanded from the environment.

- ``resolve(dataset, scale)`` returns ``DatasetPaths`` or raises ``LtbenchError`` naming the path it
  looked for and how to get the data (the command to run, or the download instructions).
- ``ensure(dataset, scale)`` is ``resolve`` that first generates synthetic data when the entry has a
  ``synth`` block (smoke scale); safe to call from many processes at once (a file lock serialises them).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class DatasetPaths:
    """Resolved files of one dataset at one scale.

    ``train`` / ``val``: LVIS-format (or COCO-format) annotation JSON files. ``image_root``: the folder
    image paths are relative to, as ``ltbench.data.layout.image_relative_path`` gives them: coco_url's last
    two parts when an image has one (real LVIS v0.5/v1, COCO, COCO-LT: ``val2017/000000266409.jpg``, so at
    paper scale ``image_root`` is the COCO 2017 root holding ``train2017/`` and ``val2017/``), else its
    relative ``file_name`` (synthetic data: ``val/000003.png`` under ``<synth>/images``).
    """

    train: Path
    val: Path
    image_root: Path
    dataset: str = ""
    scale: str = ""

    def split(self, name: str) -> Path:
        """The annotation file of split ``"train"`` or ``"val"``."""
        if name not in ("train", "val"):
            raise LtbenchError(f"unknown split {name!r}", key="split", expected="train | val")
        return self.train if name == "train" else self.val


def _expand(value: str, config_path: Path, key: list[str | int]) -> str:
    from ltbench.paths import data_root

    def sub(match: re.Match[str]) -> str:
        var = match.group(1)
        if var == "LTBENCH_DATA":
            return str(data_root())
        if var not in os.environ:
            raise LtbenchError(
                f"environment variable ${{{var}}} is not set", path=config_path, key=key,
                expected=f"{var} set in the environment", hint=f"export {var}=/path/to/data",
            )
        return os.environ[var]

    return _VAR.sub(sub, value)


def load_config(config: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The datasets config (path, parsed mapping scale -> dataset -> entry)."""
    from ltbench.io import read_yaml
    from ltbench.paths import DATASETS_CONFIG

    path = Path(config) if config is not None else Path(os.environ.get("LTBENCH_DATASETS_CONFIG", DATASETS_CONFIG))
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise LtbenchError("top level is not a mapping", path=path, expected="scale: {dataset: {train, val, image_root}}")
    return path, doc


def _entry(dataset: str, scale: str, config: str | Path | None) -> tuple[Path, dict[str, Any]]:
    path, doc = load_config(config)
    if scale not in doc or not isinstance(doc[scale], dict):
        raise LtbenchError(
            f"unknown scale {scale!r}{did_you_mean(scale, doc)}", path=path, key=[scale],
            expected="one of " + ", ".join(map(str, doc)),
        )
    entries = doc[scale]
    if dataset not in entries:
        raise LtbenchError(
            f"no dataset {dataset!r} at scale {scale!r}{did_you_mean(dataset, entries)}", path=path, key=[scale, dataset],
            expected="one of " + ", ".join(map(str, entries)),
        )
    entry = entries[dataset]
    for field in ("train", "val", "image_root"):
        if not isinstance(entry, dict) or not isinstance(entry.get(field), str):
            raise LtbenchError(f"missing or non-string {field!r}", path=path, key=[scale, dataset, field], expected="a path string")
    expanded: dict[str, Any] = {}
    for field, value in entry.items():
        if isinstance(value, str):
            expanded[field] = _expand(value, path, [scale, dataset, field])
        elif isinstance(value, dict):
            expanded[field] = {
                k: _expand(v, path, [scale, dataset, field, k]) if isinstance(v, str) else v for k, v in value.items()
            }
        else:
            expanded[field] = value
    return path, expanded


def _how_to_get(entry: dict[str, Any]) -> str:
    parts = []
    if entry.get("make"):
        parts.append(f"run: {' '.join(str(entry['make']).split())}")
    if entry.get("how_to_get"):
        parts.append(" ".join(str(entry["how_to_get"]).split()))
    return "; ".join(parts) or "see workflows/config/datasets.yaml"


def resolve(dataset: str, scale: str, *, config: str | Path | None = None, check: bool = True) -> DatasetPaths:
    """Paths of ``dataset`` at ``scale``; with ``check``, every path must exist.

    Raises ``LtbenchError`` naming the config entry, the missing path and how to get it.
    """
    config_path, entry = _entry(dataset, scale, config)
    paths = DatasetPaths(Path(entry["train"]), Path(entry["val"]), Path(entry["image_root"]), dataset, scale)
    if check:
        for field, p in (("train", paths.train), ("val", paths.val), ("image_root", paths.image_root)):
            ok = p.is_dir() if field == "image_root" else p.is_file()
            if not ok:
                raise LtbenchError(
                    f"dataset {dataset!r} (scale {scale!r}) not found: looked for {field} at {p}",
                    path=config_path, key=[scale, dataset, field],
                    expected="an existing " + ("folder" if field == "image_root" else "annotation file"),
                    hint=_how_to_get(entry),
                )
    return paths


def ensure(dataset: str, scale: str, *, config: str | Path | None = None) -> DatasetPaths:
    """``resolve``, generating the synthetic data first where the entry has a ``synth`` block.

    Generation is skipped when the manifest says identical data is already there.
    """
    import fcntl

    config_path, entry = _entry(dataset, scale, config)
    synth = entry.get("synth")
    if synth:
        from ltbench.data import synth as synth_mod

        if not isinstance(synth, dict) or "out" not in synth:
            raise LtbenchError("synth block needs 'out'", path=config_path, key=[scale, dataset, "synth"],
                               expected="{out: DIR, preset: smoke|tiny, seed: INT}")
        out = Path(synth["out"])
        preset = str(synth.get("preset", "smoke"))
        seed = int(synth.get("seed", 0))
        if not synth_mod.is_complete(out, preset, seed):
            try:
                out.mkdir(parents=True, exist_ok=True)
                with open(out / ".generate.lock", "w") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be generating the same data
                    try:
                        synth_mod.generate(out, seed=seed, preset=preset)
                    finally:
                        fcntl.flock(lock, fcntl.LOCK_UN)
            except OSError as exc:
                raise LtbenchError(
                    f"cannot write synthetic data for {dataset!r} (scale {scale!r}) to {out}: {exc.strerror or exc}",
                    path=config_path, key=[scale, dataset, "synth", "out"], expected="a writable folder",
                    hint="set LTBENCH_DATA to a writable folder",
                ) from None
    return resolve(dataset, scale, config=config)


def backbone_dir(dataset: str, scale: str, *, config: str | Path | None = None) -> tuple[Path, str, int]:
    """(folder, recipe, seed) of the synthetic backbone that ``dataset``'s runs at ``scale`` start from: the
    entry's ``backbone`` block (mini scale; ``ltbench.data.backbone``)."""
    config_path, entry = _entry(dataset, scale, config)
    block = entry.get("backbone")
    if not isinstance(block, dict) or "out" not in block:
        raise LtbenchError(f"dataset {dataset!r} (scale {scale!r}) names no synthetic backbone", path=config_path,
                           key=[scale, dataset, "backbone"], expected="{out: DIR, recipe: mini, seed: INT}")
    return Path(block["out"]), str(block.get("recipe", "mini")), int(block.get("seed", 0))


def backbone_path(dataset: str, scale: str, *, config: str | Path | None = None) -> Path:
    """The verified backbone file of ``dataset`` at ``scale`` (its checksum checked); never trains one."""
    from ltbench.data.backbone import trained_with, verified_path

    out, recipe, seed = backbone_dir(dataset, scale, config=config)
    if not trained_with(out, recipe, seed):
        config_path, _ = _entry(dataset, scale, config)
        raise LtbenchError(f"the synthetic backbone of {dataset!r} (scale {scale!r}) is not trained: {out}",
                           path=config_path, key=[scale, dataset, "backbone"],
                           expected=f"a finished backbone (recipe {recipe}, seed {seed})",
                           hint=f"run: ltbench data backbone --dataset {dataset} --scale {scale}")
    return verified_path(out)  # the one sha256 check, with its own error
