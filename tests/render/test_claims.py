"""Claims evaluated on the papers' numbers and on reproduced seeds (ltbench.claims)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ltbench.claims import (
    FAILS, HOLDS, UNDETERMINED, ReproducedValues, claim_tables, claims_json, claims_markdown, combine,
    evaluate_claim, evaluate_claims, mapping_from_store, pearson, spearman,
)
from ltbench.errors import LtbenchError
from ltbench.paths import PAPER_SPECS_DIR
from ltbench.spec import load_paper

PAPERS = ("pcb", "bags", "simcal", "disalign")


@pytest.fixture(scope="module")
def specs():
    return {p: load_paper(PAPER_SPECS_DIR / f"{p}.yaml") for p in PAPERS}


def claim(spec, claim_id):
    return next(c for c in spec.claims if c["id"] == claim_id)


def test_every_transcribed_claim_holds_on_the_papers_numbers(specs):
    counts = {}
    for paper, spec in specs.items():
        results = evaluate_claims(spec)
        counts[paper] = len(results)
        expected = {c["id"]: c.get("on_reported", HOLDS) for c in spec.claims}
        for result in results:
            assert result.verdict == expected[result.id], (paper, result.id, result.details)
            assert result.evidence and all(e.n == 1 for e in result.evidence), result.id
            assert result.text and result.where
    assert counts["pcb"] >= 10 and counts["bags"] >= 8 and counts["simcal"] >= 6 and counts["disalign"] >= 10
    # The one claim whose text contradicts its table (DisAlign's ResNeSt-101 sentence, Table 6).
    failing = [c["id"] for spec in specs.values() for c in spec.claims if c.get("on_reported") == FAILS]
    assert failing == ["disalign-ade20k-resnest-gains"]


def test_out_of_scope_claims_are_undetermined_on_reproduced_results(specs):
    """DisAlign's ImageNet-LT / Places / ADE20K claims: printed numbers only; a reproduction cannot speak."""
    spec = specs["disalign"]
    everything = lambda row, metric: [50.0, 51.0]  # noqa: E731 -- even a value for every cell changes nothing
    results = {r.id: r for r in evaluate_claims(spec, everything, mode="paper")}
    for claim_id in ("disalign-imagenet-lt-sota", "disalign-places-lt-gain", "disalign-ade20k-fcn-gains"):
        assert results[claim_id].verdict == UNDETERMINED
        assert any("not reproduced: Table" in d and "out of scope" in d for d in results[claim_id].details)
    # an LVIS claim is evaluated on those values (all equal: no row beats another)
    assert not any("not reproduced" in d for d in results["disalign-state-of-the-art-lvis"].details)


def test_on_reported_fails_needs_a_note(tmp_path):
    text = (PAPER_SPECS_DIR / "disalign.yaml").read_text(encoding="utf-8")
    without_note, count = re.subn(r"(    on_reported: fails\n)    note: >-\n(      .*\n)+", r"\1", text)
    assert count == 1
    path = tmp_path / "disalign.yaml"
    path.write_text(without_note, encoding="utf-8")
    with pytest.raises(LtbenchError, match="note"):
        load_paper(path)


def _letters(text):
    return re.sub(r"[^a-z0-9]+", "", text.replace("\\mathcal", "").lower())


def test_claims_quote_the_paper_text(specs):
    """Each quoted fragment (between ellipses) is in the paper's text, ignoring punctuation and spaces."""
    papers_dir = PAPER_SPECS_DIR.parents[2] / "shared" / "papers"
    if not papers_dir.is_dir():
        pytest.skip(f"paper texts not available at {papers_dir}")
    for paper, spec in specs.items():
        # bracketed citations ([5, 12]) are dropped on both sides, like the claims' editorial insertions
        body = _letters(re.sub(r"\[[^\]]*\]", " ", (papers_dir / f"{paper}.txt").read_text(encoding="utf-8")))
        checked = 0
        for c in spec.claims:
            for fragment in re.split(r"\.\.\.|…", c["text"]):
                fragment = re.sub(r"\[[^\]]*\]", " ", fragment)  # editorial insertions like [LS and OLS]
                words = _letters(fragment)
                if len(words) >= 20:
                    checked += 1
                    assert words[:40] in body, (paper, c["id"], fragment[:60])
        assert checked >= len(spec.claims)


# --- PCB Table 2 campaigns --------------------------------------------------------------------------
T2_PAIRS = [("Softmax + PCB", "Softmax"), ("RFS [12] + PCB", "RFS [12]"), ("EQL v2 [29] + PCB", "EQL v2 [29]"),
            ("Seesaw [34] + PCB", "Seesaw [34]")]


def t2_values(gain_seeds, base=(20.0, 20.4, 19.8)):
    """PCB Table 2 segm.AP for both groups: base seeds and base + gain per seed for the +PCB rows."""
    mapping = {}
    for group in ("v0.5", "v1.0"):
        for with_pcb, without in T2_PAIRS:
            mapping[("pcb", "2", group, without, "segm.AP")] = list(base)
            mapping[("pcb", "2", group, with_pcb, "segm.AP")] = [b + g for b, g in zip(base, gain_seeds)]
    return ReproducedValues(mapping)


def test_paper_scale_gain_beyond_seed_spread_holds(specs):
    result = evaluate_claim(specs["pcb"], claim(specs["pcb"], "pcb-improves-every-base"), t2_values((1.5, 1.4, 1.6)), "paper")
    assert result.verdict == HOLDS
    assert len(result.evidence) == 16 and all(e.n == 3 for e in result.evidence)
    assert any("95% interval" in d for d in result.details)
    cell = next(e for e in result.evidence if e.row == "Softmax + PCB" and e.group == "v0.5")
    assert cell.mean == pytest.approx(21.5667, abs=1e-3) and cell.std == pytest.approx(0.2082, abs=1e-3)  # 21.5, 21.8, 21.4


def test_paper_scale_gain_within_seed_spread_is_undetermined_but_smoke_says_holds(specs):
    values = t2_values((0.3, -0.1, 0.2), base=(20.0, 20.4, 19.8))  # mean gain +0.13, seed sd ~0.3
    c = claim(specs["pcb"], "pcb-improves-every-base")
    assert evaluate_claim(specs["pcb"], c, values, "paper").verdict == UNDETERMINED
    smoke = evaluate_claim(specs["pcb"], c, values, "smoke")
    assert smoke.verdict == HOLDS and "directional sanity check" in smoke.details[-1]
    mini = evaluate_claim(specs["pcb"], c, values, "mini")  # mini scale: the seed interval, as at paper scale
    assert mini.verdict == UNDETERMINED and "in miniature" in mini.details[-1]
    beyond = evaluate_claim(specs["pcb"], c, t2_values((1.5, 1.4, 1.6)), "mini")
    assert beyond.verdict == HOLDS


def test_a_clear_loss_fails_with_evidence(specs):
    result = evaluate_claim(specs["pcb"], claim(specs["pcb"], "pcb-improves-every-base"), t2_values((-2.0, -2.1, -1.9)), "paper")
    assert result.verdict == FAILS
    assert any("fails" in d and "Softmax + PCB" in d for d in result.details)
    assert "segm.AP" in result.evidence[0].describe() and "n=3" in result.evidence[0].describe()


def test_missing_cells_are_undetermined_not_failed(specs):
    mapping = {("pcb", "2", "v0.5", "Softmax", "segm.AP"): [20.0, 20.1]}
    result = evaluate_claim(specs["pcb"], claim(specs["pcb"], "pcb-improves-every-base"), ReproducedValues(mapping), "paper")
    assert result.verdict == UNDETERMINED and any("missing" in d for d in result.details)
    # a single failing pair decides even when others are missing
    mapping[("pcb", "2", "v0.5", "Softmax + PCB", "segm.AP")] = [15.0, 15.2]
    assert evaluate_claim(specs["pcb"], claim(specs["pcb"], "pcb-improves-every-base"), ReproducedValues(mapping), "paper").verdict == FAILS


def test_single_seed_uses_the_sign_and_says_so(specs):
    result = evaluate_claim(specs["pcb"], claim(specs["pcb"], "pcb-improves-every-base"), t2_values((0.1,), base=(20.0,)), "paper")
    assert result.verdict == HOLDS and any("n = 1" in d for d in result.details)


def test_undefined_values_are_dropped(specs):
    values = t2_values((1.0, 1.0, 1.0), base=(-1.0, -1.0, -1.0))  # baseline undefined, +PCB rows = 0.0 (defined)
    result = evaluate_claim(specs["pcb"], claim(specs["pcb"], "pcb-improves-every-base"), values, "paper")
    assert result.verdict == UNDETERMINED


# --- other predicate kinds on reproduced values ------------------------------------------------------
def test_difference_is_a_sign_at_reproduction_and_equality_on_paper_numbers(specs):
    pcb = specs["pcb"]
    c = claim(pcb, "pcb-seesaw-rare-gain-v05")  # +3.5 APr
    mk = lambda a, b: ReproducedValues({("pcb", "2", "v0.5", "Seesaw [34] + PCB", "segm.APr"): a,  # noqa: E731
                                        ("pcb", "2", "v0.5", "Seesaw [34]", "segm.APr"): b})
    assert evaluate_claim(pcb, c, mk([12.0, 12.5, 12.2], [10.0, 10.3, 9.9]), "paper").verdict == HOLDS
    assert evaluate_claim(pcb, c, mk([9.0, 9.2, 9.1], [10.0, 10.3, 9.9]), "paper").verdict == FAILS
    # on "reported" values (one per cell) a +2.0 difference is not the stated +3.5
    assert evaluate_claim(pcb, c, mk([12.0], [10.0]), "reported").verdict == FAILS


def test_bags_ap4_within_one_point_equivalence(specs):
    bags = specs["bags"]
    c = claim(bags, "bags-tail-bins-rise-head-bins-unchanged")
    base = {"bbox.AP1": [0.0, 0.1], "bbox.AP2": [17.0, 17.2], "bbox.AP3": [24.0, 24.1], "bbox.AP4": [30.0, 30.1]}

    def values(ours_ap4):
        ours = {"bbox.AP1": [10.0, 10.5], "bbox.AP2": [26.0, 26.5], "bbox.AP3": [24.2, 24.3], "bbox.AP4": ours_ap4}
        m = {("bags", "1", None, "(1) R50-FPN", k): v for k, v in base.items()}
        m.update({("bags", "1", None, "(14) Ours", k): v for k, v in ours.items()})
        return ReproducedValues(m)

    assert evaluate_claim(bags, c, values([29.9, 30.0]), "paper").verdict == HOLDS
    assert evaluate_claim(bags, c, values([27.0, 27.1]), "paper").verdict == FAILS  # AP4 dropped 3 points
    # noisy AP4 whose interval crosses the 1-point bound: undetermined
    assert evaluate_claim(bags, c, values([28.0, 30.5]), "paper").verdict == UNDETERMINED


def test_cross_table_claim_reads_both_tables(specs):
    bags = specs["bags"]
    c = claim(bags, "bags-beta1-below-main-result")
    assert claim_tables(bags)[:1] == ["1"] and "5" in claim_tables(bags)
    mapping = {("bags", "1", None, "(14) Ours", "bbox.AP"): [20.0, 20.2]}
    for row in ("(1) train fc-cls", "(2) train head", "(3) tune head", "(4) tune all"):
        mapping[("bags", "5", None, row, "bbox.AP")] = [18.0, 18.1]
    result = evaluate_claim(bags, c, ReproducedValues(mapping), "paper")
    assert result.verdict == HOLDS and {e.table for e in result.evidence} == {"1", "5"}


def test_correlation_and_argbest_and_monotonic(specs):
    pcb = specs["pcb"]
    rows = ["Softmax", "Softmax + PCB", "RFS [12]", "RFS [12] + PCB", "EQL v2 [29]", "EQL v2 [29] + PCB", "Seesaw [34]", "Seesaw [34] + PCB"]
    mapping = {}
    for i, row in enumerate(rows):
        mapping[("pcb", "2", "v0.5", row, "segm.AP")] = [20.0 + i]
        mapping[("pcb", "2", "v0.5", row, "PwB")] = [10.0 - i]
    corr = claim(pcb, "pwb-ap-negatively-correlated")
    assert evaluate_claim(pcb, corr, ReproducedValues(mapping), "smoke").verdict == HOLDS
    for i, row in enumerate(rows):
        mapping[("pcb", "2", "v0.5", row, "PwB")] = [10.0 + i]
    result = evaluate_claim(pcb, corr, ReproducedValues(mapping), "smoke")
    assert result.verdict == FAILS and "+1.000" in result.details[0]

    alpha = claim(pcb, "alpha-04-best-rare")
    m = {("pcb", "6", None, f"α={a}", "segm.APr"): [v, v + 0.1, v - 0.1]
         for a, v in (("0.0", 10.0), ("0.2", 12.0), ("0.4", 14.0), ("0.6", 13.0), ("0.8", 12.5), ("1.0", 11.0))}
    assert evaluate_claim(pcb, alpha, ReproducedValues(m), "paper").verdict == HOLDS
    m[("pcb", "6", None, "α=0.6", "segm.APr")] = [14.0, 14.1, 13.8]  # tie within spread
    assert evaluate_claim(pcb, alpha, ReproducedValues(m), "paper").verdict == UNDETERMINED
    m[("pcb", "6", None, "α=0.6", "segm.APr")] = [16.0, 16.1, 15.9]
    assert evaluate_claim(pcb, alpha, ReproducedValues(m), "paper").verdict == FAILS

    steps = claim(pcb, "rare-ap-rises-through-steps")
    m = {("pcb", "7", None, f"{base} step {k}", "segm.APr"): [v] for base in ("Softmax", "RFS [12]")
         for k, v in ((1, 5.0), (2, 6.0), (3, 7.0))}
    assert evaluate_claim(pcb, steps, ReproducedValues(m), "smoke").verdict == HOLDS
    m[("pcb", "7", None, "RFS [12] step 3", "segm.APr")] = [5.5]
    assert evaluate_claim(pcb, steps, ReproducedValues(m), "smoke").verdict == FAILS


def test_correlation_helpers_and_combine():
    assert spearman([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(0.9934, abs=1e-4)
    assert pearson([1, 1, 1], [1, 2, 3]) == 0.0
    assert combine([HOLDS, HOLDS]) == HOLDS and combine([HOLDS, UNDETERMINED]) == UNDETERMINED
    assert combine([UNDETERMINED, FAILS]) == FAILS and combine([]) == UNDETERMINED


def test_bad_inputs_are_clear_errors(specs):
    with pytest.raises(LtbenchError, match="unknown claim evaluation mode"):
        evaluate_claim(specs["pcb"], specs["pcb"].claims[0], ReproducedValues({}), "full")
    with pytest.raises(LtbenchError, match="needs reproduced values"):
        evaluate_claims(specs["pcb"], mode="paper")
    with pytest.raises(LtbenchError, match="not \\(paper, table, group, row, metric\\)"):
        ReproducedValues({("pcb", "2", "Softmax"): [1.0]})


def test_mapping_from_store_collects_every_seed(specs):
    pcb = specs["pcb"]
    t2 = pcb.table("2")
    serves, results = {}, {}
    for row in t2.rows:
        pairs = tuple((f"{row.id}-{row.group.id}-seed{s}", "plain") for s in range(3))
        serves[("2", row.group.id, row.id)] = pairs
        gain = 1.0 if "PCB" in row.label else 0.0
        for s, pair in enumerate(pairs):
            if not (row.label == "Softmax" and s == 2):  # one record still missing
                results[pair] = {"segm.AP": 20.0 + gain + 0.1 * s, "segm.APr": -1.0}
    values = mapping_from_store(pcb, serves, results)
    softmax = t2.find_row("Softmax", "v0.5")
    assert values(softmax, "segm.AP") == [20.0, 20.1]
    assert values(softmax, "segm.APr") == [-1.0, -1.0]
    result = evaluate_claim(pcb, claim(pcb, "pcb-improves-every-base"), values, "paper")
    assert result.verdict == HOLDS


def test_markdown_and_json(specs):
    pcb = specs["pcb"]
    reproduced = evaluate_claims(pcb, t2_values((1.5, 1.4, 1.6)), mode="paper")
    pairs = list(zip(evaluate_claims(pcb), reproduced))
    text = claims_markdown(pairs)
    n_hold = sum(r.verdict == HOLDS for r in reproduced)
    assert f"{len(pairs)} claims: {n_hold} hold" in text
    assert "| pcb-improves-every-base" in text and "✓ holds (paper)" in text
    assert "### pcb-lowers-pwb: ? undetermined" in text
    data = claims_json(pairs)
    assert data[0]["reported_verdict"] == HOLDS and data[0]["evidence"][0]["n"] == 3


def _pair_claim(op, a="Softmax + PCB", b="Softmax"):
    return {"id": "x", "text": "", "where": "", "predicate": {
        "kind": "compare", "op": op, "metrics": ["segm.AP"],
        "pairs": [[{"table": "2", "group": "v0.5", "row": a}, {"table": "2", "group": "v0.5", "row": b}]]}}


_seed_lists = st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), min_size=1, max_size=4)


@settings(max_examples=80, deadline=None)
@given(_seed_lists, _seed_lists, st.sampled_from(["paper", "smoke"]))
def test_compare_is_antisymmetric(specs, a, b, mode):
    values = ReproducedValues({("pcb", "2", "v0.5", "Softmax + PCB", "segm.AP"): a,
                               ("pcb", "2", "v0.5", "Softmax", "segm.AP"): b})
    pcb = specs["pcb"]
    forward = evaluate_claim(pcb, _pair_claim(">"), values, mode).verdict
    backward = evaluate_claim(pcb, _pair_claim(">", "Softmax", "Softmax + PCB"), values, mode).verdict
    assert (forward, backward) in {(HOLDS, FAILS), (FAILS, HOLDS), (UNDETERMINED, UNDETERMINED), (FAILS, FAILS)}
    if (forward, backward) == (FAILS, FAILS):  # only a tie fails both strict directions
        assert sum(a) / len(a) == pytest.approx(sum(b) / len(b))
    # A < B is B > A
    assert evaluate_claim(pcb, _pair_claim("<", "Softmax", "Softmax + PCB"), values, mode).verdict == forward
    # ">=" ("not significantly worse") holds whenever ">" holds, and fails only if the reverse ">" holds
    weak = evaluate_claim(pcb, _pair_claim(">="), values, mode).verdict
    assert weak != UNDETERMINED and (forward != HOLDS or weak == HOLDS) and ((weak == FAILS) == (backward == HOLDS))


def test_markdown_escapes_pipes(specs):
    from ltbench.claims import ClaimResult

    result = ClaimResult("c", "AP | APr both rise", "Sec. 1", "smoke", UNDETERMINED)
    line = next(l for l in claims_markdown([(None, result)], evidence=False).splitlines() if l.startswith("| c "))
    assert "AP \\| APr" in line and line.count(" | ") == 4


def test_audit_claims_on_an_empty_store(tmp_path):
    from ltbench.claims import audit_claims

    pairs = audit_claims(["simcal"], scale="smoke", results_dir=tmp_path)
    assert len(pairs) >= 6
    assert all(reported.verdict == HOLDS and reproduced.verdict == UNDETERMINED for reported, reproduced in pairs)
    assert all(reproduced.mode == "smoke" for _, reproduced in pairs)


def test_audit_markdown_shows_the_text_table_contradiction(tmp_path):
    from ltbench.claims import audit_claims

    md = claims_markdown(audit_claims(["disalign"], scale="smoke", results_dir=tmp_path))
    row = next(line for line in md.splitlines() if line.startswith("| disalign-ade20k-resnest-gains"))
    assert "✗ fails (the text contradicts its table: see note)" in row and "? undetermined" in row
    assert "- note: The text disagrees with Table 6." in md
    assert md.count("(the text contradicts its table") == 1


def test_pearson_option_and_zero_difference_without_tolerance(specs):
    pcb = specs["pcb"]
    alphas = ("0.0", "0.2", "0.4", "0.6", "0.8", "1.0")
    rows = [{"table": "6", "row": f"α={a}"} for a in alphas]
    corr = {"id": "c", "text": "", "where": "", "predicate": {
        "kind": "correlation", "x": "segm.APr", "y": "segm.APc", "sign": "positive", "rows": rows}}
    # five rows rise together, one outlier goes the other way: Spearman +0.143, Pearson strongly negative
    xs, ys = (1.0, 2.0, 3.0, 4.0, 5.0, 100.0), (11.0, 12.0, 13.0, 14.0, 15.0, 0.0)
    m = {("pcb", "6", None, f"α={a}", "segm.APr"): [x] for a, x in zip(alphas, xs)}
    m.update({("pcb", "6", None, f"α={a}", "segm.APc"): [y] for a, y in zip(alphas, ys)})
    values = ReproducedValues(m)
    assert spearman(xs, ys) == pytest.approx(1 - 6 * 30 / (6 * 35))
    result = evaluate_claim(pcb, corr, values, "smoke")
    assert result.verdict == HOLDS and "spearman" in result.details[0] and "+0.143" in result.details[0]
    corr["predicate"]["method"] = "pearson"
    result = evaluate_claim(pcb, corr, values, "smoke")
    assert result.verdict == FAILS and "pearson" in result.details[0]
    corr["predicate"]["method"] = "kendall"
    with pytest.raises(LtbenchError, match="unknown correlation method"):
        evaluate_claim(pcb, corr, values, "smoke")

    zero = {"id": "z", "text": "", "where": "", "predicate": {
        "kind": "difference", "metric": "segm.APr", "value": 0, "a": rows[0], "b": rows[1]}}
    result = evaluate_claim(pcb, zero, values, "paper")
    assert result.verdict == UNDETERMINED and "without a tolerance" in result.details[0]


def test_a_table_ends_with_the_claims_that_read_it_alone(specs):
    """Table 2's claims (and not Table 1's, nor the ones reading Tables 7 and 2) judged on the table's records:
    RFS, EQL v2 and Seesaw raise APr over Softmax beyond three seeds' spread; PCB lowers AP."""
    from ltbench.claims.report import table_claims

    pcb = specs["pcb"]
    serves, results = {}, {}
    apr = {"softmax": 3.0, "rfs-12": 10.0, "eql-v2-29": 8.0, "seesaw-34": 12.0}
    for row in pcb.table("2").rows:
        base = row.id.removesuffix("-plus-pcb")
        pairs = tuple((f"{base}{'-pcb' if base != row.id else ''}-s{s}", "plain") for s in range(3))
        serves[("2", row.group.id, row.id)] = pairs
        for s, pair in enumerate(pairs):
            results[pair] = {"segm.AP": 25.0 - 5.0 * (base != row.id) + 0.2 * s, "segm.APr": apr[base] + 0.3 * s,
                             "PwB": 3.0}
    pairs = table_claims(pcb, "2", serves, results, scale="mini")
    verdicts = {result.id: result.verdict for _, result in pairs}
    assert {"resampling-raises-rare-ap", "eqlv2-raises-rare-ap", "seesaw-raises-rare-ap", "pcb-improves-every-base"} <= set(verdicts)
    assert "first-step-beats-base" not in verdicts  # reads Table 7 too
    assert all(reported.verdict == HOLDS for reported, _ in pairs)
    assert verdicts["resampling-raises-rare-ap"] == verdicts["seesaw-raises-rare-ap"] == HOLDS
    assert verdicts["pcb-improves-every-base"] == FAILS
    assert all(result.mode == "mini" for _, result in pairs)
    md = claims_markdown(pairs, heading="### Claims on this table")
    assert md.startswith("### Claims on this table") and "#### resampling-raises-rare-ap: ✓ holds" in md
    no_records = table_claims(pcb, "5", {}, {}, scale="mini")
    assert [(r.id, r.verdict) for _, r in no_records] == [("pcb-momentum-trades-rare-for-common", UNDETERMINED)]
