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


def workflow_copy(root, *, fake: bool = True):
    """A copy of the workflow (Snakefile, workflows/, profiles and the ``local`` link, Makefile, the tracked
    READMEs of results/ and tables/) in ``root``, for runs that write results/, tables/ and work/ there.
    ``fake``: the rules call ``tests/support/fake_ltbench.py`` (real steps and store, fake adapter, data and
    evaluation: a table's whole campaign in seconds). Returns ``root``."""
    import shutil
    from pathlib import Path

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    repo = paths.REPO_ROOT
    shutil.copy2(repo / "Snakefile", root / "Snakefile")
    shutil.copy2(repo / "Makefile", root / "Makefile")
    shutil.copytree(paths.WORKFLOWS, root / "workflows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(repo / "profiles", root / "profiles")
    (root / "local").symlink_to("profiles/local")
    for readme in ("results/README.md", "tables/README.md"):
        (root / readme).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / readme, root / readme)
    if fake:
        command = f"{sys.executable} {Path(__file__).with_name('fake_ltbench.py')}"
        config = root / "workflows" / "config" / "config.yaml"
        config.write_text(config.read_text().replace("ltbench_command: null", f"ltbench_command: {command!r}"))
    return root


def run_workflow(root, *args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``snakemake --profile local ARGS`` in a workflow copy (smoke scale, one thread per job)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "LTBENCH_DATA": str(root / "data"), **(env or {})}
    full_env.pop("LTBENCH_RESULTS", None)
    full_env.pop("LTBENCH_WORK", None)
    return subprocess.run([*SNAKEMAKE, "--profile", "local", *args], cwd=root, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
