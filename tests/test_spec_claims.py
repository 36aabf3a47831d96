"""Claims: structure checked by the loader; PCB's claims hold on PCB's own printed numbers."""

from __future__ import annotations

import copy

import pytest

from ltbench.errors import LtbenchError
from ltbench.paths import PAPER_SPECS_DIR
from ltbench.spec import load_paper, validate_spec
from ltbench.spec.claims import evaluate, evaluate_reported, spearman
from ltbench.spec.yaml_text import read_spec_yaml


@pytest.fixture(scope="module")
def pcb():
    return load_paper(PAPER_SPECS_DIR / "pcb.yaml")


def test_pcb_claims_hold_on_the_reported_numbers(pcb):
    assert len(pcb.claims) >= 10
    for claim in pcb.claims:
        holds, details = evaluate_reported(pcb, claim)
        assert holds is True, (claim["id"], details)


def test_a_changed_number_breaks_the_claim(pcb):
    claim = next(c for c in pcb.claims if c["id"] == "pcb-improves-every-base")

    def value(row, metric):
        if row.table_id == "2" and row.label == "Seesaw [34] + PCB" and row.group.id == "v1.0":
            return 26.0  # below Seesaw's 26.8
        return float(row.reported[metric]) if metric in row.reported else None

    holds, details = evaluate(pcb, claim["predicate"], value)
    assert holds is False and "26.0 > 26.8 fails" in " ".join(details)
    holds, details = evaluate(pcb, claim["predicate"], lambda row, metric: None)
    assert holds is None and details


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
