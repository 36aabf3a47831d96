"""The console script: lists every subcommand, fast, without importing heavy libraries."""

from __future__ import annotations

import subprocess
import sys

from ltbench.cli import SUBCOMMANDS, main

EXPECTED = {"reported", "plan", "evaluate", "stats", "data", "train", "predict", "results", "status", "render", "audit",
            "explain", "step", "weights"}


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in EXPECTED:
        assert f"  {name} " in out
    assert set(SUBCOMMANDS) == EXPECTED


def test_help_imports_no_heavy_library():
    code = (
        "import sys; from ltbench.cli import main; main(['--help']); "
        "heavy = [m for m in ('torch', 'pandas', 'mmdet', 'mmengine', 'snakemake', 'matplotlib') if m in sys.modules]; "
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_unknown_subcommand_is_a_clean_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err
