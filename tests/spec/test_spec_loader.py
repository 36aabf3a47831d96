"""Loader of workflows/papers/*.yaml: structure, printed-number text, and readable errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ltbench.errors import LtbenchError
from support.specs import minimal_spec
from ltbench.paths import PAPER_SPECS_DIR
from ltbench.spec import load_all, load_paper, validate_spec
from ltbench.spec.schema import SCHEMA_PATH, build_schema, schema_text
from ltbench.spec.yaml_text import read_spec_yaml


def error_of(data, path="workflows/papers/pcb.yaml") -> str:
    with pytest.raises(LtbenchError) as info:
        validate_spec(data, path)
    return str(info.value)


# --- schema ---------------------------------------------------------------------------------------
def test_committed_schema_is_the_generated_one_and_valid_2020_12():
    import jsonschema

    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), "run `python -m ltbench.spec.schema`"
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "claims" in schema["properties"]
    assert build_schema()["properties"]["paper"]["enum"] == ["pcb", "disalign", "bags", "simcal"]


def test_minimal_spec_loads_and_resolves_run_and_view():
    spec = validate_spec(minimal_spec(), "pcb.yaml")
    table = spec.table("2")
    assert [r.display_label for r in table.rows] == ["Softmax (LVIS v0.5)", "RFS CM (LVIS v0.5)", "RFS (LVIS v1.0)"]
    run = spec.row_run(table.rows[2])
    assert run["dataset"] == "lvis_v1" and run["sampler"] == {"name": "rfs", "t": 0.001}
    assert spec.row_view(table.rows[1]) == {"name": "cm_calibration", "source": "val"}
    assert table.rows[0].reported == {"segm.AP": "21.9", "PwB": "7.0"}
    assert table.rows[2].cited.source == "[10] LOCE"


def test_component_with_same_name_merges_and_other_name_replaces():
    data = minimal_spec()
    data["defaults"]["run"]["regularizer"] = {"name": "pcb", "alpha": 0.4, "momentum": 0.99}
    data["tables"][0]["rows"][0]["run"] = {"regularizer": {"alpha": 0.2}, "loss": {"name": "eqlv2", "gamma": 12}}
    data["tables"][0]["rows"][1]["run"] = {"regularizer": {"name": "label_smoothing", "epsilon": 0.1}}
    spec = validate_spec(data, "pcb.yaml")
    rows = spec.table("2").rows
    assert spec.row_run(rows[0])["regularizer"] == {"name": "pcb", "alpha": 0.2, "momentum": 0.99}
    assert spec.row_run(rows[0])["loss"] == {"name": "eqlv2", "gamma": 12}
    assert spec.row_run(rows[1])["regularizer"] == {"name": "label_smoothing", "epsilon": 0.1}
    assert data["defaults"]["run"]["regularizer"]["alpha"] == 0.4  # inputs untouched


def test_yaml_keeps_printed_text_of_numbers(tmp_path: Path):
    import yaml

    data = minimal_spec()
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    text = text.replace("segm.AP: 21.9", "segm.AP: 21.90").replace("segm.AP: 28.4", "segm.AP: 27.25")
    text = text.replace("PwB: '7.0'", "PwB: 7.0")
    path = tmp_path / "pcb.yaml"
    path.write_text(text, encoding="utf-8")
    spec = load_paper(path)
    rows = spec.table("2").rows
    assert rows[0].reported == {"segm.AP": "21.90", "PwB": "7.0"}
    assert rows[1].reported == {"segm.AP": "27.25"}
    assert read_spec_yaml(path)["tables"][0]["rows"][0]["reported"]["PwB"] == 7.0


# --- errors ---------------------------------------------------------------------------------------
def test_unknown_loss_names_file_table_row_key_and_suggests():
    data = minimal_spec()
    data["tables"][0]["rows"][1]["run"]["loss"] = {"name": "seesa"}
    msg = error_of(data)
    assert "workflows/papers/pcb.yaml" in msg
    assert "tables[0] (table 2).rows[1] (row 'RFS CM', group v0.5).run.loss.name" in msg
    assert "unknown loss 'seesa'" in msg and "did you mean 'seesaw'" in msg
    assert "expected one of" in msg


@pytest.mark.parametrize(
    ("where", "value", "needle", "suggestion"),
    [
        (("run", "sampler"), {"name": "rsf"}, "unknown sampler 'rsf'", "'rfs'"),
        (("run", "backbone"), "r50-fpn", "unknown backbone 'r50-fpn'", "'r50_fpn'"),
        (("run", "dataset"), "lvis_v05", "unknown dataset 'lvis_v05'", "'lvis_v0.5'"),
        (("run", "sampeler"), {"name": "rfs"}, "unknown run key 'sampeler'", "'sampler'"),
        (("view",), {"name": "cm_calibraton"}, "unknown view 'cm_calibraton'", "'cm_calibration'"),
        (("run", "stage2"), {"name": "disalgn"}, "unknown stage2 'disalgn'", "'disalign'"),
    ],
)
def test_unknown_names_get_did_you_mean(where, value, needle, suggestion):
    data = minimal_spec()
    row = data["tables"][0]["rows"][0]
    if where[0] == "run":
        row.setdefault("run", {})[where[1]] = value
    else:
        row["view"] = value
    msg = error_of(data)
    assert needle in msg and f"did you mean {suggestion}" in msg
    assert "row 'Softmax'" in msg


def test_reported_key_not_a_column_of_its_group():
    data = minimal_spec()
    data["tables"][0]["rows"][2]["reported"]["PwB"] = 9.0  # the v1.0 group has no PwB column
    msg = error_of(data)
    assert "reported key 'PwB' is not a column of group 'v1.0'" in msg
    assert "rows[2] (row 'RFS', group v1.0).reported.PwB" in msg


def test_unknown_metric_key_suggests_canonical():
    data = minimal_spec()
    data["tables"][0]["column_groups"][0]["columns"][0]["key"] = "segm.Apr"
    msg = error_of(data)
    assert "unknown metric key 'segm.Apr'" in msg and "did you mean 'segm.APr'" in msg


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["tables"][0]["rows"][0].pop("group"), "row does not say which column group"),
        (lambda d: d["tables"][0]["rows"][0].update(group="v0.6"), "unknown column group 'v0.6'"),
        (lambda d: d["tables"][0]["rows"][1].update(label="Softmax"), "duplicate row 'Softmax'"),
        (lambda d: d["tables"][0]["rows"][0].update(assumptions=["a-two"]), "assumption 'a-two' is not defined"),
        (lambda d: d["tables"][0]["rows"][0]["reported"].update({"segm.AP": "21,9"}), "does not match the required form"),
        (lambda d: d["tables"][0]["rows"][0]["reported"].update({"segm.AP": True}), "wrong form"),
        (lambda d: d["tables"][0].pop("caption"), "missing key 'caption'"),
        (lambda d: d["tables"][0].update(scope="out_of_scope"), "missing key 'reason'"),
        (lambda d: d["tables"][0].update(scpoe="x"), "unexpected key 'scpoe'"),
        (lambda d: d["tables"][0]["rows"][0].update(attributes={"Methd": "x"}), "attribute 'Methd' is not an attribute column"),
        (lambda d: d["tables"].append(copy.deepcopy(d["tables"][0])), "duplicate table id '2'"),
        (lambda d: d["tables"][0]["rows"][0].update(run={"regularizer": {"alpha": 0.2}}), "resolved regularizer has parameters but no name"),
        (lambda d: d.update(paper="pbc"), "did you mean 'pcb'"),
    ],
)
def test_structural_errors_are_readable(mutate, needle):
    data = minimal_spec()
    mutate(data)
    msg = error_of(data)
    assert needle in msg, msg
    assert msg.startswith("workflows/papers/pcb.yaml")


def test_non_mapping_and_yaml_syntax_errors(tmp_path: Path):
    assert "not a mapping" in error_of([1, 2])
    bad = tmp_path / "pcb.yaml"
    bad.write_text("paper: pcb\ntables: [\n", encoding="utf-8")
    with pytest.raises(LtbenchError, match=r"invalid YAML at line \d+, column \d+") as info:
        load_paper(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(LtbenchError, match="paper spec not found"):
        load_paper(tmp_path / "nope.yaml")


def test_file_name_must_match_paper(tmp_path: Path):
    import yaml

    path = tmp_path / "bags.yaml"
    path.write_text(yaml.safe_dump(minimal_spec()), encoding="utf-8")
    with pytest.raises(LtbenchError, match="file is named bags.yaml but says paper: pcb"):
        load_paper(path)


def test_load_all_unknown_paper_suggests(tmp_path: Path):
    with pytest.raises(LtbenchError, match="did you mean 'simcal'"):
        load_all(PAPER_SPECS_DIR, ["simcall"])


def test_stage1_overrides_need_a_stage2_row():
    data = minimal_spec()
    data["tables"][0]["rows"][0]["stage1"] = {"sampler": {"name": "rfs"}}
    assert "`stage1:` overrides on a row whose run has no stage2" in error_of(data)
    data["tables"][0]["rows"][0]["run"] = {"stage2": {"name": "crt"}}
    validate_spec(data, "pcb.yaml")


def test_schedule_override_replaces_the_whole_schedule():
    """An epoch-based row schedule over an iteration-based default keeps nothing of the default."""
    from ltbench.spec.model import merge_run

    base = {"schedule": {"name": "1x", "iterations": 90000, "steps": [60000, 80000], "warmup_iters": 1000},
            "loss": {"name": "ce"}}
    merged = merge_run(base, {"schedule": {"name": "1x", "epochs": 12, "steps": [8, 11]}})
    assert merged["schedule"] == {"name": "1x", "epochs": 12, "steps": [8, 11]}
    assert base["schedule"]["iterations"] == 90000  # inputs untouched
    data = minimal_spec()
    data["defaults"]["run"]["schedule"] = {"name": "1x", "iterations": 90000, "steps": [60000, 80000]}
    data["tables"][0]["rows"][0]["run"] = {"schedule": {"name": "1x", "epochs": 12, "lr": 0.01}}
    spec = validate_spec(data, "pcb.yaml")
    assert spec.row_run(spec.table("2").rows[0])["schedule"] == {"name": "1x", "epochs": 12, "lr": 0.01}


def test_schedule_with_epochs_and_iterations_is_an_error():
    data = minimal_spec()
    data["tables"][0]["rows"][1]["run"]["schedule"] = {"epochs": 12, "iterations": 9000}
    message = error_of(data)
    assert "rows[1] (row 'RFS CM', group v0.5).run.schedule" in message
    assert "both epochs and iterations" in message and "replaces the whole schedule" in message


@pytest.mark.parametrize("value", ["800", 0, [], [640, "800"], 800.5])
def test_bad_train_scales_are_clear_errors(value):
    data = minimal_spec()
    data["tables"][0]["rows"][0]["run"] = {"train_scales": value}
    message = error_of(data)
    assert "rows[0] (row 'Softmax', group v0.5).run.train_scales" in message


def test_train_scales_single_value_list_is_single_scale():
    from ltbench.plan.canonical import normalize_run

    assert normalize_run({"train_scales": [800]})["train_scales"] == 800
    assert normalize_run({"train_scales": [640, 800]})["train_scales"] == [640, 800]


def test_schema_pass_is_cached_per_exact_text(tmp_path: Path, monkeypatch):
    """A spec file that passed the schema skips it next time; an edited file is validated again."""
    import yaml as pyyaml

    from ltbench.spec import loader

    monkeypatch.setenv("LTBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LTBENCH_NO_CACHE", raising=False)
    spec_file = tmp_path / "pcb.yaml"
    spec_file.write_text(pyyaml.safe_dump(minimal_spec(), allow_unicode=True), encoding="utf-8")
    calls = []
    original = loader._Checker._schema_pass
    monkeypatch.setattr(loader._Checker, "_schema_pass", lambda self: (calls.append(1), original(self))[1])
    load_paper(spec_file)
    load_paper(spec_file)
    assert len(calls) == 1 and len(list((tmp_path / "cache" / "spec-schema-valid").iterdir())) == 1
    bad = minimal_spec()
    bad["tables"][0]["caption"] = 5  # a schema error only (vocabulary pass is happy)
    spec_file.write_text(pyyaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    for _ in range(2):  # a failing text is never marked valid
        with pytest.raises(LtbenchError, match=r"caption.*wrong type"):
            load_paper(spec_file)
    assert len(calls) == 3
    monkeypatch.setenv("LTBENCH_NO_CACHE", "1")
    spec_file.write_text(pyyaml.safe_dump(minimal_spec(), allow_unicode=True), encoding="utf-8")
    load_paper(spec_file)
    assert len(calls) == 4


def test_spec_file_that_is_not_utf8(tmp_path: Path):
    bad = tmp_path / "pcb.yaml"
    bad.write_bytes(b"paper: pcb\ntitle: \xff\xfe\n")
    with pytest.raises(LtbenchError, match=r"pcb.yaml.*not UTF-8"):
        load_paper(bad)


def test_three_stage_row_checks_its_own_stage2_and_the_stage1_run():
    """A `stage1:` that brings its own stage2 must not hide an unnamed stage2 of the row (or vice versa)."""
    data = minimal_spec()
    data["tables"][0]["rows"].append({
        "label": "tune", "group": "v0.5", "run": {"stage2": {"epochs": 12}},
        "stage1": {"stage2": {"name": "crt"}}, "reported": {"segm.AP": "20.0"}})
    message = error_of(data)
    assert "rows[3] (row 'tune', group v0.5).run.stage2" in message and "no name" in message
    data["tables"][0]["rows"][-1].update(run={"stage2": {"name": "finetune"}}, stage1={"stage2": {"beta": 1}})
    message = error_of(data)
    assert "rows[3] (row 'tune', group v0.5).stage1.stage2" in message and "no name" in message
    data["tables"][0]["rows"][-1]["stage1"] = {"stage2": {"name": "bags", "beta": 1}}
    validate_spec(data, "pcb.yaml")
