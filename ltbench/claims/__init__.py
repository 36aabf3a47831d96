"""Claims (issue 8): a paper's qualitative statements checked on its own numbers and on reproduced results.

The predicates live in the paper specs (``claims:``; structure checked by ``ltbench.spec.claims``).
This package evaluates them:

>>> from ltbench.spec import load_paper
>>> from ltbench.claims import evaluate_claims, ReproducedValues
>>> spec = load_paper("workflows/papers/pcb.yaml")
>>> [r.verdict for r in evaluate_claims(spec)]                      # on the paper's numbers: all "holds"
>>> values = ReproducedValues({("pcb", "2", "v0.5", "Softmax", "segm.AP"): [18.1, 18.4, 18.0], ...})
>>> evaluate_claims(spec, values, mode="paper")                     # holds / fails / undetermined + evidence

For the audit: ``audit_claims(papers, scale=..., results_dir=...)`` then ``claims_markdown(...)``.
"""

from ltbench.claims.evaluate import (
    FAILS, HOLDS, MODES, UNDETERMINED, CellEvidence, ClaimResult, combine, evaluate_claim, evaluate_claims, pearson,
    reported_values, spearman,
)
from ltbench.claims.report import audit_claims, claims_json, claims_markdown
from ltbench.claims.results import ReproducedValues, claim_tables, load_reproduced, mapping_from_store

__all__ = [
    "FAILS", "HOLDS", "MODES", "UNDETERMINED", "CellEvidence", "ClaimResult", "ReproducedValues", "audit_claims",
    "claim_tables", "claims_json", "claims_markdown", "combine", "evaluate_claim", "evaluate_claims",
    "load_reproduced", "mapping_from_store", "pearson", "reported_values", "spearman",
]
