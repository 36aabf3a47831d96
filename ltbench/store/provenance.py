"""Where a number came from: code version, software versions, machine, timing.

Everything here is cheap and import-light: versions are read from package metadata (no ``import
torch``), the GPU from ``nvidia-smi`` when it exists, the code version from ``git``.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ltbench import paths

# Distributions whose versions can move a number; absent ones are recorded as None.
TRACKED_PACKAGES = (
    "ltbench",
    "torch",
    "torchvision",
    "mmdet",
    "mmcv",
    "mmengine",
    "detectron2",
    "lvis",
    "faster-coco-eval",
    "pycocotools",
    "numpy",
    "snakemake",
)


def utc_now() -> str:
    """ISO-8601 UTC timestamp with seconds, e.g. ``2026-11-22T03:41:43+00:00``."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(repo: Path = paths.REPO_ROOT) -> dict[str, object]:
    """``{"commit": sha | None, "dirty": bool | None}``; None when git or the checkout is absent."""
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(
            [git, "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()
        # Untracked files (results, work dirs) do not make the code dirty; modified tracked files do.
        status = subprocess.run(
            [git, "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


def gpu_names() -> list[str]:
    """Names of the visible NVIDIA GPUs (empty on CPU machines)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [line.strip() for line in out.splitlines() if line.strip()]
    if visible not in (None, ""):
        wanted = [int(i) for i in visible.split(",") if i.strip().isdigit()]
        names = [names[i] for i in wanted if i < len(names)] or names
    return names


def collect(
    *, seed: int | None, started: str | None = None, ended: str | None = None, wall_time_s: float | None = None
) -> dict[str, object]:
    """The provenance block of a record. ``started``/``ended`` are ISO-8601 UTC strings."""
    return {
        "git": git_state(),
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "gpu": gpu_names(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "seed": seed,
        "started": started,
        "ended": ended,
        "wall_time_s": wall_time_s,
        "recorded": utc_now(),
    }


def training_machine(record: dict) -> tuple[str | None, list[str]]:
    """(host, devices) that trained a record's run: the training job's own (``train.training`` from the
    adapter's ``done.json``: host and GPU names, or "CPU" with torch's CPU capability, e.g. "CPU (AVX512)": mini
    numbers differ between capabilities), else the record step's (older records)."""
    training = ((record.get("train") or {}).get("training")) or {}
    if training.get("host"):
        cpu = training.get("device", "cpu").upper() + (f" ({training['cpu_capability']})" if training.get("cpu_capability") else "")
        devices = list(training.get("device_names") or []) or ([cpu] if training.get("device") != "cuda" else ["CUDA"])
        return training["host"], devices
    prov = record.get("provenance") or {}
    return prov.get("host"), list(prov.get("gpu") or []) or ["CPU"]

