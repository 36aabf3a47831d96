"""Where pretrained weight files live, and how a run finds its own: ``resolve`` (never downloads).

Settings, each from the first place that sets it:

- the cache folder: ``--cache`` (``ltbench weights fetch``), ``$LTBENCH_WEIGHTS``, ``weights.cache`` in
  ``workflows/config/config.yaml`` (relative to the repository), else ``<data root>/weights`` (data root:
  ``$LTBENCH_DATA``, default ``<repo>/data``, as for datasets). A file's place in the cache is its URL's
  host and path, e.g. ``<cache>/download.pytorch.org/models/resnet50-0676ba61.pth``; ``weights.lock.json``
  beside them records each fetched file's size and sha256.
- your own files instead of the cache, per weight id (``ltbench weights fetch --dry-run`` prints the ids):
  ``$LTBENCH_WEIGHT_FILES`` (``ID=PATH`` entries separated by commas; when set, even empty, it replaces the
  config's list), else ``weights.files`` in the workflow config (a mapping ID: PATH). Your files are used as
  they are, without a checksum.

The workflow exports its ``weights`` config block into these two variables for every job it starts
(``export_config``), so jobs and direct ``ltbench train`` / ``predict`` calls resolve the same files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench import paths
from ltbench.errors import LtbenchError
from ltbench.weights import manifest

ENV_CACHE = "LTBENCH_WEIGHTS"
ENV_FILES = "LTBENCH_WEIGHT_FILES"
ENV_MIRROR = "LTBENCH_WEIGHTS_MIRROR"
LOCK_NAME = "weights.lock.json"
LOCK_FORMAT = 1
# The workflow config whose `weights:` block applies outside Snakemake (tests point it elsewhere).
CONFIG_PATH = paths.WORKFLOWS / "config" / "config.yaml"


@dataclass(frozen=True)
class Override:
    """A user's own file for one weight id, and the setting it came from."""

    path: Path
    source: str


@dataclass(frozen=True)
class Settings:
    cache: Path
    cache_source: str
    files: dict[str, Override] = field(default_factory=dict)

    @property
    def lock_path(self) -> Path:
        return self.cache / LOCK_NAME

    def local_path(self, file: manifest.WeightFile) -> Path:
        return self.cache / file.relpath


def _expand(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(os.path.expandvars(value)))
    return (path if path.is_absolute() else base / path).resolve()


def _config_block(config_path: Path | None) -> tuple[dict[str, Any], str]:
    """The ``weights`` block of the workflow config file (empty when the file or the block is absent)."""
    from ltbench.io import read_yaml

    path = Path(config_path) if config_path is not None else Path(CONFIG_PATH)
    if not path.is_file():
        return {}, str(path)
    doc = read_yaml(path)
    block = (doc or {}).get("weights") if isinstance(doc, dict) else None
    if block is None:
        return {}, str(path)
    if not isinstance(block, dict):
        raise LtbenchError("`weights` is not a mapping", path=path, key="weights",
                           expected="{cache: DIR or null, files: {WEIGHT_ID: PATH}}")
    return block, str(path)


def parse_files_env(text: str, *, name: str = ENV_FILES) -> dict[str, Override]:
    """``ID=PATH,ID=PATH`` -> overrides (relative paths: from the current directory)."""
    out: dict[str, Override] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        weight_id, sep, value = entry.partition("=")
        if not sep or not value.strip():
            raise LtbenchError(f"entry {entry!r} of ${name} has no path", key=name,
                               expected=f"ID=PATH entries separated by commas, ID: {manifest.WEIGHT_ID_FORM}")
        manifest.check_weight_id(weight_id.strip(), key=f"${name}")
        out[weight_id.strip()] = Override(_expand(value.strip(), Path.cwd()), f"${name}")
    return out


def _files_from_block(block: Mapping[str, Any], where: str) -> dict[str, Override]:
    files = block.get("files") or {}
    if not isinstance(files, dict):
        raise LtbenchError("`weights.files` is not a mapping", path=where, key="weights.files",
                           expected=f"{{{manifest.WEIGHT_ID_FORM}: PATH}}")
    out: dict[str, Override] = {}
    for weight_id, value in files.items():
        manifest.check_weight_id(weight_id, where=where, key=f"weights.files.{weight_id}")
        if not isinstance(value, str) or not value.strip():
            raise LtbenchError(f"path of {weight_id} is {value!r}", path=where, key=f"weights.files.{weight_id}",
                               expected="a file path")
        out[weight_id] = Override(_expand(value, paths.REPO_ROOT), f"weights.files in {where}")
    return out


def load_settings(*, cache: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None,
             block: Mapping[str, Any] | None = None, config_path: Path | None = None) -> Settings:
    """The cache folder and the user's files, from (in this order) the arguments, the environment, the
    workflow config's ``weights`` block (``block``, else read from ``config_path`` / ``CONFIG_PATH``), the
    defaults."""
    env = os.environ if environ is None else environ
    if block is None:
        block, where = _config_block(config_path)
    else:
        where = "the workflow config"
    if cache is not None:
        cache_path, cache_source = _expand(str(cache), Path.cwd()), "--cache"
    elif env.get(ENV_CACHE):
        cache_path, cache_source = _expand(env[ENV_CACHE], Path.cwd()), f"${ENV_CACHE}"
    elif block.get("cache"):
        if not isinstance(block["cache"], str):
            raise LtbenchError(f"weights.cache is {block['cache']!r}", path=where, key="weights.cache",
                               expected="a folder path or null")
        cache_path, cache_source = _expand(block["cache"], paths.REPO_ROOT), f"weights.cache in {where}"
    else:
        cache_path, cache_source = paths.data_root() / "weights", "default: <data root>/weights"
    if ENV_FILES in env:
        files = parse_files_env(env[ENV_FILES])
    else:
        files = _files_from_block(block, where)
    return Settings(cache_path, cache_source, files)


def export_config(block: Mapping[str, Any] | None, environ: MutableMapping[str, str]) -> Settings:
    """Put the workflow config's ``weights`` block into ``environ`` (``$LTBENCH_WEIGHTS``, absolute, and
    ``$LTBENCH_WEIGHT_FILES``) for every job the workflow starts; variables already set win, as everywhere.

    Call it from the Snakefile (``workflows/rules/common.smk``) with ``config.get("weights")``.
    """
    resolved = load_settings(environ=environ, block=dict(block or {}))
    for weight_id, override in resolved.files.items():
        if "," in str(override.path):
            raise LtbenchError(f"the path of {weight_id} contains a comma, which ${ENV_FILES} cannot carry",
                               key=f"weights.files.{weight_id}", expected="a path without commas (link the file)")
    environ[ENV_CACHE] = str(resolved.cache)
    environ[ENV_FILES] = ",".join(f"{k}={v.path}" for k, v in sorted(resolved.files.items()))
    return resolved


# ---- lock file -------------------------------------------------------------------------------------
def read_lock(cache: Path) -> dict[str, dict[str, Any]]:
    """relpath -> {url, sha256, size, first_fetched, checked}; empty without a lock file."""
    from ltbench.io import read_json

    path = Path(cache) / LOCK_NAME
    if not path.is_file():
        return {}
    doc = read_json(path)
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict) or doc.get("format") != LOCK_FORMAT:
        raise LtbenchError("not a weights lock file", path=path, key="files",
                           expected=f'{{"format": {LOCK_FORMAT}, "files": {{RELPATH: {{"sha256": ..., "size": ...}}}}}}')
    return files


def write_lock(cache: Path, files: Mapping[str, Mapping[str, Any]]) -> None:
    from ltbench.io import write_json

    write_json(Path(cache) / LOCK_NAME, {"format": LOCK_FORMAT, "files": {k: dict(files[k]) for k in sorted(files)}})


@contextlib.contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    """Serialise fetches into one cache (several processes or nodes sharing it)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".fetch.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---- resolve ----------------------------------------------------------------------------------------
def fetch_command(weight_ids: list[str], s: Settings) -> str:
    ids = " ".join(f"--id {shlex.quote(i)}" for i in weight_ids)
    return f"ltbench weights fetch --cache {shlex.quote(str(s.cache))} {ids}"


def _override_note(weight_id: str) -> str:
    return (f"or point ${ENV_FILES} (ID=PATH) or weights.files in workflows/config/config.yaml "
            f"at your own copy: {weight_id}=/path/to/file")


def locate(weight_id: str, settings: Settings | None = None) -> Path:
    """The local file of ``weight_id``: the user's own file, else the cache's. Never downloads."""
    s = settings or load_settings()
    manifest.check_weight_id(weight_id)
    if weight_id in s.files:
        override = s.files[weight_id]
        if not override.path.is_file():
            raise LtbenchError(f"pretrained weights {weight_id}: your file {override.path} does not exist",
                               path=override.path, key=f"{override.source}: {weight_id}",
                               expected="an existing weight file",
                               hint=f"fix or remove the {weight_id} entry of {override.source}")
        return override.path
    file = manifest.by_id().get(weight_id)
    if file is None:
        framework = weight_id.split("/", 1)[0]
        raise LtbenchError(
            f"pretrained weights {weight_id}: no {framework}-convention download is known for this "
            f"detector/backbone, and no file of yours is set for it", key=weight_id,
            expected=f"an entry {weight_id}=PATH in ${ENV_FILES} or weights.files (workflows/config/config.yaml)",
            hint="point it at a checkpoint in the framework's own format (or run with another --framework)")
    local = s.local_path(file)
    if not local.is_file():
        use = file.use(weight_id)
        raise LtbenchError(
            f"pretrained weights {weight_id} ({use.convention}: {file.what}) are not in the cache: looked for "
            f"{local} (cache from {s.cache_source}); no {weight_id} entry in ${ENV_FILES} / weights.files",
            path=local, key=weight_id, expected=f"the file downloaded from {file.url}",
            hint=f"on a machine with internet access run `{fetch_command([weight_id], s)}` (then copy the cache "
                 f"folder, with its {LOCK_NAME}, to {s.cache} if that machine is not this one), "
                 + _override_note(weight_id))
    recorded = read_lock(s.cache).get(file.relpath)
    if recorded is not None and recorded.get("size") != local.stat().st_size:
        raise LtbenchError(
            f"pretrained weights {weight_id}: {local} has {local.stat().st_size} bytes but {s.lock_path} recorded "
            f"{recorded.get('size')} at its first fetch (truncated or replaced?)", path=local, key=weight_id,
            expected=f"{recorded.get('size')} bytes, sha256 {recorded.get('sha256')}",
            hint=f"delete {local} and run `{fetch_command([weight_id], s)}`")
    return local


def resolve(run_config: Mapping[str, Any], *, settings: Settings | None = None) -> dict[str, Path]:
    """Local weight files a run starts from: ``{}``, ``{"imagenet": Path}`` or ``{"coco": Path}``.

    - A path in the run config (``model.weights`` or ``weights``) wins, under the run's ``pretrain`` kind.
    - Smoke scale, ``pretrain`` lvis (``init_from``) or none: ``{}`` (random init / the source run's
      checkpoint).
    - Mini scale, ``pretrain`` imagenet or coco: the synthetic backbone of the run's dataset (``ltbench data
      backbone``), as ``{"imagenet": Path}``.
    - Otherwise the file of the run's weight id (``manifest.weight_id``): the user's own (``weights.files`` /
      ``$LTBENCH_WEIGHT_FILES``), else the cache's. A stage-2 run gets its stage-1 run's file (adapters may
      skip loading it: the stage-1 checkpoint replaces the model).

    Never downloads; a missing file raises ``LtbenchError`` naming the weight id, the file, where it was
    looked for and the ``ltbench weights fetch`` command that gets it.
    """
    pretrain = run_config.get("pretrain", "imagenet")
    explicit = (run_config.get("model") or {}).get("weights") or run_config.get("weights")
    if explicit:
        key = "model.weights" if (run_config.get("model") or {}).get("weights") else "weights"
        if pretrain not in manifest.KINDS:
            raise LtbenchError(f"{key} is set but the run's pretrain is {pretrain!r}", key=key,
                               expected="pretrain imagenet or coco with a weights path, or no weights path")
        path = Path(os.path.expanduser(str(explicit)))
        if not path.is_file():
            raise LtbenchError("weights file not found", path=path, key=key, expected="an existing weight file")
        return {pretrain: path}
    if run_config.get("scale") == "mini" and pretrain in manifest.KINDS:
        # the mini scale's "ImageNet": the ResNet-18 pre-trained on the synthetic classes (ltbench.data.backbone);
        # COCO-initialised rows start from it too (there is no synthetic COCO detector), as a backbone only
        from ltbench.data.datasets import backbone_path

        return {"imagenet": backbone_path(str(run_config.get("dataset")), "mini")}
    weight_id = manifest.weight_id(dict(run_config))
    if weight_id is None:
        return {}
    return {pretrain: locate(weight_id, settings)}
