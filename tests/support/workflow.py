"""Running the real Snakefile from the tests: ``snakemake(...)`` and the job counts of a dry run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from ltbench import paths

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def jobs_of(dry_run_output: str) -> dict[str, int]:
    """The "Job stats" table of a dry run: rule -> count."""
    stats = dry_run_output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m.group(1) != "total"}
