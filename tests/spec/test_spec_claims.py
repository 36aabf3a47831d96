"""Claims: structure checked by the loader (ltbench.spec.claims); every paper's claims hold on its own printed
numbers when evaluated by the one claim evaluator (ltbench.claims)."""

from __future__ import annotations

import copy

import pytest

from ltbench.errors import LtbenchError
from ltbench.claims import FAILS, HOLDS, UNDETERMINED, evaluate_claim, evaluate_claims, spearman
from ltbench.paths import PAPER_SPECS_DIR
from ltbench.spec import load_paper, validate_spec
from ltbench.spec.yaml_text import read_spec_yaml


@pytest.fixture(scope="module")
def pcb():
    return load_paper(PAPER_SPECS_DIR / "pcb.yaml")


@pytest.mark.parametrize("paper", ["pcb", "disalign", "bags", "simcal"])
def test_every_claim_holds_on_the_reported_numbers(paper):
    spec = pcb_spec() if paper == "pcb" else load_paper(PAPER_SPECS_DIR / f"{paper}.yaml")
    assert spec.claims, paper
    results = evaluate_claims(spec)
    assert [r.id for r in results] == [c["id"] for c in spec.claims]
    expected = {c["id"]: c.get("on_reported", HOLDS) for c in spec.claims}
    for result in results:
        assert result.verdict == expected[result.id], (result.id, result.details)
        assert result.evidence and all(e.n == 1 for e in result.evidence), result.id


def pcb_spec():
    return load_paper(PAPER_SPECS_DIR / "pcb.yaml")


def test_pcb_has_its_main_claims(pcb):
    assert len(pcb.claims) >= 10


def test_a_changed_number_breaks_the_claim(pcb):
    claim = next(c for c in pcb.claims if c["id"] == "pcb-improves-every-base")

    def value(row, metric):
        if row.table_id == "2" and row.label == "Seesaw [34] + PCB" and row.group.id == "v1.0":
            return [26.0]  # below Seesaw's 26.8
        return [float(row.reported[metric])] if metric in row.reported else []

    result = evaluate_claim(pcb, claim, value, "reported")
    assert result.verdict == FAILS
    text = " ".join(result.details)
    assert "'Seesaw [34] + PCB (LVIS v1.0)' > T2 'Seesaw [34] (LVIS v1.0)': fails (difference -0.800)" in text
    assert any(e.row == "Seesaw [34] + PCB" and e.values == (26.0,) for e in result.evidence)
    result = evaluate_claim(pcb, claim, lambda row, metric: [], "reported")
    assert result.verdict == UNDETERMINED and result.details


def test_spearman():
    assert spearman([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: c["predicate"].update(kind="compair"), "did you mean 'compare'"),
        (lambda c: c["predicate"]["pairs"][0][0].update(row="Softmax + PBC"), "no row 'Softmax + PBC' in table 2"),
        (lambda c: c["predicate"].update(metrics=["segm.Ap"]), "unknown metric key 'segm.Ap'"),
        (lambda c: c["predicate"]["pairs"][0][0].pop("group"), "in several column groups"),
        (lambda c: c["predicate"].pop("op"), "compare predicate lacks op"),
        (lambda c: c["predicate"].update(kind="difference", metric="segm.AP", a=c["predicate"]["pairs"][0][0],
                                         b=c["predicate"]["pairs"][0][1], value=0, tolerance=-1), "tolerance -1"),
        (lambda c: c["predicate"].update(kind="correlation", x="segm.AP", y="segm.APr", sign="negative",
                                         rows=c["predicate"]["pairs"][0], method="kendall"), "correlation method 'kendall'"),
    ],
)
def test_malformed_claims_are_clear_errors(mutate, needle):
    data = read_spec_yaml(PAPER_SPECS_DIR / "pcb.yaml")
    data = copy.deepcopy(data)
    mutate(data["claims"][0])
    with pytest.raises(LtbenchError) as info:
        validate_spec(data, "workflows/papers/pcb.yaml")
    text = str(info.value)
    assert needle in text and "claims[0] (pcb-improves-every-base).predicate" in text
