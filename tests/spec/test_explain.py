"""``ltbench explain``: a table cell traced to its YAML lines, its planned run and the code behind it.

Expected lines are found in the spec's own text (never hard-coded numbers), expected run ids in a plan built
independently of ``explain``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ltbench.cli import main
from ltbench.errors import LtbenchError
from ltbench.explain import code_locations as cl
from ltbench.explain.report import explain
from ltbench.explain.select import Condition
from ltbench.paths import PAPER_SPECS_DIR, REPO_ROOT
from ltbench.spec import vocab
from ltbench.spec.provenance import LineIndex

PCB = PAPER_SPECS_DIR / "pcb.yaml"
EXAMPLE = ["explain", "pcb/2", "Seesaw [34]", "--pcb", "--group", "v1.0", "--column", "AP_r"]


def line_of(path: Path, pattern: str, after: int = 0) -> int:
    """1-based number of the first line after line ``after`` that matches the regex ``pattern``."""
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if number > after and re.search(pattern, text):
            return number
    raise AssertionError(f"{pattern!r} not in {path} after line {after}")


def plan_row(scale: str, paper: str, table: str, label: str, group: str):
    from ltbench.plan import build_plan

    plan = build_plan(scale=scale)
    row = next(r for r in plan.rows if (r.paper, r.table, r.group) == (paper, table, group) and r.label.startswith(label))
    return plan, row


@pytest.fixture(scope="module")
def example() -> tuple[str, dict]:
    """The example cell's text and JSON output, through the command line (once per module)."""
    import contextlib
    import io

    outputs = []
    for extra in ([], ["--format", "json"]):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert main([*EXAMPLE, *extra]) == 0
        outputs.append(buffer.getvalue())
    return outputs[0], json.loads(outputs[1])


def origin(data: dict, key: str) -> dict:
    return next(o for o in data["run_origins"] + data["view_origins"] if o["key"] == key)


# ---- the example cell ---------------------------------------------------------------------------
def test_example_names_the_row_column_and_reported_value_lines_of_pcb_yaml(example):
    text, data = example
    row_line = line_of(PCB, r'label: "Seesaw \[34\] \+ PCB", group: v1\.0')
    reported_line = line_of(PCB, r"reported: \{", after=row_line)
    anchor_line = line_of(PCB, r"columns: &cols_pwb")
    column_line = line_of(PCB, r'header: "AP_r", key: segm\.APr', after=anchor_line)
    assert f"row           workflows/papers/pcb.yaml:{row_line} " in text
    assert f"reported      workflows/papers/pcb.yaml:{reported_line} " in text and "segm.APr: 19.0" in text
    assert f"column        workflows/papers/pcb.yaml:{column_line} " in text
    alias_line = line_of(PCB, r"columns: \*cols_pwb")
    assert f"via *cols_pwb (line {alias_line}) -> &cols_pwb (line {anchor_line})" in text
    assert data["row"]["label"] == "Seesaw [34] + PCB" and data["row"]["attributes"]["PCB"] == "✓"
    assert data["reported"] == "19.0"
    places = {p["what"]: p for p in data["places"]}
    assert places["row"]["line"] == row_line and places["reported"]["line"] == reported_line


def test_example_run_id_is_the_plans(example):
    text, data = example
    plan, row = plan_row("smoke", "pcb", "2", "Seesaw [34] + PCB", "v1.0")
    assert data["run_ids"] == row.run_ids and data["view_id"] == row.view_id
    assert f"run           {row.run_ids[0]}" in text
    assert data["run_tables"] == plan.runs[row.run_ids[0]].tables
    assert data["status"] == "planned"


def test_example_origins_anchor_merge_group_defaults_and_scale(example):
    _, data = example
    row_line = line_of(PCB, r'label: "Seesaw \[34\] \+ PCB", group: v1\.0')
    run_line = line_of(PCB, r"run: \{<<: \*seesaw, head: \*iterative", after=row_line)
    # head: *iterative in the row: the value's keys are written at the anchor
    steps = origin(data, "head.steps")
    assert steps["source"] == "row" and steps["kind"] == "anchor"
    assert steps["line"] == line_of(PCB, r"iterative: &iterative")
    assert steps["via"][0]["anchor"] == "iterative" and steps["via"][0]["line"] == run_line
    # <<: *seesaw in the row: loss comes from the merged anchor
    loss = origin(data, "loss.name")
    assert loss["value"] == "seesaw" and loss["kind"] == "merge"
    assert loss["line"] == line_of(PCB, r"loss: \{name: seesaw", after=line_of(PCB, r"seesaw: &seesaw"))
    dataset = origin(data, "dataset")
    v1_group = line_of(PCB, r"- id: v1\.0", after=line_of(PCB, r'- id: "2"'))
    assert dataset["source"] == "column group v1.0" and dataset["line"] == line_of(PCB, r"run: \{dataset: lvis_v1\}", after=v1_group)
    framework = origin(data, "framework")
    assert framework["source"] == "paper defaults" and framework["changed_by"] == "scale"
    assert framework["value"] == "torchvision" and framework["spec_value"] == "mmdet"
    assert origin(data, "model")["source"] == "scale" and origin(data, "seed")["source"] == "planner"


def test_a_key_written_in_the_row_and_component_keys_from_the_table():
    """PCB Table 6 'α=0.2': ``regularizer: {alpha: 0.2}`` in the row, merged into the table's *pcb_ce."""
    e = explain("pcb/6", "α=0.2", code=False)
    by_key = {o.key: o for o in e.run_origins}
    row_line = line_of(PCB, r'label: "α=0\.2"')
    alpha = by_key["regularizer.alpha"]
    assert (alpha.source, alpha.kind, alpha.line, alpha.value) == ("row", "row", row_line, 0.2)
    name = by_key["regularizer.name"]
    assert name.source == "table 6" and name.kind == "anchor" and name.line == line_of(PCB, r"pcb_ce: &pcb_ce")
    table6_run = line_of(PCB, r"run: \{sampler: \*rfs, head: \*iterative, regularizer: \*pcb_ce\}", after=line_of(PCB, r'- id: "6"'))
    assert name.value_via is None and name.via[0].line == table6_run
    # the planner added start_iteration to the row's component
    assert by_key["regularizer.start_iteration"].source == "scale"


def test_a_view_key_written_in_the_row():
    e = explain("pcb/1", "RFS CM", code=False)
    source = next(o for o in e.view_origins if o.key == "source")
    row_line = line_of(PCB, r'label: "RFS CM"')
    assert (source.source, source.kind, source.value) == ("row", "row", "val")
    assert source.line == line_of(PCB, r"view: \{name: cm_calibration, source: val\}", after=row_line - 1)


def test_pcb_flag_is_where_pcb_check_and_yes():
    chosen = {explain("pcb/2", "Seesaw [34]", group="v1.0", flags=["--pcb"], code=False).row.label,
              explain("pcb/2", "Seesaw [34]", group="v1.0", conditions=[Condition("PCB", "✓")], code=False).row.label,
              explain("pcb/2", "Seesaw [34]", group="LVIS v1.0", conditions=[Condition("pcb", "yes")], code=False).row.label}
    assert chosen == {"Seesaw [34] + PCB"}
    assert explain("pcb/2", "Seesaw [34]", group="v1.0", flags=["--no-pcb"], code=False).row.label == "Seesaw [34]"
    # without a filter the row labelled so wins over the row that only prints it in the Method column
    plain = explain("pcb/2", "Seesaw [34]", group="v1.0", code=False)
    assert plain.row.label == "Seesaw [34]" and plain.row.cited is not None
    assert plain.planned_as == "planned, cited (reproduced with this paper's recipe)"


def test_served_cited_row_is_traced_to_the_row_that_serves_it():
    e = explain("pcb/3", "LVIS v0.5 R-50-FPN: EQL v2 [29]†", code=False)
    assert e.status == "served" and e.planned_as.startswith("cited, served by pcb/2/EQL v2 [29]")
    _, served = plan_row("smoke", "pcb", "2", "EQL v2 [29] (LVIS v0.5)", "v0.5")
    assert e.run_ids == served.run_ids
    assert e.origin_row == "pcb/2/EQL v2 [29] (LVIS v0.5)"
    loss = next(o for o in e.run_origins if o.key == "loss.name")
    served_line = line_of(PCB, r'label: "EQL v2 \[29\]", group: v0\.5')
    assert loss.source == "row" and loss.value_via is None and loss.via[0].line == served_line


def test_reported_only_and_out_of_scope_rows_have_no_run():
    e = explain("pcb/3", "LVIS v0.5 R-50-FPN: LOCE [10]†", column="AP", code=False)
    assert e.status == "reported_only" and e.run_ids == [] and e.run_origins == []
    assert "no run: cited, reported only" in _text(e)


def test_stage2_row_at_paper_scale_lists_its_stage1_run_and_stage2_schedule():
    e = explain("bags/6", "ours-faster-r-cnn", group="bbox", scale="paper", code=False)
    _, row = plan_row("paper", "bags", "6", "Ours (Faster R-CNN)", "bbox")
    assert e.run_ids == row.run_ids and e.run_config["stage1"] in e.dependencies
    schedule = next(o for o in e.run_origins if o.key == "schedule")
    assert schedule.changed_by == "scale" and "stage2.schedule" in schedule.note
    bags = PAPER_SPECS_DIR / "bags.yaml"
    assert schedule.line == line_of(bags, r"run: &bags_stage2") + 1  # `schedule: *s2_schedule` inside stage2
    assert [h.anchor for h in schedule.via] == ["bags_stage2"] and schedule.value_via.anchor == "s2_schedule"
    assert schedule.via[0].line == line_of(bags, r"run: \*bags_stage2", after=line_of(bags, r'label: "Ours \(Faster R-CNN\)"'))


def _text(e) -> str:
    from ltbench.explain.report import format_text

    return format_text(e)


# ---- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "needles"), [
    (["pcb/2", "Seesaw [34]"],  # two groups print it
     ["2 rows of pcb table 2 match 'Seesaw [34]'", "'Seesaw [34]'  group v0.5", "'Seesaw [34]'  group v1.0",
      "--group v0.5|v1.0"]),
    (["pcb/2", "Seesaw [34]", "--pcb"],
     ["2 rows of pcb table 2 match 'Seesaw [34]' with --where PCB=✓", "'Seesaw [34] + PCB'  group v0.5"]),
    (["pcb/2", "Seesw", "--group", "v1.0"],
     ["pcb table 2 has no row 'Seesw' (did you mean 'Seesaw [34]'", "'EQL v2 [29] + PCB'  group v1.0"]),
    (["pcb/2", "Seesaw [34]", "--group", "v2.0"],
     ["pcb table 2 has no column group 'v2.0'", "v0.5 (LVIS v0.5), v1.0 (LVIS v1.0)"]),
    (["pcb/2", "Seesaw [34]", "--group", "v1.0", "--column", "APr"],
     ["column group 'v1.0' of pcb table 2 has no column 'APr'", "AP_r (segm.APr)", "PwB ↓ (PwB)"]),
    (["pcb/2", "Seesaw [34]", "--group", "v1.0", "--where", "Metod=Softmax"],
     ["pcb table 2 has no attribute column 'Metod' (did you mean 'Method'?)", "one of Method, PCB"]),
    (["pcb/2", "Seesaw [34]", "--group", "v1.0", "--pbc"],
     ["unknown option '--pbc' (did you mean '--pcb'", "check-mark columns of pcb table 2: PCB"]),
    (["pcb/2", "Seesaw [34]", "--colum", "AP_r"], ["unknown option '--colum' (did you mean '--column'"]),
    (["pcb/2", "Seesaw [34]", "--group", "v1.0", "--where", "PCB=maybe"],
     ["no row of pcb table 2 matches 'Seesaw [34]' with --group v1.0 --where PCB=maybe", "'Seesaw [34] + PCB'"]),
    (["pcb/22", "Seesaw [34]"], ["paper 'pcb' has no table '22'"]),
    (["pbc/2", "Seesaw [34]"], ["unknown paper 'pbc' (did you mean 'pcb'?)"]),
])
def test_errors_name_the_table_and_list_the_candidates(capsys, args, needles):
    assert main(["explain", *args, "--no-code"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltbench: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


# ---- code locations -----------------------------------------------------------------------------
def _defined_at(relative: str, pattern: str) -> int:
    return line_of(REPO_ROOT / relative, pattern)


def test_example_code_locations_are_the_resolved_classes(example):
    _, data = example
    code = {c["role"]: c for c in data["code"]}
    head = code["box head"]
    assert head["target"] == "ltbench.methods.pcb.RecurrentBoxHead"
    assert head["line"] == _defined_at("ltbench/methods/pcb.py", r"^class RecurrentBoxHead\b")
    assert code["base head"]["target"] == "ltbench.methods.heads.SeesawBoxHead"
    assert code["loss"]["target"] == "ltbench.methods.heads.SeesawBoxHead.logits_loss"
    assert code["sampler"]["line"] == _defined_at("ltbench/methods/samplers.py", r"^def _rfs\b")
    assert code["view"]["target"] == "ltbench.methods.views.plain"
    assert code["regularizer"]["name"] == "pcb"


def test_code_locations_read_the_registries_and_say_what_is_not_implemented():
    import ltbench.methods as methods

    base = {"loss": {"name": "ce"}, "head": {"name": "standard"}}
    for name in methods.IMAGE_SAMPLERS.names():
        located = {c.role: c for c in cl.code_locations({**base, "sampler": {"name": name}}, {"name": "plain"})}
        assert located["sampler"].target.endswith(methods.IMAGE_SAMPLERS.get(name).__qualname__)
    for name in methods.STAGE2_METHODS.names():
        located = {c.role: c for c in cl.code_locations({**base, "stage2": {"name": name}}, {"name": "plain"})}
        assert located["stage-2 method"].line == cl.locate("", "", methods.STAGE2_METHODS.get(name)).line
    for name in set(methods.VIEWS.names()) - {"recurrent_step"}:
        located = {c.role: c for c in cl.code_locations(base, {"name": name})}
        assert located["view"].file and located["view"].target.endswith(methods.VIEWS.get(name).__qualname__)
    # a name nothing implements is reported as such, not guessed
    located = {c.role: c for c in cl.code_locations({**base, "sampler": {"name": "image_repeat"}}, {"name": "combine"})}
    assert located["sampler"].file is None and "not implemented" in located["sampler"].note
    assert located["view"].file is None and "not implemented" in located["view"].note


def test_code_locations_resolve_for_every_planned_run():
    from ltbench.plan import build_plan

    plan = build_plan(scale="smoke")
    views = {(v.run_id): v.view_config for v in plan.views}
    for run in plan.runs.values():
        for location in cl.code_locations(run.config, views.get(run.id, {"name": "plain"})):
            assert location.file and (REPO_ROOT / location.file).is_file(), (run.id, location)


# ---- provenance ---------------------------------------------------------------------------------
def test_line_index_follows_merges_aliases_and_own_keys_first():
    text = "a: &a {x: 1, y: 2}\nb: &b {y: 3}\nc:\n  <<: [*b, *a]\n  x: 9\nd: [*a]\n"
    index = LineIndex(text)
    assert index.locate(["c", "x"]).line == 5 and index.locate(["c", "x"]).via == ()
    y = index.locate(["c", "y"])  # the first merged mapping that has it wins
    assert y.line == 2 and [(h.kind, h.anchor, h.line, h.anchor_line) for h in y.via] == [("merge", "b", 4, 2)]
    assert index.locate(["d", 0, "x"]).via[0].kind == "alias" and index.locate(["d", 0, "x"]).line == 1
    assert index.locate(["c", "z"]) is None


def test_spec_loading_does_not_build_line_indexes(monkeypatch):
    """Provenance is built on demand: loading and planning never compose the line index."""
    import ltbench.spec.provenance as provenance
    from ltbench.plan import build_plan

    def refuse(*args, **kwargs):
        raise AssertionError("spec loading built a line index")

    monkeypatch.setattr(provenance, "_compose", refuse)
    build_plan(scale="smoke")
    with pytest.raises(AssertionError):
        LineIndex("a: 1\n")


def test_unknown_key_path_is_not_located_and_errors_are_ltbench_errors():
    assert LineIndex.of_file(PCB).locate(["tables", 999]) is None
    with pytest.raises(LtbenchError):
        explain("pcb/2", "nope", code=False)
