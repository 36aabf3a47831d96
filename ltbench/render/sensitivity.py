"""``tables/<paper>_table<N>_sensitivity.md``: a table's methods through several frameworks, side by side.

The rows and their baselines come from a ``compare`` claim of the table (PCB Table 2:
``pcb-improves-every-base``: "X + PCB" vs "X"); each framework has its own runs (the framework is part
of the run hash), planned with ``build_plan(framework=fw)``. One block per metric of the claim
(method × framework, each method's gain over its baseline per framework, and whether the gain
survives the change of framework), built by ``ltbench.sensitivity``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ltbench import io, paths
from ltbench.errors import LtbenchError, did_you_mean

# Frameworks compared when none are given: the choice per scale (torchvision is the CPU smoke
# framework; mmdet and detectron2 are the papers' own).
DEFAULT_FRAMEWORKS = {"smoke": ("torchvision", "mmdet"), "paper": ("mmdet", "detectron2")}


def parse_frameworks(text: str | Sequence[str] | None, scale: str) -> list[str]:
    """``"torchvision,mmdet"`` (or a list) -> checked, de-duplicated list; None -> the scale's default."""
    from ltbench.spec import vocab

    if text is None or (isinstance(text, str) and not text.strip()):
        return list(DEFAULT_FRAMEWORKS[scale])
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else [str(t).strip() for t in text]
    items = [t for t in items if t]
    for name in items:
        if name not in vocab.FRAMEWORKS:
            raise LtbenchError(f"unknown framework {name!r}{did_you_mean(name, vocab.FRAMEWORKS)}", key="--frameworks",
                               expected="a comma-separated list of " + ", ".join(vocab.FRAMEWORKS))
    out = list(dict.fromkeys(items))
    if not out:
        raise LtbenchError("no framework given", key="--frameworks", expected="e.g. torchvision,mmdet")
    return out


def sensitivity_claim(spec: Any, table_id: str, claim_id: str | None = None) -> dict[str, Any]:
    """The ``compare`` claim whose (method, baseline) pairs give the rows: ``claim_id``, else the first
    compare claim of the spec whose pairs all lie in ``table_id``."""
    if claim_id is not None:
        claim = next((c for c in spec.claims if c["id"] == claim_id), None)
        if claim is None:
            raise LtbenchError(f"paper {spec.paper!r} has no claim {claim_id!r}"
                               + did_you_mean(claim_id, [c["id"] for c in spec.claims]), path=spec.path, key="--claim",
                               expected="one of " + ", ".join(c["id"] for c in spec.claims))
        if claim["predicate"].get("kind") != "compare":
            raise LtbenchError(f"claim {claim_id!r} is a {claim['predicate'].get('kind')} predicate", key="--claim",
                               expected="a compare claim with (method, baseline) pairs")
        return claim
    spec.table(table_id)  # a clear error for a table that does not exist
    for claim in spec.claims:
        p = claim["predicate"]
        if p.get("kind") == "compare" and p.get("op") in (">", ">=") and p["pairs"] and all(
                str(ref.get("table")) == str(table_id) for pair in p["pairs"] for ref in pair):
            return claim
    raise LtbenchError(f"{spec.paper} table {table_id} has no compare claim (method > baseline) to take rows from",
                       path=spec.path, key="claims", expected="a compare claim on that table, or --claim ID")


def render_sensitivity(
    paper: str,
    table_id: str,
    *,
    frameworks: Sequence[str] | str | None = None,
    scale: str = "smoke",
    seeds: int | None = None,
    claim_id: str | None = None,
    metrics: Sequence[str] | None = None,
    results_dir: str | Path | None = None,
) -> str:
    """Markdown of the sensitivity table (renders with zero results: every value pending)."""
    from ltbench.render.tables import read_store
    from ltbench.sensitivity import pairs_from_claim, sensitivity_frame, to_markdown, values_from_store
    from ltbench.spec import load_paper

    fws = parse_frameworks(frameworks, scale)
    spec = load_paper(paths.PAPER_SPECS_DIR / f"{paper}.yaml")
    claim = sensitivity_claim(spec, table_id, claim_id)
    pairs = pairs_from_claim(spec, claim["id"])
    keys = list(metrics or claim["predicate"]["metrics"])
    from ltbench.spec import vocab

    for key in keys:
        if key not in vocab.METRIC_KEYS:
            raise LtbenchError(f"unknown metric key {key!r}{did_you_mean(key, vocab.METRIC_KEYS)}", key="--metric",
                               expected="a canonical metric key, e.g. segm.AP")
    results = read_store(results_dir).results
    precision = int(spec.raw.get("precision", 1) or 1)
    lines = [
        f"# {paper.upper()} Table {table_id}: framework sensitivity ({', '.join(fws)}, {scale} scale)", "",
        f"Rows from claim `{claim['id']}` ({claim.get('where', '')}): \"{' '.join(str(claim.get('text', '')).split())}\"",
        "",
        "Every framework trains its own runs from the same resolved configs (the framework is part of the run hash)"
        + (f"; {seeds} seed(s) per row." if seeds else "; seeds as the spec states."),
        "",
    ]
    if scale == "smoke":
        lines += ["Smoke scale: tiny models on synthetic data; a directional sanity check, not evidence about the paper.", ""]
    for key in keys:
        values = values_from_store(spec, table_id, fws, scale=scale, metric=key, seeds=seeds, results=results)
        frame = sensitivity_frame(values, pairs, fws, metric=key)
        lines += [f"## {key}", "", to_markdown(frame, precision=precision).rstrip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_sensitivity(paper: str, table_id: str, *, md: Path, **kwargs: Any) -> str:
    text = render_sensitivity(paper, table_id, **kwargs)
    io.write_text(md, text)
    return text
