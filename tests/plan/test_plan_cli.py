"""`ltbench plan` and `ltbench reported` from the command line."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

from ltbench.cli import main
from ltbench.plan import scales


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_paper_pcb_json(capsys):
    code, out, _ = run_cli(capsys, "plan", "--paper", "pcb", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["rows"] == 69 and data["runs"] == 29 and data["cited_rows"] == 13
    assert data["reproduced_cited_rows"] == 3
    assert {"views", "gpu_hours", "run_list", "row_list", "view_list", "tables"} <= set(data)
    run = data["run_list"][0]
    assert {"id", "config", "cells", "gpu_hours"} <= set(run)
    assert run["cells"][0]["paper"] == "pcb" and "columns" in run["cells"][0]


def test_plan_text_lists_shared_runs(capsys):
    code, out, _ = run_cli(capsys, "plan", "tables/pcb_table1.md", "tables/pcb_table4.md")
    assert code == 0
    assert "rows 15:" in out and "runs shared by more than one table:" in out
    assert "pcb T4 'CM† + N/A' [cm-train]" in out


def test_plan_text_lists_reproduced_cited_rows(capsys):
    code, out, _ = run_cli(capsys, "plan", "tables/pcb_table2.md")
    assert code == 0
    assert "cited 3 (reproduced 3, served 0, reported only 0)" in out
    assert "pcb T2 'Seesaw [34] (LVIS v1.0)' -> v1-mask-r50-rfs-seesaw-normedlinear-s0-" in out


def test_emit_run_and_view_write_the_configs(tmp_path: Path, capsys):
    code, out, _ = run_cli(capsys, "plan", "tables/pcb_table7.md", "--format", "json")
    data = json.loads(out)
    step1 = next(r for r in data["row_list"] if r["label"] == "RFS [12] step 1")
    run_id, view_id = step1["run_ids"][0], step1["view_id"]
    run_json, view_json = tmp_path / "R.json", tmp_path / "V.json"
    assert run_cli(capsys, "plan", "--emit-run", run_id, "--out", str(run_json))[0] == 0
    assert run_cli(capsys, "plan", "--emit-view", run_id, view_id, "--out", str(view_json))[0] == 0
    config = json.loads(run_json.read_text())
    assert config["id"] == run_id and config["head"]["name"] == "iterative"
    assert json.loads(view_json.read_text()) == {"id": "step1", "name": "recurrent_step", "step": 1}


def test_plan_errors_are_one_line_with_exit_2(capsys):
    code, _, err = run_cli(capsys, "plan", "--emit-run", "v0.5-mask-nope", "--out", "x.json")
    assert code == 2 and "is not in the plan" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "plan", "tables/pcb_table9.md")
    assert code == 2 and "has no table '9'" in err
    code, _, err = run_cli(capsys, "plan", "--paper", "pbc")
    assert code == 2 and "did you mean 'pcb'" in err
    code, _, err = run_cli(capsys, "plan", "--all", "--paper", "pcb")
    assert code == 2


def test_reported_csv_header_and_values_as_printed(capsys):
    code, out, _ = run_cli(capsys, "reported", "--paper", "pcb", "--format", "csv")
    assert code == 0
    assert out.splitlines()[0] == "paper,table,row,column,value"
    records = list(csv.DictReader(io.StringIO(out)))
    assert len(records) == 373
    cell = {(r["table"], r["row"], r["column"]): r["value"] for r in records}
    assert cell[("2", "Seesaw [34] + PCB (LVIS v0.5)", "PwB")] == "7.0"
    assert cell[("2", "Softmax (LVIS v1.0)", "segm.AP")] == "19.0"
    assert cell[("3", "LVIS v1.0 R-101-FPN: Seesaw + PCB", "segm.AP50")] == "43.3"
    assert ("2", "RFS [12] (LVIS v1.0)", "PwB") not in cell  # printed "-"


def test_reported_markdown(capsys):
    code, out, _ = run_cli(capsys, "reported", "--paper", "pcb", "--format", "markdown")
    assert code == 0
    assert "## pcb Table 2 (reproduce)" in out
    assert "| Softmax + PCB" in out and "LVIS v1.0 PwB ↓ [PwB]" in out


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from ltbench.cli import main; "
            "import contextlib, io; f = io.StringIO()\n"
            "with contextlib.redirect_stdout(f): main(['plan', '--help']); main(['reported', '--help'])\n"
            "assert not {'torch', 'pandas', 'mmdet'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plan_all_cli_cpu_time_is_small():
    """`ltbench plan --all --format json` from a fresh interpreter: well under the 2 s wall-clock budget.

    CPU time (not wall time) is asserted so that busy shared cores do not make the test flaky; the first call
    may fill the schema-validation cache, the second is the one users see."""
    import resource

    command = [sys.executable, "-m", "ltbench", "plan", "--all", "--format", "json"]
    for _ in range(2):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert done.returncode == 0, done.stderr
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 1.2, cpu
    assert json.loads(done.stdout)["papers"] == ["pcb", "disalign", "bags", "simcal"]


def _plan_json(capsys, target, *extra):
    code, out, _ = run_cli(capsys, "plan", target, "--scale", "paper", "--format", "json", *extra)
    assert code == 0
    data = json.loads(out)
    runs = {r["id"]: r["config"] for r in data["run_list"]}
    return {r["label"]: (r, runs[r["run_ids"][0]]) for r in data["row_list"] if r["run_ids"]}


def test_plan_json_pcb_table2_official_epochs_and_detectron2_images_seen(capsys):
    """`ltbench plan tables/pcb_table2.md --scale paper --format json`: RFS rows train 24 epochs of the enlarged
    RFS epoch (mmdet's ceil repeat), LR steps and PCB's start at 16/24 (and 22/24) of them; random-sampler rows 24
    epochs of the images; with framework=detectron2 every run sees the same number of images."""
    mmdet = _plan_json(capsys, "tables/pcb_table2.md")
    d2 = _plan_json(capsys, "tables/pcb_table2.md", "--framework", "detectron2")
    for dataset, images in (("LVIS v0.5", 57263), ("LVIS v1.0", 100170)):
        rfs_epoch = scales.RFS_EPOCH_IMAGES[("lvis_v0.5" if dataset == "LVIS v0.5" else "lvis_v1", 0.001, "ceil")]
        for label, epoch in ((f"RFS [12] + PCB ({dataset})", rfs_epoch), (f"Softmax + PCB ({dataset})", images)):
            row, config = mmdet[label]
            schedule, per_epoch = config["schedule"], math.ceil(epoch / 16)
            assert schedule["epoch_images"] == epoch and schedule["epochs"] == 24
            assert schedule["iterations"] == 24 * per_epoch and schedule["steps"] == [16 * per_epoch, 22 * per_epoch]
            assert config["regularizer"]["start_iteration"] == 16 * per_epoch
            assert ("rfs-epoch-size" in row["assumptions"]) == (epoch != images)
    assert mmdet["RFS [12] + PCB (LVIS v1.0)"][1]["schedule"]["epoch_images"] > 100170  # RFS enlarges the epoch
    assert mmdet.keys() == d2.keys()
    for label, (row, config) in d2.items():
        paper = mmdet[label][1]
        assert config["framework"] == "detectron2" and paper["framework"] == "mmdet"
        seen = config["schedule"]["iterations"] * config["schedule"]["batch_size"]
        assert seen == paper["schedule"]["iterations"] * paper["schedule"]["batch_size"]
        assert config["schedule"] == paper["schedule"]  # steps and warm-up too
        assert config["regularizer"] == paper["regularizer"]
        assert "forced-framework-schedule" in row["assumptions"]

