"""Where things live. One place for every path the harness reads or writes.

- ``REPO_ROOT``: the checkout (this file's grandparent).
- ``results_dir()``: the results store (``$LTBENCH_RESULTS``, default ``<repo>/results``; the workflow sets it
  to its working directory's ``results/``).
- ``SHARED``: reference material beside the checkout (``../shared``: papers, real LVIS samples),
  overridable with ``LTBENCH_SHARED``.
- Dataset locations are configured in ``workflows/config/datasets.yaml`` (one entry per dataset name),
  with ``${LTBENCH_DATA}`` (default ``<repo>/data``) expanded inside it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LTBENCH_SHARED", REPO_ROOT.parent / "shared")).resolve()
PAPERS_DIR = SHARED / "papers"
LVIS_SAMPLES_DIR = SHARED / "data" / "lvis"

WORKFLOWS = REPO_ROOT / "workflows"
PAPER_SPECS_DIR = WORKFLOWS / "papers"
DATASETS_CONFIG = WORKFLOWS / "config" / "datasets.yaml"
RESULTS_DIR = REPO_ROOT / "results"
TABLES_DIR = REPO_ROOT / "tables"


def data_root() -> Path:
    """Root for generated and downloaded data (``$LTBENCH_DATA``, default ``<repo>/data``)."""
    return Path(os.environ.get("LTBENCH_DATA", REPO_ROOT / "data")).resolve()


def results_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The results store: ``explicit`` when given, else ``$LTBENCH_RESULTS`` (the workflow sets it to its
    working directory's ``results/``), else ``<repo>/results``."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get("LTBENCH_RESULTS", RESULTS_DIR))


def work_root() -> Path:
    """Root for training work directories (``$LTBENCH_WORK``, default ``<repo>/work``)."""
    return Path(os.environ.get("LTBENCH_WORK", REPO_ROOT / "work")).resolve()
