"""A smoke campaign of PCB Table 2 with 3 seeds, through the real planner and store records.

No training: the records are written with made-up metrics for the (run, view) pairs the planner asks
for, so the seams (plan -> record ids -> claims and seed verdicts) are exercised end to end.
"""

from __future__ import annotations

import pytest

from ltbench.claims import FAILS, HOLDS, UNDETERMINED, evaluate_claim, load_reproduced
from ltbench.claims.results import plan_serves
from ltbench.paths import PAPER_SPECS_DIR
from ltbench.analysis.seeds import WITHIN, WORSE, cell_verdict
from ltbench.spec import load_paper

SEEDS = 3


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    from ltbench.plan import build_plan
    from ltbench.spec.loader import papers_dir
    from ltbench.store import make_record, write_record

    spec = load_paper(PAPER_SPECS_DIR / "pcb.yaml")
    spec.seeds = SEEDS  # as a `seeds: 3` target would ask
    spec.claims = [c for c in spec.claims if c["id"] in ("pcb-improves-every-base", "pcb-lowers-pwb")]
    plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke", specs={"pcb": spec}, directory=papers_dir())
    results = tmp_path_factory.mktemp("results")
    written = 0
    for row in plan.rows:
        if row.paper != "pcb" or row.table != "2" or not row.view_id:
            continue
        view = next(v.view_config for v in plan.views if v.run_id == row.run_ids[0] and v.view_id == row.view_id)
        for seed, run_id in enumerate(row.run_ids):
            pcb = "+ PCB" in row.label
            # PCB rows: +1.0 segm.AP, -2.0 PwB; seeds spread by 0.2
            metrics = {"segm.AP": 20.0 + (1.0 if pcb else 0.0) + 0.2 * seed,
                       "PwB": 12.0 - (2.0 if pcb else 0.0) + 0.2 * seed,
                       "segm.APr": -1.0}
            write_record(make_record(plan.runs[run_id].config, view, metrics), results)
            written += 1
    return spec, results, written


def test_the_plan_asks_for_one_run_per_seed(campaign):
    spec, _, written = campaign
    serves = plan_serves(spec, ["2"], scale="smoke")
    assert len(serves) == 16 and written == 16 * SEEDS
    for pairs in serves.values():
        assert len(pairs) == SEEDS and len({run for run, _ in pairs}) == SEEDS


def test_claims_on_the_campaign(campaign):
    spec, results, _ = campaign
    values = load_reproduced(spec, scale="smoke", results_dir=results)
    softmax = spec.table("2").find_row("Softmax", "v0.5")
    assert values(softmax, "segm.AP") == pytest.approx([20.0, 20.2, 20.4])
    for claim in spec.claims:
        smoke = evaluate_claim(spec, claim, values, "smoke")
        paper = evaluate_claim(spec, claim, values, "paper")
        assert smoke.verdict == HOLDS and paper.verdict == HOLDS, (claim["id"], paper.details)
        assert all(e.n == SEEDS for e in paper.evidence)


def test_seed_verdicts_and_mean_std_of_the_campaign(campaign):
    spec, results, _ = campaign
    values = load_reproduced(spec, scale="smoke", results_dir=results)
    softmax = spec.table("2").find_row("Softmax", "v0.5")
    v = cell_verdict(softmax.reported["segm.AP"], values(softmax, "segm.AP"), metric="segm.AP")
    # 20.0, 20.2, 20.4: mean 20.2, std 0.2, prediction interval 20.2 ± 4.303*0.2*sqrt(4/3) = ±0.99
    assert v.stats.format(1) == "20.2 ± 0.2 (n=3)"
    assert v.verdict == WORSE and v.high == pytest.approx(20.2 + 4.303 * 0.2 * (4 / 3) ** 0.5)
    assert cell_verdict("21.0", values(softmax, "segm.AP")).verdict == WITHIN
    # APr was -1 (undefined) in every seed: no verdict
    assert cell_verdict(softmax.reported["segm.APr"], values(softmax, "segm.APr")).verdict == "undetermined"


def test_a_missing_seed_makes_paper_claims_weaker_not_wrong(campaign):
    spec, results, _ = campaign
    values = load_reproduced(spec, scale="smoke", results_dir=results)
    # drop every record of the PCB rows: nothing to compare -> undetermined
    emptied = type(values)({k: v for k, v in values.mapping.items() if not k[3].endswith("plus-pcb")})
    claim = spec.claims[0]
    assert evaluate_claim(spec, claim, emptied, "paper").verdict == UNDETERMINED
    # flip the gain on one row -> fails
    flipped = dict(values.mapping)
    key = ("pcb", "2", "v1.0", "seesaw-34-plus-pcb", "segm.AP")
    assert key in flipped, sorted(k for k in flipped if k[2] == "v1.0")[:4]
    flipped[key] = [15.0, 15.1, 15.2]
    assert evaluate_claim(spec, claim, type(values)(flipped), "paper").verdict == FAILS
