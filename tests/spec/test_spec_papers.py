"""The committed paper specs: they load, and PCB's numbers are the paper text's numbers."""

from __future__ import annotations

import re

import pytest

from ltbench.paths import PAPER_SPECS_DIR, PAPERS_DIR
from ltbench.spec import load_all, load_paper
from ltbench.spec import vocab

DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


def test_every_committed_spec_loads_and_values_are_decimals():
    specs = load_all()
    assert "pcb" in specs
    for spec in specs.values():
        for table, row, column, value in spec.cells():
            assert DECIMAL.match(value), (spec.paper, table.id, row.label, column.key, value)


def test_pcb_table_shapes():
    spec = load_paper(PAPER_SPECS_DIR / "pcb.yaml")
    assert [t.id for t in spec.tables] == [str(i) for i in range(1, 9)]
    assert [len(t.rows) for t in spec.tables] == [6, 16, 14, 9, 3, 6, 6, 9]
    table2 = spec.table("2")
    assert [g.id for g in table2.column_groups] == ["v0.5", "v1.0"]
    assert sum(1 for r in table2.rows if r.group.id == "v1.0") == 8
    for row in spec.rows():  # every assumption a row points at is defined and explained
        for aid in row.assumptions:
            assert spec.assumptions[aid].text and spec.assumptions[aid].choice


def _numbers_after(lines: list[str], caption_prefix: str, skip_first_column: bool) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith(caption_prefix))
    out = []
    for line in lines[start + 1:start + 40]:
        if line.startswith("Table ") and out:
            break
        if "\t" not in line:
            continue
        cells = [c.strip() for c in line.split("\t")]
        numbers = [c for c in cells if re.fullmatch(r"\d+\.\d+", c)]
        out += numbers[1:] if skip_first_column else numbers
    return out


@pytest.mark.skipif(not (PAPERS_DIR / "pcb.txt").is_file(), reason="needs ../shared/papers/pcb.txt")
@pytest.mark.parametrize("table_id", [str(i) for i in range(1, 9)])
def test_pcb_numbers_match_the_paper_text_in_order(table_id):
    """Every decimal in the paper's table text, in reading order, equals the spec's cells in row order.

    ("-" cells are neither in the text's decimals nor in the spec; Table 2 reads both column groups per line.)
    """
    lines = (PAPERS_DIR / "pcb.txt").read_text(encoding="utf-8").splitlines()
    text_numbers = _numbers_after(lines, f"Table {table_id}.", skip_first_column=table_id in ("5", "6"))
    spec = load_paper(PAPER_SPECS_DIR / "pcb.yaml")
    table = spec.table(table_id)

    def values(row):
        return [row.reported[c.key] for c in row.group.columns if c.key in row.reported]

    mine: list[str] = []
    if table_id == "2":
        left = [r for r in table.rows if r.group.id == "v0.5"]
        right = [r for r in table.rows if r.group.id == "v1.0"]
        for a, b in zip(left, right, strict=True):
            mine += values(a) + values(b)
    else:
        for row in table.rows:
            mine += values(row)
    assert text_numbers[: len(mine)] == mine
    assert len(mine) > 0


def test_format_md_documents_every_vocabulary_name():
    text = (PAPER_SPECS_DIR / "FORMAT.md").read_text(encoding="utf-8")
    for names in (vocab.SAMPLERS, vocab.CLASSIFIERS, vocab.LOSSES, vocab.HEADS, vocab.REGULARIZERS,
                  vocab.STAGE2_METHODS, vocab.VIEWS, vocab.DATASETS, vocab.FRAMEWORKS, vocab.TABLE_SCOPES):
        for name in names:
            assert name in text, f"FORMAT.md does not mention {name!r}"


def test_every_pcb_assumption_is_attached_somewhere():
    spec = load_paper(PAPER_SPECS_DIR / "pcb.yaml")
    used = {a for t in spec.tables for a in t.assumptions}
    used |= {a for r in spec.rows() for a in r.assumptions}
    used |= {a for c in spec.claims for a in c.get("assumptions", [])}
    assert set(spec.assumptions) == used
