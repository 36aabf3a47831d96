"""Spec values that cannot be wrong: reported numbers finite and in their metric's range, no duplicated keys.

Each bad value is written into a copy of a small spec (``SMALL_SPEC``) on disk and loaded the way the CLI
loads it, so the errors are checked with the real file name and line numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ltbench import paths
from ltbench.cli import main
from ltbench.errors import LtbenchError
from ltbench.spec import load_paper, vocab

# A small valid spec: one table with an AP and a PwB column, two rows, an anchor merged into a row's run.
SMALL_SPEC = """\
paper: pcb
title: "small"
source: papers/pcb.txt
components:
  rfs: &rfs {name: rfs, t: 0.001}
  recipe: &recipe
    sampler: *rfs
    loss: {name: ce}
defaults:
  run:
    framework: mmdet
    detector: mask_rcnn
    backbone: r50_fpn
    dataset: lvis_v0.5
    schedule: 2x
  view: {name: plain}
  seeds: 1
assumptions:
  - {id: a-one, text: "something", choice: "what we do"}
tables:
  - id: "2"
    caption: "c"
    scope: reproduce
    column_groups:
      - id: v0.5
        label: "LVIS v0.5"
        columns:
          - {header: "AP", key: segm.AP}
          - {header: "AP_r", key: segm.APr}
          - {header: "PwB", key: PwB, lower_is_better: true}
    rows:
      - label: "Softmax"
        reported: {segm.AP: 21.9, segm.APr: 4.6, PwB: 13.8}
      - label: "RFS"
        run: {<<: *recipe, loss: {name: eqlv2}}
        reported: {segm.AP: 25.6, segm.APr: 16.0, PwB: 13.6}
"""


def write_spec(directory: Path, text: str = SMALL_SPEC) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pcb.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def with_value(key: str, value: str) -> str:
    """SMALL_SPEC with the first row's ``key`` reported as ``value`` (as written in YAML)."""
    old = {"segm.AP": "segm.AP: 21.9", "segm.APr": "segm.APr: 4.6", "PwB": "PwB: 13.8"}[key]
    assert SMALL_SPEC.count(old) == 1
    return SMALL_SPEC.replace(old, f"{key}: {value}")


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def test_small_spec_loads_and_the_merge_override_is_not_a_duplicate(tmp_path):
    spec = load_paper(write_spec(tmp_path))
    row = spec.table("2").rows[1]
    run = spec.row_run(row)
    assert run["loss"] == {"name": "eqlv2"} and run["sampler"] == {"name": "rfs", "t": 0.001}


@pytest.mark.parametrize(
    ("key", "value", "message", "expected"),
    [
        ("segm.AP", ".nan", "reported value '.nan' is not a finite number", "a finite number from 0 to 100"),
        ("segm.AP", ".inf", "reported value '.inf' is not a finite number", "a finite number from 0 to 100"),
        ("segm.AP", "250", "reported value 250 is out of range", "a finite number from 0 to 100"),
        ("segm.APr", "-3.0", "reported value -3.0 is out of range", "a finite number from 0 to 100"),
        ("segm.AP", "100.1", "reported value 100.1 is out of range", "a finite number from 0 to 100"),
        ("PwB", "-3.0", "reported value -3.0 is out of range", "a finite number >= 0"),
        ("PwB", ".NaN", "is not a finite number", "a finite number >= 0"),
        ("PwB", "-.inf", "is not a finite number", "a finite number >= 0"),
    ],
)
def test_bad_reported_numbers_name_file_row_key_and_range(tmp_path, key, value, message, expected):
    spec_text = with_value(key, value)
    path = write_spec(tmp_path, spec_text)
    with pytest.raises(LtbenchError) as info:
        load_paper(path)
    text = str(info.value)
    assert str(path) in text
    line = line_of(spec_text, f"{key}: {value}")
    assert f"rows[0] (row 'Softmax').reported.{key} (line {line}):" in text
    assert message in text and expected in text


@pytest.mark.parametrize(("key", "value"), [("segm.AP", "0"), ("segm.AP", "100"), ("segm.APr", "0.0"),
                                            ("PwB", "250"), ("PwB", "0")])
def test_reported_numbers_at_the_edges_of_their_range_load(tmp_path, key, value):
    spec = load_paper(write_spec(tmp_path, with_value(key, value)))
    assert spec.table("2").rows[0].reported[key] == value


def test_metric_ranges_cover_every_metric_family_of_the_vocabulary():
    for key in vocab.METRIC_KEYS:
        assert vocab.metric_range(key) is not None, key
    assert vocab.metric_range("segm.APr")[:2] == (0.0, 100.0)
    assert vocab.metric_range("PwB")[:2] == (0.0, None)
    assert vocab.metric_range("other.top1.many")[:2] == (0.0, 100.0)
    assert vocab.metric_range("other.unknown") is None  # still must be finite (loader)


@pytest.mark.parametrize(
    ("old", "new", "needle", "key_path"),
    [
        # a reported number written twice on one line: YAML would keep the second silently
        ("reported: {segm.AP: 21.9,", "reported: {segm.AP: 21.9, segm.AP: 22.9,", "segm.AP: 21.9",
         "tables[0].rows[0].reported.segm.AP"),
        # a block mapping key written twice on different lines
        ("    schedule: 2x\n", "    schedule: 2x\n    schedule: 1x\n", "schedule:", "defaults.run.schedule"),
        # inside an anchor that rows merge
        ("    loss: {name: ce}\n", "    loss: {name: ce}\n    loss: {name: bce}\n", "loss: {name:",
         "components.recipe.loss"),
    ],
)
def test_duplicated_keys_name_file_and_both_lines(tmp_path, old, new, needle, key_path):
    assert SMALL_SPEC.count(old) == 1
    text = SMALL_SPEC.replace(old, new)
    path = write_spec(tmp_path, text)
    with pytest.raises(LtbenchError) as info:
        load_paper(path)
    message = str(info.value)
    first, second = line_of(text, needle), line_of(text, needle.split(":")[0] + ":", 2 if "\n" in new else 1)
    assert str(path) in message and key_path in message
    assert "written twice" in message
    if first == second:
        assert f"at line {first} (columns" in message
    else:
        assert f"at line {first} and at line {second}" in message


BAD_SPECS = [
    (with_value("segm.AP", ".nan"), "reported value '.nan' is not a finite number"),
    (SMALL_SPEC.replace("segm.APr: 4.6,", "segm.APr: 4.6, segm.APr: 4.7,"), "written twice"),
]


@pytest.mark.parametrize(("text", "needle"), BAD_SPECS)
def test_render_exits_non_zero_with_the_message_not_a_traceback(tmp_path, monkeypatch, capsys, text, needle):
    specs = tmp_path / "papers"
    command = ["render", "--paper", "pcb", "--table", "2", "--md", str(tmp_path / "out.md"),
               "--results-dir", str(tmp_path / "results")]
    monkeypatch.setattr(paths, "PAPER_SPECS_DIR", specs)
    write_spec(specs)  # control: the small spec itself renders
    assert main(command) == 0
    capsys.readouterr()
    path = write_spec(specs, text)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltbench: error: ") and str(path) in err and needle in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("text", "needle"), BAD_SPECS)
def test_audit_lists_the_spec_error_instead_of_crashing(tmp_path, monkeypatch, text, needle):
    """The audit reports a spec that does not load (its design: one bad paper must not hide the others)."""
    specs = tmp_path / "papers"
    md = tmp_path / "audit.md"
    command = ["audit", "--paper", "pcb", "--md", str(md), "--results-dir", str(tmp_path / "results")]
    monkeypatch.setattr(paths, "PAPER_SPECS_DIR", specs)
    path = write_spec(specs, text)
    assert main(command) == 0
    report = md.read_text(encoding="utf-8")
    section = report.split("## Specs that do not load", 1)[1]
    assert str(path) in section and needle in section
