"""Property tests: a malformed spec always gives a readable LtbenchError, never another exception."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ltbench.errors import LtbenchError
from ltbench.plan import build_plan
from ltbench.spec import validate_spec
from support.specs import minimal_spec


def rich_spec() -> dict:
    """The minimal spec plus a stage-2 row, seeds, a table-level run and a served cited row."""
    data = minimal_spec()
    table = data["tables"][0]
    table["run"] = {"head": {"name": "iterative", "steps": 3}}
    table["seeds"] = 2
    table["rows"].append({"label": "cRT", "group": "v0.5", "run": {"stage2": {"name": "crt", "schedule": {"epochs": 12}}},
                          "stage1": {"sampler": {"name": "random"}}, "reported": {"segm.AP": "22.0"}})
    table["rows"].append({"label": "cited", "group": "v0.5", "cited": {"source": "x", "served_by": {
        "paper": "pcb", "table": "2", "row": "Softmax", "group": "v0.5"}}, "reported": {"segm.AP": "21.9"}})
    # the later format additions: reproduced cited row, train scales, pretrain from a row, three stages,
    # post-hoc stage 2, instance bins, seed aggregation
    data["defaults"]["seed_aggregate"] = {"rule": "median_run"}
    table["instance_bins"] = [10, 100, 1000]
    table["rows"][-3]["cited"]["reproduce"] = True  # the minimal spec's v1.0 "RFS" row
    table["rows"].append({"label": "ms", "group": "v0.5", "run": {"train_scales": [640, 800]},
                          "seed_aggregate": {"rule": "mean"}, "reported": {"segm.AP": "22.1"}})
    table["rows"].append({"label": "init", "group": "v0.5", "reported": {"segm.AP": "22.2"},
                          "run": {"pretrain": {"from": {"paper": "pcb", "table": "2", "row": "ms", "group": "v0.5"}}}})
    table["rows"].append({"label": "tune", "group": "v0.5", "reported": {"segm.AP": "22.3"},
                          "run": {"stage2": {"name": "finetune", "schedule": {"epochs": 12}}},
                          "stage1": {"stage2": {"name": "crt", "schedule": {"epochs": 12}}}})
    table["rows"].append({"label": "tau", "group": "v0.5", "run": {"stage2": {"name": "tau_norm", "tau": 1.0}},
                          "reported": {"segm.AP": "22.4"}})
    return data


def all_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += all_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += all_paths(value, (*prefix, i))
    return out


def parent_of(data: Any, path: tuple) -> Any:
    node = data
    for key in path[:-1]:
        node = node[key]
    return node


BASES = [minimal_spec(), rich_spec()]
PATHS = [all_paths(b) for b in BASES]
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=True), st.text(max_size=12),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
names = st.sampled_from(["seesa", "rsf", "", "PCB", "plain ", "lvis_v2", "segm.apr", "r50-fpn", "x" * 60, "2x "])


def check(data: Any) -> None:
    try:
        spec = validate_spec(data, "workflows/papers/pcb.yaml")
    except LtbenchError as exc:
        text = str(exc)
        assert text.startswith("workflows/papers/pcb.yaml"), text
        assert "Traceback" not in text and len(text) < 2000
        return
    try:
        build_plan(papers=["pcb"], specs={"pcb": spec}, scale="smoke")
        build_plan(papers=["pcb"], specs={"pcb": spec}, scale="paper")
    except LtbenchError as exc:
        assert str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_deletions_type_changes_and_unknown_names(data):
    which = data.draw(st.integers(0, len(BASES) - 1))
    spec = copy.deepcopy(BASES[which])
    for _ in range(data.draw(st.integers(1, 3))):
        paths = all_paths(spec)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = parent_of(spec, path)
        kind = data.draw(st.sampled_from(["delete", "junk", "name"]))
        try:
            if kind == "delete":
                del parent[path[-1]]
            elif kind == "junk":
                parent[path[-1]] = data.draw(junk)
            else:
                parent[path[-1]] = data.draw(names)
        except (KeyError, IndexError, TypeError):
            continue
    check(spec)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(PATHS[1]), junk)
def test_every_single_value_replaced_by_junk(path, value):
    spec = copy.deepcopy(BASES[1])
    parent_of(spec, path)[path[-1]] = value
    check(spec)


@settings(max_examples=40, deadline=None)
@given(junk)
def test_whole_document_junk(value):
    check(value)


def test_rich_spec_is_valid_and_plans():
    spec = validate_spec(rich_spec(), "pcb.yaml")
    plan = build_plan(papers=["pcb"], specs={"pcb": spec})
    # 2 seeds x (cRT, fine-tune after cRT, tau-norm); the fine-tune's stage 1 is the cRT row's run
    assert plan.counts()["stage2_runs"] == 6
    rows = {r.label: r for r in plan.rows}
    assert rows["RFS (LVIS v1.0)"].status == "planned" and rows["RFS (LVIS v1.0)"].cited["reproduce"]
    assert rows["cited (LVIS v0.5)"].status == "served"
    for seed in range(2):
        assert plan.runs[rows["tune (LVIS v0.5)"].run_ids[seed]].stage1 == rows["cRT (LVIS v0.5)"].run_ids[seed]
        assert plan.runs[rows["init (LVIS v0.5)"].run_ids[seed]].init_from == rows["ms (LVIS v0.5)"].run_ids[seed]
        assert plan.runs[rows["tau (LVIS v0.5)"].run_ids[seed]].config["schedule"]["iterations"] == 0
    assert rows["ms (LVIS v0.5)"].seed_aggregate == {"rule": "mean"}
    assert rows["init (LVIS v0.5)"].seed_aggregate == {"rule": "median_run", "by": "segm.AP"}


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_yaml_text_gives_ltbench_error(tmp_path_factory, text):
    from ltbench.spec import load_paper

    path = tmp_path_factory.mktemp("spec") / "pcb.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_paper(path)
    except LtbenchError as exc:
        assert str(exc).startswith(str(path))
