"""The BAGS, SimCal and DisAlign paper specs against the paper texts they transcribe.

Independent of the YAML: every spot check below names a line of ``../shared/papers/<paper>.txt`` (by how it
starts, within the table's caption region) and a tab-separated cell index read off the printed header, so a
mistyped, shifted or swapped value in a spec fails here. Besides the spot checks: every reported value occurs
in its table's region of the text, the papers' decimals are kept, no (table, row, column) cell is duplicated,
every table of each paper is present with the right scope, and cross-paper citations agree with the rows that
serve them.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

loader = pytest.importorskip("ltbench.spec.loader", reason="the spec loader (ltbench.spec) is not there yet")

ROOT = Path(__file__).resolve().parents[2]
PAPERS_DIR = ROOT / "workflows" / "papers"
SHARED = ROOT.parent / "shared"
TEXTS = SHARED / "papers"

PAPERS = ("bags", "simcal", "disalign")
EXPECTED_TABLES = {
    "bags": {str(i): "reproduce" for i in range(1, 7)},
    "simcal": {"1": "statistics", **{str(i): "reproduce" for i in range(2, 8)}},
    "disalign": {
        "1": "out_of_scope", "2": "qualitative", "3": "out_of_scope", "4": "out_of_scope",
        "5": "out_of_scope", "6": "out_of_scope", "7": "reproduce", "8": "reproduce", "9": "reproduce",
    },
}
# Half the height of the text window around a table caption that holds the table (the longest table,
# BAGS Table 1, has 15 lines; captions sit above (SimCal) or below (BAGS, DisAlign) their table).
REGION = 22


@pytest.fixture(scope="module")
def specs():
    return {p: loader.load_paper(PAPERS_DIR / f"{p}.yaml") for p in PAPERS}


def _text_lines(paper: str) -> list[str]:
    path = TEXTS / f"{paper}.txt"
    if not path.is_file():
        pytest.skip(f"paper text {path} not available")
    return path.read_text(encoding="utf-8").split("\n")


def _caption_index(lines: list[str], table_id: str) -> int:
    pattern = re.compile(rf"^Table {table_id}[.:]")
    hits = [i for i, line in enumerate(lines) if pattern.match(line)]
    assert len(hits) == 1, f"caption of Table {table_id} found {len(hits)} times"
    return hits[0]


def _region(lines: list[str], table_id: str) -> list[str]:
    i = _caption_index(lines, table_id)
    return lines[max(0, i - REGION): i + REGION]


def _cell_text(cell: str) -> str:
    """A printed cell without the improvement DisAlign appends: '40.1(+2.0)' -> '40.1'."""
    return re.sub(r"\([+-]\d+(\.\d+)?\)$", "", cell.strip())


def _tokens(region: list[str]) -> set[str]:
    return {_cell_text(tok) for line in region for tok in re.split(r"[\t ]+", line) if tok.strip()}


def _find_row(spec, table_id: str, label: str, group: str | None = None):
    row = spec.table(table_id).find_row(label, group)
    assert row is not None, f"{spec.paper} table {table_id}: no row {label!r} (group {group!r})"
    return row


# --- spot checks: (table, row label, group, key, line start, tab-separated cell index) --------------------
BAGS_SPOTS = [
    ("1", "(1) R50-FPN", None, "bbox.AP", "(1)\tR50-FPN", 2),
    ("1", "(1) R50-FPN", None, "cls.ACCbg", "(1)\tR50-FPN", 15),
    ("1", "(4) RFS [15]", None, "bbox.APr", "(4)\tRFS", 7),
    ("1", "(7) Re-weight-cls", None, "bbox.AP4", "(7)\tRe-weight-cls", 6),
    ("1", "(8) Focal loss [24]", None, "cls.ACC", "(8)\tFocal loss", 10),
    ("1", "(10) NCM-fc [21]", None, "cls.ACCbg", "(10)\tNCM-fc", 15),
    ("1", "(13) τ-norm-select", None, "cls.ACC2", "(13)\tτ -norm-select", 12),
    ("1", "(14) Ours", None, "bbox.APc", "(14)\tOurs", 8),
    ("1", "(14) Ours", None, "cls.ACC4", "(14)\tOurs", 14),
    ("2", "Faster X101", None, "bbox.AP3", "Faster X101", 4),
    ("2", "Ours (Cascade X101)", None, "bbox.APf", "Ours\t32.77", 8),
    ("3", "(4) Mask-Calib* [39] R50", None, "segm.AP1", "(4)\tMask-Calib*", 12),
    ("3", "(7) Mask R-CNN R50", None, "bbox.APr", "(7)\tMask R-CNN", 8),
    ("3", "(8) Ours R50", None, "segm.AP", "(8)\tOurs", 11),
    ("3", "(12) Ours X101-MS-DCN", None, "segm.APf", "(12)\tOurs", 18),
    ("3", "(1) Mask-RFS* [15] R50", None, "segm.APc", "(1)\tMask-RFS*", 17),
    ("4", "(3)", None, "bbox.AP", "(3)\t✓\t4", 4),
    ("4", "(6)", None, "bbox.AP1", "(6)\t✓\t✓\t8", 5),
    ("5", "(2) train head", None, "bbox.AP2", "(2)\ttrain\thead", 5),
    ("5", "(4) tune all", None, "bbox.APr", "(4)\ttune\tall", 8),
    ("6", "Mask R-CNN segm", "segm", "segm.AP3", "Mask R-CNN segm", 4),
    ("6", "Ours (Mask R-CNN segm)", "segm", "segm.AP1", "Ours\t20.3", 2),
    ("6", "Ours (Faster R-CNN)", "bbox", "bbox.AP2", "Ours\t22.5", 3),
]
SIMCAL_SPOTS = [
    ("1", "Train", None, "stats.categories.r", "Train\t1230", 2),
    ("1", "Train-on-val", None, "stats.categories.bin1", "Train-on-val", 5),
    ("1", "Train-on-val", None, "stats.categories.bin4", "Train-on-val", 8),
    ("2", "r50", None, "segm.AP", "r50\t", 8),
    ("2", "CM", None, "bbox.APr", "CM\t", 13),
    ("2", "IS", None, "segm.AP2", "IS\t", 2),
    ("2", "FL", None, "bbox.AP", "FL\t", 16),
    ("3", "r50-ag", "bbox", "bbox.AP", "bbox\tr50-ag", 11),
    ("3", "r50-ag cal", "bbox", "bbox.APr", "\t\t\t\t12.4\t23.2", 8),
    ("3", "r50 cal dual", "bbox", "bbox.AP4", "\t\t\t\t8.2\t21.3", 7),
    ("3", "r50-ag cal dual", "mask", "segm.APf", "\t\t\t\t13.3\t23.2", 10),
    ("3", "r50 cal", "mask", "segm.AP3", "\t\t\t\t10.2\t23.5", 6),
    ("4", "CM", None, "segm.AP1", "CM\t4.6", 1),
    ("4", "ours", None, "segm.APc", "ours\t", 6),
    ("5", "cal", None, "segm.AP4", "cal\t", 4),
    ("5", "sel", None, "segm.AP", "sel\t", 5),
    ("6", "htc-x101", "val", "segm.APr", "htc-x101", 5),
    ("6", "htc-x101", "test", "segm.AP", "htc-x101", 12),
    ("6", "2fc_rand", "test", "segm.APr", "2fc_rand", 9),
    ("6", "3fc_ft", "val", "segm.AP1", "3fc_ft", 1),
    ("6", "best [15]", "val", "segm.AP", "best [15]", 8),
    ("7", "r50-ag cal", None, "bbox.AP2", "r50-ag\t✓\t\t", 9),
    ("7", "r50-ag cal dual", None, "segm.AP", "r50-ag\t✓\t✓", 7),
]
DISALIGN_SPOTS = [
    ("7", "R-50 DisAlign", "mask_rcnn", "segm.AP", "\tDisAlign\t23.9(", 3),
    ("7", "R-50 Baseline*", "cascade", "bbox.AP", "\tBaseline*\t22.8\t23.8", 4),
    ("7", "X-101 DisAlign*", "cascade", "segm.AP", "\tDisAlign*\t29.5", 5),
    ("7", "R-101 Baseline", "mask_rcnn", "bbox.AP", "R-101\tBaseline", 2),
    ("8", "ImageNet Baseline", None, "segm.APc", "ImageNet\tBaseline", 8),
    ("8", "ImageNet SimCal[38]", None, "bbox.APr", "\tSimCal[38]", 3),
    ("8", "ImageNet EQL[34]", None, "segm.APr", "\tEQL[34]", 7),
    ("8", "ImageNet DisAlign*", None, "bbox.APf", "\tDisAlign*\t25.6", 5),
    ("8", "COCO GroupSoftmax[23]", None, "segm.APr", "GroupSoftmax[23]", 7),
    ("8", "COCO DisAlign*", None, "segm.AP", "DisAlign*\t\t27.6", 6),
    ("9", "ResNet-50 DisAlign*", None, "bbox.APr", "\tDisAlign*\t30.5", 3),
    ("9", "ResNet-101 De-confound TDE[35]", None, "segm.APf", "\tDe-confound TDE", 9),
    ("9", "ResNeXt-101 Baseline*", None, "segm.AP", "ResNeXt-101\tBaseline*", 6),
    ("1", "DisAlign*", "r50", "other.top1.average", "DisAlign*\t\t52.9", 2),
    ("1", "Deconfound*[35]", "x50", "other.top1.few", "Deconfound*[35]", 9),
    ("3", "DisAlign", "r152", "other.top1.average.200ep", "DisAlign\t67.8", 4),
    ("4", "τ-norm", None, "other.top1.few", "τ -norm\t37.9", 4),
    ("5", "GR ✓ MT ✗ MG ✓", None, "other.top1.medium", "\\checkmark\t\\times\t\\checkmark", 5),
    ("6", "DeepLabV3+ S-101 DisAlign", None, "other.macc.tail", "\tDisAlign\t\t47.8", 10),
    ("6", "FCN R-50 Baseline", None, "other.miou.body", "FCN[32]\tBaseline\tR-50", 5),
]
SPOTS = {"bags": BAGS_SPOTS, "simcal": SIMCAL_SPOTS, "disalign": DISALIGN_SPOTS}


@pytest.mark.parametrize("paper", PAPERS)
def test_at_least_15_spot_checks_per_paper(paper):
    assert len(SPOTS[paper]) >= 15


@pytest.mark.parametrize(
    ("paper", "spot"),
    [(p, s) for p in PAPERS for s in SPOTS[p]],
    ids=[f"{p}-t{s[0]}-{s[1]}-{s[3]}" for p in PAPERS for s in SPOTS[p]],
)
def test_spot_check_against_paper_text(specs, paper, spot):
    table_id, label, group, key, line_start, cell_index = spot
    region = _region(_text_lines(paper), table_id)
    lines = [line for line in region if line.startswith(line_start)]
    assert len(lines) == 1, f"{paper} Table {table_id}: {len(lines)} lines start with {line_start!r}"
    printed = _cell_text(lines[0].split("\t")[cell_index])
    row = _find_row(specs[paper], table_id, label, group)
    assert row.reported.get(key) == printed, (
        f"{paper} Table {table_id} row {label!r} {key}: spec has {row.reported.get(key)!r}, paper prints {printed!r}"
    )


@pytest.mark.parametrize("paper", PAPERS)
def test_every_reported_value_is_printed_in_its_table(specs, paper):
    lines = _text_lines(paper)
    spec = specs[paper]
    problems = []
    for table in spec.tables:
        if not table.rows:
            continue
        tokens = _tokens(_region(lines, table.id))
        for row in table.rows:
            for key, value in row.reported.items():
                if value not in tokens:
                    problems.append(f"Table {table.id} row {row.display_label!r} {key}={value}")
    assert not problems, "values not printed near their table caption:\n" + "\n".join(problems)


def test_decimals_as_printed(specs):
    """BAGS Tables 1-5 print two decimals, Table 6 one; SimCal and DisAlign one (SimCal Table 1 integers)."""
    def decimals(text: str) -> int:
        return len(text.split(".")[1]) if "." in text else 0

    expected = {("bags", t): 2 for t in "12345"} | {("bags", "6"): 1, ("simcal", "1"): 0}
    for paper, spec in specs.items():
        for table, row, column, value in spec.cells():
            want = expected.get((paper, table.id), 1)
            assert decimals(value) == want, f"{paper} Table {table.id} {row.display_label} {column.key}={value!r}"


def test_bags_keeps_trailing_zeros(specs):
    row = _find_row(specs["bags"], "1", "(1) R50-FPN")
    assert row.reported["bbox.AP1"] == "0.00"
    assert row.reported["bbox.APc"] == "19.70"
    assert _find_row(specs["bags"], "1", "(10) NCM-fc [21]").reported["cls.ACCbg"] == "100.00"


@pytest.mark.parametrize("paper", PAPERS)
def test_no_duplicate_cells(specs, paper):
    seen: dict[tuple[str, str, str], str] = {}
    for table, row, column, value in specs[paper].cells():
        cell = (table.id, row.display_label, column.key)
        assert cell not in seen, f"duplicate cell {cell}: {seen[cell]} and {value}"
        seen[cell] = value


@pytest.mark.parametrize("paper", PAPERS)
def test_every_table_present_with_its_scope(specs, paper):
    spec = specs[paper]
    assert {t.id: t.scope for t in spec.tables} == EXPECTED_TABLES[paper]
    lines = _text_lines(paper)
    for table in spec.tables:
        _caption_index(lines, table.id)  # the table exists in the paper text
        if table.scope == "out_of_scope":
            assert table.reason and table.rows, f"Table {table.id}: out of scope needs a reason and its numbers"
        if table.scope == "qualitative":
            assert table.text.strip()
        if table.scope in ("reproduce", "statistics"):
            assert table.rows, f"Table {table.id} has no rows"


def test_cell_counts(specs):
    """Every printed non-'-' cell of every table is transcribed (counts read off the paper text by hand)."""
    counts = {p: {t.id: sum(len(r.reported) for r in t.rows) for t in s.tables} for p, s in specs.items()}
    assert counts["bags"] == {"1": 196, "2": 48, "3": 123, "4": 56, "5": 32, "6": 30}
    assert counts["simcal"] == {"1": 16, "2": 80, "3": 96, "4": 48, "5": 20, "6": 48, "7": 30}
    # DisAlign Table 8: 14 rows minus the garbled COCO Baseline row (recorded under `missing`)
    assert counts["disalign"] == {"1": 73, "2": 0, "3": 31, "4": 40, "5": 16, "6": 80, "7": 48, "8": 92, "9": 58}


def test_garbled_disalign_row_is_recorded_missing_not_guessed(specs):
    table = specs["disalign"].table("8")
    row = _find_row(specs["disalign"], "8", "COCO Baseline")
    assert row.reported == {}
    assert any(m.get("row") == "COCO Baseline" and "garbled" in m["reason"] for m in table.missing)


def test_simcal_test_columns_not_reproducible(specs):
    table = specs["simcal"].table("6")
    entries = [n for n in table.not_reproducible if n.get("group") == "test"]
    assert entries and set(entries[0]["columns"]) == set(table.group("test").keys)
    assert "closed" in entries[0]["reason"]
    test_rows = [r.label for r in table.rows if r.group.id == "test"]
    assert sorted(test_rows) == ["2fc_rand", "best [15]", "htc-x101"]


def test_simcal_plans_three_seeds_others_one(specs):
    assert specs["simcal"].seeds == 3
    assert specs["bags"].seeds == 1 and specs["disalign"].seeds == 1


def test_named_assumptions_exist_and_are_used(specs):
    required = {
        "bags": ["bags-mask-coco-init", "bags-table4-checkmarks"],
        "simcal": ["simcal-dual-t", "simcal-cal-epochs", "simcal-median-of-3", "simcal-table3-rows"],
        "disalign": ["disalign-num-shots", "disalign-table7-vs-table8"],
    }
    for paper, ids in required.items():
        spec = specs[paper]
        used = {a for t in spec.tables for a in t.assumptions} | {a for r in spec.rows() for a in r.assumptions}
        for aid in ids:
            assert aid in spec.assumptions, f"{paper}: assumption {aid} missing"
            assert aid in used, f"{paper}: assumption {aid} is attached to no table or row"
    assert "300" in specs["simcal"].assumptions["simcal-dual-t"].text
    assert "100" in specs["simcal"].assumptions["simcal-dual-t"].text


@pytest.mark.parametrize("paper", PAPERS)
def test_every_assumption_is_attached_somewhere(specs, paper):
    spec = specs[paper]
    used = {a for t in spec.tables for a in t.assumptions} | {a for r in spec.rows() for a in r.assumptions}
    assert set(spec.assumptions) <= used, f"{paper}: unattached assumptions {sorted(set(spec.assumptions) - used)}"


def test_row_parameters_are_attributes_not_metrics(specs):
    table = specs["bags"].table("4")
    assert table.attribute_columns == ["ID", "b", "o", "N"]
    row = _find_row(specs["bags"], "4", "(6)")
    assert row.attributes["N"] == 8 and "N" not in row.reported
    assert specs["bags"].row_run(row)["stage2"]["groups"] == [3, 10, 32, 100, 316, 1000, 3162]
    # Table 4 rows (2) and (3): b and o come from Sec. 5.4 (the extraction lost the check-mark columns)
    run2 = specs["bags"].row_run(_find_row(specs["bags"], "4", "(2)"))["stage2"]
    run3 = specs["bags"].row_run(_find_row(specs["bags"], "4", "(3)"))["stage2"]
    assert (run2["background_group"], run2["others"]) == (True, False)
    assert (run3["background_group"], run3["others"]) == (False, True)


def test_simcal_views_and_calibration(specs):
    spec = specs["simcal"]
    plain = _find_row(spec, "3", "r50", "mask")
    cal = _find_row(spec, "3", "r50 cal", "mask")
    dual = _find_row(spec, "3", "r50 cal dual", "mask")
    assert spec.row_run(plain)["stage2"] is None and spec.row_view(plain)["name"] == "plain"
    assert spec.row_run(cal) == spec.row_run(dual)  # one calibrated run, two views
    assert spec.row_run(cal)["stage2"]["head"] == "3fc_ft"
    assert spec.row_run(cal)["stage2"]["sampler"] == {"name": "bilevel", "classes_per_batch": 16, "images_per_class": 1}
    # calibration: plain SGD (no momentum, no weight decay), 12 x 1000 steps, lr drops at 8k and 11k
    assert spec.row_run(cal)["stage2"]["schedule"] == {"iterations": 12000, "steps": [8000, 11000], "lr": 0.01, "momentum": 0.0,
                                                        "weight_decay": 0.0, "batch_size": 16, "warmup_iters": 0}
    # the paper's T = 300 with its rule N <= T (assumption simcal-dual-t)
    assert spec.row_view(dual) == {"name": "dual_head", "threshold": 300, "combiner": "select", "inclusive": True}
    # Table 4 'ours' and Table 3 r50 mask cal+dual are the same (run, view) with the same numbers
    ours = _find_row(spec, "4", "ours")
    assert (spec.row_run(ours), spec.row_view(ours)) == (spec.row_run(dual), spec.row_view(dual))
    assert ours.reported == dual.reported
    # Table 5 shares its base model with Table 3's r50-ag
    orig = _find_row(spec, "5", "orig")
    assert spec.row_run(orig) == spec.row_run(_find_row(spec, "3", "r50-ag", "mask"))


def _round_to(value: str, like: str) -> Decimal:
    places = len(like.split(".")[1]) if "." in like else 0
    return Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def test_cited_rows_agree_with_the_rows_that_serve_them(specs):
    served = []
    for paper, spec in specs.items():
        for row in spec.rows():
            if row.cited is None or not row.cited.served_by:
                continue
            ref = row.cited.served_by
            target_spec = specs[ref["paper"]]
            target = _find_row(target_spec, ref["table"], ref["row"], ref.get("group"))
            # the serving row's numbers, rounded to the citing paper's precision, are the cited numbers
            same_run_rows = [
                r for r in target_spec.table(ref["table"]).rows
                if target_spec.row_run(r) == target_spec.row_run(target) and target_spec.row_view(r) == target_spec.row_view(target)
            ]
            target_values = {k: v for r in same_run_rows for k, v in r.reported.items()}
            assert set(row.reported) <= set(target_values), f"{row.ref}: cites keys the serving row does not report"
            for key, value in row.reported.items():
                coarse, fine = (value, target_values[key]) if len(value) <= len(target_values[key]) else (target_values[key], value)
                assert _round_to(fine, coarse) == Decimal(coarse), f"{row.ref} {key}: {value} vs {target.ref} {target_values[key]}"
            if row.run:  # a cited row that states its run must state the serving row's run and view
                assert spec.row_run(row) == target_spec.row_run(target), row.ref
                assert spec.row_view(row) == target_spec.row_view(target), row.ref
            served.append((paper, row.table_id, ref["paper"]))
    assert ("disalign", "8", "simcal") in served
    assert ("disalign", "8", "bags") in served
    assert ("bags", "3", "simcal") in served


def test_stage2_rows_resolve_to_their_recipes(specs):
    bags = specs["bags"]
    ours = bags.row_run(_find_row(bags, "1", "(14) Ours"))
    assert ours["pretrain"] == "coco" and ours["detector"] == "faster_rcnn"
    assert ours["schedule"]["lr"] == 0.01 and ours["schedule"]["epochs"] == 12
    assert ours["stage2"] == {"name": "bags", "groups": [10, 100, 1000], "background_group": True, "others": True,
                              "beta": 8, "trainable": "fc_cls",
                              "schedule": {"epochs": 12, "lr": 0.01, "steps": [8, 11], "batch_size": 16, "warmup_iters": 500,
                                           "warmup_factor": 1 / 3, "grad_clip": 35}}
    tune = _find_row(bags, "5", "(3) tune head")
    assert tune.stage1 is not None and tune.stage1["stage2"]["beta"] == 1

    dis = specs["disalign"]
    v05 = dis.row_run(_find_row(dis, "7", "R-50 DisAlign", "mask_rcnn"))
    assert v05["stage2"]["schedule"]["iterations"] == 4500 and v05["stage2"]["rho"] == 0.8
    assert v05["schedule"]["iterations"] == 90000
    v1 = dis.row_run(_find_row(dis, "9", "ResNet-50 DisAlign*"))
    assert v1["dataset"] == "lvis_v1" and v1["stage2"]["schedule"]["iterations"] == 9000
    assert v1["schedule"]["iterations"] == 180000 and v1["classifier"]["name"] == "cosine"
    assert v1["detector"] == "cascade_mask_rcnn"
    # Table 7 R-50 DisAlign (mask 24.2) and Table 8 ImageNet DisAlign (mask 24.3) are one run and view
    t8 = _find_row(dis, "8", "ImageNet DisAlign")
    assert dis.row_run(t8) == v05
    assert (t8.reported["segm.AP"], _find_row(dis, "7", "R-50 DisAlign", "mask_rcnn").reported["segm.AP"]) == ("24.3", "24.2")


# --- the specs through the planner (skipped where ltbench.plan is not there) ---------------------------------
@pytest.fixture(scope="module")
def plan_rows(specs):
    plan_mod = pytest.importorskip("ltbench.plan", reason="the planner (ltbench.plan) is not there yet")
    plan = plan_mod.build_plan(papers=list(PAPERS), scale="smoke", specs=specs)
    data = plan.to_json()
    # the plan labels rows of multi-group tables "<label> (<group label>)"; key them by the spec's own label
    rows = {}
    for r in data["row_list"]:
        row = specs[r["paper"]].table(r["table"]).find_row(r["row_id"], r["group"])
        rows[(r["paper"], r["table"], row.label, r["group"])] = r
    runs = {r["id"]: r for r in data["run_list"]}
    return rows, runs


def test_plan_serves_cross_paper_citations(plan_rows):
    rows, _ = plan_rows
    for key in [("disalign", "8", "ImageNet SimCal[38]", "main"), ("disalign", "8", "COCO GroupSoftmax[23]", "main"),
                ("bags", "3", "(4) Mask-Calib* [39] R50", "main")]:
        assert rows[key]["status"] == "served", (key, rows[key]["status"], rows[key]["reason"])


def test_plan_does_not_train_out_of_scope_statistics_or_test_server_rows(plan_rows):
    rows, _ = plan_rows
    for (paper, table, _label, group), row in rows.items():
        out_of_scope = paper == "disalign" and table in {"1", "3", "4", "5", "6"}
        statistics = paper == "simcal" and table == "1"
        test_server = paper == "simcal" and table == "6" and group == "test"
        if out_of_scope or statistics or test_server:
            assert not row["run_ids"], (paper, table, _label, group)


def test_plan_seeds_and_stage_dependencies(plan_rows):
    rows, runs = plan_rows
    simcal_dual = rows[("simcal", "3", "r50 cal dual", "mask")]
    assert len(simcal_dual["run_ids"]) == 3  # median of 3 runs
    assert len({runs[r]["stage1"] for r in simcal_dual["run_ids"]}) == 3  # each seed calibrates its own base model
    disalign = rows[("disalign", "9", "ResNet-50 DisAlign*", "main")]
    (run_id,) = disalign["run_ids"]
    assert runs[run_id]["stage1"] is not None
    # Table 7 R-50 DisAlign and Table 8 ImageNet DisAlign are one run and view
    t7 = rows[("disalign", "7", "R-50 DisAlign", "mask_rcnn")]
    t8 = rows[("disalign", "8", "ImageNet DisAlign", "main")]
    assert (t7["run_ids"], t7["view_id"]) == (t8["run_ids"], t8["view_id"])
