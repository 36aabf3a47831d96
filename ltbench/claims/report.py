"""Claims as Markdown (for the audit report) and as JSON-ready dicts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ltbench.claims.evaluate import ClaimResult, evaluate_claims

MARK = {"holds": "✓ holds", "fails": "✗ fails", "undetermined": "? undetermined"}


def audit_claims(papers: Sequence[str], *, scale: str, framework: str | None = None,
                 results_dir: str | Path | None = None, with_reported: bool = True, seeds: int | None = None) -> list[tuple[ClaimResult | None, ClaimResult]]:
    """Every claim of ``papers``: (verdict on the paper's numbers, verdict on the current results).

    Paper and mini scale evaluate with seed intervals (modes ``paper``, ``mini``), smoke scale directionally (``smoke``).
    A paper whose spec does not load is skipped (the audit reports spec errors on its own).
    """
    from ltbench.claims.results import load_reproduced
    from ltbench.errors import LtbenchError
    from ltbench.spec import load_all

    out: list[tuple[ClaimResult | None, ClaimResult]] = []
    for paper in papers:
        try:
            spec = load_all(papers=[paper])[paper]
        except LtbenchError:
            continue
        values = load_reproduced(spec, scale=scale, framework=framework, results_dir=results_dir, seeds=seeds)
        reproduced = evaluate_claims(spec, values, mode=scale if scale in ("paper", "mini") else "smoke")
        reported = evaluate_claims(spec) if with_reported else [None] * len(reproduced)
        out += list(zip(reported, reproduced))
    return out


def table_claims(spec: Any, table_id: str, serves: dict[tuple[str, str, str], Sequence[tuple[str, str]]],
                 results: dict, *, scale: str) -> list[tuple[ClaimResult, ClaimResult]]:
    """(verdict on the paper's numbers, verdict on ``results``) of each claim of ``spec`` that reads table
    ``table_id`` and no other, so that a rendered table can end with them.

    ``serves``: (table id, group id, row id) -> the (run, view) pairs of that row, one per seed.
    """
    from ltbench.claims.evaluate import evaluate_claim, reported_values
    from ltbench.claims.results import mapping_from_store
    from ltbench.spec.claims import referenced_tables

    claims = [c for c in spec.claims if referenced_tables(c["predicate"]) == {str(table_id)}]
    if not claims:
        return []
    values = mapping_from_store(spec, serves, results)
    mode = scale if scale in ("paper", "mini") else "smoke"
    return [(evaluate_claim(spec, c, reported_values, "reported"), evaluate_claim(spec, c, values, mode)) for c in claims]


def claims_markdown(pairs: Sequence[tuple[ClaimResult | None, ClaimResult]], *, evidence: bool = True,
                    compact: bool = False, heading: str = "## Claims") -> str:
    """A Markdown section: a summary line, one table row per claim, then the evidence per claim.

    ``compact``: the table without column padding (the audit report). ``heading``: the section's heading line;
    each claim's evidence is one level below it."""
    from tabulate import tabulate

    from ltbench.render.markdown import compact_pipe

    counts = Counter(r.verdict for _, r in pairs)
    lines = [heading, "",
             f"{len(pairs)} claims: {counts['holds']} hold, {counts['fails']} fail, {counts['undetermined']} undetermined "
             "on the current results.", ""]
    rows = []
    for reported, result in pairs:
        text = result.text if len(result.text) <= 90 else result.text[:87] + "..."
        text = text.replace("|", "\\|")  # a pipe would end the Markdown cell
        on_paper = MARK[reported.verdict] if reported else ""
        if reported and reported.verdict == result.on_reported == "fails":
            on_paper += " (the text contradicts its table: see note)"
        rows.append([result.id, f"“{text}”", result.where, on_paper,
                     MARK[result.verdict] + f" ({result.mode})"])
    headers = ["claim", "text", "where", "paper's numbers", "reproduced"]
    lines.append(compact_pipe(headers, rows) if compact else tabulate(rows, headers=headers, tablefmt="pipe"))
    if evidence:
        for _, result in pairs:
            lines += ["", f"{heading.split()[0]}# {result.id}: {MARK[result.verdict]}", ""]
            if result.note:
                lines.append(f"- note: {result.note}")
            lines += [f"- {d}" for d in result.details]
            cells = [e.describe() for e in result.evidence]
            if compact:  # cells not measured yet are counted, not listed
                missing = sum(1 for e in result.evidence if not e.values)
                cells = [e.describe() for e in result.evidence if e.values]
                if missing:
                    cells.append(f"{missing} cell(s) not measured yet")
            if cells:
                lines.append("- cells: " + "; ".join(cells))
    return "\n".join(lines) + "\n"


def claims_json(pairs: Sequence[tuple[ClaimResult | None, ClaimResult]]) -> list[dict[str, Any]]:
    return [{**result.to_dict(), "reported_verdict": None if reported is None else reported.verdict}
            for reported, result in pairs]
