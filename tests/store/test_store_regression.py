"""The regression check: [task, metric, expected, tolerance] entries against the store."""

from __future__ import annotations

import pytest

from ltbench.errors import LtbenchError
from ltbench.store.regression import Expected, evaluate_entries, load_expected


def test_shipped_expected_file_loads_and_names_real_rows():
    from ltbench import paths
    from ltbench.store.regression import task_pairs

    expected = load_expected(paths.WORKFLOWS / "regression" / "expected.yaml")
    assert expected.scale == "smoke"
    served = task_pairs(expected, scale="smoke", framework=None)
    assert all(served[e.task] for e in expected.entries), "every task must be a planned row"


def test_entries_pass_fail_and_missing(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text(
        "scale: smoke\nentries:\n"
        "  - [pcb/table2/v0.5/softmax, segm.AP, 10.0, 0.5]\n"
        "  - [pcb/table2/v0.5/softmax, bbox.AP, 10.0, 0.5]\n"
        "  - [pcb/table2/v0.5/rfs-12, segm.AP, 10.0, 0.5]\n"
        "  - [pcb/table2/v9/nothing, segm.AP, 10.0, 0.5]\n"
    )
    expected = load_expected(f)
    assert expected.tables() == [("pcb", "2")]
    report = evaluate_entries(expected, {
        "pcb/table2/v0.5/softmax": {"segm.AP": [10.4], "bbox.AP": [9.2, 9.6]},
        "pcb/table2/v0.5/rfs-12": {},
    })
    assert [o.ok for o in report.outcomes] == [True, False, False, False]
    assert report.outcomes[1].measured == pytest.approx(9.4)
    assert [o.note for o in report.outcomes[2:]] == ["no record yet", "no such row in the plan"]
    md = report.markdown()
    assert "1/4 entries within tolerance" in md and "FAIL" in md and not report.ok


@pytest.mark.parametrize(
    "bad",
    ["entries: {}\n", "entries:\n  - [pcb/table2/v0.5/softmax, segm.AP, 1.0]\n",
     "entries:\n  - [pcb/softmax, segm.AP, 1.0, 0.1]\n", "entries:\n  - [pcb/table2/x, segm.AP, 1.0, -1]\n"],
)
def test_bad_expected_files_name_the_entry(tmp_path, bad):
    f = tmp_path / "e.yaml"
    f.write_text(bad)
    with pytest.raises(LtbenchError) as info:
        load_expected(f)
    assert str(f) in str(info.value) and "entries" in str(info.value)


def test_scale_mismatch_is_an_error(tmp_path):
    from ltbench.store.regression import check

    with pytest.raises(LtbenchError, match="scale"):
        check(Expected(tmp_path / "e.yaml", "smoke", None, []), scale="paper", framework=None, results_dir=tmp_path)
