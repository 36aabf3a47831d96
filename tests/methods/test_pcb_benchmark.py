"""Smoke test of benchmarks/methods.py on a tiny problem (the real figures are LVIS scale)."""

from __future__ import annotations

import importlib.util

from ltbench import paths


def test_benchmark_runs_every_method_and_prints_ratios(capsys):
    spec = importlib.util.spec_from_file_location("bench_methods", paths.REPO_ROOT / "benchmarks" / "methods.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--classes", "6", "--rois", "16", "--quick", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for method in module.METHODS:
        assert f"  {method}" in printed
    assert "ratio to plain CE" in printed and "softmax          1.00x" in printed
