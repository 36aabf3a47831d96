"""The column option of issue 8: extra metric columns on every reproduced table (ltbench.spec.extra_columns)."""

from __future__ import annotations

import pytest

from ltbench.errors import LtbenchError
from ltbench.paths import PAPER_SPECS_DIR
from ltbench.spec import extra_columns, load_paper
from ltbench import workflow as wf


def test_parse_accepts_canonical_keys_and_names_the_bad_one():
    assert extra_columns.parse("segm.APfixed, segm.APpool,,segm.APfixed") == ("segm.APfixed", "segm.APpool")
    assert extra_columns.parse(["bbox.APfixed_r"]) == ("bbox.APfixed_r",)
    assert extra_columns.parse("") == ()
    with pytest.raises(LtbenchError) as info:
        extra_columns.parse("segm.APfix", where="workflow config")
    message = str(info.value)
    assert "workflow config" in message and "'segm.APfix'" in message and "segm.APfixed" in message


def test_apply_adds_columns_to_reproduced_tables_only_and_copies():
    spec = load_paper(PAPER_SPECS_DIR / "disalign.yaml")
    before = {t.id: [[c.key for c in g.columns] for g in t.column_groups] for t in spec.tables}
    out = extra_columns.apply(spec, ("segm.APfixed", "segm.AP"))
    for table in out.tables:
        for group, keys in zip(table.column_groups, before[table.id]):
            now = [c.key for c in group.columns]
            if table.scope == "reproduce":
                # segm.AP is already there (kept once, in place); APfixed is appended
                assert now == keys + ["segm.APfixed"] if "segm.AP" in keys else now == keys + ["segm.APfixed", "segm.AP"]
            else:
                assert now == keys
    assert {t.id: [[c.key for c in g.columns] for g in t.column_groups] for t in spec.tables} == before
    assert extra_columns.apply(spec, ()) is spec


def test_environment_reaches_the_loader_and_the_plan(monkeypatch):
    from ltbench.plan import build_plan

    plain = build_plan(targets=["tables/pcb_table2.md"], scale="smoke")
    environ = {}
    assert wf.export_extra_columns(["segm.APfixed", "segm.APpool"], environ) == ("segm.APfixed", "segm.APpool")
    monkeypatch.setenv(extra_columns.EXTRA_COLUMNS_ENV, environ[extra_columns.EXTRA_COLUMNS_ENV])
    table = load_paper(PAPER_SPECS_DIR / "pcb.yaml").table("2")
    assert all([c.key for c in g.columns][-2:] == ["segm.APfixed", "segm.APpool"] for g in table.column_groups)
    plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke")
    assert set(plan.runs) == set(plain.runs)
    assert all(v.view_config.get("ap_fixed") == {"k": 61} for v in plan.views)
    assert wf.export_extra_columns([], environ) == () and extra_columns.EXTRA_COLUMNS_ENV not in environ
    monkeypatch.setenv(extra_columns.EXTRA_COLUMNS_ENV, "segm.nope")
    with pytest.raises(LtbenchError, match="LTBENCH_EXTRA_COLUMNS"):
        load_paper(PAPER_SPECS_DIR / "pcb.yaml")
