"""Every module of the package and the adapters imports on its own, first, in a fresh interpreter: no module
relies on another having been imported before it (registration order, import cycles)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import adapters
import ltbench


def all_modules() -> list[str]:
    names = []
    for package in (ltbench, adapters):
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + ".")]
    return sorted(n for n in names if not n.endswith(".__main__"))  # a __main__ runs the program when imported


def import_alone(module: str) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=600)
    return module, "" if done.returncode == 0 else done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    modules = all_modules()
    assert {"ltbench.methods.box_head", "adapters.engine.trainer", "adapters.mmdet.registration", "ltbench.workflow.steps"} <= set(modules)
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = {m: err for m, err in pool.map(import_alone, modules) if err}
    assert not failures, failures
