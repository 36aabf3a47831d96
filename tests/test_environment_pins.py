"""environment.yml (conda, cluster users) and pyproject.toml (pip, the Makefile) pin the same versions."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ ]", spec, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_environment_yml_agrees_with_pyproject(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    pip_specs = {Requirement(s).name.lower(): str(Requirement(s).specifier) for s in project["dependencies"]}
    pip_specs.update(
        {Requirement(s).name.lower(): str(Requirement(s).specifier) for s in project["optional-dependencies"]["test"]}
    )

    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"] if isinstance(d, str))
    conda_specs: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep["pip"]:
                if spec.startswith("-e"):
                    continue
                req = Requirement(spec)
                conda_specs[req.name.lower()] = str(req.specifier)
        elif not dep.startswith(("python=", "pip")):
            # conda syntax "name>=x" or "name=x": normalise a single '=' to '=='
            name = _name(dep)
            spec = dep[len(name):]
            spec = "==" + spec[1:] if re.match(r"^=[^=]", spec) else spec
            conda_specs[name] = str(Requirement(name + spec).specifier)

    missing = sorted(set(pip_specs) - set(conda_specs))
    assert not missing, f"environment.yml lacks {missing}"
    differing = {n: (pip_specs[n], conda_specs[n]) for n in pip_specs if pip_specs[n] != conda_specs[n]}
    assert not differing, f"pins differ (pyproject, environment.yml): {differing}"
